"""The review road (一个通道): applications enter, wait at stations, and reviewers decide.

Every move writes one ReviewRecord (append-only). Claims are checked and entered in bulk, so one
household at the village counter and a department list of 100,000 go through the same code."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from yikatong.catalog.models import Department, SubsidyItem
from yikatong.catalog.service import standard_book
from yikatong.core.clock import beijing_date
from yikatong.core.db import KEYS_FROM, bulk_insert, in_keys, savepoint, side_engine
from yikatong.core.errors import RACED, Blocked, Conflict, Forbidden, Invalid, NotFound
from yikatong.core.protect import search_hash
from yikatong.interception import screening, tallies
from yikatong.registry.models import Person
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, Role, has_perm, require_perm
from yikatong.security.scope import in_subtree, subtree_prefix, within
from yikatong.workflow import road as roads
from yikatong.workflow.calendar import WorkCalendar, load_calendar
from yikatong.workflow.models import (
    LIVE_STATUSES,
    Action,
    Application,
    ApplicationDocument,
    NumberCounter,
    ReviewRecord,
    Source,
    Status,
    Step,
)
from yikatong.workflow.periods import amount_fen, parse_period, parse_quantity
from yikatong.workflow.road import Road

log = logging.getLogger(__name__)
CHUNK = 900  # keys per IN (...) query (SQLite's parameter limit)
SYSTEM_NAME = "系统"


@contextmanager
def one_move(session: Session) -> Iterator[None]:
    """Write a move now, as a conditional UPDATE against the version the actor read (Application's
    version_id_col): when someone else moved the record meanwhile, the write matches no row and the
    actor is told so (409), with nothing written."""
    try:
        yield
        session.flush()
    except StaleDataError:
        raise Conflict(RACED) from None


def check_version(app: Application, seen: int | None) -> None:
    """A form or API call may say which version (stage_seq) the reviewer saw: a moved application
    is refused instead of being decided on what the reviewer never saw."""
    if seen is not None and seen != app.stage_seq:
        raise Conflict(RACED)


# ---------------------------------------------------------------- who may see and act


def user_sector(session: Session, user: User) -> str | None:
    """The sector of the user's department (民政, 农业农村...): a department handler's duties."""
    if user.department_code is None or user.role != Role.COUNTY_HANDLER:
        return None
    # session.get answers from the identity map after the first call: checks per application stay free.
    department = session.get(Department, user.department_code)
    return department.sector if department else None


def visible(session: Session, user: User):
    """SQL condition: the applications `user` may read (region subtree, and a department's items)."""
    require_perm(user, Perm.APPLICATION_READ)
    condition = within(Application.region_code, user.region_code)
    sector = user_sector(session, user)
    if sector is not None:
        condition = condition & (Application.sector == sector)
    return condition


def get_application(session: Session, user: User, application_id: int) -> Application:
    """An application the user may read; another region's or department's is refused (403)."""
    require_perm(user, Perm.APPLICATION_READ)
    app = session.get(Application, application_id)
    if app is None:
        raise NotFound("申请不存在")
    sector = user_sector(session, user)
    if not in_subtree(user.region_code, app.region_code) or (sector is not None and app.sector != sector):
        raise Forbidden("无权查看本辖区、本部门以外的申请")
    return app


def can_act(session: Session, user: User, app: Application) -> bool:
    """Whether `user` is a handler of the station `app` waits at."""
    if app.status != Status.OPEN or app.stage is None or user.role != roads.STEP_ROLE[Step(app.stage)]:
        return False
    if not in_subtree(user.region_code, app.owner_region):
        return False
    sector = user_sector(session, user)
    return sector is None or sector == app.sector


def require_act(session: Session, user: User, app: Application) -> None:
    require_perm(user, Perm.REVIEW)
    if app.status != Status.OPEN:
        raise Conflict(f"申请{app.number}已{app.status}，不能再办理")
    if not can_act(session, user, app):
        raise Forbidden(f"申请{app.number}当前在“{app.stage}”环节，不由您办理")


# ---------------------------------------------------------------- stations and deadlines


def enter_stage(app: Application, road: Road, step: Step, now: datetime, calendar: WorkCalendar) -> None:
    """Put the application at a station and set that station's deadline and reminder day."""
    station = road.station(step)
    app.stage = step.value
    app.stage_seq = (app.stage_seq or 0) + 1
    app.owner_region = roads.owner_region(step, app.region_code)
    app.stage_entered_at = now
    app.reminded = app.escalated = False
    if step is Step.PUBLICITY:
        # waits to be put on a publicity list; publicity.publish sets the window as its deadline
        app.due_on = calendar.add_working_days(beijing_date(now), roads.PUBLISH_WITHIN)
        app.remind_on = app.due_on
        return
    app.due_on = calendar.add_working_days(beijing_date(now), station.days)
    app.remind_on = calendar.subtract_working_days(app.due_on, station.remind_before)


def leave_road(app: Application, status: Status, now: datetime) -> None:
    app.status = status.value
    app.stage = None
    app.owner_region = None
    app.due_on = app.remind_on = None
    app.returned = False
    app.stage_seq += 1
    app.decided_at = now


def add_record(session: Session, app: Application, step: str, action: Action, actor: User | None, now: datetime,
               opinion: str = "", detail: dict[str, Any] | None = None, actor_name: str | None = None) -> ReviewRecord:
    record = ReviewRecord(
        application_id=app.id, step=step, action=action.value, to_stage=app.stage, status_after=app.status,
        user_id=actor.id if actor else None, actor_name=actor_name or (actor.display_name if actor else SYSTEM_NAME),
        actor_role=actor.role if actor else "system", at=now, opinion=opinion,
        detail=json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else "")
    session.add(record)
    return record


def record_flag_verified(session: Session, app: Application, verifier: User, now: datetime, *, confirmed: bool,
                         opinion: str, detail: dict[str, Any]) -> None:
    """A flag's 核实 on the application's trail (interception.service.verify calls it; interception
    never writes workflow's tables itself). Confirmed, a live application is rejected."""
    step = app.stage or Step.CITY.value
    add_record(session, app, step, Action.FLAG_CONFIRMED if confirmed else Action.FLAG_CLEARED, verifier, now,
               opinion, detail)
    if confirmed and app.status in LIVE_STATUSES:
        leave_road(app, Status.REJECTED, now)
        add_record(session, app, step, Action.REJECT, verifier, now, f"存疑信息核实属实：{opinion}",
                   {"flag_id": detail.get("flag_id")})


@dataclass
class Payable:
    """What mark_payable did: moved to 待支付, and the others with their status (not moved)."""

    moved: list[int] = field(default_factory=list)
    not_moved: dict[int, str] = field(default_factory=dict)  # id -> status (or "不存在")


def mark_payable(session: Session, application_ids: Sequence[int], actor: User | None, now: datetime) -> Payable:
    """已通过 -> 待支付 for the applications the pre-payment gate let through, each by a conditional
    update (still 已通过, no open flag), so one that another transaction rejected, withdrew, flagged
    or already moved is reported, never moved. The caller's transaction holds the gate's check and
    this move together."""
    ids = sorted(set(application_ids))
    out = Payable()
    many = len(ids) > KEYS_FROM  # a batch at the gate: one statement, not a thousand
    for start in range(0, len(ids), len(ids) if many else CHUNK):
        chunk = ids[start:start + CHUNK]
        moved = session.execute(
            update(Application).where(in_keys(session, Application.id, ids) if many else Application.id.in_(chunk),
                                      Application.status == Status.APPROVED.value,
                                      Application.open_flags == 0)
            .values(status=Status.PAYABLE.value, stage_seq=Application.stage_seq + 1)
            .returning(Application.id).execution_options(synchronize_session=False)).scalars().all()
        out.moved.extend(moved)
    moved_set = set(out.moved)
    rest = [i for i in ids if i not in moved_set]
    statuses = dict(_in_chunks(session, [Application.id, Application.status], Application.id, rest)) if rest else {}
    out.not_moved = {i: statuses.get(i, "不存在") for i in rest}
    out.moved.sort()
    records = [dict(application_id=i, step=Step.CITY.value, action=Action.PAYABLE.value, to_stage=None,
                    status_after=Status.PAYABLE.value, user_id=actor.id if actor else None,
                    actor_name=actor.display_name if actor else SYSTEM_NAME,
                    actor_role=actor.role if actor else "system", at=now, opinion="发放前比对通过，待支付", detail="")
               for i in out.moved]
    if records:
        bulk_insert(session, ReviewRecord.__table__, records)
    session.expire_all()  # statuses changed under the ORM's feet
    return out


# ---------------------------------------------------------------- entering claims


@dataclass
class Claim:
    """One claim as submitted (a form, a row of a list, an element of an API request)."""

    ref: int  # row number or position, for error reports
    id_number: str | None = None  # normalised ID number, or...
    person_id: int | None = None  # ...the person directly (the village counter)
    name: str | None = None  # optional cross-check against the registry
    item_code: str = ""
    period: str = ""
    quantity: str | None = None
    note: str = ""


@dataclass
class ClaimError:
    ref: int
    field: str  # id_number, name, item_code, period, quantity
    reason: str


@dataclass
class PreparedClaims:
    rows: list[dict[str, Any]] = field(default_factory=list)  # ready for INSERT, in claim order
    refs: list[int] = field(default_factory=list)
    errors: list[ClaimError] = field(default_factory=list)
    entry: dict[str, Step] = field(default_factory=dict)  # item code -> the station it enters at


def _in_chunks(session: Session, columns: Sequence[Any], key: Any, keys: list[Any], *where: Any) -> list[Any]:
    keys = list(dict.fromkeys(k for k in keys if k is not None))
    out: list[Any] = []
    if len(keys) > KEYS_FROM:
        return session.execute(select(*columns).where(in_keys(session, key, keys), *where)).all()
    for start in range(0, len(keys), CHUNK):
        out.extend(session.execute(select(*columns).where(key.in_(keys[start:start + CHUNK]), *where)).all())
    return out


@dataclass(frozen=True)
class _ItemFacts:
    code: str
    frequency: str
    basis: str
    standard_fen: int
    sector: str  # of the item's department


def _parse_once(cache: dict[tuple[Any, ...], tuple[Any, str | None]], parse: Any, kind: str,
                text: Any) -> tuple[Any, str | None]:
    """(value, None) or (None, reason): a list repeats a handful of periods and quantities 100,000 times."""
    key = (parse, kind, text)
    if key not in cache:
        try:
            cache[key] = (parse(kind, text), None)
        except ValueError as e:
            cache[key] = (None, str(e))
    return cache[key]


def prepare_claims(session: Session, actor: User | None, claims: list[Claim], source: Source, now: datetime,
                   calendar: WorkCalendar | None = None) -> PreparedClaims:
    """Check every claim against the registry, the catalogue, the actor's scope and duties and the
    live claims; collect every problem. Nothing is written."""
    calendar = calendar or load_calendar(session)
    out = PreparedClaims()
    sector = user_sector(session, actor) if actor else None
    scope = subtree_prefix(actor.region_code) if actor else None

    hashes = {c.ref: search_hash("id_number", c.id_number) for c in claims if c.id_number}
    by_hash = {r.id_number_hash: r for r in _in_chunks(
        session, [Person.id, Person.id_number_hash, Person.name, Person.region_code, Person.household_id],
        Person.id_number_hash, list(hashes.values()))}
    by_id = {r.id: r for r in _in_chunks(
        session, [Person.id, Person.id_number_hash, Person.name, Person.region_code, Person.household_id],
        Person.id, [c.person_id for c in claims if c.person_id])}
    items = {i.code: i for i in session.scalars(select(SubsidyItem).where(
        SubsidyItem.code.in_({c.item_code for c in claims if c.item_code}))).all()}
    sectors = dict(session.execute(select(Department.code, Department.sector)).all())
    parsed: dict[tuple[Any, ...], tuple[Any, str | None]] = {}

    # The hot loops read plain tuples, not ORM attributes (100,000 claims x a dozen reads).
    facts = {code: _ItemFacts(code, i.frequency, i.basis, i.standard_fen, sectors.get(i.department_code, ""))
             for code, i in items.items()}
    # A claim is priced with the standard in force for its period (the item's dated standards).
    book = standard_book(session, items)

    candidates: list[tuple[Claim, Any, _ItemFacts, Any, int]] = []
    for c in claims:
        errors_before = len(out.errors)
        person = by_id.get(c.person_id) if c.person_id else by_hash.get(hashes.get(c.ref, ""))
        if person is None:
            out.errors.append(ClaimError(c.ref, "id_number", "该身份证号不在人员库中，请先登记人员"))
        else:
            if c.name and c.name.strip() != person.name:
                out.errors.append(ClaimError(c.ref, "name", "姓名与人员库中该身份证号的姓名不一致"))
            if scope is not None and not person.region_code.startswith(scope):
                out.errors.append(ClaimError(c.ref, "id_number", "该人员不在本辖区，不能为其申请"))
        item = facts.get(c.item_code)
        if item is None:
            out.errors.append(ClaimError(c.ref, "item_code", "补贴项目代码不存在"))
        elif sector is not None and item.sector != sector:
            out.errors.append(ClaimError(c.ref, "item_code", f"该项目不属于本部门（{sector}）主管"))
        period = quantity = None
        if item is not None:
            period, problem = _parse_once(parsed, parse_period, item.frequency, c.period)
            if problem:
                out.errors.append(ClaimError(c.ref, "period", problem))
            quantity, problem = _parse_once(parsed, parse_quantity, item.basis, c.quantity)
            if problem:
                out.errors.append(ClaimError(c.ref, "quantity", problem))
            if person is not None and item.basis == "户" and person.household_id is None:
                out.errors.append(ClaimError(c.ref, "id_number", "按户发放的项目，申请人须已登记在某户"))
        if len(out.errors) == errors_before:
            candidates.append((c, person, item, period, quantity))

    # One live claim per person, item and period: inside the batch and against the database.
    seen: dict[tuple[int, str, str], int] = {}
    # Status is filtered here, not in SQL: with `status IN (...)` in the query SQLite (no statistics)
    # walks the status index through every live application once per chunk of persons.
    live = {(r.person_id, r.item_code, r.period): r.number for r in _in_chunks(
        session, [Application.person_id, Application.item_code, Application.period, Application.number,
                  Application.status],
        Application.person_id, [p.id for _, p, *_ in candidates],
        Application.item_code.in_({i.code for _, _, i, *_ in candidates}),
        Application.period.in_({period.label for *_, period, _ in candidates})) if r.status in LIVE_STATUSES}
    # What every application of an item shares (the entry station and its deadlines depend on the
    # item and `now` only), and the owner region per item and village: worked out once.
    shared: dict[str, tuple[Step, dict[str, Any]]] = {}
    owners: dict[tuple[str, str], str] = {}
    for c, person, item, period, quantity in candidates:
        key = (person.id, item.code, period.label)
        if key in live:
            out.errors.append(ClaimError(c.ref, "period", f"该人员本期已有在办或已通过的同项目申请（{live[key]}）"))
            continue
        if key in seen:
            out.errors.append(ClaimError(c.ref, "period", f"与第{seen[key]}行是同一人同一项目同一期次"))
            continue
        standard = book.standard(item.code, person.region_code, period.start)
        if standard is None and item.code in book.items:
            out.errors.append(ClaimError(c.ref, "period", "所属期早于该项目最早一条补贴标准的生效日期，无法计算金额"))
            continue
        standard = item.standard_fen if standard is None else standard  # an item with no dated standard yet
        seen[key] = c.ref
        if item.code not in shared:
            road = roads.road_for(session, items[item.code])
            entry = road.first() if source is Source.COUNTER else road.list_entry()
            out.entry[item.code] = entry
            probe = Application(region_code=person.region_code, stage_seq=0)
            enter_stage(probe, road, entry, now, calendar)
            shared[item.code] = (entry, dict(
                number=None, item_code=item.code, sector=item.sector, basis=item.basis,
                standard_fen=item.standard_fen, source=source.value, source_ref="", status=Status.OPEN.value,
                stage=probe.stage, stage_seq=1, returned=False, stage_entered_at=now, due_on=probe.due_on,
                remind_on=probe.remind_on, reminded=False, escalated=False, open_objections=0, open_flags=0,
                publicity_id=None,
                created_by=actor.id if actor else None, created_at=now, decided_at=None))
        entry, common = shared[item.code]
        owner = owners.get((item.code, person.region_code))
        if owner is None:
            owner = owners[(item.code, person.region_code)] = roads.owner_region(entry, person.region_code)
        out.refs.append(c.ref)
        out.rows.append(dict(
            common, person_id=person.id, household_id=person.household_id if item.basis == "户" else None,
            region_code=person.region_code, period=period.label, period_start=period.start,
            period_end=period.end, quantity_centi=quantity, standard_fen=standard,
            amount_fen=amount_fen(standard, quantity),
            owner_region=owner, note=c.note))
    out.errors.sort(key=lambda e: e.ref)
    return out


def reserve_numbers(session: Session, day: date, count: int):
    """`count` consecutive application numbers for `day`: SQ + date + 7-digit serial. The counter row
    is created with ON CONFLICT DO NOTHING (both engines), so two first claims of a day cannot clash.

    On PostgreSQL the numbers are taken in a transaction of their own that commits at once: the
    counter row is locked for one statement, not while the caller's claims are written and screened,
    so a village counter never queues behind a department list. Numbers are therefore unique but not
    gap-free (a write that fails after reserving leaves its numbers unused). On SQLite the caller's
    transaction already holds the one write lock there is (a second connection would wait for it
    forever), so the numbers are taken in it."""
    name = f"SQ{day:%Y%m%d}"
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        with side_engine(bind.engine if isinstance(bind, Connection) else bind).begin() as connection:
            last = _take_numbers(connection, pg_insert, name, count)
    else:
        last = _take_numbers(session, sqlite_insert, name, count)
    return (f"{name}{n:07d}" for n in range(last - count + 1, last + 1))


def _take_numbers(executor: Connection | Session, insert_fn: Any, name: str, count: int) -> int:
    executor.execute(insert_fn(NumberCounter).values(name=name, last=0).on_conflict_do_nothing())
    return executor.execute(update(NumberCounter).where(NumberCounter.name == name)
                            .values(last=NumberCounter.last + count).returning(NumberCounter.last)).scalar_one()


WRITE_CHUNK = 5000


def enter_claims(session: Session, actor: User | None, prepared: PreparedClaims, source: Source, now: datetime,
                 source_ref: str = "", on_progress=None, screen: bool = True) -> list[int]:
    """Write prepared claims (refusing if any claim had an error) and one 提交申请 record each, then
    screen them with the interception rules (unless `screen` is False), so a problem is flagged the
    moment a claim comes in. Returns the new application ids in claim order."""
    if prepared.errors:
        raise Invalid("申请有误，未写入：" + "；".join(f"第{e.ref}条 {e.reason}" for e in prepared.errors[:5]))
    ids: list[int] = []
    total = len(prepared.rows)
    # Numbers are reserved only now, so a dry run or a list refused in its checks uses none.
    numbers = reserve_numbers(session, beijing_date(now), total) if total else iter(())
    for row in prepared.rows:
        row["number"] = next(numbers)
    actor_name = actor.display_name if actor else SYSTEM_NAME
    actor_role = actor.role if actor else "system"
    detail = json.dumps({"source": source.value, "source_ref": source_ref}, ensure_ascii=False)
    for start in range(0, total, WRITE_CHUNK):
        part = prepared.rows[start:start + WRITE_CHUNK]
        for row in part:
            row["source_ref"] = source_ref
        bulk_insert(session, Application.__table__, part)
        # Read the ids back by number (reserved above, consecutive): INSERT .. RETURNING in parameter
        # order would make SQLite insert one row per statement.
        by_number = dict(session.execute(select(Application.number, Application.id).where(
            Application.number.between(part[0]["number"], part[-1]["number"]))).all())
        new_ids = [by_number[row["number"]] for row in part]
        bulk_insert(session, ReviewRecord.__table__, [
            dict(application_id=app_id, step=Step.APPLY.value, action=Action.SUBMIT.value, to_stage=row["stage"],
                 status_after=Status.OPEN.value, user_id=actor.id if actor else None, actor_name=actor_name,
                 actor_role=actor_role, at=now, opinion=row["note"] if source is Source.COUNTER else "",
                 detail=detail)
            for app_id, row in zip(new_ids, part, strict=True)])
        ids.extend(new_ids)
        if on_progress:
            on_progress("写入", len(ids), total)
    if screen and ids:
        if on_progress:
            on_progress("比对", 0, 1)
        screening.screen(session, ids, now, actor)
        if on_progress:
            on_progress("比对", 1, 1)
    return ids


def screen_committed(session: Session, ids: list[int], now: datetime, actor: User | None) -> None:
    """Screen claims the caller has just committed, in a short transaction of its own (the web
    request's counter claim and API submission). The rules read before the first write, so the write
    lock (SQLite has one for the whole database) is held while the flags are written, not while the
    rules run, and the next desk is not kept waiting. The answer still comes after the screening, so
    the clerk sees a flag at once. If screening fails the claims stand, unscreened until the next
    city run: a committed claim is never answered with an error."""
    try:
        screening.screen(session, ids, now, actor)
        session.commit()
    except Exception:
        session.rollback()
        log.exception("screening of %d committed claims failed; the next city run screens them", len(ids))


def accept(session: Session, clerk: User, *, person_id: int, item_code: str, period: str,
           quantity: str | None = None, note: str = "", documents: Sequence[tuple[str, str]] = (),
           now: datetime, ip: str = "", screen: bool = True) -> Application:
    """受理: the village clerk enters one household's application. `documents` are (sha256, title)
    of files already stored with registry.documents.store_document. The claim is screened at once
    (`screen=False` for the synthetic city, which runs the rules over everything at the end, and for
    the counter page, which screens right after committing: screen_committed)."""
    require_perm(clerk, Perm.APPLICATION_ACCEPT)
    prepared = prepare_claims(session, clerk, [Claim(ref=1, person_id=person_id, item_code=item_code,
                                                     period=period, quantity=quantity, note=note.strip())],
                              Source.COUNTER, now)
    if prepared.errors:
        raise Invalid("；".join(e.reason for e in prepared.errors))
    [app_id] = enter_claims(session, clerk, prepared, Source.COUNTER, now, source_ref=f"user:{clerk.id}",
                            screen=screen)
    for sha256, title in documents:
        session.add(ApplicationDocument(application_id=app_id, document_sha256=sha256, title=title[:100],
                                        added_at=now, added_by=clerk.id))
    app = session.get(Application, app_id)
    audit.record(session, clerk, "application.accept", "application", app.number, now,
                 region_code=app.region_code, ip=ip, detail={"item": item_code, "period": app.period})
    session.flush()
    return app


# ---------------------------------------------------------------- decisions


class Decision:
    APPROVE = Action.APPROVE
    RETURN = Action.RETURN
    REJECT = Action.REJECT


def decide(session: Session, app: Application, reviewer: User, decision: Action, opinion: str, now: datetime,
           *, return_to: Step | str | None = None, calendar: WorkCalendar | None = None,
           ip: str = "", road: Road | None = None) -> ReviewRecord:
    """Record one reviewer's decision at the current station and move the application on.

    Approve: to the next station, or 已通过 after the last. Return: back to an earlier station
    (by default where the claim entered) for correction. Reject: 已否决. Return and reject need
    an opinion. History is append-only: a decision is never edited, a correction is a new record."""
    with one_move(session):
        return _decide(session, app, reviewer, decision, opinion, now, return_to=return_to, calendar=calendar,
                       ip=ip, road=road)


def _decide(session: Session, app: Application, reviewer: User, decision: Action, opinion: str, now: datetime,
            *, return_to: Step | str | None, calendar: WorkCalendar | None, ip: str, road: Road | None) -> ReviewRecord:
    require_act(session, reviewer, app)
    opinion = (opinion or "").strip()
    step = Step(app.stage)
    if step is Step.PUBLICITY:
        raise Blocked("公示中的申请由公示期满自动转入下一环节，或由异议处理决定")
    calendar = calendar or load_calendar(session)
    road = road or roads.road_for(session, app.item)
    if decision is Action.APPROVE:
        if app.open_objections:
            raise Blocked(f"申请{app.number}有未处理的异议，处理完毕前不能通过")
        if app.open_flags and step in (Step.COUNTY, Step.CITY):
            raise Blocked(f"申请{app.number}有{app.open_flags}条存疑信息未核实，不能通过{step.value}环节")
        nxt = road.after(step)
        app.returned = False
        if nxt is None:
            leave_road(app, Status.APPROVED, now)
        else:
            enter_stage(app, road, nxt, now, calendar)
    elif decision is Action.RETURN:
        if not opinion:
            raise Invalid("退回补正须填写意见，说明需要补正的内容")
        targets = road.earlier_decisions(step)
        if not targets:
            raise Invalid(f"“{step}”是本项目的第一个环节，无可退回的环节；如申请不符合条件请否决")
        target = Step(return_to) if return_to else _entry_station(session, app, road, targets)
        if target not in targets:
            raise Invalid(f"只能退回到：{'、'.join(targets)}")
        enter_stage(app, road, target, now, calendar)
        app.returned = True
    elif decision is Action.REJECT:
        if not opinion:
            raise Invalid("否决须填写意见，说明不符合条件的理由")
        leave_road(app, Status.REJECTED, now)
    else:
        raise Invalid(f"未知的审核决定：{decision}")
    # The trail is the application's history; the audit trail is the security officers' view of who
    # did what from where, so a decision goes on both.
    audit.record(session, reviewer, "application.decide", "application", app.number, now,
                 region_code=app.region_code, ip=ip, detail={"step": step.value, "decision": decision.value})
    return add_record(session, app, step.value, decision, reviewer, now, opinion,
                      {"returned_to": app.stage} if decision is Action.RETURN else None)


def _entry_station(session: Session, app: Application, road: Road, targets: list[Step]) -> Step:
    """Where a return goes by default: the station the claim entered at, if earlier than now."""
    first = session.scalar(select(ReviewRecord.to_stage).where(
        ReviewRecord.application_id == app.id, ReviewRecord.action == Action.SUBMIT.value))
    return Step(first) if first in targets else targets[0]


NOT_YOURS = "不存在或无权处理"


@dataclass
class BulkResult:
    done: list[str] = field(default_factory=list)  # application numbers
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (number, or #id when hidden; reason)


def bulk_decide(session: Session, reviewer: User, application_ids: Sequence[int], decision: Action, opinion: str,
                now: datetime, ip: str = "") -> BulkResult:
    """Decide many applications at once; each still gets its own record. An application that cannot
    take the decision (an open objection, not at your station, decided by someone else a moment
    ago) is skipped with the reason; the others go through."""
    require_perm(reviewer, Perm.REVIEW)
    if decision is Action.RETURN:
        raise Invalid("退回补正须逐件填写意见，不能批量退回")
    calendar = load_calendar(session)
    item_roads: dict[str, Road] = {}  # one road query per item, not per application
    result = BulkResult()
    seen = visible(session, reviewer)
    for start in range(0, len(application_ids), CHUNK):
        chunk = application_ids[start:start + CHUNK]
        apps = session.scalars(select(Application).where(Application.id.in_(chunk), seen)
                               .order_by(Application.id)).all()
        # Another region's or department's application, or none at all: the same words, keyed by the id
        # that was sent, so the answer reveals neither its number nor its station nor whether it exists.
        hidden = sorted(set(chunk) - {app.id for app in apps})
        result.skipped.extend((f"#{application_id}", NOT_YOURS) for application_id in hidden)
        for app in apps:
            if app.item_code not in item_roads:
                item_roads[app.item_code] = roads.road_for(session, app.item)
            try:
                with savepoint(session):
                    road = item_roads[app.item_code]
                    decide(session, app, reviewer, decision, opinion, now, calendar=calendar, ip=ip, road=road)
                result.done.append(app.number)
            except (Blocked, Forbidden, Conflict, Invalid) as e:
                session.expire(app)
                result.skipped.append((app.number, e.message))
    audit.record(session, reviewer, f"application.bulk_{'approve' if decision is Action.APPROVE else 'reject'}",
                 "applications", f"{len(result.done)}件", now, region_code=reviewer.region_code, ip=ip,
                 detail={"done": len(result.done), "skipped": len(result.skipped), "opinion": opinion})
    session.flush()
    return result


def correct(session: Session, app: Application, actor: User, now: datetime, *, quantity: str | None = None,
            note: str | None = None, documents: Sequence[tuple[str, str]] = (), opinion: str = "") -> ReviewRecord:
    """补正: the handler of a returned application fixes it. The amount is computed again from the
    item's standard; what changed is written in a new record, the old values stay in the trail."""
    require_act(session, actor, app)
    if not app.returned:
        raise Conflict("该申请未被退回，无需补正")
    changes: dict[str, Any] = {}
    if quantity is not None:
        try:
            centi = parse_quantity(app.basis, quantity)
        except ValueError as e:
            raise Invalid(str(e)) from None
        if centi != app.quantity_centi:
            new_amount = amount_fen(app.standard_fen, centi)
            changes["quantity_centi"] = [app.quantity_centi, centi]
            changes["amount_fen"] = [app.amount_fen, new_amount]
            app.quantity_centi, app.amount_fen = centi, new_amount
    if note is not None and note.strip() != app.note:
        changes["note"] = [app.note, note.strip()]
        app.note = note.strip()
    for sha256, title in documents:
        session.add(ApplicationDocument(application_id=app.id, document_sha256=sha256, title=title[:100],
                                        added_at=now, added_by=actor.id))
        changes.setdefault("documents", []).append(title)
    if not changes:
        raise Invalid("没有补正任何内容：请修改数量、说明或补充材料")
    with one_move(session):
        app.returned = False
        app.stage_seq += 1  # a new version: a decision taken on the uncorrected claim is refused
        record = add_record(session, app, app.stage, Action.CORRECT, actor, now, opinion.strip(), changes)
    if "amount_fen" in changes:  # a flagged application's amount is in the statistics' tallies
        tallies.amount_changed(session, app.id, changes["amount_fen"][1] - changes["amount_fen"][0])
    return record


def withdraw(session: Session, app: Application, clerk: User, reason: str, now: datetime) -> ReviewRecord:
    """撤回: the applicant withdraws (recorded by the village clerk of the claim's village)."""
    require_perm(clerk, Perm.APPLICATION_ACCEPT)
    if not in_subtree(clerk.region_code, app.region_code):
        raise Forbidden("无权办理本村以外的申请")
    if app.status != Status.OPEN:
        raise Conflict(f"申请{app.number}已{app.status}，不能撤回")
    if not reason.strip():
        raise Invalid("撤回须填写原因")
    step = app.stage
    with one_move(session):
        leave_road(app, Status.WITHDRAWN, now)
        return add_record(session, app, step, Action.WITHDRAW, clerk, now, reason.strip())


def trail(session: Session, user: User, application_id: int) -> tuple[Application, list[ReviewRecord]]:
    app = get_application(session, user, application_id)
    records = session.scalars(select(ReviewRecord).where(ReviewRecord.application_id == app.id)
                              .order_by(ReviewRecord.id)).all()
    return app, list(records)


# ---------------------------------------------------------------- inbox


@dataclass
class InboxFilter:
    item_code: str | None = None
    village: str | None = None  # a region code inside the user's scope (any level below it)
    due_before: date | None = None  # due on or before
    overdue: bool = False
    returned: bool = False
    stage: str | None = None


@dataclass
class Inbox:
    rows: list[Any]
    total: int
    overdue: int
    page: int
    size: int
    by_item: list[tuple[str, str, int]]  # (code, name, count) of everything waiting, unfiltered
    steps: list[str]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


INBOX_MAX_PAGE = 100


def inbox_condition(session: Session, user: User):
    """What waits for `user`: the stations of their role, owned by their region, in their duties."""
    require_perm(user, Perm.REVIEW)
    steps = [s.value for s in roads.ROLE_STEPS.get(Role(user.role), [])]
    condition = Application.stage.in_(steps) & _owned_by(steps, user.region_code)
    sector = user_sector(session, user)
    if sector is not None:
        condition = condition & (Application.sector == sector)
    return condition, steps


def _owned_by(steps: list[str], region_code: str):
    """owner_region inside the user's subtree. When the user sits at the level that owns each of their
    stations (a county handler at 县定: the usual case) the only code in that range is their own, and
    the equality lets the inbox indexes hand out rows in deadline order instead of sorting them all."""
    if steps and all(roads.owner_digits(step) == len(subtree_prefix(region_code)) for step in steps):
        return Application.owner_region == region_code
    return within(Application.owner_region, region_code)


def _apply_filters(condition, user: User, filters: InboxFilter, today: date):
    if filters.stage:
        condition &= Application.stage == filters.stage
    if filters.item_code:
        condition &= Application.item_code == filters.item_code
    if filters.village:
        if not in_subtree(user.region_code, filters.village):
            raise Forbidden("只能筛选本辖区内的村")
        condition &= within(Application.region_code, filters.village)
    if filters.due_before:
        condition &= Application.due_on <= filters.due_before
    if filters.overdue:
        condition &= Application.due_on < today
    if filters.returned:
        condition &= Application.returned.is_(True)
    return condition


def inbox(session: Session, user: User, filters: InboxFilter, today: date, page: int = 1,
          size: int = 20) -> Inbox:
    base, steps = inbox_condition(session, user)
    condition = _apply_filters(base, user, filters, today)
    size = max(1, min(size, INBOX_MAX_PAGE))
    page = max(1, page)
    # One pass over what waits gives the counts by item, and with them the totals when the filter is
    # none or an item; any other filter takes one more pass. Each pass reads only the inbox index.
    late = func.coalesce(func.sum(case((Application.due_on < today, 1), else_=0)), 0)
    counts = session.execute(select(Application.item_code, func.count(), late).where(base)
                             .group_by(Application.item_code)).all()
    if replace(filters, item_code=None) == InboxFilter():
        chosen = [c for c in counts if filters.item_code in (None, c[0])]
        total, overdue = sum(c[1] for c in chosen), sum(c[2] for c in chosen)
    else:
        total, overdue = session.execute(select(func.count(), late).where(condition)).one()
    # The page's ids from the index alone, then their rows: no join or sort over everything waiting.
    ids = list(session.scalars(select(Application.id).where(condition).order_by(Application.due_on, Application.id)
                               .offset((page - 1) * size).limit(size)))
    rows = session.execute(
        select(Application.id, Application.number, Application.item_code, SubsidyItem.name.label("item_name"),
               Person.name.label("person_name"), Person.id_number_masked, Application.region_code,
               Application.period, Application.amount_fen, Application.stage, Application.due_on,
               Application.returned, Application.open_objections, Application.publicity_id,
               Application.stage_entered_at, Application.stage_seq,
               (Application.stage == Step.PUBLICITY.value).label("at_publicity"))
        .join(SubsidyItem, SubsidyItem.code == Application.item_code)
        .join(Person, Person.id == Application.person_id)
        .where(Application.id.in_(ids)).order_by(Application.due_on, Application.id)).all() if ids else []
    names = dict(session.execute(select(SubsidyItem.code, SubsidyItem.name)
                                 .where(SubsidyItem.code.in_([c for c, *_ in counts]))).all())
    by_item = sorted(((code, names.get(code, code), n) for code, n, _ in counts), key=lambda t: (-t[2], t[0]))
    return Inbox(list(rows), total, overdue, page, size, by_item, steps)


BULK_MAX = 10_000


def inbox_ids(session: Session, user: User, filters: InboxFilter, today: date, limit: int = BULK_MAX) -> list[int]:
    """Ids of a filtered inbox, in inbox order (bulk approval of what the reviewer sees)."""
    base, _ = inbox_condition(session, user)
    condition = _apply_filters(base, user, filters, today)
    return list(session.scalars(select(Application.id).where(condition)
                                .order_by(Application.due_on, Application.id).limit(limit)))


def counts_by_status(session: Session, user: User) -> dict[str, int]:
    rows = session.execute(select(Application.status, func.count()).where(visible(session, user))
                           .group_by(Application.status)).all()
    out: dict[str, int] = defaultdict(int)
    for status, n in rows:
        out[status] = n
    return dict(out)


# ---------------------------------------------------------------- what a user may do with an application


class AppAction(StrEnum):
    """What a user may do with one application now; pages, templates and the API all ask
    `allowed_actions` rather than comparing statuses and stations themselves."""

    DECIDE = "decide"  # approve or reject at the station (审核：通过/否决)
    RETURN = "return"  # return it to an earlier station for correction (退回补正)
    CORRECT = "correct"  # submit the correction it was returned for (补正)
    WITHDRAW = "withdraw"  # withdraw it at the applicant's request (撤回)
    RESOLVE_OBJECTION = "resolve_objection"  # answer an objection raised during publicity (异议处理)
    VERIFY = "verify"  # verify its open flags (核实存疑信息)


def allowed_actions(session: Session, user: User, app: Application) -> frozenset[AppAction]:
    """The actions `user` may take on `app` now, by the same rules the services enforce: the
    station's handler decides, returns and corrects (not at 公示, which ends by itself); the
    village clerk withdraws a live claim; the village clerk or township reviewer answers
    objections; the item's department verifies open flags."""
    from yikatong.workflow.publicity import RESOLVERS  # publicity builds on this module

    allowed: set[AppAction] = set()
    in_region = in_subtree(user.region_code, app.region_code)
    if has_perm(user.role, Perm.REVIEW) and can_act(session, user, app):
        if app.stage != Step.PUBLICITY:
            allowed.add(AppAction.DECIDE)
            if roads.road_for(session, app.item).earlier_decisions(app.stage):
                allowed.add(AppAction.RETURN)
        if app.returned:
            allowed.add(AppAction.CORRECT)
    if has_perm(user.role, Perm.APPLICATION_ACCEPT) and app.status == Status.OPEN and in_region:
        allowed.add(AppAction.WITHDRAW)
    if has_perm(user.role, Perm.REVIEW) and user.role in RESOLVERS and in_region and app.open_objections:
        allowed.add(AppAction.RESOLVE_OBJECTION)
    if has_perm(user.role, Perm.FLAG_VERIFY) and app.open_flags and in_region:
        sector = user_sector(session, user)
        if sector is None or sector == app.sector:
            allowed.add(AppAction.VERIFY)
    return frozenset(allowed)
