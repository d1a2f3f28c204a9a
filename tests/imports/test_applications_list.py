"""Department lists (补贴申请名单): a valid list enters one application per row at the list station;
a list with any bad row enters nothing and says row, column and reason; the same list twice
enters nothing the second time."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlalchemy import func, select
from typer.testing import CliRunner

from yikatong.cli import app as cli
from yikatong.core import crypto
from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session
from yikatong.core.errors import Forbidden
from yikatong.core.protect import reveal
from yikatong.core.readers import read_table
from yikatong.imports.kinds import KINDS
from yikatong.imports.service import import_file, match_headers
from yikatong.imports.template import template_bytes
from yikatong.registry.models import Person
from yikatong.security.models import AuditEvent, User
from yikatong.security.scope import within
from yikatong.workflow.models import LIVE_STATUSES, Application, ReviewRecord, Source, Status, Step

from .conftest import csv_bytes

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
HEADERS = ["身份证号", "姓名", "项目代码", "期次", "数量", "说明"]
DEMO_PASSWORD = "ykt-demo-2026"
LOW_INCOME = "ZS007"  # 农村低保: 人, 月, 民政
FOREST = "ZS014"  # 森林生态效益补偿: 亩, 年, 林业, 14.75 yuan/mu


@pytest.fixture
def demo(city, db) -> dict[str, User]:
    return {u.username: u for u in db.scalars(select(User)).all()}


def claimants(db, region: str, item: str, period: str, n: int, skip: int = 0) -> list[tuple[str, str, int]]:
    """(clear ID number, name, person id) of n persons of `region` without a live claim for item and period,
    with an active card (a claim with no card to pay into is flagged by the CARD_NOT_ACTIVE rule)."""
    busy = select(Application.person_id).where(Application.item_code == item, Application.period == period,
                                               Application.status.in_(LIVE_STATUSES))
    persons = db.scalars(select(Person).where(within(Person.region_code, region), Person.id.not_in(busy),
                                              Person.has_active_card.is_(True))
                         .order_by(Person.id).offset(skip).limit(n)).all()
    assert len(persons) == n, "the test city ran out of claimants"
    return [(reveal(crypto.ID_NUMBER, p.id_number_enc), p.name, p.id) for p in persons]


def xlsx(headers: list[str], rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(headers)
    for row in rows:
        ws.append(row)
    for row in ws.iter_rows(min_row=2, max_col=1):
        for cell in row:
            cell.number_format = "@"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def apps_of(db, person_ids: list[int], item: str, period: str) -> list[Application]:
    return list(db.scalars(select(Application).where(Application.person_id.in_(person_ids),
                                                     Application.item_code == item, Application.period == period)
                           .order_by(Application.id)))


# ---------------------------------------------------------------- a good list, then the same list again


def test_good_list_enters_at_the_county_and_a_second_import_enters_nothing(db, demo):
    handler = demo["county_handler"]
    people = claimants(db, handler.region_code, LOW_INCOME, "2027-01", 3)
    rows = [[number, name, LOW_INCOME, period, quantity, "部门名单"]
            for (number, name, _), period, quantity in zip(people, ["2027-01", "2027年1月", "202701"],
                                                           [None, "1", ""], strict=True)]
    data = csv_bytes(HEADERS, rows, bom=True)
    audits = db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "import.applications"))
    report = import_file(db, "applications", data, "低保名单.csv", actor=handler, now=NOW)
    assert report.ok, report.errors
    assert (report.kind_label, report.total_rows, report.added) == ("补贴申请名单", 3, 3)

    apps = apps_of(db, [p for *_, p in people], LOW_INCOME, "2027-01")
    assert len(apps) == 3
    for app in apps:
        assert (app.source, app.source_ref) == (Source.LIST.value, "file:" + report.sha256[:16])
        assert (app.status, app.stage, app.owner_region) == (Status.OPEN, Step.COUNTY, handler.region_code)
        assert app.quantity_centi == 100 and app.amount_fen == app.standard_fen > 0
        assert app.created_by == handler.id and app.note == "部门名单" and app.number.startswith("SQ20261130")
        [record] = db.scalars(select(ReviewRecord).where(ReviewRecord.application_id == app.id)).all()
        assert (record.action, record.to_stage, record.user_id) == ("提交申请", "县定", handler.id)
    assert db.scalar(select(func.count()).select_from(AuditEvent)
                     .where(AuditEvent.action == "import.applications")) == audits + 1

    again = import_file(db, "applications", data, "低保名单.csv", actor=handler, now=NOW)
    assert not again.ok and again.added == 0 and again.error_count == 3
    assert [(e.row, e.column) for e in again.errors] == [(2, "期次"), (3, "期次"), (4, "期次")]
    assert all("已有在办或已通过的同项目申请" in e.reason for e in again.errors)
    assert len(apps_of(db, [p for *_, p in people], LOW_INCOME, "2027-01")) == 3


def test_a_longer_list_enters_each_row_for_its_own_person(db, demo):
    """Enough rows for the bulk path (COPY on PostgreSQL): every id, number and record matches its row."""
    handler = demo["city_finance"]
    people = claimants(db, handler.region_code, LOW_INCOME, "2027-08", 240)
    rows = [[number, name, LOW_INCOME, "2027-08", None, f"第{i}行"] for i, (number, name, _) in enumerate(people)]
    report = import_file(db, "applications", csv_bytes(HEADERS, rows), "long.csv", actor=handler, now=NOW)
    assert report.ok and report.added == 240, report.errors
    apps = apps_of(db, [p for *_, p in people], LOW_INCOME, "2027-08")
    assert sorted((a.person_id, a.note) for a in apps) == sorted((p, f"第{i}行") for i, (*_, p) in enumerate(people))
    assert len({a.number for a in apps}) == 240
    records = dict(db.execute(select(ReviewRecord.application_id, ReviewRecord.action).where(
        ReviewRecord.application_id.in_([a.id for a in apps]))).all())
    assert records == {a.id: "提交申请" for a in apps}


# ---------------------------------------------------------------- a bad list enters nothing


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_bad_list_enters_nothing_and_names_row_column_and_reason(db, demo, fmt):
    handler = demo["county_handler"]
    people = claimants(db, handler.region_code, LOW_INCOME, "2027-02", 4)
    rows = [[number, name, LOW_INCOME, "2027-02", None, None] for number, name, _ in people]
    bad_id = people[1][0][:17] + ("0" if people[1][0][17] != "0" else "1")
    rows[1][0] = bad_id
    rows[2][2] = "ZS999"
    data = csv_bytes(HEADERS, rows) if fmt == "csv" else xlsx(HEADERS, rows)
    report = import_file(db, "applications", data, f"list.{fmt}", actor=handler, now=NOW)
    assert not report.ok and report.added == 0
    assert [(e.row, e.column, e.reason) for e in report.errors] == [
        (3, "身份证号", "身份证号校验位错误"),
        (4, "项目代码", "补贴项目代码不存在"),
    ]
    assert report.errors[0].value == bad_id[:6] + "********" + bad_id[-4:]  # masked in the report
    assert apps_of(db, [p for *_, p in people], LOW_INCOME, "2027-02") == []


def test_registry_catalogue_duty_and_scope_problems_are_row_errors(db, demo):
    handler = demo["county_handler"]
    own = claimants(db, handler.region_code, LOW_INCOME, "2027-03", 5)
    other = db.scalar(select(Person.region_code).where(~within(Person.region_code, handler.region_code)).limit(1))
    [stranger] = claimants(db, other, LOW_INCOME, "2027-03", 1)
    rows = [
        [own[0][0], own[0][1] + "某", LOW_INCOME, "2027-03", None, None],  # name differs from the registry
        [own[1][0], own[1][1], LOW_INCOME, "2027Q1", None, None],  # a quarter for a monthly item
        [own[2][0], own[2][1], LOW_INCOME, "2027-03", "2", None],  # 2 persons on a per-person item
        [own[3][0], own[3][1], "ZS001", "2027", "3", None],  # 耕地地力保护: 农业农村, not 民政
        [stranger[0], stranger[1], LOW_INCOME, "2027-03", None, None],  # another county's resident
        [own[4][0], own[4][1], LOW_INCOME, "2027-03", None, None],
        [own[4][0], own[4][1], LOW_INCOME, "2027-3", None, None],  # the same claim twice in one list
    ]
    report = import_file(db, "applications", csv_bytes(HEADERS, rows), "l.csv", actor=handler, now=NOW)
    assert not report.ok
    found = {(e.row, e.column): e.reason for e in report.errors}
    assert found[(2, "姓名")] == "姓名与人员库中该身份证号的姓名不一致"
    assert "2026-11" in found[(3, "期次")]
    assert found[(4, "数量")] == "按“人”发放的项目数量固定为1"
    assert "不属于本部门" in found[(5, "项目代码")]
    assert found[(6, "身份证号")] == "该人员不在本辖区，不能为其申请"
    assert found[(8, "期次")] == "与第7行是同一人同一项目同一期次"
    assert len(report.errors) == 6


def test_a_clerk_may_not_load_a_list(db, demo):
    with pytest.raises(Forbidden):
        import_file(db, "applications", csv_bytes(HEADERS, []), "l.csv", actor=demo["village_clerk"], now=NOW)


# ---------------------------------------------------------------- Excel cells


def test_excel_number_and_date_cells_for_period_and_quantity(db, demo):
    finance = demo["city_finance"]
    [forest, monthly] = claimants(db, finance.region_code, FOREST, "2027", 2)
    rows = [
        [forest[0], forest[1], FOREST, 2027, 12.35, None],  # year and area stored as numbers
        [monthly[0], monthly[1], LOW_INCOME, datetime(2027, 4, 1), None, None],  # Excel made 2027-04 a date
    ]
    report = import_file(db, "applications", xlsx(HEADERS, rows), "l.xlsx", actor=finance, now=NOW)
    assert report.ok, report.errors
    [app] = apps_of(db, [forest[2]], FOREST, "2027")
    # 14.75 yuan per mu x 12.35 mu = 182.1625 -> 182.16 yuan
    assert (app.quantity_centi, app.amount_fen, app.basis) == (1235, 18216, "亩")
    assert len(apps_of(db, [monthly[2]], LOW_INCOME, "2027-04")) == 1

    [p] = claimants(db, finance.region_code, LOW_INCOME, "2027-05", 1)
    bad = [[p[0], p[1], LOW_INCOME, datetime(2027, 5, 15), None, None],
           [p[0], p[1], FOREST, 2027.1, "x", None]]
    report = import_file(db, "applications", xlsx(HEADERS, bad), "l.xlsx", actor=finance, now=NOW)
    found = {(e.row, e.column): e.reason for e in report.errors}
    assert "不是具体日期" in found[(2, "期次")]
    assert "被Excel存为数字" in found[(3, "期次")]
    assert found[(3, "数量")] == "数量应为数字，如 12.5"


def test_template_has_the_columns_and_reads_back():
    spec = KINDS["applications"]
    for fmt in ("csv", "xlsx"):
        table = read_table(template_bytes(spec, fmt))
        assert table.headers[:6] == HEADERS and table.rows == []
        assert match_headers(spec, table.headers)[1] == []


# ---------------------------------------------------------------- the command line and the page


def test_command_line_import_then_again(city, tmp_path):
    with new_session() as s:
        handler = s.scalar(select(User).where(User.username == "county_handler"))
        people = claimants(s, handler.region_code, LOW_INCOME, "2027-06", 2)
    path = tmp_path / "list.csv"
    path.write_bytes(csv_bytes(HEADERS, [[n, name, LOW_INCOME, "2027-06", None, None] for n, name, _ in people]))
    runner = CliRunner()
    first = runner.invoke(cli, ["import", "applications", str(path), "--user", "county_handler"])
    assert first.exit_code == 0, first.output
    assert "补贴申请名单导入完成" in first.output
    second = runner.invoke(cli, ["import", "applications", str(path), "--user", "county_handler"])
    assert second.exit_code == 1 and "已有在办或已通过的同项目申请" in second.output
    with new_session() as s:
        assert len(apps_of(s, [p for *_, p in people], LOW_INCOME, "2027-06")) == 2

    out = tmp_path / "template.xlsx"
    result = runner.invoke(cli, ["import", "template", "applications", str(out)])
    assert result.exit_code == 0 and read_table(out.read_bytes()).headers[:6] == HEADERS


@pytest.fixture(scope="module")
def web(city):
    from yikatong.web.app import create_app

    with TestClient(create_app(clock=FixedClock(NOW))) as c:
        yield c


def login(client: TestClient, username: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_upload_page_offers_the_list_to_handlers_and_enters_it(web):
    headers = login(web, "county_handler")
    page = web.get("/imports", headers=headers)
    assert page.status_code == 200 and 'value="applications"' in page.text and "补贴申请名单" in page.text
    clerk_page = web.get("/imports", headers=login(web, "village_clerk"))
    assert 'value="applications"' not in clerk_page.text

    with new_session() as s:
        handler = s.scalar(select(User).where(User.username == "county_handler"))
        people = claimants(s, handler.region_code, LOW_INCOME, "2027-07", 2)
    data = csv_bytes(HEADERS, [[n, name, LOW_INCOME, "2027-07", None, None] for n, name, _ in people])
    r = web.post("/imports", headers={**headers, "HX-Request": "true"}, data={"kind": "applications"},
                 files={"file": ("list.csv", data, "text/csv")})
    assert r.status_code == 200 and 'data-testid="import-ok"' in r.text
    r = web.post("/api/v1/imports/applications", headers=headers, files={"file": ("list.csv", data, "text/csv")})
    assert r.status_code == 422 and "已有在办或已通过的同项目申请" in r.json()["errors"][0]["reason"]
    with new_session() as s:
        assert len(apps_of(s, [p for *_, p in people], LOW_INCOME, "2027-07")) == 2
