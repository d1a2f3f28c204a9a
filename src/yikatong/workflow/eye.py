"""The electronic eye (电子眼): watches every open station and writes reminders and escalations to
the outbox.

One scan, in one transaction:
1. close the publicity lists whose window has ended (publicity.close_ended);
2. remind (到期提醒): applications not yet reminded whose reminder day has come and whose deadline
   has not passed go to the handlers of their station;
3. escalate (超期督办): applications not yet escalated whose deadline has passed go to the leaders
   (分管领导) of the handling office and to the supervisors whose region contains the application.

Set-based: the applications are claimed with one UPDATE .. SET reminded = true WHERE reminded =
false .. RETURNING per kind, then grouped by recipient, and each recipient gets ONE digest message
per scan and kind ("您有N件补贴申请将于X到期…"), so 100,000 overdue applications make one message
per person, not 100,000 text messages.

Why a rerun never duplicates and a crash never loses: the flags and the messages are written in the
same transaction. A crash before the commit leaves neither, and the rerun finds the same
applications unflagged; after the commit the rerun finds them flagged and writes nothing. The
conditional UPDATE also makes two concurrent scans disjoint (PostgreSQL re-checks `reminded` on
rows another transaction changed), and scans are serialised by an advisory lock anyway. The dedupe
key — kind, day, recipient and a hash of the (application, station visit, deadline) triples — is a
second guard: the same digest can never be written twice, while an application that comes back to a
station (a return, a new deadline) makes a new key and a new reminder.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, not_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from yikatong.catalog.models import Department
from yikatong.core.clock import beijing_date
from yikatong.notify.service import Draft, channel_for, enqueue
from yikatong.security.models import User
from yikatong.security.roles import Role
from yikatong.security.scope import PREFIX_LENGTHS, subtree_prefix, within
from yikatong.workflow import publicity
from yikatong.workflow.calendar import WorkCalendar, load_calendar
from yikatong.workflow.models import Application, Status, Step
from yikatong.workflow.road import STEP_ROLE

DIGEST_NUMBERS = 10  # application numbers listed in one message
SCAN_LOCK = 0x594B5445  # PostgreSQL advisory lock key of the scan ("YKTE")


class Kind(StrEnum):
    REMINDER = "reminder"  # 到期提醒
    ESCALATION = "escalation"  # 超期督办


# ---------------------------------------------------------------- who is reached


@dataclass(frozen=True)
class Contact:
    """A staff member the eye may write to."""

    id: int
    display_name: str
    role: str
    leader: bool
    openid: str | None
    has_phone: bool


@dataclass
class Office:
    """The staff of one station's office: a role in one region (and, for a county department, one sector)."""

    handlers: list[Contact] = field(default_factory=list)
    leaders: list[Contact] = field(default_factory=list)

    @property
    def doers(self) -> list[Contact]:
        """Who is reminded: the handlers, or the leaders of an office that has no other staff."""
        return self.handlers or self.leaders

    @property
    def bosses(self) -> list[Contact]:
        """Who hears of overdue work: the leaders, or the handlers of an office without a leader."""
        return self.leaders or self.handlers


def office_key(stage: str, owner_region: str, sector: str | None) -> tuple[str, str, str | None]:
    role = STEP_ROLE[Step(stage)]
    return role.value, owner_region, sector if role is Role.COUNTY_HANDLER else None


@dataclass
class Staff:
    """Every active user who can handle a station or supervise, indexed once per scan."""

    offices: dict[tuple[str, str, str | None], Office]
    supervisors: dict[str, list[Contact]]  # subtree prefix -> supervisors of that region

    def office(self, stage: str, owner_region: str, sector: str) -> Office:
        """The office of a station, as workflow.service.can_act sees it: the role of the stage in
        the owner region; a county handler by their department's sector (one without a department
        handles every sector)."""
        key = office_key(stage, owner_region, sector)
        found = self.offices.get(key, Office())
        if key[2] is not None:
            general = self.offices.get((key[0], key[1], None))
            if general is not None:
                found = Office(found.handlers + general.handlers, found.leaders + general.leaders)
        return found

    def supervisors_of(self, region_code: str) -> list[Contact]:
        out: list[Contact] = []
        for n in PREFIX_LENGTHS:
            out.extend(self.supervisors.get(region_code[:n], ()))
        return out


def load_staff(session: Session) -> Staff:
    roles = {r.value for r in STEP_ROLE.values()} | {Role.SUPERVISOR.value}
    rows = session.execute(
        select(User.id, User.display_name, User.role, User.region_code, User.leader, User.wechat_openid,
               User.phone_enc.is_not(None).label("has_phone"), Department.sector)
        .outerjoin(Department, Department.code == User.department_code)
        .where(User.active.is_(True), User.role.in_(roles)).order_by(User.id)).all()
    offices: dict[tuple[str, str, str | None], Office] = defaultdict(Office)
    supervisors: dict[str, list[Contact]] = defaultdict(list)
    for r in rows:
        person = Contact(r.id, r.display_name, r.role, bool(r.leader), r.wechat_openid, bool(r.has_phone))
        if r.role == Role.SUPERVISOR:
            supervisors[subtree_prefix(r.region_code)].append(person)
            continue
        sector = r.sector if r.role == Role.COUNTY_HANDLER else None
        office = offices[(r.role, r.region_code, sector)]
        (office.leaders if r.leader else office.handlers).append(person)
    return Staff(dict(offices), dict(supervisors))


# ---------------------------------------------------------------- the scan


@dataclass
class ScanReport:
    today: date
    publicity_moved: int = 0  # applications moved on by closing ended publicity lists
    reminded: int = 0  # applications
    escalated: int = 0
    reminders: int = 0  # messages written
    escalations: int = 0
    unreached: int = 0  # applications whose station has nobody to write to


_CLAIMED = (Application.id, Application.number, Application.stage, Application.stage_seq, Application.owner_region,
            Application.sector, Application.region_code, Application.due_on)


def _claim(session: Session, flag, conditions: list[Any]) -> list[Any]:
    """Set `flag` on every application matching `conditions` and not flagged yet; return those rows.
    One statement on both engines (UPDATE .. RETURNING)."""
    statement = (update(Application).where(flag.is_(False), *conditions).values({flag.key: True})
                 .returning(*_CLAIMED).execution_options(synchronize_session=False))
    rows = list(session.execute(statement).all())
    # Applications the session already holds learn the new flag (the ORM's own "fetch" sync costs
    # a second per 100,000 rows; the identity map of a worker's session is nearly empty).
    claimed = {r.id for r in rows}
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Application) and obj.id in claimed:
            set_committed_value(obj, flag.key, True)
    return rows


def scan(session: Session, now: datetime, *, region: str | None = None,
         calendar: WorkCalendar | None = None) -> ScanReport:
    """Run the electronic eye once in the caller's transaction (the caller commits). `region`
    limits the scan to one region's subtree (a staged roll-out by county, tests)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCAN_LOCK})
    calendar = calendar or load_calendar(session)
    today = beijing_date(now)
    report = ScanReport(today)
    report.publicity_moved = publicity.close_ended(session, now, calendar, region)

    scope = [Application.status == Status.OPEN.value]
    if region:
        scope.append(within(Application.region_code, region))
    # Inside a running publicity window nothing waits for the clerk unless an objection does.
    in_window = and_(Application.stage == Step.PUBLICITY.value, Application.publicity_id.is_not(None),
                     Application.open_objections == 0)
    # remind_on <= due_on always, so `remind_on <= today` lets both claims use ix_applications_eye.
    due_soon = _claim(session, Application.reminded, [*scope, Application.remind_on <= today,
                                                      Application.due_on >= today, not_(in_window)])
    overdue = _claim(session, Application.escalated, [*scope, Application.remind_on <= today,
                                                      Application.due_on < today])
    report.reminded, report.escalated = len(due_soon), len(overdue)
    if not due_soon and not overdue:
        return report

    staff = load_staff(session)
    buckets: dict[tuple[Kind, int], list[Any]] = defaultdict(list)
    people: dict[int, Contact] = {}
    reached: set[int] = set()
    for kind, rows in ((Kind.REMINDER, due_soon), (Kind.ESCALATION, overdue)):
        recipients: dict[tuple[str, str, str, str], list[Contact]] = {}  # thousands of offices, not 100,000 rows
        for row in rows:
            key = (row.stage, row.owner_region, row.sector, row.region_code if kind is Kind.ESCALATION else "")
            targets = recipients.get(key)
            if targets is None:
                office = staff.office(row.stage, row.owner_region, row.sector)
                found = office.doers if kind is Kind.REMINDER else office.bosses + staff.supervisors_of(row.region_code)
                targets = recipients[key] = list({p.id: p for p in found}.values())
                people.update((p.id, p) for p in targets)
            for person in targets:
                buckets[(kind, person.id)].append(row)
            if targets:
                reached.add(row.id)
    report.unreached = len({r.id for r in due_soon} | {r.id for r in overdue}) - len(reached)

    drafts = [_digest(kind, people[user_id], rows, today, calendar)
              for (kind, user_id), rows in sorted(buckets.items(), key=lambda kv: (kv[0][0].value, kv[0][1]))]
    written = set(enqueue(session, drafts, now))  # a digest already in the outbox is not written again
    report.reminders = sum(1 for d in drafts if d.kind == Kind.REMINDER and d.dedupe_key in written)
    report.escalations = sum(1 for d in drafts if d.kind == Kind.ESCALATION and d.dedupe_key in written)
    return report


def dedupe_key(kind: Kind, today: date, user_id: int, rows: list[Any]) -> str:
    """kind, day, recipient, and a hash of what the digest is about. The same digest on the same day
    is the same key; an application back at a station (new visit or new deadline) changes it."""
    triples = sorted(f"{r.id}.{r.stage_seq}.{r.due_on}" for r in rows)
    digest = hashlib.sha256(",".join(triples).encode()).hexdigest()[:20]
    return f"eye:{kind.value}:{today:%Y%m%d}:{user_id}:{digest}"


def _md(day: date) -> str:
    return f"{day.month}月{day.day}日"


def _digest(kind: Kind, person: Contact, rows: list[Any], today: date, calendar: WorkCalendar) -> Draft:
    rows = sorted(rows, key=lambda r: (r.due_on, r.id))
    n = len(rows)
    numbers = [r.number for r in rows[:DIGEST_NUMBERS]]
    listed = "、".join(numbers) + ("等" if n > DIGEST_NUMBERS else "")
    earliest, latest = rows[0].due_on, rows[-1].due_on
    payload: dict[str, Any] = {"kind": kind.value, "count": n, "numbers": numbers, "earliest_due": str(earliest)}
    if kind is Kind.REMINDER:
        when = f"将于{_md(earliest)}到期" if earliest == latest else f"最早将于{_md(earliest)}到期"
        title = "补贴申请到期提醒"
        body = f"您有{n}件补贴申请{when}，请及时办理：{listed}。"
        payload["path"] = "/applications"  # the inbox
        payload["template"] = {"first": f"您有{n}件补贴申请即将到期", "keyword1": "补贴申请审核",
                               "keyword2": f"{n}件", "keyword3": str(earliest), "remark": f"请及时办理：{listed}"}
        payload["sms"] = {"count": str(n), "due": _md(earliest)}
    else:
        days = calendar.working_days_between(earliest, today)
        payload["overdue_days"] = days
        title = "补贴申请超期督办"
        if person.role == Role.SUPERVISOR:
            whose, ask = "您辖区内有", "请督促办理"
        elif person.leader:
            whose, ask = "您分管的业务有", "请督促办理"
        else:  # an office without a leader: its own handlers hear of it
            whose, ask = "您有", "请尽快办理"
        body = (f"{whose}{n}件补贴申请已超过办理时限（最早应于{_md(earliest)}办结，已超期{days}个工作日），"
                f"{ask}：{listed}。")
        payload["path"] = "/overdue"
        payload["template"] = {"first": f"{n}件补贴申请超期未办", "keyword1": "补贴申请审核",
                               "keyword2": f"{n}件", "keyword3": f"已超期{days}个工作日",
                               "remark": f"{ask}：{listed}"}
        payload["sms"] = {"count": str(n), "due": _md(earliest), "days": str(days)}
    return Draft(dedupe_key(kind, today, person.id, rows), kind.value, person.id,
                 channel_for(person.openid, person.has_phone).value, title, body, payload)
