"""POST /api/v1/applications: a department's business system submits claims (业务系统接口)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.responses import Response

from yikatong.core.clock import Clock
from yikatong.security.models import User
from yikatong.security.roles import Perm
from yikatong.web.deps import DbSession, client_ip, get_clock, require
from yikatong.workflow import service, submissions
from yikatong.workflow.schemas import SubmissionIn, SubmissionOut, SubmissionRefused

_REASONS = {
    "missing": "必填项为空",
    "string_type": "应为字符串",
    "string_too_short": "不能为空",
    "extra_forbidden": "未知字段（可用：id_number, name, item_code, period, quantity, note, external_ref）",
    "list_type": "应为数组",
    "model_type": "应为对象",
    "model_attributes_type": "应为对象",
    "dict_type": "应为对象",
    "json_invalid": "请求体不是有效的JSON",
}


def _problem(error: dict[str, Any]) -> submissions.ClaimProblem:
    """A Pydantic error of the body or the key header, in the shape of the claim errors."""
    loc = list(error.get("loc", ()))
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if loc[:1] == ["header"]:
        return submissions.ClaimProblem(None, "Idempotency-Key",
                                        f"请求头 Idempotency-Key 应为1至{submissions.MAX_KEY_LENGTH}个字符，"
                                        "每次新的提交使用新的值")
    if loc[:2] == ["body", "claims"] and len(loc) >= 4 and isinstance(loc[2], int):
        index, field = loc[2], str(loc[3])
    elif loc[:2] == ["body", "claims"] and len(loc) == 2:
        index, field = None, "claims"
        if kind == "too_short":
            return submissions.ClaimProblem(None, field, "至少提交1条申请")
        if kind == "too_long":
            most = ctx.get("max_length", 10000)
            return submissions.ClaimProblem(None, field, f"一次最多提交{most}条申请，请分批提交")
    else:
        index, field = None, ".".join(str(p) for p in loc[1:]) or "body"
    if kind == "string_too_long":
        reason = f"长度不能超过{ctx.get('max_length')}个字符"
    else:
        reason = _REASONS.get(kind, error.get("msg", "格式错误"))
    return submissions.ClaimProblem(index, field, reason)


def refusal(problems: list[submissions.ClaimProblem], detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail, "error_count": len(problems),
                         "errors": submissions.problems_out(problems)}, status_code=422)


class _ClaimErrorsRoute(APIRoute):
    """Malformed claims are reported like refused ones: {"detail", "errors": [{"index", "field", "reason"}]}."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                problems = [_problem(e) for e in exc.errors()]
                indexes = {p.index for p in problems if p.index is not None}
                detail = f"{len(indexes)}条申请格式有误，未写入任何申请" if indexes else "请求格式有误，未写入任何申请"
                return refusal(problems, detail)

        return route


api = APIRouter(prefix="/api/v1", tags=["workflow"], route_class=_ClaimErrorsRoute)
pages = APIRouter(include_in_schema=False)


@api.post(
    "/applications",
    status_code=201,
    response_model=SubmissionOut,
    summary="Submit claims from a business system (all or nothing, idempotent)",
    responses={
        200: {"model": SubmissionOut, "description": "A repeated request (same Idempotency-Key and body): the first "
                                                     "answer again, with replayed true; nothing new written"},
        409: {"description": "The Idempotency-Key was used for a different body, or a request with it is still "
                             "being processed: {\"detail\"}"},
        422: {"model": SubmissionRefused, "description": "Some claims are wrong (or the request is malformed): "
                                                         "nothing was written; every problem is listed"},
    },
)
def submit_claims(
    body: SubmissionIn,
    request: Request,
    idempotency_key: str = Header(..., alias="Idempotency-Key", min_length=1, max_length=100,
                                  description="Chosen by the client, 1-100 characters, new for every new "
                                              "submission and the same for a retry of it"),
    user: User = Depends(require(Perm.APPLICATION_LIST)),
    db: Session = DbSession,
    clock: Clock = Depends(get_clock),
) -> Response:
    """For a department's business system, with the token of a user holding application.list (county
    department handler, city finance). Each claim is checked like a row of a department list and
    entered at the item's list station. 201 with the new applications in claim order; 200 with
    `replayed: true` for a retry. Format: docs/data-formats.md."""
    try:
        result = submissions.submit(db, user, idempotency_key, body.claims, clock.now(), ip=client_ip(request),
                                    screen=False)
    except submissions.ClaimsRefused as e:
        db.rollback()  # nothing of a refused submission is kept
        return refusal(e.problems, e.message)
    if not result.replayed:
        # committed first, then screened in a short transaction: no write lock held while rules run
        db.commit()
        service.screen_committed(db, [a.id for a in result.applications], clock.now(), user)
    out = SubmissionOut(applications=[asdict(a) for a in result.applications], replayed=result.replayed)
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if result.replayed else 201)
