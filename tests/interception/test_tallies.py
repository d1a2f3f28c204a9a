"""The flag tallies stay equal to the flags: after every kind of write that changes flags — raised at
the counter (one claim, then the same claims a day later, then with a clock behind), raised in bulk as
a city run writes them (COPY on PostgreSQL), confirmed, cleared, and an application's amount
corrected — the tallies kept equal a recount of the flags done here in Python, and the statistics and
the flags list read from the tallies equal the same figures grouped over the flags by SQL.

Everything happens in the `world` (regions under 97, rolled back with the test), so the comparison
is restricted to the tallies of that province."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date, timedelta

from sqlalchemy import func, select

from yikatong.core import db as core_db
from yikatong.core.clock import beijing_date
from yikatong.core.db import new_session
from yikatong.interception import screening, service, stats, tallies
from yikatong.interception.models import Flag, FlagStatus, FlagTally, RuleVersion
from yikatong.interception.views import flag_list
from yikatong.security.roles import Role
from yikatong.security.scope import within
from yikatong.security.service import create_user
from yikatong.workflow import service as workflow
from yikatong.workflow.models import Application

from .conftest import CITY, COUNTY, NOW, VILLAGE2, VILLAGE3
from .test_flag_pages import MONDAY, flagged, rule_version  # noqa: F401 - rule_version is a fixture
from .test_stats import make_flag

DAY1 = NOW  # Beijing 2026-12-01
DAY2 = NOW + timedelta(days=1)
DAY3 = NOW + timedelta(days=2)
EARLIER = NOW - timedelta(days=2)  # 2026-11-29: another month, before flags already raised
WORLD = "97"


def recount(db) -> dict[tuple, tuple[int, int]]:
    """The tallies the world's flags call for, counted in Python from the rows (not by the SQL that
    keeps them): F per township, G per county and rule; marks A (per township), R and M (per county)."""
    flags = db.execute(select(Flag.application_id, Flag.rule_code, Flag.item_code, Flag.region_code, Flag.raised_at,
                              Flag.status, Flag.amount_fen).where(Flag.region_code.startswith(WORLD))).all()
    apps = {a.id: a for a in db.scalars(select(Application).where(Application.id.in_({f[0] for f in flags})))}
    out: Counter = Counter()
    amounts: Counter = Counter()
    days: dict[tuple, set[date]] = {}
    for app_id, rule, item, region, raised_at, status, amount in flags:
        day = beijing_date(raised_at)
        for key in (("F", region[:9] + "000", item, "", day, tallies.NEVER, status),
                    ("G", region[:6] + "000000", item, rule, day, tallies.NEVER, status)):
            out[key] += 1
            amounts[key] += amount
        app = apps[app_id]
        for kind, entity in (("A", (app_id,)), ("R", (app_id, rule)), ("M", (app_id, day.strftime("%Y-%m")))):
            days.setdefault((kind, app.region_code, app.item_code, entity), set()).add(day)
    for (kind, region, item, entity), seen in days.items():
        place = region[:9] + "000" if kind == "A" else region[:6] + "000000"
        rule = entity[1] if kind == "R" else ""
        ordered = sorted(seen)
        for prev, day in zip([tallies.NEVER, *ordered], ordered, strict=False):
            key = (kind, place, item, rule, day, prev, "")
            out[key] += 1
            amounts[key] += apps[entity[0]].amount_fen if kind == "A" else 0
    return {k: (n, amounts[k]) for k, n in out.items()}


def kept(db) -> dict[tuple, tuple[int, int]]:
    return {k: v for k, v in tallies.kept(db).items() if k[1].startswith(WORLD)}


def exact(db) -> None:
    db.flush()
    assert kept(db) == recount(db)


def flag_count(db) -> int:
    return db.scalar(select(func.count()).select_from(Flag).where(Flag.region_code.startswith(WORLD)))


def same_figures(db, user) -> None:
    """The statistics from the tallies equal the statistics grouped over the flags, for ranges of days
    that cut through the flags' days and for the user's region and a county inside it; and so do the
    flags list's counts."""
    windows = [(None, None), (DAY2.date(), None), (None, DAY1.date()), (DAY2.date(), DAY2.date()),
               (EARLIER.date(), DAY1.date()), (DAY3.date() + timedelta(days=5), None)]
    for date_from, date_to in windows:
        for region in (None, COUNTY):
            kept_figures = stats.flag_stats(db, user, date_from=date_from, date_to=date_to, region=region)
            counted = stats.flag_stats(db, user, date_from=date_from, date_to=date_to, region=region,
                                       from_flags=True)
            assert kept_figures == counted, (date_from, date_to, region)
    for kw in ({}, {"status": "all"}, {"region": COUNTY}, {"rule": "DECEASED"}):
        counts = flag_list(db, user, **kw).counts
        query = service.visible_flags(db, user)
        if "rule" in kw:
            query = query.where(Flag.rule_code == kw["rule"])
        if "region" in kw:
            query = query.where(within(Flag.region_code, kw["region"]))
        live = dict(db.execute(query.with_only_columns(Flag.status, func.count()).group_by(Flag.status)).all())
        assert counts == {s.value: live.get(s.value, 0) for s in FlagStatus}, kw


def test_every_write_keeps_the_tallies_equal_to_the_flags(db, world, monkeypatch):
    item, land = world.item("TA"), world.item("TB", basis="亩")
    first, second = world.person("甲"), world.person("乙", village=VILLAGE2)
    third = world.person("丙", village=VILLAGE3)
    a1, a2, a3 = world.apply(first, item), world.apply(second, land), world.apply(third, item)
    supervisor = create_user(db, "tw_tally_supervisor", "x", Role.SUPERVISOR, CITY, "监督", NOW, password_hash="x")
    handler = create_user(db, "tw_tally_handler", "x", Role.COUNTY_HANDLER, COUNTY, "县民政", NOW,
                          department_code="TW-MZ", password_hash="x")

    # at the counter: claims without cards are flagged (and the tallies count them in the same transaction)
    screening.screen(db, [a1.id, a2.id, a3.id], DAY1)
    assert flag_count(db) >= 3
    exact(db)

    # a day later the same applications get another rule's flag: a second day for each of them
    world.share("deaths", [dict(id=world.number(first), name="甲", death_date=date(2026, 10, 3)),
                           dict(id=world.number(second), name="乙", death_date=date(2026, 10, 4))])
    before = flag_count(db)
    screening.screen(db, [a1.id, a2.id], DAY2)
    assert flag_count(db) > before
    exact(db)

    # a clock behind: a flag dated before those already there (its next day's mark moves)
    world.share("deaths", [dict(id=world.number(first), name="甲", death_date=date(2026, 10, 5))])
    before = flag_count(db)
    screening.screen(db, [a1.id], EARLIER)
    assert flag_count(db) == before + 1
    exact(db)

    # a city run's way: every flag in one bulk write, through COPY on PostgreSQL
    monkeypatch.setattr(screening, "GUARDED_MAX", 0)
    monkeypatch.setattr(core_db, "_COPY_FROM", 1)
    world.share("deaths", [dict(id=world.number(third), name="丙", death_date=date(2026, 10, 6))])
    a4 = world.apply(third, land)
    before = flag_count(db)
    screening.screen(db, [a3.id, a4.id], DAY3)
    assert flag_count(db) > before
    exact(db)
    same_figures(db, supervisor)

    # verified: confirmed (the application is rejected) and cleared
    def an_open_flag(app):
        return db.scalars(select(Flag).where(Flag.application_id == app.id, Flag.status == FlagStatus.OPEN.value)
                          .order_by(Flag.id)).first()

    service.verify(db, an_open_flag(a1), handler, confirm=True, opinion="入户核实属实", document_sha256=None, now=DAY3)
    service.verify(db, an_open_flag(a2), handler, confirm=False, opinion="已核实排除", document_sha256=None, now=DAY3)
    exact(db)
    assert {k[6] for k in kept(db) if k[0] == "F"} >= {s.value for s in FlagStatus}

    # an application's amount corrected: the applications' amounts in the statistics follow
    clerk = create_user(db, "tw_tally_clerk", "x", Role.VILLAGE_CLERK, VILLAGE2, "村", NOW, password_hash="x")
    a2.returned = True
    db.flush()
    amount = a2.amount_fen
    workflow.correct(db, a2, clerk, DAY3, quantity="20")
    assert a2.amount_fen != amount
    exact(db)
    same_figures(db, supervisor)
    same_figures(db, handler)


def test_the_tallies_recounted_from_scratch_equal_those_kept(db, world):
    """What the upgrade's backfill and `tallies.differences` count: every row kept is one the flags
    call for (here after flags raised on two days)."""
    person = world.person("丁")
    app = world.apply(person, world.item("TC"))
    screening.screen(db, [app.id], DAY1)
    world.share("deaths", [dict(id=world.number(person), name="丁", death_date=date(2026, 10, 3))])
    screening.screen(db, [app.id], DAY2)
    db.flush()
    assert {k: v for k, v in tallies.differences(db).items() if k[1].startswith(WORLD)} == {}
    assert db.scalar(select(func.count()).select_from(FlagTally).where(FlagTally.region_code.startswith(WORLD))) > 0


def test_two_transactions_flagging_one_application_at_once_count_it_once(rule_version):  # noqa: F811
    """Committed data, a session each: the second raises its flag while the first has raised one and
    not committed. Each alone would see an application never flagged before; the second waits for the
    first (PostgreSQL: the application's row; SQLite: the write lock) and counts the application once."""
    app_id, _ = flagged(())
    inserted = threading.Event()
    failures: list[str] = []

    def raise_flag(session, fact: str) -> None:
        version = session.get(RuleVersion, rule_version)
        make_flag(session, session.get(Application, app_id), version, 100, MONDAY, evidence=f"并发：{fact}")

    def second() -> None:
        with new_session() as s:
            try:
                version = s.get(RuleVersion, rule_version)
                app = s.get(Application, app_id)
                flag = Flag(application_id=app.id, rule_code=version.rule_code, rule_version_id=version.id,
                            evidence="并发：乙", evidence_key="b" * 32, fact_key=f"并发乙{app.id}", amount_fen=100,
                            item_code=app.item_code, region_code=app.region_code, severity=version.severity,
                            status=FlagStatus.OPEN.value, raised_at=MONDAY)
                s.add(flag)
                s.flush()
                inserted.set()
                tallies.flags_raised(s, flag_ids=[flag.id])  # waits for the first transaction
                s.commit()
            except Exception as e:  # noqa: BLE001 - reported by the test
                failures.append(repr(e))

    first = new_session()
    try:
        raise_flag(first, "甲")
        thread = threading.Thread(target=second)
        thread.start()
        inserted.wait(timeout=3)  # SQLite: the second cannot write before the first commits
        thread.join(timeout=0.5)  # PostgreSQL: it is now waiting for the application's lock
        first.commit()
    finally:
        first.close()
    thread.join(timeout=60)
    assert failures == []
    with new_session() as s:
        assert s.scalar(select(func.count()).select_from(Flag).where(Flag.application_id == app_id)) == 2
        assert tallies.differences(s) == {}
