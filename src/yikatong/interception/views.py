"""Interception on the web: the flags (存疑信息) list and page with verification (核实), the
statistics of interception (拦截统计) with charts and an Excel download, and the JSON API.

Views are thin: who may see and verify a flag, and what verifying does, are in interception.service;
the figures are in interception.stats."""

from __future__ import annotations

from datetime import date, datetime
from math import ceil
from typing import Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile as StarletteUploadFile

from yikatong.catalog.models import SubsidyItem
from yikatong.core.clock import Clock
from yikatong.core.db import savepoint
from yikatong.core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from yikatong.interception import service, stats
from yikatong.interception.jobs import FLAGS_EXPORT
from yikatong.interception.models import Flag, FlagStatus, Rule, RuleVersion
from yikatong.jobs import service as jobs
from yikatong.registry.documents import read_document, store_document
from yikatong.registry.models import Document, Person
from yikatong.registry.service import region_names
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, has_perm
from yikatong.security.scope import pad_code, parent_of, require_region, within
from yikatong.web.deps import (
    REGION_FILTER,
    DbSession,
    PageNo,
    PageSize,
    RowId,
    client_ip,
    get_clock,
    optional_date,
    require,
)
from yikatong.web.templating import templates
from yikatong.workflow.models import Application

api = APIRouter(prefix="/api/v1", tags=["interception"])
pages = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
MAX_PAGE = 1000
MAX_FILE_BYTES = 20 * 1024 * 1024
STATUSES = [s.value for s in FlagStatus]
ALL = "all"  # the status filter that shows every status
DECISIONS = {"confirm": True, "clear": False}
MESSAGES = {"confirm": "已核实属实：申请已否决，并转为问题线索", "clear": "已核实排除：该存疑信息不再阻止办理和发放"}


# ---------------------------------------------------------------- what the API returns


class FlagRowOut(BaseModel):
    id: int
    application_id: int
    application_number: str
    person_name: str
    id_number_masked: str
    item_code: str
    item_name: str
    region_code: str
    region_name: str
    rule_code: str
    rule_name: str
    severity: str
    evidence: str
    amount_fen: int = Field(description="涉及金额（分）")
    raised_at: datetime
    status: str = Field(description="待核实、核实属实或核实排除")
    open: bool = Field(False, description="待核实: still to be verified")
    verified_at: datetime | None
    opinion: str


class FlagListOut(BaseModel):
    rows: list[FlagRowOut]
    total: int = Field(description="符合筛选条件（含状态）的条数")
    page: int
    size: int
    pages: int
    counts: dict[str, int] = Field(description="符合其他筛选条件的各状态条数")


class RuleBriefOut(BaseModel):
    code: str
    name: str
    version: int
    explanation: str
    severity: str


class ApplicationSummaryOut(BaseModel):
    id: int
    number: str
    person_name: str
    id_number_masked: str
    item_code: str
    item_name: str
    region_code: str
    region_name: str
    period: str
    amount_fen: int
    status: str
    stage: str | None
    open_flags: int


class FlagOut(FlagRowOut):
    rule: RuleBriefOut
    application: ApplicationSummaryOut
    verified_by_name: str | None
    evidence_document: str | None = Field(description="核实证明材料的 SHA-256")
    can_verify: bool
    other_flags: list[FlagRowOut] = Field(description="同一申请的其他存疑信息")


class VerifyIn(BaseModel):
    decision: Literal["confirm", "clear"] = Field(description="confirm 核实属实（申请否决）；clear 核实排除")
    opinion: str = Field("", max_length=2000, description="核实意见（必填）")
    document_sha256: str | None = Field(None, description="已上传的证明材料（SHA-256），可选")


class GateIn(BaseModel):
    application_ids: list[int] = Field(min_length=1, max_length=service.GATE_MAX, description="要发放的申请ID")


class GateFlagOut(BaseModel):
    id: int
    rule_code: str
    evidence: str


class GateBlockedOut(BaseModel):
    application_id: int
    flags: list[GateFlagOut] = Field(description="该申请待核实的存疑信息")


class GateOut(BaseModel):
    passed: bool = Field(description="全部申请均转入待支付")
    message: str
    checked: int
    new_flags: int = Field(description="本次比对新发现的存疑信息")
    allowed: list[int] = Field(description="已转入待支付的申请ID")
    blocked: list[GateBlockedOut] = Field(description="有待核实存疑信息、不能发放的申请")
    not_payable: dict[int, str] = Field(description="不是已通过状态、未转入待支付的申请ID及其状态")


def _gate_out(r: service.GateResult) -> GateOut:
    return GateOut(passed=r.passed, message=r.message(), checked=r.checked, new_flags=r.new_flags, allowed=r.allowed,
                   blocked=[GateBlockedOut(application_id=b.application_id,
                                           flags=[GateFlagOut(id=f.id, rule_code=f.rule_code, evidence=f.evidence)
                                                  for f in b.flags]) for b in r.blocked],
                   not_payable=r.not_payable)


class StatRowOut(BaseModel):
    key: str
    name: str
    flags: int = Field(description="拦截记录（条）：规则命中数")
    amount_fen: int
    applications: int = Field(description="涉及申请（件，去重）")
    open: int
    open_fen: int
    confirmed: int
    confirmed_fen: int
    cleared: int
    cleared_fen: int
    precision: float | None = Field(description="准确率＝属实÷（属实＋排除），未核实为 null")


class StatsOut(BaseModel):
    region_code: str
    region_name: str
    group_length: int = Field(description="按区域统计的代码位数：6 县、9 乡镇、12 村")
    date_from: date | None
    date_to: date | None
    total: StatRowOut
    applications_amount_fen: int = Field(description="涉及申请（去重）的申请金额合计（分）")
    by_rule: list[StatRowOut]
    by_item: list[StatRowOut]
    by_region: list[StatRowOut]
    by_month: list[StatRowOut]


# ---------------------------------------------------------------- the list


def _status_filter(status: str) -> str | None:
    """'' -> 待核实 (the default), 'all' -> every status, else one of the three."""
    if not status:
        return FlagStatus.OPEN.value
    if status == ALL:
        return None
    if status not in STATUSES:
        raise Invalid("状态只能是 待核实、核实属实、核实排除 或 all")
    return status


def _region_prefix(user: User, region: str) -> str | None:
    region = (region or "").strip()
    if not region:
        return None
    try:
        code = pad_code(region)
    except ValueError as e:
        raise Invalid(str(e)) from None
    require_region(user.region_code, code)
    return code


def _filtered(db: Session, user: User, rule: str, item: str, code: str | None):
    query = service.visible_flags(db, user)
    if rule:
        query = query.where(Flag.rule_code == rule)
    if item:
        query = query.where(Flag.item_code == item)
    if code:
        query = query.where(within(Flag.region_code, code))
    return query


def _rows(db: Session, ids: list[int]) -> list[FlagRowOut]:
    """The flags' rows for display, in the order of `ids`."""
    if not ids:
        return []
    found = db.execute(
        select(Flag, Application.number, Person.name, Person.id_number_masked, SubsidyItem.name, Rule.name)
        .join(Application, Application.id == Flag.application_id)
        .join(Person, Person.id == Application.person_id)
        .join(SubsidyItem, SubsidyItem.code == Flag.item_code)
        .join(Rule, Rule.code == Flag.rule_code)
        .where(Flag.id.in_(ids))).all()
    names = region_names(db, {r[0].region_code for r in found})
    by_id = {}
    for f, number, person, masked, item_name, rule_name in found:
        by_id[f.id] = FlagRowOut(
            id=f.id, application_id=f.application_id, application_number=number, person_name=person,
            id_number_masked=masked, item_code=f.item_code, item_name=item_name, region_code=f.region_code,
            region_name=names.get(f.region_code, f.region_code), rule_code=f.rule_code, rule_name=rule_name,
            severity=f.severity, evidence=f.evidence, amount_fen=f.amount_fen, raised_at=f.raised_at,
            status=f.status, open=f.status == FlagStatus.OPEN.value, verified_at=f.verified_at, opinion=f.opinion)
    return [by_id[i] for i in ids if i in by_id]


def flag_list(db: Session, user: User, *, status: str = "", rule: str = "", item: str = "", region: str = "",
              page: int = 1, size: int = PAGE_SIZE) -> FlagListOut:
    """The flags the user may read, filtered, newest first, with the count of each status (from the
    flag tallies for a city or county, counted over the flags of a township or village)."""
    wanted = _status_filter(status)
    page = max(1, min(page, MAX_PAGE))
    size = max(1, min(size, 200))
    code = _region_prefix(user, region)
    counts = stats.status_counts(db, user, rule=rule, item=item, region=code)
    if counts is None:
        counts = {s: 0 for s in STATUSES}
        counts.update({s: n for s, n in db.execute(
            _filtered(db, user, rule, item, code).with_only_columns(Flag.status, func.count())
            .group_by(Flag.status)).all()})
    total = counts[wanted] if wanted else sum(counts.values())
    ids = service.newest_flag_ids(db, user, status=wanted, rule=rule, item=item, region=code,
                                  offset=(page - 1) * size, limit=size) if total else []
    return FlagListOut(rows=_rows(db, ids), total=total, page=page, size=size, pages=max(1, ceil(total / size)),
                       counts=counts)


def _choices(db: Session, user: User) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(code, name) of the rules and of the items that have flags the user may read."""
    found = stats.flag_choices(db, user)
    if found is None:
        visible = service.visible_flags(db, user)
        rule_codes = visible.with_only_columns(Flag.rule_code).distinct()
        item_codes = visible.with_only_columns(Flag.item_code).distinct()
    else:
        rule_codes, item_codes = found
    rules = db.execute(select(Rule.code, Rule.name).where(Rule.code.in_(rule_codes)).order_by(Rule.code)).all()
    items = db.execute(select(SubsidyItem.code, SubsidyItem.name).where(SubsidyItem.code.in_(item_codes))
                       .order_by(SubsidyItem.code)).all()
    return [tuple(r) for r in rules], [tuple(i) for i in items]


# ---------------------------------------------------------------- one flag


def _application_summary(db: Session, app: Application) -> ApplicationSummaryOut:
    person = db.get(Person, app.person_id)
    names = region_names(db, {app.region_code})
    return ApplicationSummaryOut(
        id=app.id, number=app.number, person_name=person.name, id_number_masked=person.id_number_masked,
        item_code=app.item_code, item_name=app.item.name, region_code=app.region_code,
        region_name=names.get(app.region_code, app.region_code), period=app.period, amount_fen=app.amount_fen,
        status=app.status, stage=app.stage, open_flags=app.open_flags)


def flag_detail(db: Session, user: User, flag_id: int) -> FlagOut:
    flag = service.get_flag(db, user, flag_id)  # 404, or 403 outside the user's region and duties
    version = db.get(RuleVersion, flag.rule_version_id)
    rule = db.get(Rule, flag.rule_code)
    app = db.get(Application, flag.application_id)
    others = list(db.scalars(select(Flag.id).where(Flag.application_id == app.id, Flag.id != flag.id)
                             .order_by(Flag.id)))
    row = _rows(db, [flag.id])[0]
    verifier = db.get(User, flag.verified_by) if flag.verified_by else None
    return FlagOut(
        **row.model_dump(),
        rule=RuleBriefOut(code=flag.rule_code, name=rule.name if rule else version.name, version=version.version,
                          explanation=version.explanation, severity=version.severity),
        application=_application_summary(db, app), verified_by_name=verifier.display_name if verifier else None,
        evidence_document=flag.evidence_document, can_verify=service.can_verify(db, user, flag),
        other_flags=_rows(db, others))


def _document_exists(db: Session, sha256: str | None) -> str | None:
    if not sha256:
        return None
    sha256 = sha256.strip().lower()
    if db.get(Document, sha256) is None:
        raise Invalid("证明材料不存在：请先上传文件")
    return sha256


def _verify(db: Session, user: User, flag_id: int, decision: str, opinion: str, document_sha256: str | None,
            now: datetime, ip: str) -> Flag:
    if decision not in DECISIONS:
        raise Invalid("核实结论只能是 属实（confirm）或 排除（clear）")
    flag = service.get_flag(db, user, flag_id)
    return service.verify(db, flag, user, confirm=DECISIONS[decision], opinion=opinion,
                          document_sha256=_document_exists(db, document_sha256), now=now, ip=ip)


# ---------------------------------------------------------------- JSON API


@api.get("/flags", response_model=FlagListOut)
def api_flags(status: str = Query("", description="待核实（默认）、核实属实、核实排除，或 all"),
              rule: str = Query("", max_length=40), item: str = Query("", max_length=20),
              region: str = Query("", max_length=12, pattern=REGION_FILTER,
                                  description="区划代码或前缀（6 县、9 乡镇、12 村）"),
              page: PageNo = 1, size: PageSize = PAGE_SIZE, db: Session = DbSession,
              user: User = Depends(require(Perm.FLAG_READ))) -> FlagListOut:
    """存疑信息 in your region (and, for a county department, its items), newest first."""
    return flag_list(db, user, status=status, rule=rule, item=item, region=region, page=page, size=size)


@api.get("/flags/{flag_id:int}", response_model=FlagOut)
def api_flag(flag_id: RowId, db: Session = DbSession, user: User = Depends(require(Perm.FLAG_READ))) -> FlagOut:
    """One flag with its rule, its application and the application's other flags. 403 outside your scope."""
    return flag_detail(db, user, flag_id)


@api.post("/flags/{flag_id:int}/verify", response_model=FlagOut)
def api_verify(flag_id: RowId, body: VerifyIn, request: Request, db: Session = DbSession,
               clock: Clock = Depends(get_clock), user: User = Depends(require(Perm.FLAG_VERIFY))) -> FlagOut:
    """核实: `confirm` (属实: the application is rejected and a lead is kept) or `clear` (排除). An
    opinion is required; 409 when the flag is no longer 待核实."""
    _verify(db, user, flag_id, body.decision, body.opinion, body.document_sha256, clock.now(), client_ip(request))
    return flag_detail(db, user, flag_id)


def _stats_out(s: stats.FlagStats) -> StatsOut:
    def out(r: stats.StatRow) -> StatRowOut:
        return StatRowOut(**vars(r), precision=r.precision)

    return StatsOut(region_code=s.region_code, region_name=s.region_name, group_length=s.group_length,
                    date_from=s.date_from, date_to=s.date_to, total=out(s.total),
                    applications_amount_fen=s.applications_amount_fen, by_rule=[out(r) for r in s.by_rule],
                    by_item=[out(r) for r in s.by_item], by_region=[out(r) for r in s.by_region],
                    by_month=[out(r) for r in s.by_month])


@api.get("/interception/stats", response_model=StatsOut)
def api_stats(date_from: date | None = None, date_to: date | None = None,
              region: str = Query("", max_length=12, pattern=REGION_FILTER,
                                  description="统计的区域（默认本人辖区），按其下一级汇总"),
              db: Session = DbSession, user: User = Depends(require(Perm.FLAG_READ))) -> StatsOut:
    """拦截统计: flags by rule (with precision), item, region and month, with the status split."""
    return _stats_out(stats.flag_stats(db, user, date_from=date_from, date_to=date_to, region=region or None))


# ---------------------------------------------------------------- pages


@api.post("/payment-gate", response_model=GateOut)
def api_gate(body: GateIn, db: Session = DbSession, clock: Clock = Depends(get_clock),
             user: User = Depends(require(Perm.PAYMENT_GATE))) -> GateOut:
    """发放前比对: every active rule on these applications; those with no open flag move from 已通过 to
    待支付. Always 200 with the verdict (`passed`): the flags found are kept even when some are blocked."""
    return _gate_out(service.gate(db, body.application_ids, clock.now(), actor=user))


@pages.get("/flags", response_class=HTMLResponse)
def flags_page(request: Request, status: str = "", rule: str = "", item: str = "", region: str = "",
               page: PageNo = 1, db: Session = DbSession, user: User = Depends(require(Perm.FLAG_READ))) -> Response:
    result = flag_list(db, user, status=status, rule=rule, item=item, region=region, page=page)
    rules, items = _choices(db, user)
    query = {k: v for k, v in {"status": status, "rule": rule, "item": item, "region": region}.items() if v}
    return templates.TemplateResponse(request, "interception/flags.html", {
        "user": user, "r": result, "status": _status_filter(status) or ALL, "rule": rule, "item": item,
        "region": region, "rules": rules, "items": items, "statuses": STATUSES,
        "query": urlencode(query), "status_query": urlencode({k: v for k, v in query.items() if k != "status"})})


@pages.post("/flags/export")
def flags_export(status: str = Form(""), rule: str = Form("", max_length=40), item: str = Form("", max_length=20),
                 region: str = Form("", max_length=12), db: Session = DbSession, clock: Clock = Depends(get_clock),
                 user: User = Depends(require(Perm.FLAG_READ))) -> Response:
    """The filtered flags as Excel, written by a job (a city's flags are many): the page answers at
    once with the job's page, which offers the file when it is ready."""
    wanted = _status_filter(status)
    code = _region_prefix(user, region)  # 422 for a malformed code, 403 outside the user's region
    params = {"status": wanted or "", "rule": rule, "item": item, "region": code or ""}
    job = jobs.start(db, FLAGS_EXPORT, params, user, clock.now())
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


def _flag_page(request: Request, db: Session, user: User, flag_id: int, *, msg: str = "", error: str | None = None,
               form: dict[str, str] | None = None, status_code: int = 200) -> Response:
    view = flag_detail(db, user, flag_id)
    return templates.TemplateResponse(request, "interception/flags_detail.html", {
        "user": user, "f": view, "flash": MESSAGES.get(msg), "error": error, "form": form or {},
        "can_person": has_perm(user.role, Perm.PERSON_READ)}, status_code=status_code)


@pages.get("/flags/{flag_id:int}", response_class=HTMLResponse)
def flag_page(request: Request, flag_id: RowId, msg: str = "", db: Session = DbSession,
              user: User = Depends(require(Perm.FLAG_READ))) -> Response:
    return _flag_page(request, db, user, flag_id, msg=msg)


async def _chosen_document(request: Request) -> StarletteUploadFile | None:
    """The form's evidence file, if one was chosen (an empty file input arrives as an empty string)."""
    form = await request.form()
    f = form.get("document")
    return f if isinstance(f, StarletteUploadFile) and f.filename else None


@pages.post("/flags/{flag_id:int}/verify", response_class=HTMLResponse)
def verify_submit(request: Request, flag_id: RowId, decision: str = Form(""), opinion: str = Form(""),
                  document: StarletteUploadFile | None = Depends(_chosen_document), db: Session = DbSession,
                  clock: Clock = Depends(get_clock), user: User = Depends(require(Perm.FLAG_VERIFY))) -> Response:
    now = clock.now()
    try:
        with savepoint(db):  # the stored file's row and the verification commit together or not at all
            sha256 = None
            if document is not None:
                data = document.file.read(MAX_FILE_BYTES + 1)
                if len(data) > MAX_FILE_BYTES:
                    raise Invalid(f"证明材料超过{MAX_FILE_BYTES // 1024 // 1024}MB")
                if not data:
                    raise Invalid(f"证明材料“{document.filename}”是空文件")
                sha256 = store_document(db, data, document.filename, document.content_type or
                                        "application/octet-stream", now, user.id).sha256
            _verify(db, user, flag_id, decision, opinion, sha256, now, client_ip(request))
    except DomainError as e:
        if isinstance(e, NotFound | Forbidden):
            raise
        return _flag_page(request, db, user, flag_id, error=e.message, form={"decision": decision, "opinion": opinion},
                          status_code=e.status_code)
    return RedirectResponse(f"/flags/{flag_id}?msg={decision}", status_code=303)


@pages.get("/flags/{flag_id:int}/document")
def flag_document(flag_id: RowId, request: Request, db: Session = DbSession, clock: Clock = Depends(get_clock),
                  user: User = Depends(require(Perm.FLAG_READ))) -> Response:
    """The evidence file of a verification, checked against its hash; the read is audited."""
    flag = service.get_flag(db, user, flag_id)
    if not flag.evidence_document:
        raise NotFound("该存疑信息没有核实证明材料")
    document = db.get(Document, flag.evidence_document)
    try:
        data = read_document(document.sha256)
    except ValueError:
        raise Conflict("材料文件与登记的哈希不一致，可能已被篡改，已拒绝提供") from None
    audit.record(db, user, "document.read", "document", document.sha256, clock.now(), region_code=flag.region_code,
                 ip=client_ip(request), detail={"flag": flag.id})
    return Response(data, media_type=document.content_type,
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(document.filename)}"})


def _stats(db: Session, user: User, date_from: str, date_to: str, region: str) -> stats.FlagStats:
    return stats.flag_stats(db, user, date_from=optional_date(date_from, "开始日期"),
                            date_to=optional_date(date_to, "结束日期"), region=region or None)


def _chart_data(s: stats.FlagStats) -> dict[str, Any]:
    """What stats.js draws: counts by status per rule, per region and per item, and each month's records
    and amount."""
    def series(rows: list[stats.StatRow], limit: int) -> dict[str, list[Any]]:
        rows = rows[:limit]
        return {"names": [r.name for r in rows], "open": [r.open for r in rows],
                "confirmed": [r.confirmed for r in rows], "cleared": [r.cleared for r in rows]}

    return {"rules": series(s.by_rule, 25), "items": series(s.by_item, 20), "regions": series(s.by_region, 40),
            "months": {"names": [r.key for r in s.by_month], "flags": [r.flags for r in s.by_month],
                       "amount": [str(stats.yuan(r.amount_fen)) for r in s.by_month]}}


@pages.get("/interception/stats", response_class=HTMLResponse)
def stats_page(request: Request, date_from: str = "", date_to: str = "", region: str = "", db: Session = DbSession,
               user: User = Depends(require(Perm.FLAG_READ))) -> Response:
    s = _stats(db, user, date_from, date_to, region)
    own = pad_code(user.region_code)
    up = parent_of(s.region_code) if s.region_code != own else None
    dates = {k: v for k, v in {"date_from": date_from, "date_to": date_to}.items() if v}
    return templates.TemplateResponse(request, "interception/stats.html", {
        "user": user, "s": s, "chart": _chart_data(s), "date_from": date_from, "date_to": date_to,
        "region": region, "up": up, "dates": urlencode(dates),
        "query": urlencode({**dates, **({"region": region} if region else {})})})


@pages.get("/interception/stats.xlsx")
def stats_export(request: Request, date_from: str = "", date_to: str = "", region: str = "",
                 db: Session = DbSession, clock: Clock = Depends(get_clock),
                 user: User = Depends(require(Perm.FLAG_READ))) -> Response:
    s = _stats(db, user, date_from, date_to, region)
    audit.record_export(db, user, "flag_stats", "xlsx", {"date_from": date_from, "date_to": date_to,
                                                         "region": region}, s.total.flags, clock.now(),
                        ip=client_ip(request))
    name = f"拦截统计_{clock.now():%Y%m%d}.xlsx"
    return Response(stats.export_xlsx(s), media_type=stats.XLSX_TYPE,
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


# ---------------------------------------------------------------- the pre-payment gate


def parse_ids(text: str) -> list[int]:
    """Application IDs typed or pasted: one per line, or separated by commas or spaces."""
    parts = text.replace(",", " ").replace("，", " ").split()
    bad = [p for p in parts if not p.isdigit() or len(p) > 18]
    if bad:
        raise Invalid(f"不是申请ID：{'、'.join(bad[:5])}")
    if not parts:
        raise Invalid("请填写要发放的申请ID")
    if len(parts) > service.GATE_MAX:
        raise Invalid(f"一次最多比对{service.GATE_MAX:,}笔申请")
    return [int(p) for p in parts]


@pages.get("/payment-gate", response_class=HTMLResponse)
def gate_page(request: Request, user: User = Depends(require(Perm.PAYMENT_GATE))) -> Response:
    return templates.TemplateResponse(request, "interception/gate.html", {"user": user, "ids": "", "result": None})


@pages.post("/payment-gate", response_class=HTMLResponse)
def gate_submit(request: Request, ids: str = Form("", max_length=200_000), db: Session = DbSession,
                clock: Clock = Depends(get_clock), user: User = Depends(require(Perm.PAYMENT_GATE))) -> Response:
    """The result is shown, and committed with the request: flags found, moves to 待支付."""
    try:
        result = service.gate(db, parse_ids(ids), clock.now(), actor=user)
    except Invalid as e:
        return templates.TemplateResponse(request, "interception/gate.html",
                                          {"user": user, "ids": ids, "result": None, "error": e.message},
                                          status_code=e.status_code)
    return templates.TemplateResponse(request, "interception/gate.html",
                                      {"user": user, "ids": ids, "result": result})
