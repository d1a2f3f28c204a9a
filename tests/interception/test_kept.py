"""The kept snapshot of the city run (interception.kept): after every kind of write it must hold
exactly what a whole export holds, the rules must find the same hits on it, and no crash, bypass or
second writer may leave a snapshot that looks fresh but is not.

Its own small city (own database, own data directory), because the tests commit: the kept snapshot
reads committed data only."""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlglot
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from yikatong.core import changelog
from yikatong.core.db import create_database, drop_database, make_engine
from yikatong.core.migrate import upgrade
from yikatong.core.settings import reset_settings
from yikatong.interception import engine as rule_engine
from yikatong.interception import kept, rulefile
from yikatong.interception.snapshot import EXPORTS, city_snapshot, export_city
from yikatong.interception.tables import PLATFORM_TABLES
from yikatong.sharing.store import current_snapshots
from yikatong.synth.city import build_city
from yikatong.workflow.models import LIVE_STATUSES, Application

from .conftest import VILLAGE2, World

SCALE = 0.001
SEED = 5
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
MIGRATION = Path(__file__).resolve().parents[2] / "src/yikatong/migrations/versions/0011_snapshot_change_log.py"


@pytest.fixture(scope="module")
def town(tmp_path_factory):
    """An engine on a small city with bulk claims, shared data and planted anomalies (so rules hit)."""
    tmp = tmp_path_factory.mktemp("kept")
    server = os.environ.get("YKT_TEST_DATABASE_URL", "")
    url = create_database(server, "ykt_test_kept") if server.startswith("postgresql") else f"sqlite:///{tmp / 'k.db'}"
    saved = {k: os.environ.get(k) for k in ("YKT_DATA_DIR", "YKT_DATABASE_URL")}
    os.environ["YKT_DATA_DIR"] = str(tmp / "data")
    os.environ["YKT_DATABASE_URL"] = url  # for the processes of the concurrency test
    reset_settings()
    engine = None
    try:
        upgrade(url)
        engine = make_engine(url)
        build_city(engine, SCALE, SEED)
        yield engine
    finally:
        if engine is not None:
            engine.dispose()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()
        if server.startswith("postgresql"):
            drop_database(url)


def contents(snap) -> dict[str, list[tuple]]:
    return {t.name: snap.con.execute(f"SELECT * FROM {t.name} ORDER BY ALL").fetchall() for t in PLATFORM_TABLES}


def fresh_contents(engine) -> dict[str, list[tuple]]:
    snap = export_city(engine, {})
    try:
        return contents(snap)
    finally:
        snap.close()


def kept_contents(engine, expect: str | None = None) -> dict[str, list[tuple]]:
    snap = city_snapshot(engine, {})
    try:
        if expect is not None:
            assert snap.kept == expect
        return contents(snap)
    finally:
        snap.close()


def assert_same(engine, expect: str | None = None) -> None:
    got, want = kept_contents(engine, expect), fresh_contents(engine)
    for name in want:
        assert got[name] == want[name], name


def pending(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM snapshot_changes")).scalar_one()


def hits(snap) -> list[tuple]:
    results = rule_engine.run_rules(snap, rulefile.builtin_rules())
    assert not [r.error for r in results if r.error]
    table = rule_engine.combined_hits(results)
    return sorted(zip(*(table[c].to_pylist() for c in ("rule_code", "application_id", "fact_key", "evidence",
                                                         "amount_fen")), strict=True))


def test_the_triggers_watch_every_column_the_snapshot_reads():
    spec = importlib.util.spec_from_file_location("m0011", MIGRATION)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    for table in changelog.LOGGED_TABLES:
        read = {c.name for c in sqlglot.parse_one(EXPORTS[table]).find_all(sqlglot.exp.Column)} - {"id"}
        assert read == set(migration.WATCHED[table]), table


def test_a_kept_snapshot_equals_a_whole_export_after_every_kind_of_write(town):
    engine = town
    kept.discard()
    assert_same(engine, "rebuilt")
    assert pending(engine) == 0
    assert_same(engine, "unchanged")

    with Session(engine) as s:
        w = World(s)
        item = w.item("KA", standard_fen=12_300)
        household = w.household()
        newcomer = w.person("新人", household=household)
        w.card(newcomer)
        spare = w.card(newcomer, status="注销")
        holding = w.proxy(newcomer, w.id_number())
        w.apply(newcomer, item, "2026-11")
        w.apply(newcomer, item, "2026-10", status="已否决")  # never live: never in the snapshot
        spare_id, holding_id = spare.id, holding.id
        s.commit()
    assert pending(engine) > 0
    assert_same(engine, "refreshed")
    assert pending(engine) == 0

    with Session(engine) as s:
        live = s.scalars(select(Application).where(Application.status.in_(LIVE_STATUSES))
                         .order_by(Application.id).limit(3)).all()
        live[0].status = "已否决"  # leaves the live states: leaves the snapshot
        live[1].stage = "县定"
        from yikatong.registry.models import Card, Household, Person, ProxyHolding

        mover = s.get(Person, live[2].person_id)
        w = World(s)
        elsewhere = w.household(VILLAGE2)
        mover.region_code, mover.household_id = VILLAGE2, elsewhere.id  # moves village and household
        card = s.scalars(select(Card).order_by(Card.id).limit(1)).one()
        card.status = "挂失"
        s.get(Household, elsewhere.id).region_code = "970101001001"
        s.delete(s.get(ProxyHolding, holding_id))
        s.delete(s.get(Card, spare_id))
        s.flush()
        mover.has_active_card = not mover.has_active_card  # a column the snapshot does not hold: not logged
        s.commit()
    assert_same(engine, "refreshed")

    with Session(engine) as s:
        from yikatong.catalog.models import ItemStandard

        # a county's own standard from long ago: every claim of that item there is priced anew
        code, region = s.execute(select(Application.item_code, Application.region_code)
                                 .where(Application.status.in_(LIVE_STATUSES)).limit(1)).one()
        s.add(ItemStandard(item_code=code, valid_from=date(2000, 1, 1), county_code=region[:6], standard_fen=777,
                           reason="测试", created_at=NOW))
        s.commit()
    got = kept_contents(engine, "refreshed")
    assert any(r[12] == 777 for r in got["applications"])  # period_standard_fen
    assert got == fresh_contents(engine)

    with Session(engine) as s:
        s.execute(text("DELETE FROM item_standards WHERE standard_fen = 777"))
        s.commit()
    assert_same(engine, "refreshed")


def test_the_rules_find_the_same_hits_on_a_kept_snapshot(town):
    engine = town
    with Session(engine, expire_on_commit=False) as s:
        shared = current_snapshots(s)
        w = World(s)
        item = w.item("KB")
        p = w.person("两地", village=VILLAGE2)
        w.apply(p, item, "2026-11")
        s.commit()
    snap = city_snapshot(engine, shared)
    try:
        assert snap.kept in ("refreshed", "rebuilt")
        on_kept = hits(snap)
    finally:
        snap.close()
    snap = export_city(engine, shared)
    try:
        on_fresh = hits(snap)
    finally:
        snap.close()
    assert len(on_kept) > 100 and on_kept == on_fresh


def _boom(*_args) -> None:
    raise RuntimeError("crash")


@pytest.mark.parametrize("moment", ["before_commit", "after_commit"])
def test_a_crash_in_a_refresh_never_leaves_a_stale_snapshot(town, monkeypatch, moment):
    engine = town
    kept_contents(engine)  # up to date
    with Session(engine) as s:
        app = s.scalars(select(Application).where(Application.status.in_(LIVE_STATUSES))
                        .order_by(Application.id.desc()).limit(1)).one()
        app.status = "已撤回"
        s.commit()
    monkeypatch.setattr(kept, moment, _boom)
    with pytest.raises(RuntimeError, match="crash"):
        city_snapshot(engine, {})
    monkeypatch.setattr(kept, moment, None)
    assert pending(engine) > 0  # the log is deleted only after the file committed and was settled
    with Session(engine) as s:
        w = World(s)
        w.apply(w.person("后来"), w.item(f"KR{moment[0].upper()}"), "2026-11")
        s.commit()
    assert_same(engine, "refreshed")
    assert pending(engine) == 0


def test_a_write_that_bypassed_the_log_makes_the_snapshot_rebuilt(town):
    engine = town
    kept_contents(engine)
    with engine.begin() as conn:
        saved = changelog.pause(conn)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE persons SET name = '改名' WHERE id = (SELECT min(id) FROM persons)"))
        # no log while paused: no kept snapshot at all (a whole export instead)
        snap = city_snapshot(engine, {})
        try:
            assert snap.kept == ""
        finally:
            snap.close()
    finally:
        with engine.begin() as conn:
            changelog.resume(conn, saved)
    assert_same(engine, "rebuilt")


def test_a_second_kept_snapshot_on_the_same_database_takes_over_safely(town, tmp_path):
    """Two data directories on one database: each refresh of one makes the other's file stale."""
    engine = town
    kept_contents(engine)
    first = os.environ["YKT_DATA_DIR"]
    try:
        os.environ["YKT_DATA_DIR"] = str(tmp_path / "other")
        reset_settings()
        kept_contents(engine, "rebuilt")
        with Session(engine) as s:
            w = World(s)
            w.apply(w.person("另一"), w.item("KO"), "2026-11")
            s.commit()
        assert_same(engine, "refreshed")
    finally:
        os.environ["YKT_DATA_DIR"] = first
        reset_settings()
    assert_same(engine, "rebuilt")


def _open_in_child(queue) -> None:
    reset_settings()
    engine = make_engine(os.environ["YKT_DATABASE_URL"])
    snap = city_snapshot(engine, {})
    try:
        queue.put((snap.kept, contents(snap)))
    finally:
        snap.close()
        engine.dispose()


def test_concurrent_refreshes_from_threads_and_processes_do_not_corrupt(town):
    engine = town
    kept_contents(engine)
    with Session(engine) as s:
        w = World(s)
        item = w.item("KC")
        for n in range(20):
            w.apply(w.person(f"并发{n}"), item, "2026-11")
        s.commit()
    want = fresh_contents(engine)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    children = [context.Process(target=_open_in_child, args=(queue,)) for _ in range(2)]
    for child in children:
        child.start()
    results: list = []
    errors: list = []

    def in_thread() -> None:
        try:
            snap = city_snapshot(engine, {})
            try:
                results.append((snap.kept, contents(snap)))
            finally:
                snap.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=in_thread) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    results += [queue.get(timeout=300) for _ in children]
    for child in children:
        child.join(60)
    assert not errors
    assert len(results) == 4
    assert all(how in ("refreshed", "unchanged", "rebuilt") for how, _ in results)
    assert sum(how == "refreshed" for how, _ in results) == 1  # one wrote, the others read what it wrote
    for _how, got in results:
        assert got == want
    assert pending(engine) == 0


def _record(engine, snap, hits_table, *, twice: bool = False) -> tuple[int, list, list, dict]:
    """Record `hits_table` as a first run (the flags already there set aside) in a transaction rolled
    back at the end: (new flags, the flags, their trail records, open_flags of the flagged). The
    flag tallies the pages read must equal the flags afterwards, whichever way they were written."""
    from yikatong.interception import tallies
    from yikatong.interception.models import Flag, RuleRun
    from yikatong.interception.screening import active_specs, record_hits, sync_builtin_rules
    from yikatong.workflow.models import Action, ReviewRecord

    with Session(engine) as s:
        s.execute(text("DELETE FROM leads"))
        s.execute(text("DELETE FROM flags"))
        tallies.rebuild(s)  # of no flags
        last_record = s.scalar(select(func.max(ReviewRecord.id))) or 0
        sync_builtin_rules(s, NOW)
        versions = {v.rule_code: v for v, _ in active_specs(s)}
        run = RuleRun(scope="city", started_at=NOW, applications=0, hits=hits_table.num_rows, new_flags=0,
                      snapshots="{}", timings="{}", triggered_by=None)
        s.add(run)
        s.flush()
        new = record_hits(s, snap, hits_table, versions, run, NOW)
        if twice:
            assert record_hits(s, snap, hits_table, versions, run, NOW) == 0  # a rerun raises nothing
        assert tallies.differences(s) == {}
        flags = sorted(s.execute(select(
            Flag.application_id, Flag.rule_code, Flag.rule_version_id, Flag.evidence, Flag.evidence_key, Flag.fact_key,
            Flag.amount_fen, Flag.item_code, Flag.region_code, Flag.severity, Flag.status, Flag.run_id == run.id,
            Flag.raised_at,
            Flag.verified_by, Flag.verified_at, Flag.opinion, Flag.evidence_document)).all())
        records = sorted(s.execute(select(
            ReviewRecord.application_id, ReviewRecord.step, ReviewRecord.action, ReviewRecord.to_stage,
            ReviewRecord.status_after, ReviewRecord.user_id, ReviewRecord.actor_name, ReviewRecord.actor_role,
            ReviewRecord.at, ReviewRecord.opinion, ReviewRecord.detail)
            .where(ReviewRecord.id > last_record, ReviewRecord.action == Action.FLAG_RAISED.value)).all())
        flagged = sorted({f[0] for f in flags})
        open_flags = dict(s.execute(select(Application.id, Application.open_flags)
                                    .where(Application.id.in_(flagged[:5000]))).all())
        s.rollback()
    return new, flags, records, open_flags


def test_a_city_run_records_exactly_what_the_flag_by_flag_path_records(town, monkeypatch):
    """The bulk writing of a city run (anti-join in DuckDB, COPY) against the path claims and the
    gate take: the same flags, the same 存疑拦截 records, the same open-flag counts."""
    import dataclasses

    from yikatong.interception import screening
    from yikatong.workflow import flag_marks

    def no_race(*_args) -> None:
        raise AssertionError("the bulk write fell back to the one-by-one path")

    monkeypatch.setattr(screening, "_insert_racing", no_race)
    engine = town
    with Session(engine, expire_on_commit=False) as s:
        shared = current_snapshots(s)
    snap = city_snapshot(engine, shared)
    try:
        results = rule_engine.run_rules(snap, rulefile.builtin_rules())
        table = rule_engine.combined_hits(results)
        monkeypatch.setattr(flag_marks, "BULK_IDS", 10)  # the temporary-table UPDATE of open_flags, too
        bulk = _record(engine, snap, table, twice=True)
        ids = tuple(sorted(set(table["application_id"].to_pylist())))
        one_by_one = _record(engine, dataclasses.replace(snap, focus=ids, release=None), table)
    finally:
        snap.close()
    assert bulk[0] == one_by_one[0] == len(bulk[1]) > 100
    assert bulk[1] == one_by_one[1]
    assert bulk[2] == one_by_one[2] and len(bulk[2]) == len({f[0] for f in bulk[1]})
    assert bulk[3] == one_by_one[3] and set(bulk[3].values()) - {0}


def test_flags_raised_meanwhile_by_another_transaction_are_not_raised_twice(town, monkeypatch):
    """As if a claim or the gate raised some of the run's flags after the run read the flags: the bulk
    write meets them in the unique index and the run writes only the others."""
    import pyarrow as pa

    from yikatong.interception import screening
    from yikatong.interception.models import Flag, RuleRun

    engine = town
    with Session(engine, expire_on_commit=False) as s:
        shared = current_snapshots(s)
    snap = city_snapshot(engine, shared)
    try:
        table = rule_engine.combined_hits(rule_engine.run_rules(snap, rulefile.builtin_rules()))
        with Session(engine) as s:
            s.execute(text("DELETE FROM leads"))
            s.execute(text("DELETE FROM flags"))
            screening.sync_builtin_rules(s, NOW)
            versions = {v.rule_code: v for v, _ in screening.active_specs(s)}
            run = RuleRun(scope="city", started_at=NOW, applications=0, hits=0, new_flags=0, snapshots="{}",
                          timings="{}", triggered_by=None)
            s.add(run)
            s.flush()
            first = screening.record_hits(s, snap, table, versions, run, NOW)
            s.execute(text("DELETE FROM flags WHERE id IN (SELECT id FROM flags ORDER BY id LIMIT 5)"))
            schema = pa.schema([("application_id", pa.int64()), ("rule_code", pa.string()), ("fact_key", pa.string())])
            monkeypatch.setattr(screening, "_existing_flags", lambda _session: schema.empty_table())
            again = screening.record_hits(s, snap, table, versions, run, NOW)
            assert again == 5
            assert s.scalar(select(func.count()).select_from(Flag)) == first > 5
            s.rollback()
    finally:
        snap.close()
