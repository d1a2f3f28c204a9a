"""Every built-in rule stays inside its memory and temporary-disk ceilings on a dense city: a hundred
people with 150 overlapping claims each of one item, twenty payments elsewhere each, on cards that
share accounts — 1.4 million raw hits for DUPLICATE_PAYMENT alone, grouped into 15,000 flags."""

from __future__ import annotations

import duckdb
import pytest

from yikatong.interception import engine as rule_engine
from yikatong.interception.rulefile import builtin_rules
from yikatong.interception.snapshot import Snapshot
from yikatong.interception.tables import RULE_TABLES

PEOPLE, CLAIMS = 100, 150


@pytest.fixture
def dense(tmp_path):
    con = duckdb.connect(":memory:", config={"memory_limit": "1GB", "max_temp_directory_size": "1GB",
                                             "temp_directory": str(tmp_path), "threads": 2})
    for name, table in RULE_TABLES.items():
        con.execute(f"CREATE TABLE {name} ({', '.join(f'{c.name} {c.type}' for c in table.columns)})")
    con.execute("INSERT INTO items VALUES ('D1', '密集项目', '人', 10000, '月', true, NULL, NULL), "
                "('D2', '互斥项目', '人', 10000, '月', true, NULL, NULL)")
    con.execute("INSERT INTO item_exclusions VALUES ('D1', 'D2')")
    con.execute(f"INSERT INTO persons SELECT i, md5(i::VARCHAR), '***', '某人', '男', DATE '1950-01-01', "
                f"'511025001001', i FROM range({PEOPLE}) t(i)")
    # every claim of a person overlaps every other: the worst case for the pair rules
    con.execute(f"""INSERT INTO applications
        SELECT p * {CLAIMS} + k, 'A' || (p * {CLAIMS} + k), CASE WHEN k % 10 = 0 THEN 'D2' ELSE 'D1' END, p, p,
               CASE WHEN k % 2 = 0 THEN '511025001001' ELSE '511025001002' END, '2026-11', DATE '2026-11-01',
               DATE '2026-11-30', '人', 100, 10000, 9000, 10000, '办理中', '县定', TIMESTAMP '2026-11-01'
        FROM range({PEOPLE}) a(p), range({CLAIMS}) b(k)""")
    con.execute(f"INSERT INTO cards SELECT 'C' || p, p, 'B1', 'shared' || (p % 5), '6228****', '正常', "
                f"DATE '2020-01-01' FROM range({PEOPLE}) a(p)")
    con.execute(f"INSERT INTO other_payments SELECT md5(p::VARCHAR), '***', '某', 'D1', DATE '2026-11-01', "
                f"DATE '2026-11-30', 10000, DATE '2026-12-01', '省级平台' || k, 1 FROM range({PEOPLE}) a(p), "
                f"range(20) b(k)")
    snap = Snapshot(con, None)
    yield snap
    snap.close()


def test_every_rule_fits_its_ceilings_on_a_dense_city(dense):
    results = rule_engine.run_rules(dense, builtin_rules())
    assert {r.code: r.error for r in results if r.error} == {}
    hits = {r.code: r.hits.num_rows for r in results}
    # every claim but each person's first of D2 has an earlier overlapping one or a payment elsewhere;
    # one flag each, not one per pair
    assert hits["DUPLICATE_PAYMENT"] == PEOPLE * (CLAIMS - 1)
    assert hits["TWO_REGIONS"] == PEOPLE * CLAIMS
    assert hits["EXCLUSIVE_ITEMS"] == PEOPLE * CLAIMS
    assert hits["SHARED_ACCOUNT"] == PEOPLE * CLAIMS
    duplicate = next(r for r in results if r.code == "DUPLICATE_PAYMENT").hits
    assert max(len(e) for e in duplicate.column("evidence").to_pylist()) == rule_engine.EVIDENCE_MAX
    assert all(k.startswith("sha256:") for k in duplicate.column("fact_key").to_pylist()[:50])
