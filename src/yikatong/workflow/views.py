"""The review road on the web: the acceptance module (受理), the inbox (待办), the application page
with its trail and decisions, village publicity (公示) with the public objection page, and the JSON API.

Views are thin: the road is in workflow.service and workflow.publicity; what the page shows of a
record's detail is in workflow.export, so the page, the API and the exported file agree."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile as StarletteUploadFile

from yikatong.catalog.models import Basis, SubsidyItem
from yikatong.catalog.service import standard_book
from yikatong.core.clock import Clock, beijing_date
from yikatong.core.db import savepoint
from yikatong.core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from yikatong.core.money import format_fen
from yikatong.interception.service import application_flags
from yikatong.registry import service as registry
from yikatong.registry.documents import store_document
from yikatong.registry.models import Person, Region, RegionLevel
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, Role, has_perm, require_perm
from yikatong.security.scope import in_subtree, pad_code, within
from yikatong.web.deps import (
    DbSession,
    PageNo,
    PageSize,
    RegionFilter,
    RowId,
    client_ip,
    current_user,
    get_clock,
    optional_date,
    require,
)
from yikatong.web.templating import templates
from yikatong.workflow import documents, export, publicity, schemas, service
from yikatong.workflow import road as roads
from yikatong.workflow.models import (
    Action,
    Application,
    Objection,
    ObjectionStatus,
    Publicity,
    PublicityEntry,
    ReviewRecord,
    Status,
    Step,
)
from yikatong.workflow.periods import amount_fen, format_quantity, parse_period, parse_quantity, period_of

api = APIRouter(prefix="/api/v1", tags=["workflow"])
pages = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
LIST_MAX_PAGE = 500  # deeper than this, narrow the search (number, status, item)
MAX_FILES = 10
MAX_FILE_BYTES = 20 * 1024 * 1024
VILLAGE_SELECT_MAX = 300  # above this many villages in scope, the filter lists townships and up only
DECISIONS = {"approve": Action.APPROVE, "return": Action.RETURN, "reject": Action.REJECT}
MESSAGES = {
    "accepted": "申请已受理，等待村级评议",
    "corrected": "补正已提交，申请回到本环节继续办理",
    "withdrawn": "申请已撤回",
    "resolved": "异议已处理",
}


# ---------------------------------------------------------------- helpers


def _today(clock: Clock) -> date:
    return beijing_date(clock.now())


def _inbox_filter(item: str = "", village: str = "", due_before: str | date | None = None, overdue: bool = False,
                  returned: bool = False) -> service.InboxFilter:
    if village:
        try:
            village = pad_code(village)
        except ValueError as e:
            raise Invalid(str(e)) from None
    if isinstance(due_before, str):
        due_before = optional_date(due_before, "办理期限")
    return service.InboxFilter(item_code=item or None, village=village or None, due_before=due_before,
                               overdue=overdue, returned=returned)


def _filter_query(f: service.InboxFilter) -> dict[str, str]:
    """The filter as query parameters (for paging links and the bulk confirmation)."""
    out = {"item": f.item_code or "", "village": f.village or "",
           "due_before": f.due_before.isoformat() if f.due_before else "",
           "overdue": "1" if f.overdue else "", "returned": "1" if f.returned else ""}
    return {k: v for k, v in out.items() if v}


async def chosen_files(request: Request) -> list[UploadFile]:
    """The files of the form's `files` inputs. A file input left empty arrives as an empty string, which
    a `list[UploadFile]` form parameter refuses; so the (already parsed, cached) form is read here."""
    form = await request.form()
    return [f for f in form.getlist("files") if isinstance(f, StarletteUploadFile) and f.filename]


ChosenFiles = Depends(chosen_files)


def _read_uploads(files: list[UploadFile] | None) -> list[tuple[str, str, bytes]]:
    """(filename, content type, bytes) of the files actually chosen; every limit checked before
    anything is stored."""
    chosen = [f for f in files or [] if f.filename]
    if len(chosen) > MAX_FILES:
        raise Invalid(f"一次最多上传{MAX_FILES}个材料文件")
    out = []
    for f in chosen:
        data = f.file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise Invalid(f"材料“{f.filename}”超过{MAX_FILE_BYTES // 1024 // 1024}MB")
        if not data:
            raise Invalid(f"材料“{f.filename}”是空文件")
        out.append((f.filename, f.content_type or "application/octet-stream", data))
    return out


def _store_uploads(db: Session, user: User, uploads: list[tuple[str, str, bytes]], now: datetime
                   ) -> list[tuple[str, str]]:
    return [(store_document(db, data, name, ctype, now, user.id).sha256, name) for name, ctype, data in uploads]


def _record_out(r: ReviewRecord, basis: str) -> schemas.RecordOut:
    detail = export.detail_of(r)
    return schemas.RecordOut(
        id=r.id, at=r.at, step=r.step, action=r.action, to_stage=r.to_stage, status_after=r.status_after,
        actor_name=r.actor_name, actor_role=r.actor_role, actor_role_label=export.actor_label(r),
        opinion=r.opinion, detail=detail, detail_text=export.describe(detail, basis))


def _application_out(db: Session, user: User, app: Application, records: list[ReviewRecord],
                     today: date) -> schemas.ApplicationOut:
    person = db.get(Person, app.person_id)
    names = registry.region_names(db, {app.region_code})
    docs = [schemas.DocumentOut(title=d.title, sha256=d.document_sha256, filename=d.document.filename,
                                content_type=d.document.content_type, size=d.document.size, added_at=d.added_at)
            for d in app.documents]
    objections = [schemas.ObjectionOut(id=o.id, publicity_id=o.publicity_id, raised_at=o.raised_at,
                                       raised_by_name=o.raised_by_name, contact_masked=o.contact_masked,
                                       reason=o.reason, status=o.status, opinion=o.opinion, resolved_at=o.resolved_at)
                  for o in publicity.objections_of(db, app.id)]
    return schemas.ApplicationOut(
        id=app.id, number=app.number, item_code=app.item_code, item_name=app.item.name, sector=app.sector,
        person_id=app.person_id, person_name=person.name, id_number_masked=person.id_number_masked,
        region_code=app.region_code, region_name=names.get(app.region_code, app.region_code), period=app.period,
        period_start=app.period_start, period_end=app.period_end, basis=app.basis, quantity_centi=app.quantity_centi,
        quantity_text=format_quantity(app.basis, app.quantity_centi), standard_fen=app.standard_fen,
        amount_fen=app.amount_fen, source=app.source, status=app.status, stage=app.stage, returned=app.returned,
        version=app.stage_seq, owner_region=app.owner_region, due_on=app.due_on,
        overdue_days=export.overdue_days(app.due_on, today),
        open_objections=app.open_objections, publicity_id=app.publicity_id, note=app.note, created_at=app.created_at,
        decided_at=app.decided_at, can_act=service.can_act(db, user, app),
        actions=sorted(service.allowed_actions(db, user, app)), documents=docs, objections=objections,
        records=[_record_out(r, app.basis) for r in records])


def _inbox_out(db: Session, box: service.Inbox, today: date) -> schemas.InboxOut:
    return schemas.InboxOut(
        rows=[schemas.InboxRow(id=r.id, number=r.number, item_code=r.item_code, item_name=r.item_name,
                               person_name=r.person_name, id_number_masked=r.id_number_masked,
                               region_code=r.region_code, period=r.period, amount_fen=r.amount_fen, stage=r.stage,
                               due_on=r.due_on, overdue_days=export.overdue_days(r.due_on, today),
                               returned=r.returned, open_objections=r.open_objections, publicity_id=r.publicity_id,
                               version=r.stage_seq, at_publicity=r.at_publicity)
              for r in box.rows],
        total=box.total, overdue=box.overdue, page=box.page, size=box.size, pages=box.pages,
        by_item=[schemas.ItemCount(code=c, name=n, count=k) for c, n, k in box.by_item], steps=box.steps)


def _attachment(data: bytes, media_type: str, filename: str) -> Response:
    return Response(data, media_type=media_type,
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"})


def _decide(db: Session, user: User, application_id: int, decision: str, opinion: str, return_to: str | None,
            now: datetime, ip: str = "", version: int | None = None) -> tuple[Application, ReviewRecord]:
    action = DECISIONS.get(decision)
    if action is None:
        raise Invalid("审核决定只能是 通过、退回补正 或 否决")
    require_perm(user, Perm.REVIEW)
    app = service.get_application(db, user, application_id)
    service.check_version(app, version)
    record = service.decide(db, app, user, action, opinion, now, return_to=return_to or None, ip=ip)
    db.flush()
    return app, record


# ---------------------------------------------------------------- JSON API


@api.get("/inbox", response_model=schemas.InboxOut)
def api_inbox(item_code: str = "", village: RegionFilter = "", due_before: date | None = None, overdue: bool = False,
              returned: bool = False, page: PageNo = 1, size: PageSize = PAGE_SIZE, db: Session = DbSession,
              clock: Clock = Depends(get_clock), user: User = Depends(require(Perm.REVIEW))) -> schemas.InboxOut:
    """What waits for you (待办): the stations of your role, in your region and duties, by deadline."""
    filters = _inbox_filter(item_code, village, due_before, overdue, returned)
    today = _today(clock)
    return _inbox_out(db, service.inbox(db, user, filters, today, page, size), today)


@api.get("/applications/{application_id:int}", response_model=schemas.ApplicationOut)
def api_application(application_id: RowId, db: Session = DbSession, clock: Clock = Depends(get_clock),
                    user: User = Depends(require(Perm.APPLICATION_READ))) -> schemas.ApplicationOut:
    """One application with its documents, objections and full trail. 403 outside your region or duties."""
    app, records = service.trail(db, user, application_id)
    return _application_out(db, user, app, records, _today(clock))


@api.post("/applications/{application_id:int}/decision", response_model=schemas.DecisionOut)
def api_decision(application_id: RowId, body: schemas.DecisionIn, request: Request, db: Session = DbSession,
                 clock: Clock = Depends(get_clock), user: User = Depends(require(Perm.REVIEW))) -> schemas.DecisionOut:
    """Approve (to the next station), return for correction (opinion required; `return_to` an earlier
    station) or reject (opinion required). One record is written to the trail."""
    app, record = _decide(db, user, application_id, body.decision, body.opinion, body.return_to, clock.now(),
                          client_ip(request), body.version)
    return schemas.DecisionOut(id=app.id, number=app.number, status=app.status, stage=app.stage,
                               returned=app.returned, record=_record_out(record, app.basis))


@api.post("/applications/bulk-decision", response_model=schemas.BulkDecisionOut)
def api_bulk_decision(body: schemas.BulkDecisionIn, request: Request, db: Session = DbSession,
                      clock: Clock = Depends(get_clock),
                      user: User = Depends(require(Perm.REVIEW))) -> schemas.BulkDecisionOut:
    """Approve or reject many at once: the listed `ids`, or everything in your inbox matching `filter`.
    Each application gets its own record; those that cannot take the decision are skipped with the reason."""
    now = clock.now()
    if body.ids is not None:
        ids = body.ids
    elif body.filter is not None:
        f = body.filter
        ids = service.inbox_ids(db, user, _inbox_filter(f.item_code or "", f.village or "", f.due_before, f.overdue,
                                                        f.returned), beijing_date(now))
    else:
        raise Invalid("请给出申请ids或筛选条件filter")
    result = service.bulk_decide(db, user, ids, DECISIONS[body.decision], body.opinion, now, client_ip(request))
    return schemas.BulkDecisionOut(done=result.done,
                                   skipped=[schemas.SkippedOut(number=n, reason=r) for n, r in result.skipped])


@api.get("/applications/{application_id:int}/documents/{sha256}", response_class=Response,
         responses={200: {"content": {"application/octet-stream": {}}}})
def api_application_document(application_id: RowId, sha256: str, request: Request, db: Session = DbSession,
                             clock: Clock = Depends(get_clock),
                             user: User = Depends(require(Perm.APPLICATION_READ))) -> Response:
    """An evidence file of the application. Audited."""
    document, data = documents.evidence_file(db, user, application_id, sha256, clock.now(), client_ip(request))
    return _attachment(data, document.content_type, document.filename)


@api.post("/objections/{objection_id:int}/resolution", response_model=schemas.ObjectionOut)
def api_resolve_objection(objection_id: RowId, body: schemas.ObjectionResolutionIn, request: Request,
                          db: Session = DbSession, clock: Clock = Depends(get_clock),
                          user: User = Depends(require(Perm.REVIEW))) -> schemas.ObjectionOut:
    """Answer an objection (village clerk or township reviewer). Upheld rejects the application;
    dismissed lets it go on (at once when the window has ended)."""
    o = publicity.resolve_objection(db, objection_id, user, body.upheld, body.opinion, clock.now(),
                                    ip=client_ip(request))
    return schemas.ObjectionOut(id=o.id, publicity_id=o.publicity_id, raised_at=o.raised_at,
                                raised_by_name=o.raised_by_name, contact_masked=o.contact_masked, reason=o.reason,
                                status=o.status, opinion=o.opinion, resolved_at=o.resolved_at)


def _publicity_out(db: Session, pub: Publicity, today: date) -> schemas.PublicityOut:
    item = db.get(SubsidyItem, pub.item_code)
    names = registry.region_names(db, {pub.region_code})
    return schemas.PublicityOut(
        id=pub.id, title=pub.title, region_code=pub.region_code, region_name=names.get(pub.region_code, ""),
        item_code=pub.item_code, item_name=item.name, starts_on=pub.starts_on, ends_on=pub.ends_on,
        open=publicity.is_open(pub, today),
        entries=[schemas.PublicityEntryOut(position=e.position, name_masked=e.name_masked,
                                           id_number_masked=e.id_number_masked, item_name=item.name,
                                           quantity_text=format_quantity(item.basis, e.quantity_centi),
                                           amount_fen=e.amount_fen) for e in pub.entries])


@api.post("/publicities", response_model=schemas.PublishOut, status_code=201)
def api_publish(body: schemas.PublishIn, request: Request, db: Session = DbSession, clock: Clock = Depends(get_clock),
                user: User = Depends(require(Perm.PUBLICITY_MANAGE))) -> schemas.PublishOut:
    """Put every application of your villages waiting at 公示 on publicity lists (one per village and item)."""
    made = publicity.publish(db, user, clock.now(), village=body.village or None, ip=client_ip(request))
    return schemas.PublishOut(publicities=[p.id for p in made], entries=sum(len(p.entries) for p in made))


@api.get("/publicities/{publicity_id:int}", response_model=schemas.PublicityOut)
def api_publicity(publicity_id: RowId, db: Session = DbSession,
                  clock: Clock = Depends(get_clock)) -> schemas.PublicityOut:
    """A village publicity list. Public (no login): masked names and ID numbers only."""
    return _publicity_out(db, publicity.get_publicity(db, publicity_id), _today(clock))


@api.post("/publicities/{publicity_id:int}/objections", response_model=schemas.ObjectionCreated, status_code=201)
def api_objection(publicity_id: RowId, body: schemas.ObjectionIn, db: Session = DbSession,
                  clock: Clock = Depends(get_clock)) -> schemas.ObjectionCreated:
    """Register an objection (异议) to one entry (`entry` = 序号) while the list is open. Public (no login);
    name and phone are optional, the phone is stored encrypted."""
    objection = _raise_objection(db, publicity_id, body.entry, body.reason, body.name, body.phone, clock.now())
    return schemas.ObjectionCreated(id=objection.id, status=objection.status,
                                    message=f"异议已登记（第{objection.id}号），村、乡镇将核实后答复")


def _raise_objection(db: Session, publicity_id: int, entry: int | None, reason: str, name: str, phone: str,
                     now: datetime) -> Objection:
    pub = publicity.get_publicity(db, publicity_id)
    application_id = db.scalar(select(PublicityEntry.application_id).where(
        PublicityEntry.publicity_id == pub.id, PublicityEntry.position == entry)) if entry else None
    if application_id is None:
        raise Invalid("请选择公示名单中的一条记录（序号）")
    with savepoint(db):
        return publicity.raise_objection(db, pub.id, application_id, reason, now, name=name, contact=phone)


# ---------------------------------------------------------------- acceptance module (受理)


def _items(db: Session) -> list[SubsidyItem]:
    return list(db.scalars(select(SubsidyItem).order_by(SubsidyItem.code)).all())


def _item_data(items: list[SubsidyItem], today: date) -> dict[str, dict[str, Any]]:
    """What workflow.js needs to fill in the default period and show the area field."""
    return {i.code: {"basis": i.basis, "frequency": i.frequency, "standard": format_fen(i.standard_fen),
                     "period": period_of(i.frequency, today)} for i in items}


def _new_page(request: Request, db: Session, user: User, today: date, *, q: str = "", person_id: int | None = None,
              form: dict[str, Any] | None = None, error: str | None = None, status_code: int = 200) -> Response:
    results = registry.search_persons(db, user, q, 1, 10) if q.strip() else None
    person = registry.get_person(db, user, person_id) if person_id else None
    items = _items(db)
    form = dict(form or {})
    current = next((i for i in items if i.code == form.get("item_code")), items[0] if items else None)
    form.setdefault("item_code", current.code if current else "")
    if not form.get("period") and current is not None:
        form["period"] = period_of(current.frequency, today)
    existing = []
    if person is not None:
        existing = db.execute(
            select(Application.id, Application.number, SubsidyItem.name, Application.period, Application.status,
                   Application.stage).join(SubsidyItem, SubsidyItem.code == Application.item_code)
            .where(Application.person_id == person.id).order_by(Application.id.desc()).limit(10)).all()
    return templates.TemplateResponse(request, "workflow/new.html", {
        "user": user, "q": q, "results": results, "person": person, "items": items, "current": current,
        "item_data": _item_data(items, today), "form": form, "error": error, "existing": existing,
        "names": registry.region_names(db, {person.region_code} if person else set()),
        "max_files": MAX_FILES}, status_code=status_code)


@pages.get("/applications/new", response_class=HTMLResponse)
def new_application_page(request: Request, q: str = "", person_id: int | None = None, item_code: str = "",
                         db: Session = DbSession, clock: Clock = Depends(get_clock),
                         user: User = Depends(require(Perm.APPLICATION_ACCEPT))) -> Response:
    return _new_page(request, db, user, _today(clock), q=q, person_id=person_id, form={"item_code": item_code})


@pages.post("/applications/new/search", response_class=HTMLResponse)
def new_application_search(request: Request, q: str = Form("", max_length=40), db: Session = DbSession,
                           clock: Clock = Depends(get_clock),
                           user: User = Depends(require(Perm.APPLICATION_ACCEPT))) -> Response:
    """The counter's person search posts the ID number, so it never sits in a URL (logs, history)."""
    return _new_page(request, db, user, _today(clock), q=q)


@pages.get("/applications/preview", response_class=HTMLResponse)
def preview_amount(request: Request, item_code: str = "", period: str = "", quantity: str = "",
                   db: Session = DbSession, user: User = Depends(require(Perm.APPLICATION_ACCEPT))) -> Response:
    """htmx fragment: the amount the application will carry (the server computes it again on submit)."""
    item = db.get(SubsidyItem, item_code)
    context: dict[str, Any] = {"item": item, "error": None}
    if item is None:
        context["error"] = "请选择补贴项目"
    else:
        try:
            context["period"] = parse_period(item.frequency, period) if period.strip() else None
            centi = parse_quantity(item.basis, quantity if item.basis == Basis.MU else None)
            context["quantity"] = format_quantity(item.basis, centi)
            # the standard of the claimed period in the clerk's county, as the claim will be priced
            standard = item.standard_fen
            if context["period"] is not None:
                dated = standard_book(db, [item.code]).standard(item.code, user.region_code,
                                                                context["period"].start)
                standard = standard if dated is None else dated
            context["standard_fen"] = standard
            context["amount_fen"] = amount_fen(standard, centi)
        except ValueError as e:
            context["error"] = str(e)
    return templates.TemplateResponse(request, "workflow/_preview.html", context)


@pages.post("/applications/new", response_class=HTMLResponse)
def new_application_submit(
    request: Request,
    person_id: int = Form(...),
    item_code: str = Form(""),
    period: str = Form(""),
    quantity: str = Form(""),
    note: str = Form(""),
    files: list[UploadFile] = ChosenFiles,
    db: Session = DbSession,
    clock: Clock = Depends(get_clock),
    user: User = Depends(require(Perm.APPLICATION_ACCEPT)),
) -> Response:
    now = clock.now()
    form = {"item_code": item_code, "period": period, "quantity": quantity, "note": note}
    try:
        item = db.get(SubsidyItem, item_code)
        if item is None:
            raise Invalid("请选择补贴项目")
        uploads = _read_uploads(files)
        with savepoint(db):  # the files' rows and the application commit together or not at all
            documents = _store_uploads(db, user, uploads, now)
            app = service.accept(db, user, person_id=person_id, item_code=item.code,
                                 period=period.strip() or period_of(item.frequency, beijing_date(now)),
                                 quantity=quantity if item.basis == Basis.MU else None, note=note,
                                 documents=documents, now=now, ip=client_ip(request), screen=False)
    except DomainError as e:
        if isinstance(e, Forbidden):
            raise
        return _new_page(request, db, user, beijing_date(now), person_id=person_id, form=form, error=e.message,
                         status_code=e.status_code)
    # committed first, then screened in a short transaction: no write lock held while rules run
    db.commit()
    service.screen_committed(db, [app.id], now, user)
    return RedirectResponse(f"/applications/{app.id}?msg=accepted", status_code=303)


# ---------------------------------------------------------------- inbox (待办) and the list


def _scope_regions(db: Session, user: User) -> list[tuple[str, str, str]]:
    """(code, name, level) of the regions below the user's, for the village filter."""
    levels = [RegionLevel.COUNTY.value, RegionLevel.TOWNSHIP.value, RegionLevel.VILLAGE.value]
    villages = db.scalar(select(func.count()).select_from(Region).where(
        within(Region.code, user.region_code), Region.level == RegionLevel.VILLAGE.value)) or 0
    if villages > VILLAGE_SELECT_MAX:
        levels.remove(RegionLevel.VILLAGE.value)
    rows = db.execute(select(Region.code, Region.name, Region.level).where(
        within(Region.code, user.region_code), Region.level.in_(levels), Region.code != user.region_code)
        .order_by(Region.code)).all()
    return [tuple(r) for r in rows]


@pages.get("/applications", response_class=HTMLResponse)
def applications_page(request: Request, item: str = "", village: str = "", due_before: str = "",
                      overdue: bool = False, returned: bool = False, number: str = "", status: str = "",
                      view: str = "", page: PageNo = 1, db: Session = DbSession, clock: Clock = Depends(get_clock),
                      user: User = Depends(current_user)) -> Response:
    """Reviewers: the inbox. Readers without a station (supervisors), or anyone with ?view=all: a
    searchable list of every application in scope."""
    today = _today(clock)
    if view == "all" or not has_perm(user.role, Perm.REVIEW):
        return _list_page(request, db, user, number, status, item, page)
    filters = _inbox_filter(item, village, due_before, overdue, returned)
    box = service.inbox(db, user, filters, today, page, PAGE_SIZE)
    query = _filter_query(filters)
    return templates.TemplateResponse(request, "workflow/inbox.html", {
        "user": user, "box": box, "f": filters, "query": urlencode(query), "today": today,
        "regions": _scope_regions(db, user), "names": registry.region_names(db, {r.region_code for r in box.rows}),
        "overdue_days": export.overdue_days, "is_clerk": has_perm(user.role, Perm.APPLICATION_ACCEPT)})


def _number_range(number: str):
    """Numbers share a prefix order: an exact number or a prefix is a range on the unique index."""
    number = number.strip().upper()
    if not number.isascii() or not number.isalnum() or len(number) > 24:
        raise Invalid("申请编号格式错误，应如 SQ202611300000001")
    upper = number[:-1] + chr(ord(number[-1]) + 1)
    return Application.number.between(number, upper) & (Application.number != upper)


def _list_page(request: Request, db: Session, user: User, number: str, status: str, item: str,
               page: int) -> Response:
    condition = service.visible(db, user)
    if number.strip():
        condition &= _number_range(number)
    if status:
        if status not in {s.value for s in Status}:
            raise Invalid("状态只能是 办理中、已通过、待支付、已否决、已撤回")
        condition &= Application.status == status
    if item:
        condition &= Application.item_code == item
    page = max(1, min(page, LIST_MAX_PAGE))
    # The page's ids first, from the indexes alone (no join, no count over the scope), then their rows:
    # a city-wide list of 100,000 pages in about 20 ms on SQLite instead of sorting every joined row.
    ids = list(db.scalars(select(Application.id).where(condition).order_by(Application.id.desc())
                          .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    has_next = len(ids) > PAGE_SIZE
    rows = db.execute(
        select(Application.id, Application.number, Application.item_code, SubsidyItem.name.label("item_name"),
               Person.name.label("person_name"), Person.id_number_masked, Application.region_code,
               Application.period, Application.amount_fen, Application.status, Application.stage,
               Application.due_on, Application.created_at)
        .join(SubsidyItem, SubsidyItem.code == Application.item_code)
        .join(Person, Person.id == Application.person_id)
        .where(Application.id.in_(ids[:PAGE_SIZE])).order_by(Application.id.desc())).all() if ids else []
    query = urlencode({k: v for k, v in {"view": "all", "number": number.strip(), "status": status,
                                         "item": item}.items() if v})
    return templates.TemplateResponse(request, "workflow/list.html", {
        "user": user, "rows": rows, "page": page, "has_next": has_next, "number": number, "status": status,
        "item": item, "query": query, "items": _items(db), "statuses": [s.value for s in Status],
        "names": registry.region_names(db, {r.region_code for r in rows})})


@pages.get("/applications/home-box", response_class=HTMLResponse)
def home_box(request: Request, db: Session = DbSession, clock: Clock = Depends(get_clock),
             user: User = Depends(require(Perm.APPLICATION_READ))) -> Response:
    """htmx fragment for the home page: what waits for you."""
    today = _today(clock)
    context: dict[str, Any] = {"user": user}
    if has_perm(user.role, Perm.REVIEW):
        context["box"] = service.inbox(db, user, service.InboxFilter(), today, 1, 1)
    else:
        context["counts"] = service.counts_by_status(db, user)
    if has_perm(user.role, Perm.PUBLICITY_MANAGE):
        context["to_publish"] = len(publicity.waiting_to_publish(db, user))
    if user.role in (Role.VILLAGE_CLERK, Role.TOWNSHIP_REVIEWER):
        context["objections"] = len(publicity.open_objections(db, user))
    return templates.TemplateResponse(request, "workflow/_home_box.html", context)


@pages.get("/applications/export.{fmt}")
def inbox_export(request: Request, fmt: str, item: str = "", village: str = "", due_before: str = "",
                 overdue: bool = False, returned: bool = False, db: Session = DbSession,
                 clock: Clock = Depends(get_clock),
                 user: User = Depends(require(Perm.REVIEW))) -> Response:
    """The filtered inbox as Excel or CSV (up to 10,000 rows)."""
    if fmt not in ("xlsx", "csv"):
        raise NotFound("只支持 xlsx 或 csv")
    today = _today(clock)
    filters = _inbox_filter(item, village, due_before, overdue, returned)
    ids = service.inbox_ids(db, user, filters, today)  # in inbox order, capped
    found: dict[int, Any] = {}
    for start in range(0, len(ids), service.CHUNK):
        found.update((r.id, r) for r in db.execute(
            select(Application.id, Application.number, SubsidyItem.name.label("item_name"),
                   Person.name.label("person_name"), Person.id_number_masked, Application.region_code,
                   Application.period, Application.amount_fen, Application.stage, Application.due_on,
                   Application.returned, Application.open_objections)
            .join(SubsidyItem, SubsidyItem.code == Application.item_code)
            .join(Person, Person.id == Application.person_id)
            .where(Application.id.in_(ids[start:start + service.CHUNK]))))
    rows = [found[i] for i in ids if i in found]
    table = export.inbox_table(rows, registry.region_names(db, {r.region_code for r in rows}), today)
    audit.record_export(db, user, "inbox", fmt, {"item": item, "village": village, "due_before": due_before,
                                                  "overdue": overdue, "returned": returned}, len(rows),
                        clock.now(), ip=client_ip(request))
    name = f"待办_{today:%Y%m%d}.{fmt}"
    if fmt == "xlsx":
        return _attachment(export.xlsx_bytes("待办", export.INBOX_HEADERS, table), export.XLSX_TYPE, name)
    return _attachment(export.csv_bytes(export.INBOX_HEADERS, table), export.CSV_TYPE, name)


@pages.get("/applications/bulk", response_class=HTMLResponse)
def bulk_confirm(request: Request, item: str = "", village: str = "", due_before: str = "", overdue: bool = False,
                 returned: bool = False, db: Session = DbSession, clock: Clock = Depends(get_clock),
                 user: User = Depends(require(Perm.REVIEW))) -> Response:
    """Confirm approving everything the current filter shows: how many, then one click."""
    filters = _inbox_filter(item, village, due_before, overdue, returned)
    ids = service.inbox_ids(db, user, filters, _today(clock))
    return templates.TemplateResponse(request, "workflow/bulk_confirm.html", {
        "user": user, "count": len(ids), "f": filters, "query": _filter_query(filters),
        "capped": len(ids) >= service.BULK_MAX, "limit": service.BULK_MAX})


@pages.post("/applications/bulk", response_class=HTMLResponse)
def bulk_submit(request: Request, mode: str = Form("ids"), ids: list[int] = Form(default=[]),
                opinion: str = Form(""), item: str = Form(""), village: str = Form(""), due_before: str = Form(""),
                overdue: bool = Form(False), returned: bool = Form(False), db: Session = DbSession,
                clock: Clock = Depends(get_clock), user: User = Depends(require(Perm.REVIEW))) -> Response:
    now = clock.now()
    filters = _inbox_filter(item, village, due_before, overdue, returned)
    if mode == "filter":
        ids = service.inbox_ids(db, user, filters, beijing_date(now))
    if not ids:
        raise Invalid("请先勾选要通过的申请")
    result = service.bulk_decide(db, user, ids, Action.APPROVE, opinion, now, client_ip(request))
    return templates.TemplateResponse(request, "workflow/bulk_result.html", {
        "user": user, "result": result, "back": "/applications?" + urlencode(_filter_query(filters))})


# ---------------------------------------------------------------- one application


def _detail_page(request: Request, db: Session, user: User, application_id: int, today: date, *,
                 msg: str = "", error: str | None = None, status_code: int = 200) -> Response:
    app, records = service.trail(db, user, application_id)
    view = _application_out(db, user, app, records, today)
    actions = set(view.actions)  # service.allowed_actions, as the API reports it
    road = roads.road_for(db, app.item)
    flash = MESSAGES.get(msg)
    if msg == "decided" and records:
        last = records[-1]
        if app.stage:
            flash = f"已{last.action}，申请转入“{app.stage}”环节"
        elif app.status == Status.APPROVED:
            flash = "已通过：各环节审核完毕，申请已通过"
        else:
            flash = f"已{last.action}，申请办结"
    return templates.TemplateResponse(request, "workflow/detail.html", {
        "user": user, "a": view, "app": app, "item": app.item, "road": _road_states(app, road.steps, records),
        "flash": flash, "error": error,
        "actions": actions,  # what the page offers
        "waiting_publicity": view.can_act and app.stage == Step.PUBLICITY,  # the handler waits for it to end
        "return_targets": road.earlier_decisions(app.stage) if service.AppAction.RETURN in actions else [],
        "open_status": ObjectionStatus.OPEN.value,
        "owner_name": registry.region_names(db, {app.owner_region or ""}).get(app.owner_region or ""),
        "can_person": has_perm(user.role, Perm.PERSON_READ), "max_files": MAX_FILES,
        "flags": application_flags(db, user, app.id),
    }, status_code=status_code)


def _road_states(app: Application, steps: list[Step], records: list[ReviewRecord]) -> list[tuple[str, str]]:
    """Each station with done / current / stopped / todo, for the progress line on the page."""
    out = [(Step.APPLY.value, "done")]
    if app.status in (Status.APPROVED, Status.PAYABLE):
        return out + [(s.value, "done") for s in steps]
    if app.stage is not None:
        here = steps.index(Step(app.stage)) if Step(app.stage) in steps else len(steps)
        return out + [(s.value, "done" if i < here else "current" if i == here else "todo")
                      for i, s in enumerate(steps)]
    passed = {r.step for r in records if r.action in (Action.APPROVE, Action.PUBLICITY_END)}
    last = records[-1].step if records else None
    return out + [(s.value, "done" if s in passed else "stopped" if s == last else "todo") for s in steps]


@pages.get("/applications/{application_id:int}", response_class=HTMLResponse)
def application_page(request: Request, application_id: RowId, msg: str = "", db: Session = DbSession,
                     clock: Clock = Depends(get_clock),
                     user: User = Depends(require(Perm.APPLICATION_READ))) -> Response:
    return _detail_page(request, db, user, application_id, _today(clock), msg=msg)


def _act(request: Request, db: Session, user: User, application_id: int, clock: Clock, msg: str, work) -> Response:
    """Run one action on the application page; a refused action shows its reason on the page and
    writes nothing."""
    try:
        with savepoint(db):
            work()
    except DomainError as e:
        if isinstance(e, NotFound | Forbidden):
            raise
        return _detail_page(request, db, user, application_id, _today(clock), error=e.message,
                            status_code=e.status_code)
    return RedirectResponse(f"/applications/{application_id}?msg={msg}", status_code=303)


@pages.post("/applications/{application_id:int}/decision", response_class=HTMLResponse)
def decision_submit(request: Request, application_id: RowId, decision: str = Form(...), opinion: str = Form(""),
                    return_to: str = Form(""), version: int | None = Form(None), db: Session = DbSession,
                    clock: Clock = Depends(get_clock), user: User = Depends(require(Perm.REVIEW))) -> Response:
    return _act(request, db, user, application_id, clock, "decided",
                lambda: _decide(db, user, application_id, decision, opinion, return_to, clock.now(),
                                client_ip(request), version))


@pages.post("/applications/{application_id:int}/correction", response_class=HTMLResponse)
def correction_submit(request: Request, application_id: RowId, quantity: str = Form(""), note: str = Form(""),
                      opinion: str = Form(""), files: list[UploadFile] = ChosenFiles,
                      db: Session = DbSession, clock: Clock = Depends(get_clock),
                      user: User = Depends(require(Perm.REVIEW))) -> Response:
    now = clock.now()

    def work() -> None:
        app = service.get_application(db, user, application_id)
        uploads = _read_uploads(files)
        documents = _store_uploads(db, user, uploads, now)
        service.correct(db, app, user, now, quantity=quantity if app.basis == Basis.MU and quantity.strip() else None,
                        note=note, documents=documents, opinion=opinion)

    return _act(request, db, user, application_id, clock, "corrected", work)


@pages.post("/applications/{application_id:int}/withdraw", response_class=HTMLResponse)
def withdraw_submit(request: Request, application_id: RowId, reason: str = Form(""), db: Session = DbSession,
                    clock: Clock = Depends(get_clock),
                    user: User = Depends(require(Perm.APPLICATION_ACCEPT))) -> Response:
    return _act(request, db, user, application_id, clock, "withdrawn", lambda: service.withdraw(
        db, service.get_application(db, user, application_id), user, reason, clock.now()))


@pages.post("/applications/{application_id:int}/objections/{objection_id:int}", response_class=HTMLResponse)
def objection_resolve_submit(request: Request, application_id: RowId, objection_id: RowId, result: str = Form(...),
                             opinion: str = Form(""), db: Session = DbSession, clock: Clock = Depends(get_clock),
                             user: User = Depends(require(Perm.REVIEW))) -> Response:
    def work() -> None:
        app = service.get_application(db, user, application_id)
        if objection_id not in {o.id for o in publicity.objections_of(db, app.id)}:
            raise NotFound("该申请没有这条异议")
        if result not in ("upheld", "dismissed"):
            raise Invalid("请选择 异议成立 或 异议不成立")
        publicity.resolve_objection(db, objection_id, user, result == "upheld", opinion, clock.now(),
                                    ip=client_ip(request))

    return _act(request, db, user, application_id, clock, "resolved", work)


@pages.get("/applications/{application_id:int}/documents/{sha256}")
def application_document_page(application_id: RowId, sha256: str, request: Request, db: Session = DbSession,
                              clock: Clock = Depends(get_clock),
                              user: User = Depends(require(Perm.APPLICATION_READ))) -> Response:
    document, data = documents.evidence_file(db, user, application_id, sha256, clock.now(), client_ip(request))
    return _attachment(data, document.content_type, document.filename)


@pages.get("/applications/{application_id:int}/trail.{fmt}")
def trail_export(request: Request, application_id: RowId, fmt: str, db: Session = DbSession,
                 clock: Clock = Depends(get_clock),
                 user: User = Depends(require(Perm.APPLICATION_READ))) -> Response:
    """The full trail as Excel (.xlsx) or CSV (UTF-8 with BOM)."""
    if fmt not in ("xlsx", "csv"):
        raise NotFound("只支持 xlsx 或 csv")
    app, records = service.trail(db, user, application_id)
    table = export.trail_table(app, records)
    audit.record_export(db, user, "trail", fmt, {"application": app.number}, len(table), clock.now(),
                        ip=client_ip(request), object_id=app.id)
    name = f"{app.number}_审批留痕.{fmt}"
    if fmt == "xlsx":
        return _attachment(export.xlsx_bytes("审批留痕", export.TRAIL_HEADERS, table), export.XLSX_TYPE, name)
    return _attachment(export.csv_bytes(export.TRAIL_HEADERS, table), export.CSV_TYPE, name)


# ---------------------------------------------------------------- publicity (公示)


@pages.get("/publicity", response_class=HTMLResponse)
def publicity_page(request: Request, published: int = 0, db: Session = DbSession, clock: Clock = Depends(get_clock),
                   user: User = Depends(require(Perm.PUBLICITY_MANAGE))) -> Response:
    return _publicity_page(request, db, user, _today(clock), published=published)


def _publicity_page(request: Request, db: Session, user: User, today: date, *, published: int = 0,
                    error: str | None = None, status_code: int = 200) -> Response:
    waiting = Counter((a.region_code, a.item_code) for a in publicity.waiting_to_publish(db, user))
    recent = db.scalars(select(Publicity).where(within(Publicity.region_code, user.region_code))
                        .order_by(Publicity.id.desc()).limit(20)).all()
    ids = [p.id for p in recent]
    entries = dict(db.execute(select(PublicityEntry.publicity_id, func.count()).where(
        PublicityEntry.publicity_id.in_(ids)).group_by(PublicityEntry.publicity_id)).all()) if ids else {}
    objections = dict(db.execute(select(Objection.publicity_id, func.count()).where(
        Objection.publicity_id.in_(ids), Objection.status == ObjectionStatus.OPEN.value)
        .group_by(Objection.publicity_id)).all()) if ids else {}
    item_names = dict(db.execute(select(SubsidyItem.code, SubsidyItem.name)).all())
    villages = sorted({v for v, _ in waiting})
    return templates.TemplateResponse(request, "workflow/publicity.html", {
        "user": user, "waiting": sorted(waiting.items()), "villages": villages, "recent": recent,
        "entries": entries, "objections": objections, "item_names": item_names, "today": today,
        "is_open": publicity.is_open, "published": published, "error": error,
        "names": registry.region_names(db, set(villages) | {p.region_code for p in recent})}, status_code=status_code)


@pages.post("/publicity/publish", response_class=HTMLResponse)
def publish_submit(request: Request, village: str = Form(""), db: Session = DbSession,
                   clock: Clock = Depends(get_clock), user: User = Depends(require(Perm.PUBLICITY_MANAGE))) -> Response:
    now = clock.now()
    try:
        with savepoint(db):
            made = publicity.publish(db, user, now, village=village or None, ip=client_ip(request))
    except (Invalid, Conflict) as e:
        return _publicity_page(request, db, user, beijing_date(now), error=e.message, status_code=e.status_code)
    return RedirectResponse(f"/publicity?published={len(made)}", status_code=303)


def _publicity_context(db: Session, pub: Publicity, today: date, request: Request) -> dict[str, Any]:
    village = db.get(Region, pub.region_code)
    township = db.get(Region, village.parent_code) if village and village.parent_code else None
    return {"p": _publicity_out(db, pub, today), "village": village.name if village else pub.region_code,
            "township": township.name if township else "",
            "public_url": str(request.base_url).rstrip("/") + f"/public/publicity/{pub.id}",
            "days_left": (pub.ends_on - today).days + 1, "not_started": today < pub.starts_on}


@pages.get("/publicity/{publicity_id:int}/print", response_class=HTMLResponse)
def publicity_print(request: Request, publicity_id: RowId, db: Session = DbSession, clock: Clock = Depends(get_clock),
                    user: User = Depends(require(Perm.APPLICATION_READ))) -> Response:
    """The list as it hangs on the village board."""
    pub = publicity.get_publicity(db, publicity_id)
    if not in_subtree(user.region_code, pub.region_code):
        raise Forbidden("无权查看本辖区以外的公示")
    return templates.TemplateResponse(request, "workflow/publicity_print.html", {
        "user": user, **_publicity_context(db, pub, _today(clock), request)})


def _public_page(request: Request, db: Session, publicity_id: int, today: date, *, form: dict[str, Any] | None = None,
                 registered: int = 0, error: str | None = None, status_code: int = 200) -> Response:
    pub = publicity.get_publicity(db, publicity_id)
    return templates.TemplateResponse(request, "workflow/public_publicity.html", {
        "user": None, **_publicity_context(db, pub, today, request), "form": form or {}, "registered": registered,
        "error": error}, status_code=status_code)


@pages.get("/public/publicity/{publicity_id:int}", response_class=HTMLResponse)
def public_publicity(request: Request, publicity_id: RowId, registered: int = 0, db: Session = DbSession,
                     clock: Clock = Depends(get_clock)) -> Response:
    """The publicity list for everyone (no login): masked data only, and the objection form while open."""
    return _public_page(request, db, publicity_id, _today(clock), registered=registered)


@pages.post("/public/publicity/{publicity_id:int}/objections", response_class=HTMLResponse)
def public_objection(request: Request, publicity_id: RowId, entry: int | None = Form(None), reason: str = Form(""),
                     name: str = Form(""), phone: str = Form(""), db: Session = DbSession,
                     clock: Clock = Depends(get_clock)) -> Response:
    now = clock.now()
    try:
        objection = _raise_objection(db, publicity_id, entry, reason, name, phone, now)
    except (Invalid, NotFound) as e:
        form = {"entry": entry, "reason": reason, "name": name, "phone": phone}
        return _public_page(request, db, publicity_id, beijing_date(now), form=form, error=e.message,
                            status_code=e.status_code)
    except DomainError as e:  # the window has closed since the page was opened
        return _public_page(request, db, publicity_id, beijing_date(now), error=e.message, status_code=e.status_code)
    return RedirectResponse(f"/public/publicity/{publicity_id}?registered={objection.id}", status_code=303)
