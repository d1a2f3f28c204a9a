"""Village publicity (村级公示) and objections (异议).

After 村评 an application waits at 公示 until the village clerk publishes the list: one list per
village and item, masked names and ID numbers, amounts, a window (default 7 days). Anyone may object
during the window. When the window has ended, every application without an open objection moves on;
one with an open objection waits until the objection is resolved with an opinion."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from yikatong.catalog.models import SubsidyItem
from yikatong.core.clock import beijing_date
from yikatong.core.errors import Blocked, Conflict, Forbidden, Invalid, NotFound
from yikatong.core.masking import mask_name
from yikatong.core.phone import parse_mobile
from yikatong.core.protect import protect
from yikatong.registry.models import Person, Region
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, Role, require_perm
from yikatong.security.scope import in_subtree, within
from yikatong.workflow import road as roads
from yikatong.workflow.calendar import WorkCalendar, load_calendar
from yikatong.workflow.models import (
    Action,
    Application,
    Objection,
    ObjectionStatus,
    Publicity,
    PublicityEntry,
    Status,
    Step,
)
from yikatong.workflow.service import add_record, enter_stage, leave_road, one_move

PUBLIC_NAME = "群众"


def waiting_to_publish(session: Session, clerk: User) -> list[Application]:
    """Applications of the clerk's villages that passed 村评 and are not on a list yet."""
    require_perm(clerk, Perm.PUBLICITY_MANAGE)
    return list(session.scalars(select(Application).where(
        Application.stage == Step.PUBLICITY.value, Application.publicity_id.is_(None),
        Application.status == Status.OPEN.value, within(Application.region_code, clerk.region_code),
    ).order_by(Application.region_code, Application.item_code, Application.id)).all())


def publish(session: Session, clerk: User, now: datetime, *, village: str | None = None,
            calendar: WorkCalendar | None = None, ip: str = "") -> list[Publicity]:
    """Put every waiting application of the clerk's villages (or of one village) on publicity lists,
    one per village and item. The window starts today and lasts the item's 公示 days. Each application
    goes on one list only: when another clerk published one of them a moment ago, nothing is
    published and the clerk is told to refresh (409)."""
    calendar = calendar or load_calendar(session)
    apps = [a for a in waiting_to_publish(session, clerk) if village is None or a.region_code == village]
    if not apps:
        raise Invalid("没有待公示的申请")
    groups: dict[tuple[str, str], list[Application]] = defaultdict(list)
    for app in apps:
        groups[(app.region_code, app.item_code)].append(app)
    names = dict(session.execute(select(Region.code, Region.full_name)
                                 .where(Region.code.in_({v for v, _ in groups}))).all())
    today = beijing_date(now)
    made = []
    with one_move(session):  # a flush inside the loop may find an application moved
        for (village_code, item_code), members in sorted(groups.items()):
            item = session.get(SubsidyItem, item_code)
            road = roads.road_for(session, item)
            days = road.station(Step.PUBLICITY).days
            period = members[0].period if len({m.period for m in members}) == 1 else "多期"
            pub = Publicity(region_code=village_code, item_code=item_code,
                            title=f"{names.get(village_code, village_code)}{item.name}（{period}）公示名单",
                            starts_on=today, ends_on=today + timedelta(days=days - 1), created_by=clerk.id,
                            created_at=now)
            session.add(pub)
            session.flush()
            people = {p.id: p for p in session.scalars(select(Person).where(
                Person.id.in_([m.person_id for m in members]))).all()}
            for position, app in enumerate(members, start=1):
                person = people[app.person_id]
                session.add(PublicityEntry(publicity_id=pub.id, application_id=app.id, position=position,
                                           name_masked=mask_name(person.name), id_number_masked=person.id_number_masked,
                                           quantity_centi=app.quantity_centi, amount_fen=app.amount_fen))
                app.publicity_id = pub.id
                app.stage_seq += 1  # a new version: the UPDATE finds no row if someone else published it
                app.due_on = pub.ends_on  # the station lasts as long as the window
                app.remind_on = pub.ends_on
                app.reminded = app.escalated = False
                add_record(session, app, Step.PUBLICITY.value, Action.PUBLICITY_START, clerk, now, detail={
                    "publicity_id": pub.id, "starts_on": str(pub.starts_on), "ends_on": str(pub.ends_on)})
            audit.record(session, clerk, "publicity.publish", "publicity", pub.id, now, region_code=village_code,
                         ip=ip, detail={"item": item_code, "entries": len(members), "ends_on": str(pub.ends_on)})
            made.append(pub)
    return made


def get_publicity(session: Session, publicity_id: int) -> Publicity:
    """A publicity list. Lists are public (they hang on the village board), so no scope check:
    they carry masked names and ID numbers only."""
    pub = session.get(Publicity, publicity_id)
    if pub is None:
        raise NotFound("公示不存在")
    return pub


def is_open(pub: Publicity, today: date) -> bool:
    return pub.starts_on <= today <= pub.ends_on and pub.closed_at is None


def raise_objection(session: Session, publicity_id: int, application_id: int, reason: str, now: datetime, *,
                    name: str = "", contact: str = "", recorder: User | None = None) -> Objection:
    """Register an objection to one entry of an open publicity list. Anyone may (anonymous allowed);
    a clerk may record one received in person."""
    pub = get_publicity(session, publicity_id)
    if not is_open(pub, beijing_date(now)):
        raise Blocked(f"公示期为{pub.starts_on}至{pub.ends_on}，当前不在公示期内，不能登记异议")
    app = session.get(Application, application_id)
    if app is None or app.publicity_id != pub.id:
        raise NotFound("该公示名单中没有这条记录")
    reason = (reason or "").strip()
    if len(reason) < 5:
        raise Invalid("请写明异议理由（至少5个字）")
    if len(reason) > 2000:
        raise Invalid("异议理由不能超过2000字")
    name = (name or "").strip()[:40]
    contact_fields = {}
    if contact.strip():
        try:
            protected = protect("phone", parse_mobile(contact))
        except ValueError as e:
            raise Invalid(f"联系电话：{e}") from None
        contact_fields = {"contact_enc": protected.enc, "contact_masked": protected.masked}
    objection = Objection(application_id=app.id, publicity_id=pub.id, raised_at=now, raised_by_name=name,
                          reason=reason, recorded_by=recorder.id if recorder else None, **contact_fields)
    session.add(objection)
    with one_move(session):
        app.open_objections = Application.open_objections + 1  # in SQL: two objections at once both count
    add_record(session, app, Step.PUBLICITY.value, Action.OBJECTION, recorder, now, reason,
               {"objection_id": objection.id}, actor_name=None if recorder else (name or PUBLIC_NAME))
    return objection


RESOLVERS = (Role.VILLAGE_CLERK, Role.TOWNSHIP_REVIEWER)


def resolve_objection(session: Session, objection_id: int, resolver: User, upheld: bool, opinion: str,
                      now: datetime, calendar: WorkCalendar | None = None, ip: str = "") -> Objection:
    """Answer an objection after checking it. Upheld: the application is rejected. Dismissed: it
    goes on (at once if the window has already ended)."""
    require_perm(resolver, Perm.REVIEW)
    objection = session.get(Objection, objection_id)
    if objection is None:
        raise NotFound("异议不存在")
    app = session.get(Application, objection.application_id)
    if resolver.role not in RESOLVERS or not in_subtree(resolver.region_code, app.region_code):
        raise Forbidden("异议由本村经办员或本乡镇审核员处理")
    if objection.status != ObjectionStatus.OPEN:
        raise Conflict("该异议已处理")
    opinion = (opinion or "").strip()
    if not opinion:
        raise Invalid("处理异议须填写核实意见")
    status = (ObjectionStatus.UPHELD if upheld else ObjectionStatus.DISMISSED).value
    # A conditional write: of two people resolving the same objection at once, one finds it still open.
    resolved = session.execute(update(Objection).where(
        Objection.id == objection.id, Objection.status == ObjectionStatus.OPEN.value).values(
        status=status, resolved_by=resolver.id, resolved_at=now, opinion=opinion)
        .execution_options(synchronize_session=False))
    if resolved.rowcount != 1:
        raise Conflict("该异议已被他人处理，请刷新")
    session.refresh(objection)
    app.open_objections = Application.open_objections - 1  # in SQL: two objections resolved at once
    with one_move(session):
        if upheld and app.status == Status.OPEN:
            leave_road(app, Status.REJECTED, now)
    detail = {"objection_id": objection.id, "result": objection.status}
    add_record(session, app, Step.PUBLICITY.value, Action.OBJECTION_RESOLVED, resolver, now, opinion, detail)
    if not upheld:
        pub = session.get(Publicity, objection.publicity_id)
        if app.open_objections == 0 and app.status == Status.OPEN and beijing_date(now) > pub.ends_on:
            with one_move(session):
                _move_on(session, app, roads.road_for(session, app.item), now,
                         calendar or load_calendar(session))
    audit.record(session, resolver, "publicity.objection", "objection", objection.id, now,
                 region_code=app.region_code, ip=ip, detail=detail)
    session.flush()
    return objection


def _move_on(session: Session, app: Application, road: roads.Road, now: datetime, calendar: WorkCalendar) -> None:
    nxt = road.after(Step.PUBLICITY)
    if nxt is None:
        leave_road(app, Status.APPROVED, now)
    else:
        enter_stage(app, road, nxt, now, calendar)
    add_record(session, app, Step.PUBLICITY.value, Action.PUBLICITY_END, None, now, "公示期满，无未处理异议")


def close_ended(session: Session, now: datetime, calendar: WorkCalendar | None = None,
                region: str | None = None) -> int:
    """Close every publicity whose window ended before today (of `region`'s subtree, if given): its
    applications without an open objection move on. Returns how many applications moved. Run by
    the worker, safe to repeat."""
    calendar = calendar or load_calendar(session)
    moved = 0
    today = beijing_date(now)
    ended = session.scalars(select(Publicity).where(Publicity.ends_on < today, Publicity.closed_at.is_(None),
                                                    *([within(Publicity.region_code, region)] if region else []))).all()
    for pub in ended:
        apps = session.scalars(select(Application).where(
            Application.publicity_id == pub.id, Application.stage == Step.PUBLICITY.value,
            Application.status == Status.OPEN.value, Application.open_objections == 0)).all()
        road = roads.road_for(session, session.get(SubsidyItem, pub.item_code))  # one list, one item
        for app in apps:
            _move_on(session, app, road, now, calendar)
            moved += 1
        pub.closed_at = now
    session.flush()
    return moved


def objections_of(session: Session, application_id: int) -> list[Objection]:
    return list(session.scalars(select(Objection).where(Objection.application_id == application_id)
                                .order_by(Objection.id)).all())


def open_objections(session: Session, user: User) -> list[Objection]:
    """Open objections on applications of the user's region (what a clerk or reviewer must answer)."""
    return list(session.scalars(select(Objection).join(Application, Application.id == Objection.application_id)
                                .where(Objection.status == ObjectionStatus.OPEN.value,
                                       within(Application.region_code, user.region_code))
                                .order_by(Objection.id)).all())
