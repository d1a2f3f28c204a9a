"""Flag tallies (flag_tallies): the counts behind the interception statistics and the flags list,
kept exact in the transaction of every write that changes flags.

Flags change in three ways, each with its call here:
- raised (interception.screening.record_hits, whatever the door: a claim, a list, the gate, a city
  run): `flags_raised(session, run_id=...)` once the run's flags are written;
- verified (interception.service.verify): `flag_verified(session, flag_id, old_status)`;
- an application's amount corrected (workflow.service.correct): `amount_changed(...)`, since the
  A rows carry the flagged applications' amounts.
Flags are never deleted, and their application, rule, item, region and day never change.

The statistics read F and G rows for records and amounts, and A/R/M "marks" for distinct
applications (see models.FlagTally): an application flagged on several days has one mark per day,
each with the day before it, so "applications with a flag from X to Y" is a sum, for any X and Y.
What is broken down by rule or month (G, R, M) is kept per county, the rest per township: a city's
statistics add up a few thousand rows.

Raising counts the new flags in one read of them (with their applications) and one read of the
older flags of the same applications, in Python, and adds the changes in one batch: a city run's
387,300 flags cost about a second or two, not a group-by per kind. An application's marks change only
where its set of days changes (usually a first mark, or a new last day). On PostgreSQL two
transactions flagging the same application would each miss the other's uncommitted flags: the
applications are locked before their older flags are read (a run has already locked them by writing
their open_flags count), so the second waits for the first to commit and then sees its flags.

Recounting from scratch (`expected`, `rebuild`, and migration 0010's backfill) is plain SQL over all
flags: a second, independent way to the same numbers.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date, and_, cast, delete, distinct, func, literal, select, text, true, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from yikatong.interception.models import Flag, FlagTally
from yikatong.security.scope import subtree_prefix
from yikatong.workflow.models import Application

CHUNK = 900  # ids per IN list (SQLite's bound parameters)
NEVER = date(1, 1, 1)  # the prev_day of an application's first mark
FLAGS, FLAGS_BY_RULE, APPLICATIONS, BY_RULE, BY_MONTH = "F", "G", "A", "R", "M"
PER_COUNTY = {FLAGS_BY_RULE, BY_RULE, BY_MONTH}  # kept per county; F and A per township
KEY = ("kind", "region_code", "item_code", "rule_code", "day", "prev_day", "status")
COLUMNS = (*KEY, "count", "amount_fen")


def tallied(code: str) -> bool:
    """Whether the tallies (kept per township) answer for the region `code`: a city or county, or above."""
    return len(subtree_prefix(code)) <= 6


def _pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def beijing_day(session: Session, column: Any) -> Any:
    """The Beijing day of a stored (naive UTC) instant: Beijing is UTC+8 all year."""
    if _pg(session):
        return cast(column + timedelta(hours=8), Date)
    return func.date(column, "+8 hours", type_=Date)  # '2026-11-30 09:00:00.000000' -> '2026-11-30'


def month_of(session: Session, day: Any) -> Any:
    """'2026-11' of a day column or expression."""
    if _pg(session):
        return func.to_char(day, "YYYY-MM")
    return func.substr(day, 1, 7)


def place_of(kind: str, column: Any) -> Any:
    """The 12-digit code a `kind` row is kept under for a region code: its county's or township's."""
    digits = 6 if kind in PER_COUNTY else 9
    return func.substr(column, 1, digits).concat("0" * (12 - digits))


def _upsert(session: Session, rows: Any) -> None:
    """Add the (KEY..., count, amount_fen) rows of a select to the tallies (each key once per select)."""
    table = FlagTally.__table__
    insert = (pg_insert if _pg(session) else sqlite_insert)(table).from_select(list(COLUMNS), rows)
    session.execute(insert.on_conflict_do_update(index_elements=list(KEY), set_={
        "count": table.c.count + insert.excluded.count,
        "amount_fen": table.c.amount_fen + insert.excluded.amount_fen}))


# ---------------------------------------------------------------- F rows: flags by status


def _flag_rows(session: Session, kind: str, condition: Any, sign: int = 1, status: str | None = None) -> Any:
    """F (per township) or G (per county and rule) rows of the flags matching `condition`, times
    `sign`; under `status` instead of their own."""
    f = Flag.__table__
    day = beijing_day(session, f.c.raised_at)
    place = place_of(kind, f.c.region_code)
    rule = f.c.rule_code if kind == FLAGS_BY_RULE else literal("")
    state = literal(status) if status is not None else f.c.status
    keys = [place, f.c.item_code, day] + ([f.c.rule_code] if kind == FLAGS_BY_RULE else []) + (
        [] if status is not None else [f.c.status])
    return (select(literal(kind), place, f.c.item_code, rule, day, literal(NEVER, Date), state,
                   func.count() * sign, func.coalesce(func.sum(f.c.amount_fen), 0) * sign)
            .where(condition).group_by(*keys))


# ---------------------------------------------------------------- A/R/M rows: marks


def _mark_rows(session: Session, kind: str) -> Any:
    """Every `kind` mark, counted over all flags: per entity (application; and rule, or month), its
    days in order, each with the day before it."""
    f = Flag.__table__
    day = beijing_day(session, f.c.raised_at)
    base = select(f.c.application_id.label("app"), f.c.rule_code.label("rule"),
                  month_of(session, day).label("month"), day.label("day")).subquery("base")
    entity = [base.c.app] + {BY_RULE: [base.c.rule], BY_MONTH: [base.c.month]}.get(kind, [])
    d = select(*entity, base.c.day).distinct().subquery("d")
    part = [d.c[c.name] for c in entity]
    m = select(d.c.app, (d.c.rule if kind == BY_RULE else literal("")).label("rule"), d.c.day,
               func.lag(d.c.day).over(partition_by=part, order_by=d.c.day).label("prev")).subquery("m")
    a = Application.__table__
    place = place_of(kind, a.c.region_code)
    prev = func.coalesce(m.c.prev, literal(NEVER, Date))
    amount = func.sum(a.c.amount_fen) if kind == APPLICATIONS else literal(0)
    return (select(literal(kind), place, a.c.item_code, m.c.rule, m.c.day, prev, literal(""), func.count(), amount)
            .select_from(m.join(a, a.c.id == m.c.app)).where(true())
            .group_by(place, a.c.item_code, m.c.rule, m.c.day, prev))


def _lock_applications(session: Session, ids: Sequence[int]) -> None:
    """PostgreSQL: lock these applications (see the module's docstring)."""
    if _pg(session):
        for start in range(0, len(ids), CHUNK):
            session.execute(select(Application.id).where(Application.id.in_(ids[start:start + CHUNK]))
                            .order_by(Application.id).with_for_update(key_share=True))


# ---------------------------------------------------------------- the writes


def _marks(days: set[date]) -> set[tuple[date, date]]:
    """(day, the day before it) for a set of days: an entity's marks."""
    ordered = sorted(days)
    return set(zip(ordered, [NEVER, *ordered], strict=False))


def _run_applications(session: Session, run_id: int) -> Any:
    """A select of (id, region_code, item_code, amount_fen) of the applications a run flagged, by
    primary key: PostgreSQL would otherwise hash-join all the applications of the city."""
    a = Application.__table__
    if _pg(session):
        return select(a.c.id, a.c.region_code, a.c.item_code, a.c.amount_fen).where(text(
            "applications.id = ANY(ARRAY(SELECT DISTINCT application_id FROM flags WHERE run_id = :run))")
            .bindparams(run=run_id))
    run = select(Flag.application_id).where(Flag.run_id == run_id).distinct().subquery("run")
    return (select(a.c.id, a.c.region_code, a.c.item_code, a.c.amount_fen)
            .join_from(run, a, a.c.id == run.c.application_id))


def flags_raised(session: Session, *, run_id: int | None = None, flag_ids: Sequence[int] | None = None) -> None:
    """Count new flags, once they are written in this transaction: those of rule run `run_id` (after
    the run has written its applications' open_flags, which locks them on PostgreSQL), or those with
    `flag_ids` (written some other way; their applications are locked here)."""
    if (run_id is None) == (flag_ids is None):
        raise ValueError("run_id or flag_ids, one of them")
    f, a = Flag.__table__, Application.__table__
    day = beijing_day(session, f.c.raised_at)
    earlier = select(f.c.id, f.c.application_id, f.c.rule_code, day)
    fresh = select(f.c.id, f.c.application_id, f.c.rule_code, f.c.region_code, f.c.item_code, f.c.status,
                   f.c.amount_fen, day)
    facts = select(a.c.id, a.c.region_code, a.c.item_code, a.c.amount_fen)
    if run_id is not None:
        n = Flag.__table__.alias("n")  # the run's applications by their flags: one statement however many
        older = session.execute(earlier.where(f.c.application_id.in_(select(n.c.application_id).where(
            n.c.run_id == run_id)), func.coalesce(f.c.run_id, 0) != run_id)).all()
        if not older and _counted_in_bulk(session, run_id):
            return
        rows = session.execute(fresh.where(f.c.run_id == run_id)).all()
        apps = session.execute(_run_applications(session, run_id)).all()
    else:
        ids = list(flag_ids or [])
        rows = [r for start in range(0, len(ids), CHUNK)
                for r in session.execute(fresh.where(f.c.id.in_(ids[start:start + CHUNK])))]
        if not rows:
            return
        new_ids = {r[0] for r in rows}
        app_ids = sorted({r[1] for r in rows})
        _lock_applications(session, app_ids)
        older = [r for start in range(0, len(app_ids), CHUNK) for r in session.execute(
            earlier.where(f.c.application_id.in_(app_ids[start:start + CHUNK]))) if r[0] not in new_ids]
        apps = [r for start in range(0, len(app_ids), CHUNK)
                for r in session.execute(facts.where(a.c.id.in_(app_ids[start:start + CHUNK])))]
    collecting = gc.isenabled()
    gc.disable()  # hundreds of thousands of small sets and tuples: the cyclic collector would rescan them all
    try:
        changes = _changes(rows, older, {r[0]: (r[1], r[2], r[3]) for r in apps})
    finally:
        if collecting:
            gc.enable()
    _add_rows(session, changes)


def _counted_in_bulk(session: Session, run_id: int) -> bool:
    """A run whose applications had no flag before it, all its flags raised on one day with one status
    (a first city run, a new claim): every application, application and rule, application and month
    gets its first mark on that day, so two group-bys count everything — no need to read the flags
    into Python (a flag carries its application's item and region, so the marks per rule may be
    placed by the flags'). False (nothing written) when the run is not like that."""
    f = Flag.__table__
    day = beijing_day(session, f.c.raised_at)
    township9 = func.substr(f.c.region_code, 1, 9)
    by_rule = session.execute(
        select(township9, f.c.item_code, f.c.rule_code, day, f.c.status, func.count(), func.sum(f.c.amount_fen),
               func.count(distinct(f.c.application_id)))
        .where(f.c.run_id == run_id).group_by(township9, f.c.item_code, f.c.rule_code, day, f.c.status)).all()
    if len({r[3] for r in by_rule}) > 1 or len({r[4] for r in by_rule}) > 1:
        return False
    if not by_rule:
        return True
    raw = by_rule[0][3]
    on = raw if isinstance(raw, date) else date.fromisoformat(raw)
    changes: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for place, item, rule, _day, status, n, amount, apps in by_rule:
        for key, count, worth in (((FLAGS, place + "000", item, "", on, NEVER, status), n, amount),
                                  ((FLAGS_BY_RULE, place[:6] + "000000", item, rule, on, NEVER, status), n, amount),
                                  ((BY_RULE, place[:6] + "000000", item, rule, on, NEVER, ""), apps, 0)):
            changes[key][0] += count
            changes[key][1] += worth
    run = _run_applications(session, run_id).subquery("run")
    app_place = func.substr(run.c.region_code, 1, 9)
    for place, item, n, amount in session.execute(
            select(app_place, run.c.item_code, func.count(), func.sum(run.c.amount_fen))
            .group_by(app_place, run.c.item_code)):
        for key, worth in (((APPLICATIONS, place + "000", item, "", on, NEVER, ""), amount),
                           ((BY_MONTH, place[:6] + "000000", item, "", on, NEVER, ""), 0)):
            changes[key][0] += n
            changes[key][1] += worth
    _add_rows(session, changes)
    return True


def _changes(rows: Sequence[Any], older: Sequence[Any], apps: dict[int, tuple[str, str, int]]
             ) -> dict[tuple, list[int]]:
    """key -> [count, amount] to add: the new flags' F and G rows, and the marks that change.

    Written for a city run's hundreds of thousands of rows: the flags are first counted by their
    own columns, and an entity (an application; with a rule, or a month) seen on one day only and
    never before — nearly all of them — is counted without working out its marks."""
    days_of: dict[Any, date] = {}

    def as_day(value: Any) -> date:  # SQLite answers '2026-12-01', PostgreSQL a date
        found = days_of.get(value)
        if found is None:
            found = days_of[value] = value if isinstance(value, date) else date.fromisoformat(value)
        return found

    fine: dict[tuple, list[int]] = {}  # (region, item, rule, day, status) -> [flags, amount]
    app_days: dict[int, set] = defaultdict(set)
    rule_days: dict[tuple[int, str], set] = defaultdict(set)
    for _id, app, rule, region, item, status, amount, raw in rows:
        key = (region, item, rule, raw, status)
        tally = fine.get(key)
        if tally is None:
            fine[key] = [1, amount]
        else:
            tally[0] += 1
            tally[1] += amount
        app_days[app].add(raw)
        rule_days[(app, rule)].add(raw)

    changes: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for (region, item, rule, raw, status), (n, amount) in fine.items():
        day = as_day(raw)
        for key in ((FLAGS, region[:9] + "000", item, "", day, NEVER, status),
                    (FLAGS_BY_RULE, region[:6] + "000000", item, rule, day, NEVER, status)):
            changes[key][0] += n
            changes[key][1] += amount

    old: dict[tuple, set[date]] = defaultdict(set)  # entity -> the days of its earlier flags
    for _id, app, rule, raw in older:
        day = as_day(raw)
        old[(APPLICATIONS, app, "")].add(day)
        old[(BY_RULE, app, rule)].add(day)
        old[(BY_MONTH, app, day.strftime("%Y-%m"))].add(day)

    def mark(kind: str, app: int, sub: str, days: set[date]) -> None:
        region, item, amount = apps[app]
        place = region[:9] + "000" if kind == APPLICATIONS else region[:6] + "000000"
        rule = sub if kind == BY_RULE else ""
        before = old.get((kind, app, sub), set())
        was, now = _marks(before), _marks(before | days)
        for sign, marks in ((1, now - was), (-1, was - now)):
            for day, prev in marks:
                change = changes[(kind, place, item, rule, day, prev, "")]
                change[0] += sign
                change[1] += sign * amount if kind == APPLICATIONS else 0

    for app, raws in app_days.items():
        days = {as_day(r) for r in raws}
        if len(days) == 1 and (APPLICATIONS, app, "") not in old:  # the usual case: a first mark, one day
            (day,) = days
            region, item, amount = apps[app]
            for kind, place, worth in ((APPLICATIONS, region[:9] + "000", amount),
                                       (BY_MONTH, region[:6] + "000000", 0)):
                change = changes[(kind, place, item, "", day, NEVER, "")]
                change[0] += 1
                change[1] += worth
            continue
        mark(APPLICATIONS, app, "", days)
        by_month: dict[str, set[date]] = defaultdict(set)
        for day in days:
            by_month[day.strftime("%Y-%m")].add(day)
        for month, in_month in by_month.items():
            mark(BY_MONTH, app, month, in_month)
    for (app, rule), raws in rule_days.items():
        days = {as_day(r) for r in raws}
        if len(days) == 1 and (BY_RULE, app, rule) not in old:
            (day,) = days
            region, item, _amount = apps[app]
            changes[(BY_RULE, region[:6] + "000000", item, rule, day, NEVER, "")][0] += 1
            continue
        mark(BY_RULE, app, rule, days)
    return changes


def _add_rows(session: Session, changes: dict[tuple, list[int]]) -> None:
    """Add [count, amount] to each key: one upsert statement, executed for every key."""
    table = FlagTally.__table__
    rows = [dict(zip(COLUMNS, (*key, n, amount), strict=True)) for key, (n, amount) in changes.items() if n or amount]
    if not rows:
        return
    insert = (pg_insert if _pg(session) else sqlite_insert)(table)
    session.execute(insert.on_conflict_do_update(index_elements=list(KEY), set_={
        "count": table.c.count + insert.excluded.count,
        "amount_fen": table.c.amount_fen + insert.excluded.amount_fen}), rows)


def flag_verified(session: Session, flag_id: int, old_status: str) -> None:
    """Move a verified flag from its old status to its new one (already written)."""
    one = Flag.id == flag_id
    for kind in (FLAGS, FLAGS_BY_RULE):
        _upsert(session, union_all(_flag_rows(session, kind, one, -1, status=old_status),
                                   _flag_rows(session, kind, one)))


def amount_changed(session: Session, application_id: int, delta_fen: int) -> None:
    """An application's amount changed by `delta_fen`: its A marks carry it."""
    if not delta_fen:
        return
    f = Flag.__table__
    days = sorted(set(session.scalars(select(beijing_day(session, f.c.raised_at))
                                      .where(f.c.application_id == application_id))))
    if not days:
        return
    app = session.get(Application, application_id)
    place = app.region_code[:9] + "000"
    for prev, day in zip([NEVER, *days], days, strict=False):
        session.execute(update(FlagTally).where(
            FlagTally.kind == APPLICATIONS, FlagTally.region_code == place, FlagTally.item_code == app.item_code,
            FlagTally.rule_code == "", FlagTally.day == day, FlagTally.prev_day == prev, FlagTally.status == "")
            .values(amount_fen=FlagTally.amount_fen + delta_fen).execution_options(synchronize_session=False))


# ---------------------------------------------------------------- checking


def expected(session: Session) -> dict[tuple, tuple[int, int]]:
    """The tallies counted from scratch over `flags` (and the applications' amounts), nonzero rows."""
    everything = Flag.id.is_not(None)
    rows = session.execute(union_all(*(_flag_rows(session, k, everything) for k in (FLAGS, FLAGS_BY_RULE)),
                                     *(_mark_rows(session, k) for k in (APPLICATIONS, BY_RULE, BY_MONTH))))
    return {tuple(r[:7]): (int(r[7]), int(r[8])) for r in rows if r[7]}


def rebuild(session: Session) -> int:
    """Count every tally again from the flags (the kept ones are replaced); returns the rows written."""
    session.execute(delete(FlagTally))
    everything = Flag.id.is_not(None)
    for kind in (FLAGS, FLAGS_BY_RULE):
        _upsert(session, _flag_rows(session, kind, everything))
    for kind in (APPLICATIONS, BY_RULE, BY_MONTH):
        _upsert(session, _mark_rows(session, kind))
    return session.scalar(select(func.count()).select_from(FlagTally)) or 0


def kept(session: Session) -> dict[tuple, tuple[int, int]]:
    """The tallies as kept, nonzero rows."""
    t = FlagTally.__table__
    rows = session.execute(select(*(t.c[c] for c in COLUMNS)).where(and_(t.c.count != 0)))
    return {tuple(r[:7]): (int(r[7]), int(r[8])) for r in rows}


def differences(session: Session) -> dict[tuple, tuple[tuple[int, int] | None, tuple[int, int] | None]]:
    """key -> (kept, expected) wherever they differ: empty when the tallies are exact."""
    have, want = kept(session), expected(session)
    return {k: (have.get(k), want.get(k)) for k in have.keys() | want.keys() if have.get(k) != want.get(k)}
