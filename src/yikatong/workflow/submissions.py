"""Claims from a department's business system over the API (业务系统接口), with an idempotency key.

A submission is all or nothing: every claim is checked (the same checks as a list or the village
counter) and either all are entered or none. The client names each submission with an
`Idempotency-Key`; the key, the SHA-256 of the canonical request body and the ids it created are
kept in `api_submissions` (unique per user and key), so a retried request gets the first answer
again and never creates a second application. The unique constraint also settles two requests
with the same key that arrive together: the second one waits for the first, then replays it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from yikatong.core.errors import Conflict, Invalid
from yikatong.core.idnumber import parse_id_number
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, require_perm
from yikatong.workflow.models import ApiSubmission, Application, Source
from yikatong.workflow.schemas import SubmissionClaimIn
from yikatong.workflow.service import Claim, enter_claims, prepare_claims

MAX_KEY_LENGTH = 100
MAX_LISTED_ERRORS = 1000
FIELD_ORDER = ("id_number", "name", "item_code", "period", "quantity", "note", "external_ref")


@dataclass(frozen=True)
class ClaimProblem:
    index: int | None
    field: str
    reason: str


class ClaimsRefused(Invalid):
    """Some claims are wrong: nothing was written. Carries every problem (HTTP 422)."""

    def __init__(self, problems: list[ClaimProblem]):
        claims = len({p.index for p in problems if p.index is not None})
        super().__init__(f"{claims}条申请不符合要求，未写入任何申请" if claims else "请求有误，未写入任何申请")
        self.problems = sorted(problems, key=lambda p: (-1 if p.index is None else p.index,
                                                        _field_order(p.field)))


@dataclass(frozen=True)
class EnteredApplication:
    index: int
    id: int
    number: str
    amount_fen: int
    status: str
    stage: str | None
    due_on: date | None
    external_ref: str | None


@dataclass(frozen=True)
class SubmissionResult:
    applications: list[EnteredApplication]
    replayed: bool


def _field_order(field: str) -> int:
    return FIELD_ORDER.index(field) if field in FIELD_ORDER else len(FIELD_ORDER)


def request_sha256(claims: list[SubmissionClaimIn]) -> str:
    """SHA-256 of the canonical body: the claims as validated (an omitted optional field and an
    explicit null are the same; 2026 and "2026" are the same), keys sorted, no whitespace."""
    body = {"claims": [c.model_dump(mode="json") for c in claims]}
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise Invalid(f"请求头 Idempotency-Key 应为1至{MAX_KEY_LENGTH}个可见字符，每次新的提交使用新的值")
    return key


def client_key(user: User, key: str) -> str:
    return f"{user.id}:{key}"


def source_ref(submission_id: int, external_ref: str | None) -> str:
    """What an application entered over the API records as its source (at most 100 characters)."""
    return f"api:{submission_id}:{external_ref}" if external_ref else f"api:{submission_id}"


def _external_ref(source_ref_value: str) -> str | None:
    parts = source_ref_value.split(":", 2)
    return parts[2] if len(parts) == 3 else None


_SAME_BATCH = re.compile(r"^与第(\d+)行(.*)$")


def _problem(index: int, field: str, reason: str) -> ClaimProblem:
    # prepare_claims names the other claim by its ref ("第N行"); here a ref is a position in `claims`.
    m = _SAME_BATCH.match(reason)
    if m:
        reason = f"与 index {m.group(1)} 的申请{m.group(2)}"
    return ClaimProblem(index, field, reason)


def _claims(items: list[SubmissionClaimIn]) -> tuple[list[Claim], list[ClaimProblem]]:
    """The checks a list's column parsers make; the rest is prepare_claims'."""
    claims: list[Claim] = []
    problems: list[ClaimProblem] = []
    for index, c in enumerate(items):
        bad = False
        try:
            facts = parse_id_number(c.id_number)
        except ValueError as e:
            problems.append(ClaimProblem(index, "id_number", str(e)))
            bad = True
        for field in ("name", "item_code", "period"):
            if not getattr(c, field).strip():
                problems.append(ClaimProblem(index, field, "必填项为空"))
                bad = True
        if not bad:
            quantity = c.quantity.strip() if c.quantity is not None else None
            claims.append(Claim(ref=index, id_number=facts.number, name=c.name.strip(), item_code=c.item_code.strip(),
                                period=c.period.strip(), quantity=quantity or None, note=c.note.strip()))
    return claims, problems


def _find(session: Session, key: str) -> ApiSubmission | None:
    return session.scalar(select(ApiSubmission).where(ApiSubmission.client_key == key))


def _replay(session: Session, earlier: ApiSubmission, digest: str) -> SubmissionResult:
    if earlier.request_sha256 != digest:
        raise Conflict("该 Idempotency-Key 已用于一次内容不同的提交；新的提交请使用新的 Idempotency-Key")
    ids: list[int] = json.loads(earlier.application_ids)
    apps = {a.id: a for a in session.execute(
        select(Application.id, Application.number, Application.amount_fen, Application.status, Application.stage,
               Application.due_on, Application.source_ref).where(Application.id.in_(ids))).all()}
    return SubmissionResult([
        EnteredApplication(index, a.id, a.number, a.amount_fen, a.status, a.stage, a.due_on,
                           _external_ref(a.source_ref))
        for index, a in enumerate(apps[i] for i in ids)], replayed=True)


def _already_submitted(session: Session, key: str, digest: str) -> SubmissionResult:
    """After our key row clashed with another request's: that request has committed (replay it)
    or is still running and holding the key."""
    session.rollback()
    earlier = _find(session, key)
    if earlier is None:
        raise Conflict("使用同一 Idempotency-Key 的提交正在处理，请稍后用同一请求重试")
    return _replay(session, earlier, digest)


def submit(session: Session, user: User, key: str, items: list[SubmissionClaimIn], now: datetime,
           ip: str = "", screen: bool = True) -> SubmissionResult:
    """Enter every claim, or none. The same key and body again returns the first answer with
    `replayed` true and writes nothing; the same key with another body is refused (409).
    `screen=False`: the caller screens the claims after committing them (service.screen_committed)."""
    require_perm(user, Perm.APPLICATION_LIST)
    check_key(key)
    ckey = client_key(user, key)
    digest = request_sha256(items)
    earlier = _find(session, ckey)
    if earlier is not None:
        return _replay(session, earlier, digest)

    claims, problems = _claims(items)
    prepared = prepare_claims(session, user, claims, Source.API, now)
    problems += [_problem(e.ref, e.field, e.reason) for e in prepared.errors]
    if problems:
        raise ClaimsRefused(problems)

    # Claim the key first: a concurrent request with the same key waits here for our commit and
    # then replays our answer, instead of entering the claims a second time.
    submission = ApiSubmission(client_key=ckey, request_sha256=digest, application_ids="[]", created_at=now)
    session.add(submission)
    try:
        session.flush()
    except (IntegrityError, OperationalError):
        return _already_submitted(session, ckey, digest)

    try:
        ids = enter_claims(session, user, prepared, Source.API, now, source_ref=source_ref(submission.id, None),
                           screen=screen)
    except IntegrityError:
        # Another submission entered the same person, item and period after our checks.
        raise Conflict("其中有申请与同时提交的其他申请重复（同一人、同一项目、同一期次），"
                       "未写入任何申请，请重试") from None
    refs = {c.ref: items[c.ref].external_ref for c in claims}
    external = [{"id": app_id, "source_ref": source_ref(submission.id, refs[ref])}
                for app_id, ref in zip(ids, prepared.refs, strict=True) if refs[ref]]
    if external:
        # by primary key on the table: rows written a moment ago in this transaction, no version to check
        table = Application.__table__
        session.execute(update(table).where(table.c.id == bindparam("app_id"))
                        .values(source_ref=bindparam("ref")),
                        [{"app_id": e["id"], "ref": e["source_ref"]} for e in external])
    submission.application_ids = json.dumps(ids)
    numbers = [row["number"] for row in prepared.rows]
    audit.record(session, user, "application.api_submit", "api_submission", submission.id, now,
                 region_code=user.region_code, ip=ip,
                 detail={"idempotency_key": key, "claims": len(ids), "request_sha256": digest,
                         "first": numbers[0], "last": numbers[-1]})
    session.flush()
    return SubmissionResult([
        EnteredApplication(ref, app_id, row["number"], row["amount_fen"], row["status"], row["stage"], row["due_on"],
                           refs[ref])
        for ref, app_id, row in zip(prepared.refs, ids, prepared.rows, strict=True)], replayed=False)


def problems_out(problems: list[ClaimProblem]) -> list[dict[str, Any]]:
    return [{"index": p.index, "field": p.field, "reason": p.reason} for p in problems[:MAX_LISTED_ERRORS]]
