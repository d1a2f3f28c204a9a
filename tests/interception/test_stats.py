"""Statistics of interception over the flags table: totals that reconcile across the four breakdowns,
the status split and each rule's precision, the viewer's scope (region and department), drilling down
by region, and the Excel workbook read back with openpyxl.

Flags are inserted directly (with their own rules, applications and a date window in 2031 that no
other test uses) through the rolled-back `db` session, so nothing here depends on the shared city's
counts."""

from __future__ import annotations

import hashlib
import io
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from yikatong.catalog.models import Department, SubsidyItem
from yikatong.core.clock import BEIJING
from yikatong.core.errors import Forbidden, Invalid
from yikatong.interception import stats, tallies
from yikatong.interception.models import Flag, FlagStatus, Rule, RuleOrigin, RuleVersion
from yikatong.registry.models import Person
from yikatong.security.models import User
from yikatong.security.roles import Role
from yikatong.security.service import create_user
from yikatong.workflow.models import Application, Source, Status, Step

NOW = datetime(2031, 1, 1, 8, 0, tzinfo=UTC)
WINDOW = {"date_from": date(2031, 1, 1), "date_to": date(2031, 3, 31)}
COUNTY = "511025"  # the demo county (county_handler: 民政)
LOW_INCOME = "ZS007"  # 农村低保, 民政
SPECIAL = "ZS017"  # 计划生育特别扶助, 卫生健康


# ---------------------------------------------------------------- helpers (also used by test_flag_pages)


def make_rule(db, code: str, name: str, now: datetime = NOW, severity: str = "高") -> RuleVersion:
    """An inactive rule with one version (the screening never runs it: tests raise its flags)."""
    db.add(Rule(code=code, origin=RuleOrigin.SUPERVISOR.value, name=name, active=False, active_version=1,
                latest_version=1, created_at=now, updated_at=now))
    db.flush()
    version = RuleVersion(rule_code=code, version=1, name=name, explanation=f"{name}：测试用规则，不参与比对运行。",
                          severity=severity, items="all", datasets="", params="{}", sql="SELECT 1",
                          sql_sha256="0" * 64, author_name="测试", created_at=now)
    db.add(version)
    db.flush()
    return version


def make_flag(db, app: Application, version: RuleVersion, amount_fen: int, raised_at: datetime,
              status: FlagStatus = FlagStatus.OPEN, evidence: str | None = None) -> Flag:
    evidence = evidence or f"测试事实 {uuid.uuid4().hex[:8]}"
    flag = Flag(application_id=app.id, rule_code=version.rule_code, rule_version_id=version.id, evidence=evidence,
                evidence_key=hashlib.sha256(evidence.encode()).hexdigest()[:32], fact_key=evidence,
                amount_fen=amount_fen,
                item_code=app.item_code, region_code=app.region_code, severity=version.severity,
                status=status.value, raised_at=raised_at)
    if status is not FlagStatus.OPEN:
        flag.verified_at, flag.opinion = raised_at, "测试核实"
    db.add(flag)
    db.flush()
    tallies.flags_raised(db, flag_ids=[flag.id])  # as the screening counts the flags it raises
    return flag


def _application(db, person: Person, item_code: str, amount_fen: int, period: str = "2031-01") -> Application:
    """An application row of `person` (rolled back with the test)."""
    item = db.get(SubsidyItem, item_code)
    sector = db.get(Department, item.department_code).sector
    app = Application(number=f"H5{uuid.uuid4().hex[:16].upper()}", item_code=item.code, sector=sector,
                      person_id=person.id, region_code=person.region_code, period=period,
                      period_start=date(2031, 1, 1), period_end=date(2031, 1, 31), basis=item.basis,
                      quantity_centi=100, standard_fen=item.standard_fen, amount_fen=amount_fen,
                      source=Source.COUNTER.value, status=Status.OPEN.value, stage=Step.VILLAGE.value,
                      owner_region=person.region_code, stage_entered_at=NOW, created_at=NOW)
    db.add(app)
    db.flush()
    return app


@pytest.fixture
def users(city, db):
    return {u.username: u for u in db.scalars(select(User)).all()}


@pytest.fixture
def planted(city, db):
    """Three applications and seven flags of three test rules:

    A (demo county, 农村低保): S1 open 100.00 (Jan), S2 confirmed 50.00 (Feb), S3 open 1.00 (1 April:
      outside the window)
    B (demo county, another township, 计划生育特别扶助): S1 cleared 200.00 (Feb)
    C (another county, 农村低保): S2 confirmed 3.00, S1 confirmed 7.00, S3 open 0.50 (all March; the
      last at 23:59 on the window's last day)"""
    tag = uuid.uuid4().hex[:6].upper()
    s1, s2, s3 = (make_rule(db, f"TEST_H5_S{i}_{tag}", f"测试规则{i}") for i in (1, 2, 3))
    own = db.scalars(select(Person).where(Person.region_code.like(f"{COUNTY}%")).order_by(Person.id)).first()
    second = db.scalars(select(Person).where(Person.region_code.like(f"{COUNTY}%"),
                                             Person.region_code.not_like(f"{own.region_code[:9]}%"))
                        .order_by(Person.id)).first()
    other = db.scalars(select(Person).where(Person.region_code.not_like(f"{COUNTY}%")).order_by(Person.id)).first()
    assert own and second and other, "the test city needs people in two townships and two counties"
    a = _application(db, own, LOW_INCOME, 56000)
    b = _application(db, second, SPECIAL, 59000)
    c = _application(db, other, LOW_INCOME, 56000)
    make_flag(db, a, s1, 10000, datetime(2031, 1, 15, 10, tzinfo=BEIJING), FlagStatus.OPEN)
    make_flag(db, a, s2, 5000, datetime(2031, 2, 3, 9, tzinfo=BEIJING), FlagStatus.CONFIRMED)
    make_flag(db, a, s3, 100, datetime(2031, 4, 1, 0, 0, tzinfo=BEIJING), FlagStatus.OPEN)
    make_flag(db, b, s1, 20000, datetime(2031, 2, 10, 14, tzinfo=BEIJING), FlagStatus.CLEARED)
    make_flag(db, c, s2, 300, datetime(2031, 3, 1, 8, tzinfo=BEIJING), FlagStatus.CONFIRMED)
    make_flag(db, c, s1, 700, datetime(2031, 3, 2, 8, tzinfo=BEIJING), FlagStatus.CONFIRMED)
    make_flag(db, c, s3, 50, datetime(2031, 3, 31, 23, 59, tzinfo=BEIJING), FlagStatus.OPEN)
    return {"rules": (s1.rule_code, s2.rule_code, s3.rule_code), "apps": (a, b, c)}


FIELDS = ("flags", "amount_fen", "open", "open_fen", "confirmed", "confirmed_fen", "cleared", "cleared_fen")


def assert_reconciles(s: stats.FlagStats) -> None:
    """Every breakdown adds up to the total, field by field."""
    for title, _, rows in s.breakdowns:
        for f in FIELDS:
            assert sum(getattr(r, f) for r in rows) == getattr(s.total, f), (title, f)
    # applications are distinct per row: additive over items and regions (an application's flags share them)
    assert sum(r.applications for r in s.by_item) == s.total.applications
    assert sum(r.applications for r in s.by_region) == s.total.applications


# ---------------------------------------------------------------- the figures


def test_totals_reconcile_and_each_rule_has_its_precision(db, users, planted):
    s1, s2, s3 = planted["rules"]
    a, b, c = planted["apps"]
    s = stats.flag_stats(db, users["supervisor"], **WINDOW)
    t = s.total
    assert (t.flags, t.amount_fen) == (6, 36050)  # A's April flag is outside the window
    assert (t.open, t.open_fen, t.confirmed, t.confirmed_fen, t.cleared, t.cleared_fen) == (2, 10050, 3, 6000, 1, 20000)
    assert t.applications == 3 and s.applications_amount_fen == a.amount_fen + b.amount_fen + c.amount_fen
    assert t.precision == pytest.approx(3 / 4)
    assert_reconciles(s)

    rules = {r.key: r for r in s.by_rule}
    assert set(rules) == {s1, s2, s3}
    assert (rules[s1].name, rules[s1].flags, rules[s1].amount_fen, rules[s1].applications) == ("测试规则1", 3, 30700, 3)
    assert rules[s1].precision == pytest.approx(0.5)  # one confirmed, one cleared (the open one does not count)
    assert rules[s2].precision == 1.0 and rules[s2].applications == 2
    assert rules[s3].precision is None  # nothing verified yet
    # an application hit by several rules is counted once per rule: the rows add up to more than the total
    assert sum(r.applications for r in s.by_rule) == 6 > t.applications
    assert [r.key for r in s.by_rule] == [s1, s2, s3]  # most records first

    items = {r.key: r for r in s.by_item}
    assert (items[LOW_INCOME].flags, items[LOW_INCOME].amount_fen, items[LOW_INCOME].applications) == (5, 16050, 2)
    assert items[SPECIAL].name == db.get(SubsidyItem, SPECIAL).name and items[SPECIAL].cleared == 1

    regions = {r.key: r for r in s.by_region}
    assert s.group_length == 6  # the city is read by county
    assert regions[COUNTY.ljust(12, "0")].flags == 3 and regions[COUNTY.ljust(12, "0")].amount_fen == 35000
    assert regions[c.region_code[:6].ljust(12, "0")].amount_fen == 1050
    assert all(r.name and r.name != r.key for r in s.by_region)  # full region names

    months = [(r.key, r.name, r.flags, r.amount_fen) for r in s.by_month]
    assert months == [("2031-01", "2031年1月", 1, 10000), ("2031-02", "2031年2月", 2, 25000),
                      ("2031-03", "2031年3月", 3, 1050)]


def test_the_window_is_inclusive_and_open_ended(db, users, planted):
    supervisor = users["supervisor"]
    april = stats.flag_stats(db, supervisor, date_from=date(2031, 4, 1), date_to=date(2031, 4, 1))
    assert (april.total.flags, april.total.amount_fen) == (1, 100)
    from_march = stats.flag_stats(db, supervisor, date_from=date(2031, 3, 31))
    assert from_march.total.flags == 2  # 23:59 on 31 March and midnight on 1 April
    nothing = stats.flag_stats(db, supervisor, date_from=date(2040, 1, 1))
    assert nothing.total.flags == 0 and nothing.total.precision is None and nothing.by_rule == []
    with pytest.raises(Invalid, match="开始日期"):
        stats.flag_stats(db, supervisor, date_from=date(2031, 2, 1), date_to=date(2031, 1, 1))


def test_a_county_department_sees_its_county_and_its_items_only(db, users, planted):
    s1, s2, _ = planted["rules"]
    a, _, _ = planted["apps"]
    s = stats.flag_stats(db, users["county_handler"], **WINDOW)
    # only A: B is 卫生健康 (not the 民政 department's) and C is in another county
    assert (s.total.flags, s.total.amount_fen, s.total.applications) == (2, 15000, 1)
    assert {r.key for r in s.by_rule} == {s1, s2} and [r.key for r in s.by_item] == [LOW_INCOME]
    assert s.group_length == 9 and [r.key for r in s.by_region] == [a.region_code[:9].ljust(12, "0")]
    assert_reconciles(s)
    with pytest.raises(Forbidden):
        stats.flag_stats(db, users["county_handler"], region=planted["apps"][2].region_code[:6])


def test_a_user_of_another_county_sees_none_of_these(db, users, planted):
    c = planted["apps"][2]
    other = create_user(db, f"h5_{uuid.uuid4().hex[:8]}", "ykt-demo-2026", Role.SUPERVISOR,
                        c.region_code[:6].ljust(12, "0"), "另一县 监督人员", NOW)
    s = stats.flag_stats(db, other, **WINDOW)
    assert (s.total.flags, s.total.amount_fen) == (3, 1050)
    assert all(r.key.startswith(c.region_code[:6]) for r in s.by_region)


def test_drilling_down_to_a_township_and_a_village(db, users, planted):
    a = planted["apps"][0]
    supervisor = users["supervisor"]
    county = stats.flag_stats(db, supervisor, region=COUNTY, **WINDOW)
    assert county.group_length == 9 and county.region_code == COUNTY.ljust(12, "0")
    assert county.total.flags == 3 and len(county.by_region) == 2  # A's and B's townships
    assert_reconciles(county)
    township = stats.flag_stats(db, supervisor, region=a.region_code[:9], **WINDOW)
    assert township.group_length == 12 and [r.key for r in township.by_region] == [a.region_code]
    assert township.total.flags == 2
    village = stats.flag_stats(db, supervisor, region=a.region_code, **WINDOW)
    assert village.group_length == 12 and village.total.flags == 2 and village.level_label == "村（社区）"
    with pytest.raises(Invalid):
        stats.flag_stats(db, supervisor, region="51102")


def test_the_workbook_holds_every_breakdown_in_yuan(db, users, planted):
    s1, _, s3 = planted["rules"]
    s = stats.flag_stats(db, users["supervisor"], **WINDOW)
    book = load_workbook(io.BytesIO(stats.export_xlsx(s)))
    assert book.sheetnames == ["汇总", "按规则", "按项目", "按县（区）", "按月份"]

    sheet = book["按规则"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:5] == ("规则代码", "名称", "拦截记录（条）", "涉及申请（件）", "涉及金额（元）")
    assert rows[0][-1] == "准确率"
    body = {r[0]: r for r in rows[1:-1]}
    assert body[s1][1] == "测试规则1" and body[s1][2] == 3
    assert Decimal(str(body[s1][4])) == Decimal("307.00")
    assert body[s1][-1] == pytest.approx(0.5) and body[s3][-1] is None
    total = rows[-1]
    assert total[0] == "合计" and total[2] == 6 and Decimal(str(total[4])) == Decimal("360.50")
    assert sheet.cell(row=2, column=5).number_format == "#,##0.00"
    assert sheet.cell(row=len(rows), column=5).number_format == "#,##0.00"

    for title in ("按项目", "按县（区）", "按月份"):
        rows = list(book[title].iter_rows(values_only=True))
        assert rows[-1][0] == "合计"
        assert sum(r[2] for r in rows[1:-1]) == rows[-1][2] == 6
        assert sum(Decimal(str(r[4])) for r in rows[1:-1]) == Decimal(str(rows[-1][4])) == Decimal("360.5")
    months = [r[0] for r in book["按月份"].iter_rows(min_row=2, values_only=True)]
    assert months == ["2031-01", "2031-02", "2031-03", "合计"]
    summary = {r[0]: r[1] for r in book["汇总"].iter_rows(values_only=True) if r and r[0]}
    assert summary["拦截记录（条）"] == 6 and summary["涉及申请（件）"] == 3
    assert Decimal(str(summary["属实金额（元）"])) == Decimal("60")


def test_an_empty_workbook_still_opens(db, users):
    s = stats.flag_stats(db, users["supervisor"], date_from=date(2040, 1, 1))
    book = load_workbook(io.BytesIO(stats.export_xlsx(s)))
    rows = list(book["按规则"].iter_rows(values_only=True))
    assert rows[-1][0] == "合计" and rows[-1][2] == 0 and len(rows) == 2
