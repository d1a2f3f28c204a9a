"""Correctness of the interception rules on a whole synthetic city: its own small city (own database,
own data directory) with bulk claims, clean shared data and anomalies planted for every rule at the
configured rates. A run of all the rules must flag exactly the planted (application, rule) pairs:
every one of them, and nothing else."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select, text

from yikatong.core.db import create_database, drop_database, make_engine
from yikatong.core.migrate import upgrade
from yikatong.core.settings import reset_settings
from yikatong.interception import engine as rule_engine
from yikatong.interception import rulefile
from yikatong.interception.snapshot import city_snapshot
from yikatong.sharing.store import current_snapshots
from yikatong.synth.anomalies import DEFAULT_RATES, RULE_CODES, SOURCE_REF, read_manifest, wanted_counts
from yikatong.synth.city import build_city
from yikatong.workflow.models import LIVE_STATUSES, Application

SCALE = 0.002  # about 6,500 residents, 12,000 live applications
SEED = 11


@pytest.fixture(scope="module")
def planted_city(tmp_path_factory):
    """(engine, report, manifest path) of the city, built once; settings restored afterwards."""
    tmp = tmp_path_factory.mktemp("planted")
    server = os.environ.get("YKT_TEST_DATABASE_URL", "")
    url = create_database(server, "ykt_test_planted") if server.startswith("postgresql") else \
        f"sqlite:///{tmp / 'planted.db'}"
    saved = os.environ.get("YKT_DATA_DIR")
    os.environ["YKT_DATA_DIR"] = str(tmp / "data")  # shared snapshots, documents and planted.csv go here
    reset_settings()
    engine = None
    try:
        upgrade(url)
        engine = make_engine(url)
        report = build_city(engine, SCALE, SEED)
        yield engine, report, tmp / "data" / "synth" / "planted.csv"
    finally:
        if engine is not None:
            engine.dispose()
        if saved is None:
            os.environ.pop("YKT_DATA_DIR", None)
        else:
            os.environ["YKT_DATA_DIR"] = saved
        reset_settings()
        if server.startswith("postgresql"):
            drop_database(url)


@pytest.fixture(scope="module")
def hits(planted_city):
    """Every (application, rule) a fresh run of all the built-in rules flags."""
    from sqlalchemy.orm import Session

    engine, _, _ = planted_city
    with Session(engine) as session:
        shared = current_snapshots(session)
    snap = city_snapshot(engine, shared)
    try:
        results = rule_engine.run_rules(snap, rulefile.builtin_rules())
    finally:
        snap.close()
    assert not [r.error for r in results if r.error]
    return {(app_id, r.code) for r in results for app_id in r.hits.column("application_id").to_pylist()}


def test_every_planted_anomaly_is_flagged_and_nothing_else(planted_city, hits):
    _, report, path = planted_city
    manifest = read_manifest(path)
    assert len(manifest) == report.expected_flags > 0
    missed = sorted(manifest - hits)
    assert not missed, f"planted but not flagged: {missed[:10]}"
    extra = sorted(hits - manifest)
    assert not extra, f"flagged but not planted (clean data flagged): {extra[:10]}"


def test_every_rule_is_planted_at_its_configured_rate(planted_city):
    engine, report, path = planted_city
    assert set(RULE_CODES) == {spec.code for spec in rulefile.builtin_rules()}
    with engine.connect() as conn:
        live = conn.scalar(select(func.count()).select_from(Application).where(
            Application.status.in_(LIVE_STATUSES)))
        inserted = conn.scalar(select(func.count()).select_from(Application).where(
            Application.source_ref == SOURCE_REF))
    wanted = wanted_counts(live - inserted, DEFAULT_RATES)
    assert report.planted == wanted
    assert min(report.planted.values()) >= 1
    assert {code for _, code in read_manifest(path)} == set(RULE_CODES)
    # about the share of flagged applications the reference city intercepted (391,400 of 5,774,200)
    assert 0.03 < len({app for app, _ in read_manifest(path)}) / live < 0.12


def test_the_build_ends_with_a_city_run_that_raised_the_flags(planted_city):
    engine, report, path = planted_city
    manifest = read_manifest(path)
    with engine.connect() as conn:
        flags = {(a, c) for a, c in conn.execute(text("SELECT application_id, rule_code FROM flags"))}
        open_flags = conn.scalar(text("SELECT count(*) FROM applications WHERE open_flags > 0"))
    assert flags == manifest
    assert report.flagged == len(manifest)
    assert open_flags == len({app for app, _ in manifest})


def _sample(engine, n: int) -> list[int]:
    """Every planted claim's application and as many clean ones, spread over the city."""
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(select(Application.id).where(Application.status.in_(LIVE_STATUSES))
                                          .order_by(Application.id))]
    return ids[:: max(1, len(ids) // n)][:n]


def _tables(snap) -> dict[str, list[tuple]]:
    from yikatong.interception.tables import RULE_TABLES

    return {name: sorted(snap.con.execute(f"SELECT * FROM {name}").fetchall(), key=repr) for name in RULE_TABLES}


def test_screening_by_look_up_reads_what_the_whole_files_hold(planted_city, monkeypatch):
    """The shared rows a claim's screening looks up by key in each delivery's look-up file are the rows
    a pass over the whole Parquet files finds for the same people, and the rules raise the same."""
    from sqlalchemy.orm import Session

    from yikatong.interception import snapshot

    engine, _, path = planted_city
    planted = sorted({app for app, _ in read_manifest(path)})
    with Session(engine) as session:
        shared = current_snapshots(session)
        for group in (planted[:25], _sample(engine, 25), planted[-3:]):
            by_key = snapshot.focus_snapshot(session, group, shared)
            looked_up, hits_by_key = _tables(by_key), _hits(by_key)
            by_key.close()
            monkeypatch.setattr(snapshot, "LOOKUP_MAX", -1)  # the set-based pass of a department list
            scanned = snapshot.focus_snapshot(session, group, shared)
            monkeypatch.undo()
            assert _tables(scanned) == looked_up
            assert _hits(scanned) == hits_by_key
            scanned.close()
            assert sum(len(rows) for name, rows in looked_up.items() if name in shared) > 0


def _hits(snap) -> set[tuple]:
    results = rule_engine.run_rules(snap, rulefile.builtin_rules())
    assert not [r.error for r in results if r.error]
    hits = rule_engine.combined_hits(results)
    return set(zip(*(hits.column(c).to_pylist() for c in ("rule_code", "application_id", "fact_key")), strict=True))


def test_a_delivery_without_its_look_up_file_gets_one(planted_city):
    """Deliveries stored before look-up files existed: `ykt sharing index` (or the first screening)
    builds the file from the Parquet file, and screening finds the same rows."""
    from sqlalchemy.orm import Session

    from yikatong.interception import snapshot
    from yikatong.sharing import lookup
    from yikatong.sharing.store import index_deliveries, snapshot_path

    engine, _, path = planted_city
    group = sorted({app for app, _ in read_manifest(path)})[:10]
    with Session(engine) as session:
        shared = current_snapshots(session)
        before = snapshot.focus_snapshot(session, group, shared)
        expected = _tables(before)
        before.close()
        files = [lookup.lookup_path(snapshot_path(s)) for snaps in shared.values() for s in snaps]
        assert files and all(f.exists() for f in files)
        for f in files[:2]:
            f.unlink()
        assert index_deliveries(session) == 2
        assert all(f.exists() for f in files)
        files[2].unlink()  # and on first use
        after = snapshot.focus_snapshot(session, group, shared)
        assert _tables(after) == expected
        after.close()
        assert files[2].exists()


def test_a_claims_focus_is_read_through_indexes(planted_city):
    """On SQLite every query that gathers a focus searches by an index on the column it filters
    (SQLite would otherwise pick another condition's index and walk every live claim per chunk)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from yikatong.interception import snapshot

    engine, _, path = planted_city
    if engine.dialect.name != "sqlite":
        pytest.skip("query plans are checked on SQLite")
    statements: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if " IN (" in statement:
            statements.append((statement, parameters))

    group = sorted({app for app, _ in read_manifest(path)})[:5]
    with Session(engine) as session:
        event.listen(engine, "before_cursor_execute", keep)
        try:
            snapshot.focus_rows(session, group)
        finally:
            event.remove(engine, "before_cursor_execute", keep)
        assert len(statements) >= 8
        for statement, parameters in statements:
            if "FROM proxy_holdings" in statement:
                continue  # a few hundred rows in a whole city: the planner rightly reads them all
            column = statement.rsplit(" WHERE ", 1)[1].split(" IN (")[0].strip()
            plan = [row[3] for row in session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                            tuple(parameters))]
            assert not any(p.startswith("SCAN") for p in plan), (statement, plan)
            wanted = "(rowid=?)" if column == "id" else f"({column}=?)"
            assert any(p.startswith("SEARCH") and wanted in p for p in plan), (statement, plan)
