"""The plain-Python rules of benchmarks/rules_python.py (the benchmark's one-application-at-a-time
baseline) name exactly the applications the DuckDB rule files hit.

Two worlds: small random ones written straight into a DuckDB snapshot (few people, items, villages,
cards and dates, so claims collide, dates fall on period boundaries and optional columns are NULL),
and the test city's own snapshot with shared data delivered for some of its claimants (through the
`db` session: rolled back)."""

from __future__ import annotations

import hashlib
import importlib.util
import random
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from yikatong.interception import engine as rule_engine
from yikatong.interception.rulefile import builtin_rules
from yikatong.interception.snapshot import Snapshot
from yikatong.interception.tables import RULE_TABLES

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "rules_python.py"
_spec = importlib.util.spec_from_file_location("rules_python", _PATH)
rules_python = importlib.util.module_from_spec(_spec)
sys.modules["rules_python"] = rules_python
_spec.loader.exec_module(rules_python)

SPECS = builtin_rules()


def duckdb_pairs(snap: Snapshot) -> set[tuple[int, str]]:
    results = rule_engine.run_rules(snap, SPECS)
    assert [r.error for r in results if r.error] == []
    hits = rule_engine.combined_hits(results)
    return set(zip(hits["application_id"].to_pylist(), hits["rule_code"].to_pylist(), strict=True))


def python_pairs(snap: Snapshot, application_ids=None) -> set[tuple[int, str]]:
    world = rules_python.load_world(snap.con, SPECS)
    wanted = None if application_ids is None else set(application_ids)
    return {(a.application_id, code) for a in world.applications
            if wanted is None or a.application_id in wanted for code in rules_python.check(world, a)}


def duckdb_facts(snap: Snapshot) -> set[tuple[int, str, str]]:
    hits = rule_engine.combined_hits(rule_engine.run_rules(snap, [s for s in SPECS if s.code in rules_python.FACTS]))
    return set(zip(hits["application_id"].to_pylist(), hits["rule_code"].to_pylist(), hits["fact_key"].to_pylist(),
                   strict=True))


def python_facts(snap: Snapshot) -> set[tuple[int, str, str]]:
    world = rules_python.load_world(snap.con, SPECS)
    return {(a.application_id, code, rules_python.fact_key(world, a, code)) for a in world.applications
            for code in rules_python.check(world, a) if code in rules_python.FACTS}


def test_every_rule_file_has_a_python_version():
    assert set(rules_python.RULES) == {s.code for s in SPECS}


def test_trim_is_duckdbs():
    names = [" 张三", "张三\u3000", "\u00a0张三 ", "\t张三", "张三\n", "张 三"]
    con = duckdb.connect()
    assert [rules_python.trim(n) for n in names] == [con.execute("SELECT trim(?)", [n]).fetchall()[0][0]
                                                     for n in names]


# ---------------------------------------------------------------- random worlds


def _month(year: int, month: int) -> tuple[str, date, date]:
    start = date(year, month, 1)
    end = (date(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)
    return f"{year}-{month:02d}", start, end


def _period(rng: random.Random) -> tuple[str, date, date]:
    kind = rng.random()
    if kind < 0.7:
        return _month(2026, rng.randint(1, 12))
    if kind < 0.9:
        q = rng.randint(1, 4)
        start = date(2026, 3 * q - 2, 1)
        return f"2026Q{q}", start, _month(2026, 3 * q)[2]
    return "2026", date(2026, 1, 1), date(2026, 12, 31)


def _day(rng: random.Random) -> date:
    """Mostly the first or last day of a month of 2025-2027 (period boundaries), else any day."""
    year, month = rng.choice((2025, 2026, 2026, 2026, 2027)), rng.randint(1, 12)
    _, start, end = _month(year, month)
    return rng.choice((start, end, start + timedelta(days=rng.randint(0, 27))))


def _maybe(rng: random.Random, value, none_share: float = 0.25):
    return None if rng.random() < none_share else value


def random_world(seed: int) -> Snapshot:
    rng = random.Random(seed)
    con = duckdb.connect(":memory:")
    hashes = [hashlib.sha256(f"{seed}-{i}".encode()).hexdigest()[:32] for i in range(60)]
    villages = ["511025001001", "511025001002", "511025002001", "511011001001", "511011001002", "511024003001"]
    rows: dict[str, list[tuple]] = {name: [] for name in RULE_TABLES}

    items = []
    for n in range(8):
        basis = ("人", "户", "亩")[n % 3]
        min_age = rng.choice((None, None, 16, 60))
        max_age = rng.choice((None, None, 18, 70)) if min_age != 60 else None
        items.append((f"IT{n}", f"项目{n}", basis, rng.choice((10000, 10101, 333, 5050)), "月",
                      rng.choice((True, True, False, None)), min_age, max_age))
    rows["items"] = items
    rows["item_exclusions"] = [("IT0", "IT3"), ("IT1", "IT4"), ("IT2", "IT6")]

    households = list(range(1, 16))
    rows["households"] = [(h, f"H{h}", rng.choice(villages)) for h in households]
    names = ["张三", " 张三", "张三\u3000", "李四", "王五", "赵六", "钱七"]
    persons = []
    for pid in range(1, 41):
        born = date(rng.randint(1940, 2015), rng.randint(1, 12), rng.choice((1, 2, 28)))
        persons.append((pid, hashes[pid] if pid != 40 else None, f"511***{pid:04d}", rng.choice(names), "男",
                        _maybe(rng, born, 0.05), rng.choice(villages), _maybe(rng, rng.choice(households), 0.2)))
    rows["persons"] = persons
    household_of = {p[0]: p[7] for p in persons}

    apps = []
    for aid in range(1, 221):
        pid = rng.randint(1, 40)
        code, name, basis, standard, *_ = rng.choice(items)
        label, start, end = _period(rng)
        quantity = 100 if basis != "亩" or rng.random() < 0.3 else rng.choice((150, 1250, 333))
        if rng.random() < 0.05:
            quantity = 200
        due = (standard * quantity + 50) // 100
        amount = due + rng.choice((0, 0, 0, 0, 1, -1, 500))
        if rng.random() < 0.05:
            basis = rng.choice(("人", "户", "亩"))  # the claim's basis copied before the item changed
        household = household_of[pid] if rng.random() < 0.9 else _maybe(rng, rng.choice(households))
        apps.append((aid, f"A{aid:05d}", code, pid, household, rng.choice(villages[:3]) if rng.random() < 0.7
                     else rng.choice(villages), label, start, end, basis, quantity, standard,
                     # the standard of the claim's period: mostly the one it was priced with, sometimes
                     # raised or cut since, or none (an item with no standard for that period)
                     _maybe(rng, rng.choice((standard, standard, standard + 100, standard - 1)), 0.05), amount,
                     rng.choice(("办理中", "已通过")), "县定", datetime(2026, 11, 1)))
    rows["applications"] = apps

    accounts = [f"acct{i}" for i in range(25)]
    cards = []
    for n in range(1, 51):
        cards.append((f"C{n:04d}", rng.randint(1, 39), "B1", _maybe(rng, rng.choice(accounts), 0.1), "6228****",
                      rng.choice(("正常", "正常", "正常", "挂失", "冻结", "注销")), date(2020, 1, 1)))
    rows["cards"] = cards
    rows["proxy_holdings"] = [
        (rng.randint(1, 39), rng.choice(hashes), "子女", _day(rng), _maybe(rng, _day(rng))) for _ in range(15)]

    def someone() -> str:
        return rng.choice(hashes[:45])  # some hashes belong to nobody

    snap_id = {name: 100 + i for i, name in enumerate(RULE_TABLES)}
    rows["hukou"] = [(someone(), "***", rng.choice(names + ["", " "]), rng.choice(villages[:4]), None,
                      rng.choice(("正常", "正常", "迁出", "注销")), _maybe(rng, _day(rng)), _maybe(rng, _day(rng)),
                      snap_id["hukou"]) for _ in range(45)]
    rows["deaths"] = [(someone(), "***", "某", _day(rng), _maybe(rng, "火化记录"), snap_id["deaths"])
                      for _ in range(10)]
    rows["payroll"] = [(someone(), "***", "某", "某局", _day(rng), _maybe(rng, _day(rng)), snap_id["payroll"])
                       for _ in range(12)]
    rows["retirees"] = [(someone(), "***", "某", rng.choice((150000, 200000, 200001, 350000)), _day(rng),
                         snap_id["retirees"]) for _ in range(12)]
    rows["vehicles"] = [(someone(), "***", f"川K{n}", "小型轿车", rng.choice((4000000, 5000000, 5000001, 9000000)),
                         _day(rng), snap_id["vehicles"]) for n in range(12)]
    rows["businesses"] = [(someone(), "***", "某", "股东", "某公司", "91510000", _maybe(rng, 100000),
                           rng.choice(("存续", "存续", "吊销", "注销")), _day(rng), snap_id["businesses"])
                          for _ in range(12)]
    rows["real_estate"] = [(rng.choice(hashes[:15]), "***", f"川{n}", 9000, None, _day(rng), snap_id["real_estate"])
                           for n in range(25)]
    rows["prisoners"] = [(someone(), "***", "某", _day(rng), _maybe(rng, _day(rng)), snap_id["prisoners"])
                         for _ in range(10)]
    rows["village_cadres"] = [(someone(), "***", "某", rng.choice(villages), "村主任", someone(), "***",
                               rng.choice(("本人", "配偶")), snap_id["village_cadres"]) for _ in range(15)]
    registry = []
    for _ in range(80):  # few cards and days: rows of one card tie on day, delivery and status
        card = rng.choice([c[0] for c in cards[:20]] + ["C9999"])
        changed = rng.choice((date(2026, 3, 1), date(2026, 6, 1), date(2026, 6, 1), _day(rng)))
        snapshot = rng.choice((snap_id["card_registry"],) * 3 + (snap_id["card_registry"] + 1000,))
        status = rng.choice(("正常", "挂失", "冻结", "注销"))
        owner = next(p for p in persons if p[0] == next(c for c in cards if c[0] == card)[1])[1] \
            if card != "C9999" else None
        holder = owner if owner and rng.random() < 0.6 else rng.choice(hashes)
        registry.append((card, holder, "***", status, changed, snapshot))
    for card, pid, *_ in cards[20:26]:  # a full tie on the latest day: the holder is the smaller hash
        owner = next(p[1] for p in persons if p[0] == pid)
        pair = [(card, owner, "***", "正常", date(2027, 12, 31), snap_id["card_registry"]),
                (card, rng.choice(hashes), "***", "正常", date(2027, 12, 31), snap_id["card_registry"])]
        rng.shuffle(pair)
        registry.extend(pair)
    rng.shuffle(registry)
    rows["card_registry"] = registry
    rows["other_payments"] = [(someone(), "***", "某", rng.choice(items)[0], *_period(rng)[1:], 10000,
                               date(2026, 12, 1), "省级平台", snap_id["other_payments"]) for _ in range(20)]

    for name, table in RULE_TABLES.items():
        con.execute(f"CREATE TABLE {name} ({', '.join(f'{c.name} {c.type}' for c in table.columns)})").fetchall()
        if rows[name]:
            marks = ", ".join("?" for _ in table.columns)
            con.executemany(f"INSERT INTO {name} VALUES ({marks})", rows[name])
    snap = Snapshot(con, None)
    snap.counts = {name: len(r) for name, r in rows.items()}
    return snap


def test_agrees_with_duckdb_on_random_worlds():
    per_rule: Counter[str] = Counter()
    for seed in range(1, 7):
        snap = random_world(seed)
        try:
            expected = duckdb_pairs(snap)
            got = python_pairs(snap)
        finally:
            snap.close()
        assert sorted(got - expected) == [], f"seed {seed}: Python only"
        assert sorted(expected - got) == [], f"seed {seed}: DuckDB only"
        per_rule.update(code for _, code in expected)
        snap = random_world(seed)
        try:  # the same facts, not only the same applications, for the rules whose facts Python holds
            assert python_facts(snap) == duckdb_facts(snap), f"seed {seed}: fact keys"
        finally:
            snap.close()
    # every rule fired somewhere, so the agreement above says something about each of them
    assert {s.code for s in SPECS} - set(per_rule) == set()


# ---------------------------------------------------------------- the test city's own snapshot


def _deliver(db, code: str, rows: list[dict]) -> None:
    from yikatong.sharing.datasets import BY_CODE
    from yikatong.sharing.store import arrow_schema, save_snapshot

    schema = arrow_schema(BY_CODE[code])
    table = pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in rows], schema=schema)
    save_snapshot(db, code, table, agency="测试单位", as_of=date(2026, 11, 1), filename=f"{code}.csv",
                  file_sha256=hashlib.sha256(code.encode()).hexdigest(), file_format="csv", actor=None,
                  now=datetime(2026, 11, 28, 9, 0, tzinfo=UTC))


def test_agrees_on_the_city_snapshot(city, db):
    from sqlalchemy import select

    from yikatong.interception.snapshot import focus_snapshot
    from yikatong.registry.models import Person
    from yikatong.sharing.store import current_snapshots
    from yikatong.workflow.models import LIVE_STATUSES, Application

    live = db.execute(select(Application.id, Application.person_id, Application.region_code,
                             Application.period_end).where(Application.status.in_(LIVE_STATUSES))
                      .order_by(Application.id)).all()
    if len(live) < 12:
        pytest.skip("the test city has too few live applications")
    hashes = dict(db.execute(select(Person.id, Person.id_number_hash)
                             .where(Person.id.in_({r.person_id for r in live}))).all())
    picked = live[:: max(1, len(live) // 12)][:12]
    h = [hashes[r.person_id] for r in picked]
    end = [r.period_end for r in picked]
    _deliver(db, "hukou", [
        {"id_hash": h[0], "id_masked": "***", "name": "某", "region_code": picked[0].region_code, "status": "注销"},
        {"id_hash": h[1], "id_masked": "***", "name": "某", "region_code": picked[1].region_code, "status": "迁出",
         "moved_out_on": end[1] - timedelta(days=3)}])
    _deliver(db, "deaths", [{"id_hash": h[2], "id_masked": "***", "name": "某", "death_date": end[2]},
                            {"id_hash": h[3], "id_masked": "***", "name": "某", "death_date": end[3] + timedelta(1)}])
    _deliver(db, "prisoners", [{"id_hash": h[4], "id_masked": "***", "name": "某", "custody_from": date(2020, 1, 1)}])
    _deliver(db, "village_cadres", [{"id_hash": h[5], "id_masked": "***", "name": "某",
                                     "region_code": picked[5].region_code, "post": "村主任", "cadre_id_hash": h[5],
                                     "cadre_id_masked": "***", "relation": "本人"}])
    _deliver(db, "payroll", [{"id_hash": h[6], "id_masked": "***", "name": "某", "employer": "某局",
                              "start_on": date(2010, 1, 1)}])
    _deliver(db, "real_estate", [{"id_hash": h[7], "id_masked": "***", "certificate": f"川{n}", "area_centi": 9000,
                                  "registered_on": date(2015, 1, 1)} for n in range(3)])
    snap = focus_snapshot(db, [r.id for r in live], current_snapshots(db))
    try:
        expected = duckdb_pairs(snap)
        got = python_pairs(snap, [r.id for r in live])
    finally:
        snap.close()
    assert sorted(got ^ expected) == []
    hit = {code for _, code in expected}
    assert {"HUKOU_MOVED_OUT", "DECEASED", "CADRE_OWN_VILLAGE"} <= hit


def test_agrees_on_the_whole_city(city, db):
    """The benchmark's own path: the committed city through ADBC, with whatever shared data and
    planted anomalies the synthetic city has."""
    from yikatong.core.db import engine
    from yikatong.interception.snapshot import city_snapshot
    from yikatong.sharing.store import current_snapshots

    snap = city_snapshot(engine(), current_snapshots(db))
    try:
        expected = duckdb_pairs(snap)
        got = python_pairs(snap)
    finally:
        snap.close()
    assert sorted(got - expected) == [], "Python only"
    assert sorted(expected - got) == [], "DuckDB only"
