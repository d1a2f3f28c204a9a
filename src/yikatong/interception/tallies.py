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

Raising recounts the marks of the applications that got a flag: their marks from all their flags,
minus their marks from the flags they had before. On PostgreSQL two transactions flagging the same
application would each miss the other's uncommitted flags, so the applications are locked first
(their open_flags count is written in the same transaction anyway): the second waits for the first
to commit and then sees its flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date, and_, case, cast, delete, func, literal, select, true, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from yikatong.interception.models import Flag, FlagTally
from yikatong.security.scope import subtree_prefix
from yikatong.workflow.models import Application

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


def _mark_rows(session: Session, kind: str, new: Any) -> Any:
    """The change in `kind` marks when the flags matching `new` were added: for the applications they
    belong to, the marks of all their flags minus the marks of their other flags."""
    f = Flag.__table__.alias("f")
    day = beijing_day(session, f.c.raised_at)
    apps = select(Flag.application_id).where(new)
    base = select(f.c.application_id.label("app"), f.c.rule_code.label("rule"),
                  month_of(session, day).label("month"), day.label("day"),
                  case((_on(f, new), 1), else_=0).label("mine")).where(f.c.application_id.in_(apps)).subquery("base")

    def marks(sign: int, before: bool) -> Any:
        entity = [base.c.app] + {BY_RULE: [base.c.rule], BY_MONTH: [base.c.month]}.get(kind, [])
        days = select(*entity, base.c.day).distinct()
        if before:
            days = days.where(base.c.mine == 0)
        d = days.subquery()
        part = [d.c[c.name] for c in entity]
        return select(d.c.app, (d.c.rule if kind == BY_RULE else literal("")).label("rule"), d.c.day,
                      func.lag(d.c.day).over(partition_by=part, order_by=d.c.day).label("prev"),
                      literal(sign).label("sign"))

    m = union_all(marks(1, False), marks(-1, True)).subquery("m")
    a = Application.__table__
    place = place_of(kind, a.c.region_code)
    prev = func.coalesce(m.c.prev, literal(NEVER, Date))
    amount = func.sum(m.c.sign * a.c.amount_fen) if kind == APPLICATIONS else literal(0)
    return (select(literal(kind), place, a.c.item_code, m.c.rule, m.c.day, prev, literal(""), func.sum(m.c.sign),
                   amount)
            .select_from(m.join(a, a.c.id == m.c.app)).where(true())
            .group_by(place, a.c.item_code, m.c.rule, m.c.day, prev).having(func.sum(m.c.sign) != 0))


def _on(alias: Any, condition: Any) -> Any:
    """`condition` (written over flags) rewritten over an alias of flags."""
    from sqlalchemy.sql.util import ClauseAdapter

    return ClauseAdapter(alias).traverse(condition)


def _lock_applications(session: Session, new: Any) -> None:
    """PostgreSQL: lock the applications of the new flags (see the module's docstring)."""
    if _pg(session):
        locked = (select(Application.id).where(Application.id.in_(select(Flag.application_id).where(new)))
                  .order_by(Application.id).with_for_update().subquery())
        session.execute(select(func.count()).select_from(locked))


# ---------------------------------------------------------------- the writes


def flags_raised(session: Session, *, run_id: int | None = None, flag_ids: Sequence[int] | None = None) -> None:
    """Count new flags: those of rule run `run_id`, or those with `flag_ids` (written some other way).
    Call once, after they are written in this transaction."""
    if (run_id is None) == (flag_ids is None):
        raise ValueError("run_id or flag_ids, one of them")
    ids = list(flag_ids or [])
    chunks = [Flag.run_id == run_id] if run_id is not None else [
        Flag.id.in_(ids[start:start + 900]) for start in range(0, len(ids), 900)]
    for new in chunks:
        _lock_applications(session, new)
        for kind in (FLAGS, FLAGS_BY_RULE):
            _upsert(session, _flag_rows(session, kind, new))
        for kind in (APPLICATIONS, BY_RULE, BY_MONTH):
            _upsert(session, _mark_rows(session, kind, new))


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
                                     *(_mark_rows(session, k, everything) for k in (APPLICATIONS, BY_RULE, BY_MONTH))))
    return {tuple(r[:7]): (int(r[7]), int(r[8])) for r in rows if r[7]}


def rebuild(session: Session) -> int:
    """Count every tally again from the flags (the kept ones are replaced); returns the rows written."""
    session.execute(delete(FlagTally))
    everything = Flag.id.is_not(None)
    for kind in (FLAGS, FLAGS_BY_RULE):
        _upsert(session, _flag_rows(session, kind, everything))
    for kind in (APPLICATIONS, BY_RULE, BY_MONTH):
        _upsert(session, _mark_rows(session, kind, everything))
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
