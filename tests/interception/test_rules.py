"""The built-in rules (interception/rules/*.sql): each one hits what it should, with the decisive fact
in the evidence and the money at stake, and misses its near twins. Every test builds its own small
world (tests/interception/conftest.py) and is rolled back."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from yikatong.interception.rulefile import RULES_DIR, builtin_rules, parse_rule_text
from yikatong.sharing.datasets import BY_CODE

from .conftest import COUNTY2, NOW, VILLAGE, VILLAGE2, VILLAGE3

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


# ---------------------------------------------------------------- the files themselves


def test_builtin_rule_files_parse_with_every_header():
    specs = builtin_rules()
    assert len(specs) >= 15
    codes = [s.code for s in specs]
    assert len(set(codes)) == len(codes)
    for path in sorted(RULES_DIR.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.sql", path.name), path.name
        for key in ("code", "name", "severity", "items", "datasets", "explanation"):
            assert re.search(rf"^-- {key}: \S", text, re.M), f"{path.name} lacks -- {key}:"
        spec = parse_rule_text(text, path.name)
        assert path.stem[3:].upper() == spec.code, f"{path.name} should be named after {spec.code}"
        assert len(spec.explanation) >= 60, f"{spec.code}: the explanation should tell a supervisor enough"
        assert all(d in BY_CODE for d in spec.datasets), spec.datasets
        for name in spec.params:
            assert f"${name}" in spec.sql and spec.param_notes[name], name


def test_builtin_rules_pass_the_rule_validator_and_declare_the_data_sets_they_read():
    from yikatong.interception.authoring import validate_sql

    for spec in builtin_rules():
        checked = validate_sql(spec.sql, spec.params)
        assert set(checked.datasets) == set(spec.datasets), spec.code
        assert {"application_id", "evidence"} <= set(checked.columns)


def test_every_rule_runs_on_an_empty_snapshot(db):
    from yikatong.interception.engine import run_rules
    from yikatong.interception.snapshot import focus_snapshot

    snap = focus_snapshot(db, [], {})
    try:
        results = run_rules(snap, builtin_rules())
    finally:
        snap.close()
    assert [r.error for r in results if r.error] == []
    assert sum(r.hits.num_rows for r in results) == 0


def test_every_rule_runs_on_the_whole_test_city(city):
    from yikatong.core.db import engine
    from yikatong.interception.engine import run_rules
    from yikatong.interception.snapshot import city_snapshot

    snap = city_snapshot(engine(), {})
    try:
        assert snap.counts["applications"] > 0
        results = run_rules(snap, builtin_rules())
    finally:
        snap.close()
    assert [r.error for r in results if r.error] == []


def test_every_builtin_rule_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    for spec in builtin_rules():
        assert f"`{spec.code}`" in text, f"docs/rules.md does not describe {spec.code}"
        assert spec.name in text, spec.name
        for name, value in spec.params.items():
            assert f"`${name}` = {value}" in text, name


def test_every_rule_table_and_column_is_documented():
    from yikatong.interception.tables import RULE_TABLES

    text = DOCS.read_text(encoding="utf-8")
    documented = {m.group(1) for m in re.finditer(r"^#### `([a-z_]+)`", text, re.M)}
    assert documented == set(RULE_TABLES)
    for table in RULE_TABLES.values():
        section = text.split(f"#### `{table.name}`", 1)[1].split("\n#", 1)[0]
        rows = re.findall(r"^\| `([a-z_0-9]+)` \| ([A-Z]+) \|", section, re.M)
        assert rows == [(c.name, c.type) for c in table.columns], f"docs/rules.md is out of date for {table.name}"


# ---------------------------------------------------------------- hukou


def test_id_not_in_hukou(world):
    item = world.item("A")
    absent, cancelled, present, cancelled_later, registered_again = (world.person() for _ in range(5))
    elsewhere = world.person(village=VILLAGE3)  # a county the delivery does not cover
    apps = {p.id: world.apply(p, item) for p in (absent, cancelled, present, cancelled_later, registered_again,
                                                 elsewhere)}
    world.share("hukou", [
        dict(id=world.number(present), name="张三", region_code=VILLAGE, status="正常"),
        dict(id=world.number(cancelled), name="张三", region_code=VILLAGE, status="注销",
             moved_out_on=date(2026, 10, 15)),
        dict(id=world.number(cancelled_later), name="张三", region_code=VILLAGE, status="注销",
             moved_out_on=date(2026, 12, 1)),  # after the period: the claim for November stands
        dict(id=world.number(registered_again), name="张三", region_code=VILLAGE, status="注销",
             moved_out_on=date(2020, 1, 1)),
        dict(id=world.number(registered_again), name="张三", region_code=VILLAGE2, status="正常"),
    ])
    hits = world.run("ID_NOT_IN_HUKOU")
    assert set(hits) == {apps[absent.id].id, apps[cancelled.id].id}
    absent_hit = hits[apps[absent.id].id]
    assert "查无" in absent_hit.evidence and absent.id_number_masked in absent_hit.evidence
    assert absent_hit.amount_fen == 10000
    assert "户籍已注销（注销日期 2026-10-15）" in hits[apps[cancelled.id].id].evidence
    # screening one application alone still knows the county is covered
    assert set(world.run("ID_NOT_IN_HUKOU", [apps[absent.id].id])) == {apps[absent.id].id}


def test_hukou_moved_out(world):
    item = world.item("A")
    moved, undated, moved_later, stayed = (world.person() for _ in range(4))
    apps = {p.id: world.apply(p, item) for p in (moved, undated, moved_later, stayed)}
    world.share("hukou", [
        dict(id=world.number(moved), name="张三", region_code=VILLAGE, status="迁出", moved_out_on=date(2026, 11, 30)),
        dict(id=world.number(undated), name="张三", region_code=VILLAGE, status="迁出"),
        dict(id=world.number(moved_later), name="张三", region_code=VILLAGE, status="迁出",
             moved_out_on=date(2026, 12, 1)),
        dict(id=world.number(stayed), name="张三", region_code=VILLAGE, status="正常"),
    ])
    hits = world.run("HUKOU_MOVED_OUT")
    assert set(hits) == {apps[moved.id].id, apps[undated.id].id}
    assert "迁出日期 2026-11-30" in hits[apps[moved.id].id].evidence
    assert VILLAGE in hits[apps[moved.id].id].evidence
    assert "未登记迁出日期" in hits[apps[undated.id].id].evidence


def test_name_mismatch(world):
    item = world.item("A")
    other_name, spaces, unknown, two_records = (world.person("李小明") for _ in range(4))
    apps = {p.id: world.apply(p, item) for p in (other_name, spaces, unknown, two_records)}
    world.share("hukou", [
        dict(id=world.number(other_name), name="李晓明", region_code=VILLAGE, status="正常"),
        dict(id=world.number(spaces), name=" 李小明 ", region_code=VILLAGE, status="正常"),
        dict(id=world.number(two_records), name="李晓明", region_code=VILLAGE, status="迁出"),
        dict(id=world.number(two_records), name="李小明", region_code=VILLAGE2, status="正常"),
    ])
    hits = world.run("NAME_MISMATCH")
    assert set(hits) == {apps[other_name.id].id}
    assert hits[apps[other_name.id].id].evidence == "户籍登记姓名 李晓明，平台登记姓名 李小明"


# ---------------------------------------------------------------- deaths, payroll, pensions, property


def test_deceased(world):
    item = world.item("A")
    died, died_after = world.person(), world.person()
    apps = {p.id: world.apply(p, item) for p in (died, died_after)}
    world.share("deaths", [
        dict(id=world.number(died), name="张三", death_date=date(2026, 11, 30), source="火化记录"),
        dict(id=world.number(died_after), name="张三", death_date=date(2026, 12, 1), source="火化记录"),
    ])
    hits = world.run("DECEASED")
    assert set(hits) == {apps[died.id].id}
    assert hits[apps[died.id].id].evidence == "死亡日期 2026-11-30（火化记录），所属期 2026-11"


def test_payroll_means_tested(world):
    relief = world.item("A", means_tested=True, standard_fen=50000)
    other = world.item("B")
    on_payroll, ended, starts_later, left_in_period = (world.person() for _ in range(4))
    apps = {p.id: world.apply(p, relief) for p in (on_payroll, ended, starts_later, left_in_period)}
    not_means_tested = world.apply(on_payroll, other)
    world.share("payroll", [
        dict(id=world.number(on_payroll), name="张三", employer="甲县水利局", start_on=date(2019, 3, 1)),
        dict(id=world.number(ended), name="张三", employer="甲县水利局", start_on=date(2019, 3, 1),
             end_on=date(2026, 10, 31)),
        dict(id=world.number(starts_later), name="张三", employer="甲县水利局", start_on=date(2026, 12, 1)),
        dict(id=world.number(left_in_period), name="张三", employer="甲县水利局", start_on=date(2019, 3, 1),
             end_on=date(2026, 11, 1)),
    ])
    hits = world.run("PAYROLL_MEANS_TESTED")
    assert set(hits) == {apps[on_payroll.id].id, apps[left_in_period.id].id}
    assert not_means_tested.id not in hits
    hit = hits[apps[on_payroll.id].id]
    assert "甲县水利局" in hit.evidence and "2019-03-01 起在职" in hit.evidence and hit.amount_fen == 50000
    assert "至 2026-11-01" in hits[apps[left_in_period.id].id].evidence


def test_retiree_pension_means_tested(world):
    relief = world.item("A", means_tested=True)
    other = world.item("B")
    high, at_limit, retires_later = (world.person() for _ in range(3))
    apps = {p.id: world.apply(p, relief) for p in (high, at_limit, retires_later)}
    not_means_tested = world.apply(high, other)
    world.share("retirees", [
        dict(id=world.number(high), name="张三", pension_fen=250000, retired_on=date(2020, 7, 1)),
        dict(id=world.number(at_limit), name="张三", pension_fen=200000, retired_on=date(2020, 7, 1)),
        dict(id=world.number(retires_later), name="张三", pension_fen=300000, retired_on=date(2026, 12, 1)),
    ])
    hits = world.run("RETIREE_PENSION_MEANS_TESTED")
    assert set(hits) == {apps[high.id].id}
    assert not_means_tested.id not in hits
    assert "月养老金 2,500.00 元（限额 2,000.00 元）" in hits[apps[high.id].id].evidence
    assert world.run("RETIREE_PENSION_MEANS_TESTED", pension_limit_fen=250000) == {}


def test_vehicle_means_tested(world):
    relief = world.item("A", means_tested=True)
    other = world.item("B")
    owner, cheap, bought_later = (world.person() for _ in range(3))
    apps = {p.id: world.apply(p, relief) for p in (owner, cheap, bought_later)}
    not_means_tested = world.apply(owner, other)
    world.share("vehicles", [
        dict(id=world.number(owner), plate="川K·A1234", vehicle_type="小型轿车", value_fen=8000000,
             registered_on=date(2024, 3, 1)),
        dict(id=world.number(cheap), plate="川K·A1235", vehicle_type="小型轿车", value_fen=5000000,
             registered_on=date(2024, 3, 1)),
        dict(id=world.number(bought_later), plate="川K·A1236", vehicle_type="小型轿车", value_fen=9000000,
             registered_on=date(2026, 12, 1)),
    ])
    hits = world.run("VEHICLE_MEANS_TESTED")
    assert set(hits) == {apps[owner.id].id}
    assert not_means_tested.id not in hits
    evidence = hits[apps[owner.id].id].evidence
    assert "川K·A1234" in evidence and "80,000.00 元" in evidence and "2024-03-01" in evidence
    assert world.run("VEHICLE_MEANS_TESTED", vehicle_value_limit_fen=8000000) == {}


def test_business_means_tested(world):
    relief = world.item("A", means_tested=True)
    other = world.item("B")
    boss, closed, founded_later = (world.person() for _ in range(3))
    apps = {p.id: world.apply(p, relief) for p in (boss, closed, founded_later)}
    not_means_tested = world.apply(boss, other)
    firm = dict(name="张三", role="法定代表人", company="甲县兴旺农资有限公司", credit_code="91511025MA000000X1",
                capital_fen=50000000, registered_on=date(2021, 5, 1))
    world.share("businesses", [
        dict(firm, id=world.number(boss), status="存续"),
        dict(firm, id=world.number(closed), status="注销"),
        dict(firm, id=world.number(founded_later), status="存续", registered_on=date(2026, 12, 1)),
    ])
    hits = world.run("BUSINESS_MEANS_TESTED")
    assert set(hits) == {apps[boss.id].id}
    assert not_means_tested.id not in hits
    evidence = hits[apps[boss.id].id].evidence
    assert "甲县兴旺农资有限公司 法定代表人" in evidence and "2021-05-01" in evidence and "500,000.00 元" in evidence


def test_properties_means_tested(world):
    relief = world.item("A", means_tested=True)
    other = world.item("B")
    two, one, second_later = (world.person() for _ in range(3))
    apps = {p.id: world.apply(p, relief) for p in (two, one, second_later)}
    not_means_tested = world.apply(two, other)
    house = dict(area_centi=9000, address="甲县某街1号")
    world.share("real_estate", [
        dict(house, id=world.number(two), certificate="川(2020)甲县不动产权第0001号", registered_on=date(2020, 1, 1)),
        dict(house, id=world.number(two), certificate="川(2022)甲县不动产权第0002号", registered_on=date(2022, 1, 1)),
        dict(house, id=world.number(one), certificate="川(2020)甲县不动产权第0003号", registered_on=date(2020, 1, 1)),
        dict(house, id=world.number(second_later), certificate="川(2020)甲县不动产权第0004号",
             registered_on=date(2020, 1, 1)),
        dict(house, id=world.number(second_later), certificate="川(2026)甲县不动产权第0005号",
             registered_on=date(2026, 12, 1)),
    ])
    # another agency delivers the same certificate again: still one property
    world.share("real_estate", [dict(house, id=world.number(one), certificate="川(2020)甲县不动产权第0003号",
                                     registered_on=date(2020, 1, 1))])
    hits = world.run("PROPERTIES_MEANS_TESTED")
    assert set(hits) == {apps[two.id].id}
    assert not_means_tested.id not in hits
    evidence = hits[apps[two.id].id].evidence
    assert "名下房产 2 套（限 1 套" in evidence and "第0001号" in evidence and "第0002号" in evidence
    assert world.run("PROPERTIES_MEANS_TESTED", max_properties=2) == {}


def test_in_custody(world):
    per_person = world.item("A")
    per_household = world.item("H", basis="户")
    jailed, released, jailed_later = (world.person(household=world.household()) for _ in range(3))
    apps = {p.id: world.apply(p, per_person) for p in (jailed, released, jailed_later)}
    household_claim = world.apply(jailed, per_household)
    world.share("prisoners", [
        dict(id=world.number(jailed), name="张三", custody_from=date(2026, 11, 15)),
        dict(id=world.number(released), name="张三", custody_from=date(2024, 1, 1), custody_to=date(2026, 10, 31)),
        dict(id=world.number(jailed_later), name="张三", custody_from=date(2026, 12, 1)),
    ])
    hits = world.run("IN_CUSTODY")
    assert set(hits) == {apps[jailed.id].id}
    assert household_claim.id not in hits
    assert hits[apps[jailed.id].id].evidence == "服刑在押：2026-11-15 收押，尚未释放，所属期 2026-11"


# ---------------------------------------------------------------- catalogue conditions


def test_age_out_of_range(world):
    # ages at 2026-11-01, the first day of the period: the born-1895-11-01 person is exactly 131
    old_age = world.item("A", min_age=131, max_age=132)
    no_limits = world.item("B")
    too_young = world.person(birth=date(1895, 11, 2))  # 130 on 2026-11-01
    just_old_enough = world.person(birth=date(1895, 11, 1))  # 131
    at_max = world.person(birth=date(1894, 11, 1))  # 132
    too_old = world.person(birth=date(1893, 11, 1))  # 133
    apps = {p.id: world.apply(p, old_age) for p in (too_young, just_old_enough, at_max, too_old)}
    unlimited = world.apply(too_old, no_limits)
    hits = world.run("AGE_OUT_OF_RANGE")
    assert set(hits) == {apps[too_young.id].id, apps[too_old.id].id}
    assert unlimited.id not in hits
    assert "出生日期 1895-11-02" in hits[apps[too_young.id].id].evidence
    assert "130 周岁" in hits[apps[too_young.id].id].evidence
    assert "133 周岁" in hits[apps[too_old.id].id].evidence and "131 至 132 周岁" in hits[apps[too_old.id].id].evidence


def test_over_standard(world):
    per_person = world.item("A", standard_fen=10000)
    per_mu = world.item("M", basis="亩", standard_fen=1001, frequency="年")
    over = world.apply(world.person(), per_person, amount_fen=12000)
    two_people = world.apply(world.person(), per_person, quantity_centi=200, amount_fen=20000)
    exact = world.apply(world.person(), per_person)
    land = world.apply(world.person(), per_mu, "2026", quantity_centi=1250)  # 10.01 x 12.50 = 125.125 -> 125.13
    land_over = world.apply(world.person(), per_mu, "2026", quantity_centi=1250, amount_fen=12514)
    hits = world.run("OVER_STANDARD")
    assert set(hits) == {over.id, two_people.id, land_over.id}
    assert {exact.id, land.id}.isdisjoint(hits)
    assert hits[over.id].amount_fen == 2000
    assert "超出 20.00 元" in hits[over.id].evidence and "标准 100.00 元" in hits[over.id].evidence
    assert hits[two_people.id].amount_fen == 20000 and "申请数量为 2.00" in hits[two_people.id].evidence
    assert hits[land_over.id].amount_fen == 1 and "12.50" in hits[land_over.id].evidence


def test_exclusive_items(world):
    pension_a, pension_b = world.item("A"), world.item("Q", frequency="季")
    unrelated = world.item("C")
    world.exclusion(pension_b, pension_a)  # stored once, in code order, whichever way it is given
    both = world.person()
    a1, b1 = world.apply(both, pension_a, "2026-11"), world.apply(both, pension_b, "2026Q4")
    apart = world.person()
    a2, b2 = world.apply(apart, pension_a, "2026-09"), world.apply(apart, pension_b, "2026Q4")
    other_item = world.person()
    a3, c3 = world.apply(other_item, pension_a), world.apply(other_item, unrelated)
    rejected = world.person()
    a4, b4 = world.apply(rejected, pension_a), world.apply(rejected, pension_b, "2026Q4", status="已否决")
    hits = world.run("EXCLUSIVE_ITEMS")
    assert set(hits) == {a1.id, b1.id}
    assert f"测试项目Q”同期申领：申请 {b1.number}" in hits[a1.id].evidence
    assert b1.number in hits[a1.id].evidence and a1.number in hits[b1.id].evidence
    assert {a2.id, b2.id, a3.id, c3.id, a4.id, b4.id}.isdisjoint(hits)


# ---------------------------------------------------------------- the same claim twice


def test_duplicate_payment_by_another_system(world):
    item, other = world.item("A"), world.item("B")
    paid, other_item, other_period = (world.person() for _ in range(3))
    apps = {p.id: world.apply(p, item) for p in (paid, other_item, other_period)}
    payment = dict(name="张三", amount_fen=10000, paid_on=date(2026, 11, 20), system="省低保信息系统")
    world.share("other_payments", [
        dict(payment, id=world.number(paid), item_code=item.code, period_start=date(2026, 10, 1),
             period_end=date(2026, 12, 31)),
        dict(payment, id=world.number(other_item), item_code=other.code, period_start=date(2026, 11, 1),
             period_end=date(2026, 11, 30)),
        dict(payment, id=world.number(other_period), item_code=item.code, period_start=date(2026, 10, 1),
             period_end=date(2026, 10, 31)),
    ])
    hits = world.run("DUPLICATE_PAYMENT")
    assert set(hits) == {apps[paid.id].id}
    hit = hits[apps[paid.id].id]
    assert "省低保信息系统 已于 2026-11-20" in hit.evidence and "2026-10-01 至 2026-12-31" in hit.evidence
    assert "100.00 元" in hit.evidence and hit.amount_fen == 10000


def test_duplicate_payment_within_the_platform(world):
    monthly, other = world.item("A"), world.item("B")
    twice = world.person()
    first = world.apply(twice, monthly, "2026-11", status="已通过")
    # one live claim per person, item and period label is enforced by the database; an overlapping
    # period under another label (entered after the item moved to quarterly payment) is not
    quarter = world.apply(twice, monthly, "2026Q4", frequency="季")
    september = world.apply(twice, monthly, "2026-09")
    other_item = world.apply(twice, other, "2026-11")
    after_rejection = world.person()
    world.apply(after_rejection, monthly, "2026-11", status="已否决")
    fresh = world.apply(after_rejection, monthly, "2026Q4", frequency="季")
    neighbour = world.apply(world.person(), monthly, "2026-11")
    hits = world.run("DUPLICATE_PAYMENT")
    assert set(hits) == {quarter.id}  # the later of the two only
    assert hits[quarter.id].evidence == (f"同一人同一项目已有所属期重叠的申请 {first.number}（所属期 2026-11），"
                                         "本申请所属期 2026Q4")
    assert hits[quarter.id].amount_fen == quarter.amount_fen
    assert {first.id, september.id, other_item.id, fresh.id, neighbour.id}.isdisjoint(hits)


def test_two_regions(world):
    per_person, per_mu = world.item("A"), world.item("M", basis="亩", frequency="年")
    per_household = world.item("H", basis="户")
    mover = world.person(household=world.household())
    here, there = world.apply(mover, per_person), world.apply(mover, per_household, region=VILLAGE2)
    settled = world.person()
    s1, s2 = world.apply(settled, per_person), world.apply(settled, world.item("B"))
    apart = world.person()
    p1, p2 = world.apply(apart, per_person, "2026-10"), world.apply(apart, per_person, "2026-11", region=VILLAGE2)
    farmer = world.person()
    f1, f2 = world.apply(farmer, per_person), world.apply(farmer, per_mu, "2026", region=VILLAGE3)
    withdrawn = world.person()
    w1 = world.apply(withdrawn, per_person)
    world.apply(withdrawn, per_household, region=VILLAGE2, status="已撤回")
    hits = world.run("TWO_REGIONS")
    assert set(hits) == {here.id, there.id}
    assert f"另一村（社区）{VILLAGE2} 也有所属期重叠的申请 {there.number}" in hits[here.id].evidence
    assert here.number in hits[there.id].evidence
    assert {s1.id, s2.id, p1.id, p2.id, f1.id, f2.id, w1.id}.isdisjoint(hits)


def test_household_twice(world):
    per_household = world.item("H", basis="户", standard_fen=20000)
    per_person = world.item("A")
    home = world.household()
    head, spouse = world.person("王大", household=home), world.person("王小二", household=home)
    first, second = world.apply(head, per_household), world.apply(spouse, per_household, "2026-11")
    later_month = world.apply(head, per_household, "2026-12")
    p1, p2 = world.apply(head, per_person), world.apply(spouse, per_person)
    neighbour = world.person(household=world.household())
    n1 = world.apply(neighbour, per_household)
    other_home = world.household()
    withdrawn = world.person(household=other_home)
    world.apply(withdrawn, per_household, status="已撤回")
    remaining = world.apply(world.person(household=other_home), per_household)
    hits = world.run("HOUSEHOLD_TWICE")
    assert set(hits) == {second.id}
    hit = hits[second.id]
    assert f"同户成员 王*（{head.id_number_masked}）" in hit.evidence and first.number in hit.evidence
    assert hit.amount_fen == 20000
    assert {first.id, later_month.id, p1.id, p2.id, n1.id, remaining.id}.isdisjoint(hits)


# ---------------------------------------------------------------- cards and accounts


def test_shared_account(world):
    item = world.item("A")
    a, b = world.person("欧阳小明", household=world.household()), world.person("李四", household=world.household())
    world.card(a, account="6217997010100000001")
    world.card(b, account="6217997010100000001")
    home = world.household()
    c, d = world.person(household=home), world.person(household=home)
    world.card(c, account="6217997010100000002")
    world.card(d, account="6217997010100000002")
    loner1, loner2 = world.person("赵五"), world.person("钱六")  # no household: a household each
    world.card(loner1, account="6217997010100000003")
    world.card(loner2, account="6217997010100000003")
    twice = world.person()  # one person, two cards, one account
    world.card(twice, account="6217997010100000004")
    world.card(twice, account="6217997010100000004")
    apps = {p.id: world.apply(p, item) for p in (a, b, c, d, loner1, loner2, twice)}
    hits = world.run("SHARED_ACCOUNT")
    assert set(hits) == {apps[p.id].id for p in (a, b, loner1, loner2)}
    evidence = hits[apps[a.id].id].evidence
    assert "6217 **** **** 0001" in evidence and f"李*（{b.id_number_masked}）" in evidence
    assert f"欧**明（{a.id_number_masked}）" in hits[apps[b.id].id].evidence
    assert "钱*" in hits[apps[loner1.id].id].evidence


def test_shared_account_tolerates_as_many_other_people_as_its_parameter_allows(world):
    item = world.item("A")
    pair = [world.person(household=world.household()) for _ in range(2)]  # one account, one other person
    trio = [world.person(household=world.household()) for _ in range(3)]  # one account, two others each
    for p in pair:
        world.card(p, account="6217997010100000011")
    for p in trio:
        world.card(p, account="6217997010100000012")
    apps = {p.id: world.apply(p, item).id for p in (*pair, *trio)}
    assert set(world.run("SHARED_ACCOUNT")) == set(apps.values())  # default 0: any other person
    assert set(world.run("SHARED_ACCOUNT", max_other_people=1)) == {apps[p.id] for p in trio}
    assert world.run("SHARED_ACCOUNT", max_other_people=2) == {}


def test_card_not_active(world):
    item = world.item("A")
    no_card, lost, found, spare, tie, newer_delivery, cancelled_here = (world.person() for _ in range(7))
    cards = {
        "lost": world.card(lost),
        "found": world.card(found, status="挂失"),
        "spare_lost": world.card(spare, status="挂失"),
        "spare_ok": world.card(spare),
        "tie": world.card(tie),
        "newer": world.card(newer_delivery),
        "cancelled": world.card(cancelled_here, status="注销"),
    }
    apps = {p.id: world.apply(p, item) for p in (no_card, lost, found, spare, tie, newer_delivery, cancelled_here)}

    def row(card, person, status, day):
        return dict(card_number=card.card_number, id=world.number(person), status=status, changed_on=day)

    world.share("card_registry", [
        row(cards["lost"], lost, "正常", date(2020, 1, 1)),
        row(cards["lost"], lost, "挂失", date(2026, 5, 1)),
        row(cards["found"], found, "挂失", date(2026, 5, 1)),
        row(cards["found"], found, "正常", date(2026, 6, 1)),
        row(cards["tie"], tie, "正常", date(2026, 5, 1)),
        row(cards["tie"], tie, "注销", date(2026, 5, 1)),  # same day: the later state in the card's life wins
        row(cards["newer"], newer_delivery, "挂失", date(2026, 5, 1)),
    ])
    world.share("card_registry", [row(cards["newer"], newer_delivery, "正常", date(2026, 5, 1))])  # a later delivery
    hits = world.run("CARD_NOT_ACTIVE")
    assert set(hits) == {apps[p.id].id for p in (no_card, lost, tie, cancelled_here)}
    assert hits[apps[no_card.id].id].evidence == "未登记社会保障卡"
    lost_number = cards["lost"].card_number
    assert f"{lost_number[:3]}****{lost_number[-4:]}（挂失，2026-05-01 变更）" in hits[apps[lost.id].id].evidence
    assert "注销" in hits[apps[tie.id].id].evidence and "注销" in hits[apps[cancelled_here.id].id].evidence


def test_card_holder_mismatch(world):
    item = world.item("A")
    other_holder = world.id_number()
    stranger, proxied, wrong_proxy, expired_proxy, back_to_self, own = (world.person() for _ in range(6))
    cards = {p.id: world.card(p) for p in (stranger, proxied, wrong_proxy, expired_proxy, back_to_self, own)}
    apps = {p.id: world.apply(p, item) for p in (stranger, proxied, wrong_proxy, expired_proxy, back_to_self, own)}
    world.proxy(proxied, other_holder, valid_from=date(2026, 1, 1))
    world.proxy(wrong_proxy, world.id_number(), valid_from=date(2026, 1, 1))  # someone else holds it by proxy
    world.proxy(expired_proxy, other_holder, valid_from=date(2025, 1, 1), valid_until=date(2026, 10, 31))

    def row(person, holder, day=date(2026, 3, 1)):
        return dict(card_number=cards[person.id].card_number, id=holder, status="正常", changed_on=day)

    world.share("card_registry", [
        row(stranger, other_holder), row(proxied, other_holder), row(wrong_proxy, other_holder),
        row(expired_proxy, other_holder), row(own, world.number(own)),
        row(back_to_self, other_holder, date(2025, 1, 1)), row(back_to_self, world.number(back_to_self)),
    ])
    hits = world.run("CARD_HOLDER_MISMATCH")
    assert set(hits) == {apps[p.id].id for p in (stranger, wrong_proxy, expired_proxy)}
    evidence = hits[apps[stranger.id].id].evidence
    masked = other_holder[:6] + "********" + other_holder[-4:]
    assert f"登记的持卡人为 {masked}" in evidence and stranger.id_number_masked in evidence


def test_cadre_own_village(world):
    item = world.item("A")
    cadre_number = world.id_number()
    cadre, spouse, cousin_elsewhere = world.person(), world.person(), world.person(village=VILLAGE2)
    apps = {p.id: world.apply(p, item) for p in (cadre, spouse, cousin_elsewhere)}
    world.share("village_cadres", [
        dict(id=world.number(cadre), name="张三", region_code=VILLAGE, post="村主任", cadre_id=world.number(cadre),
             relation="本人"),
        dict(id=world.number(spouse), name="张三", region_code=VILLAGE, post="村支书", cadre_id=cadre_number,
             relation="配偶"),
        dict(id=world.number(cousin_elsewhere), name="张三", region_code=VILLAGE, post="村支书",
             cadre_id=cadre_number, relation="兄弟姐妹"),  # listed for village one, applies in village two
    ])
    hits = world.run("CADRE_OWN_VILLAGE")
    assert set(hits) == {apps[cadre.id].id, apps[spouse.id].id}
    assert hits[apps[cadre.id].id].evidence == f"申请人本人是本村（{VILLAGE}）村主任"
    masked = cadre_number[:6] + "********" + cadre_number[-4:]
    assert hits[apps[spouse.id].id].evidence == f"申请人是本村（{VILLAGE}）村支书（{masked}）的配偶"


def test_over_standard_compares_with_the_standard_of_the_claims_period(world):
    """A cut or a raise of a standard applies from its date: claims of earlier periods are neither
    flagged nor re-priced; a claim priced with the new standard for an earlier period is flagged."""
    from yikatong.catalog.service import add_standard

    def dated(item, valid_from, fen, county=None):
        add_standard(world.db, None, item.code, valid_from, fen, NOW, county_code=county, reason="测试")

    cut, raised, local = world.item("A"), world.item("B"), world.item("C")
    for item in (cut, raised, local):
        dated(item, date(2026, 1, 1), 10000)
    cut_october = world.apply(world.person(), cut, "2026-10")  # 100.00, priced before the cut
    raised_october = world.apply(world.person(), raised, "2026-10")
    dated(cut, date(2026, 11, 1), 8000)
    dated(raised, date(2026, 11, 1), 12000)
    dated(local, date(2026, 6, 1), 15000, county=COUNTY2[:6])  # 乙县's own standard
    cut_november = world.apply(world.person(), cut, "2026-11", amount_fen=8000)
    cut_november_old_price = world.apply(world.person(), cut, "2026-11", amount_fen=10000)
    raised_november = world.apply(world.person(), raised, "2026-11", amount_fen=12000)
    raised_october_new_price = world.apply(world.person(), raised, "2026-10", amount_fen=12000)
    local_there = world.apply(world.person(village=VILLAGE3), local, "2026-11", amount_fen=15000)
    local_here = world.apply(world.person(), local, "2026-11", amount_fen=15000)
    hits = world.run("OVER_STANDARD")
    assert set(hits) == {cut_november_old_price.id, raised_october_new_price.id, local_here.id}
    assert "标准 80.00 元" in hits[cut_november_old_price.id].evidence
    assert hits[raised_october_new_price.id].amount_fen == 2000 and "标准 100.00 元" in hits[
        raised_october_new_price.id].evidence
    assert {cut_october.id, raised_october.id, cut_november.id, raised_november.id, local_there.id}.isdisjoint(hits)
    from yikatong.workflow.models import Application

    world.db.expire_all()
    assert [world.db.get(Application, a.id).amount_fen for a in (cut_october, raised_october)] == [10000, 10000]
