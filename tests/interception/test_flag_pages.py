"""Flags and statistics over HTTP: the list and the flag page within scope, verification through the
page by the county department (confirm -> application rejected + a lead + trail; clear -> needs an
opinion), refusals (village clerk 403, another county 403, twice 409), the 存疑信息 box of the
application page, the JSON API, and the statistics page with its Excel download.

The app's requests commit, so the test data is committed too: fresh persons of the demo village
(born in 1885, no synthetic resident is), applications entered through the counter's code path
(workflow.service.prepare_claims and enter_claims, unscreened), and flags of a rule of our own
(TEST_H5_PAGES, inactive, so no screening ever raises it)."""

from __future__ import annotations

import io
import itertools
import uuid
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select

from yikatong.catalog.models import Bank
from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session, transaction
from yikatong.core.idnumber import make_id_number
from yikatong.core.protect import protect
from yikatong.interception.models import Flag, FlagStatus, Lead, Rule, RuleVersion
from yikatong.interception.screening import refresh_open_flags
from yikatong.registry.documents import read_document
from yikatong.registry.models import Card, CardStatus, Person, Region, RegionLevel
from yikatong.security.models import User
from yikatong.security.roles import Role
from yikatong.security.service import create_user
from yikatong.synth.catalog_data import department_code
from yikatong.workflow import service as workflow
from yikatong.workflow.models import Application, ReviewRecord, Source, Status

from .test_stats import make_flag, make_rule

PASSWORD = "ykt-demo-2026"
RULE = "TEST_H5_PAGES"
LOW_INCOME = "ZS007"  # 农村低保 (民政: the demo county handler's department)
MONDAY = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
_serial = itertools.count(1)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MONDAY)


@pytest.fixture
def web(city, clock):
    from yikatong.web.app import create_app

    with TestClient(create_app(clock=clock)) as client:
        yield client


@pytest.fixture
def auth(web):
    tokens: dict[str, str] = {}

    def headers(username: str) -> dict[str, str]:
        if username not in tokens:
            r = web.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
            assert r.status_code == 200, r.text
            tokens[username] = r.json()["token"]
        return {"Authorization": f"Bearer {tokens[username]}"}

    return headers


@pytest.fixture(scope="module")
def rule_version(city) -> int:
    """The committed test rule (once per run)."""
    with transaction() as s:
        existing = s.scalar(select(RuleVersion.id).where(RuleVersion.rule_code == RULE))
        if existing:
            return existing
        return make_rule(s, RULE, "测试规则（页面）", MONDAY).id


def flagged(evidences: tuple[str, ...] = ("测试：户籍已注销",), amount_fen: int = 56000) -> tuple[int, list[int]]:
    """A committed 农村低保 application of a fresh person of the clerk's village, with one open flag of
    the test rule per evidence. Returns (application id, flag ids)."""
    with transaction() as s:
        clerk = s.scalar(select(User).where(User.username == "village_clerk"))
        village = clerk.region_code
        bank = s.scalars(select(Bank).order_by(Bank.code)).first()
        n = next(_serial)
        birth = date(1885, 1 + n // 28 % 12, 1 + n % 28)
        number = protect("id_number", make_id_number(village[:6], birth, n % 500, n % 2 == 0))
        person = Person(id_number_enc=number.enc, id_number_hash=number.hash, id_number_masked=number.masked,
                        name=f"核实{'甲乙丙丁戊己庚辛壬癸'[n % 10]}", gender="男" if n % 2 == 0 else "女",
                        birth_date=birth, region_code=village, is_beneficiary=True, has_active_card=True,
                        created_at=MONDAY, updated_at=MONDAY)
        s.add(person)
        s.flush()
        account = protect("bank_account", f"{bank.account_prefix}{950000000 + n:011d}")
        s.add(Card(card_number=f"H5{n:010d}", person_id=person.id, bank_code=bank.code,
                   bank_account_enc=account.enc, bank_account_hash=account.hash,
                   bank_account_masked=account.masked, status=CardStatus.ACTIVE.value, issued_on=date(2020, 1, 1),
                   created_at=MONDAY, updated_at=MONDAY))
        s.flush()
        # The counter's code path (prepare + enter), without screening: the synthetic city's shared data
        # would flag these fresh persons (no hukou record), and these tests count only their own flags.
        prepared = workflow.prepare_claims(s, clerk, [workflow.Claim(ref=1, person_id=person.id, item_code=LOW_INCOME,
                                                                     period="2026-11")], Source.COUNTER, MONDAY)
        [app_id] = workflow.enter_claims(s, clerk, prepared, Source.COUNTER, MONDAY, screen=False)
        app = s.get(Application, app_id)
        version = s.scalar(select(RuleVersion).where(RuleVersion.rule_code == RULE))
        flags = [make_flag(s, app, version, amount_fen, MONDAY, evidence=f"{e}（{n}）").id for e in evidences]
        refresh_open_flags(s, [app.id])
        return app.id, flags


def actions(app_id: int) -> list[str]:
    with new_session() as s:
        return list(s.scalars(select(ReviewRecord.action).where(ReviewRecord.application_id == app_id)
                              .order_by(ReviewRecord.id)))


def flag_row(flag_id: int) -> Flag:
    with new_session() as s:
        return s.get(Flag, flag_id)


# ---------------------------------------------------------------- verification through the page


def test_the_county_department_confirms_on_the_page(web, auth, rule_version, clock):
    app_id, [flag_id] = flagged(("测试：火化记录显示已死亡",))
    handler = auth("county_handler")

    listing = web.get(f"/flags?rule={RULE}", headers=handler)
    assert listing.status_code == 200 and f"/flags/{flag_id}" in listing.text
    assert "测试：火化记录显示已死亡" in listing.text and f"/applications/{app_id}" in listing.text

    page = web.get(f"/flags/{flag_id}", headers=handler)
    assert page.status_code == 200
    assert 'data-testid="verify-form"' in page.text and "该申请将被否决" in page.text
    assert f'href="/rules/{RULE}"' in page.text and "第1版" in page.text

    detail = web.get(f"/applications/{app_id}", headers=handler)
    assert 'data-testid="application-flags"' in detail.text
    assert "存疑信息未核实，不能通过县定环节和发放" in detail.text and "测试：火化记录显示已死亡" in detail.text

    evidence = "殡葬管理所出具的火化证明".encode()
    r = web.post(f"/flags/{flag_id}/verify", headers=handler, follow_redirects=False,
                 data={"decision": "confirm", "opinion": "经入户核实，本人已于10月死亡"},
                 files={"document": ("火化证明.txt", evidence, "text/plain")})
    assert r.status_code == 303 and r.headers["location"] == f"/flags/{flag_id}?msg=confirm"
    done = web.get(r.headers["location"], headers=handler)
    assert "已核实属实" in done.text and 'data-testid="verify-form"' not in done.text

    flag = flag_row(flag_id)
    assert flag.status == FlagStatus.CONFIRMED and flag.opinion == "经入户核实，本人已于10月死亡"
    assert read_document(flag.evidence_document) == evidence
    with new_session() as s:
        app = s.get(Application, app_id)
        assert app.status == Status.REJECTED and app.open_flags == 0
        lead = s.scalars(select(Lead).where(Lead.flag_id == flag_id)).one()
        assert (lead.application_id, lead.rule_code, lead.amount_fen) == (app_id, RULE, flag.amount_fen)
    assert actions(app_id)[-2:] == ["核实属实", "否决"]

    download = web.get(f"/flags/{flag_id}/document", headers=handler)
    assert download.status_code == 200 and download.content == evidence
    after = web.get(f"/applications/{app_id}", headers=handler)
    assert "核实属实" in after.text and "存疑信息未核实，不能通过县定环节和发放" not in after.text


def test_clearing_needs_an_opinion_and_happens_once(web, auth, rule_version):
    app_id, [flag_id, other_id] = flagged(("测试：车辆登记", "测试：工商登记"))
    handler = auth("county_handler")

    page = web.get(f"/flags/{flag_id}", headers=handler)
    assert 'data-testid="other-flags"' in page.text and "测试：工商登记" in page.text

    r = web.post(f"/flags/{flag_id}/verify", headers=handler, data={"decision": "clear", "opinion": "  "},
                 files={"document": ("", b"", "application/octet-stream")})  # a file input left empty
    assert r.status_code == 422 and "请填写核实意见" in r.text
    assert flag_row(flag_id).status == FlagStatus.OPEN

    r = web.post(f"/flags/{flag_id}/verify", headers=handler, follow_redirects=False,
                 data={"decision": "clear", "opinion": "车辆已于申请前转让，有转让合同"},
                 files={"document": ("", b"", "application/octet-stream")})
    assert r.status_code == 303
    flag = flag_row(flag_id)
    assert flag.status == FlagStatus.CLEARED and flag.evidence_document is None
    assert actions(app_id)[-1] == "核实排除"
    with new_session() as s:
        app = s.get(Application, app_id)
        assert app.status == Status.OPEN and app.open_flags == 1  # the other flag is still open
        assert s.scalar(select(func.count()).select_from(Lead).where(Lead.flag_id == flag_id)) == 0

    again = web.post(f"/flags/{flag_id}/verify", headers=handler, data={"decision": "confirm", "opinion": "再次"})
    assert again.status_code == 409 and "不能重复核实" in again.text
    api = web.post(f"/api/v1/flags/{flag_id}/verify", headers=handler, json={"decision": "confirm", "opinion": "再次"})
    assert api.status_code == 409 and "不能重复核实" in api.json()["detail"]
    assert flag_row(other_id).status == FlagStatus.OPEN


def test_a_village_clerk_cannot_read_or_verify_flags(web, auth, rule_version):
    app_id, [flag_id] = flagged(("测试：财政供养人员",))
    clerk = auth("village_clerk")
    assert web.get("/flags", headers=clerk).status_code == 403
    assert web.get(f"/flags/{flag_id}", headers=clerk).status_code == 403
    r = web.post(f"/flags/{flag_id}/verify", headers=clerk, data={"decision": "clear", "opinion": "无问题"})
    assert r.status_code == 403
    r = web.post(f"/api/v1/flags/{flag_id}/verify", headers=clerk, json={"decision": "clear", "opinion": "无问题"})
    assert r.status_code == 403
    assert flag_row(flag_id).status == FlagStatus.OPEN
    # the clerk's application page says it is held, without the evidence (flags are read by departments)
    detail = web.get(f"/applications/{app_id}", headers=clerk)
    assert "存疑信息未核实，不能通过县定环节和发放" in detail.text and "测试规则（页面）" in detail.text
    assert "测试：财政供养人员" not in detail.text and f"/flags/{flag_id}" not in detail.text


def test_another_county_neither_sees_nor_verifies(web, auth, rule_version, clock):
    _, [flag_id] = flagged(("测试：服刑人员",))
    with transaction() as s:
        county = s.scalar(select(Region.code).where(Region.level == RegionLevel.COUNTY.value,
                                                    Region.code != "511025000000").order_by(Region.code))
        username = f"h5ch_{uuid.uuid4().hex[:8]}"
        create_user(s, username, PASSWORD, Role.COUNTY_HANDLER, county, "另一县民政局 经办员", clock.now(),
                    department_code=department_code(county, "民政"))
    other = auth(username)
    assert web.get(f"/flags/{flag_id}", headers=other).status_code == 403
    listed = web.get(f"/api/v1/flags?rule={RULE}&status=all", headers=other).json()
    assert listed["rows"] == [] and listed["total"] == 0
    r = web.post(f"/api/v1/flags/{flag_id}/verify", headers=other, json={"decision": "clear", "opinion": "无问题"})
    assert r.status_code == 403 and flag_row(flag_id).status == FlagStatus.OPEN


# ---------------------------------------------------------------- the JSON API


def test_api_lists_filters_and_verifies(web, auth, rule_version):
    app_id, [first, second] = flagged(("测试：名下房产3套", "测试：领取养老金"), amount_fen=56000)
    handler = auth("county_handler")

    r = web.get(f"/api/v1/flags?rule={RULE}", headers=handler)
    assert r.status_code == 200
    body = r.json()
    ids = [row["id"] for row in body["rows"]]
    assert {first, second} <= set(ids) and ids == sorted(ids, reverse=True)  # newest first
    assert all(row["status"] == "待核实" for row in body["rows"])  # the default filter
    assert body["counts"]["待核实"] == body["total"] >= 2 and body["size"] == 50
    row = next(row for row in body["rows"] if row["id"] == first)
    assert row["application_id"] == app_id and row["rule_name"] == "测试规则（页面）" and row["amount_fen"] == 56000
    assert "*" in row["id_number_masked"] and row["item_code"] == LOW_INCOME

    with new_session() as s:
        village = s.get(Application, app_id).region_code
    narrowed = web.get(f"/api/v1/flags?rule={RULE}&region={village}&item={LOW_INCOME}", headers=handler).json()
    assert {first, second} <= {row["id"] for row in narrowed["rows"]}
    assert web.get(f"/api/v1/flags?rule={RULE}&item=ZS001", headers=handler).json()["total"] == 0
    assert web.get("/api/v1/flags?status=无此状态", headers=handler).status_code == 422
    assert web.get("/api/v1/flags?region=510000", headers=handler).status_code == 403  # above the county

    one = web.get(f"/api/v1/flags/{first}", headers=handler).json()
    assert one["rule"]["code"] == RULE and one["rule"]["version"] == 1 and one["can_verify"] is True
    assert one["application"]["number"] and one["application"]["open_flags"] == 2
    assert [o["id"] for o in one["other_flags"]] == [second]

    missing = web.post(f"/api/v1/flags/{first}/verify", headers=handler, json={"decision": "clear", "opinion": ""})
    assert missing.status_code == 422 and "核实意见" in missing.json()["detail"]
    bad = web.post(f"/api/v1/flags/{first}/verify", headers=handler,
                   json={"decision": "clear", "opinion": "x", "document_sha256": "a" * 64})
    assert bad.status_code == 422 and "证明材料不存在" in bad.json()["detail"]
    done = web.post(f"/api/v1/flags/{first}/verify", headers=handler,
                    json={"decision": "confirm", "opinion": "房产登记核实属实"})
    assert done.status_code == 200
    out = done.json()
    assert out["status"] == "核实属实" and out["application"]["status"] == "已否决"
    assert out["verified_by_name"] and out["can_verify"] is False
    confirmed = web.get(f"/api/v1/flags?rule={RULE}&status=核实属实", headers=handler).json()
    assert first in {row["id"] for row in confirmed["rows"]}
    assert actions(app_id)[-2:] == ["核实属实", "否决"]


def test_the_supervisor_reads_but_does_not_verify(web, auth, rule_version):
    _, [flag_id] = flagged(("测试：工商登记存续",))
    supervisor = auth("supervisor")
    page = web.get(f"/flags/{flag_id}", headers=supervisor)
    assert page.status_code == 200 and 'data-testid="verify-form"' not in page.text
    r = web.post(f"/api/v1/flags/{flag_id}/verify", headers=supervisor, json={"decision": "clear", "opinion": "x"})
    assert r.status_code == 403


# ---------------------------------------------------------------- statistics


def test_the_supervisor_sees_statistics_and_downloads_them(web, auth, rule_version):
    flagged(("测试：统计一",), amount_fen=12345)
    supervisor = auth("supervisor")

    page = web.get("/interception/stats", headers=supervisor)
    assert page.status_code == 200
    assert "拦截统计" in page.text and "测试规则（页面）" in page.text and 'id="stats-data"' in page.text
    assert 'data-testid="by-rule-total"' in page.text and "/static/js/stats.js" in page.text
    assert "<script>" not in page.text  # charts are drawn by a static file (CSP)

    api = web.get("/api/v1/interception/stats", headers=supervisor).json()
    total = api["total"]
    for key in ("by_rule", "by_item", "by_region", "by_month"):
        assert sum(r["flags"] for r in api[key]) == total["flags"], key
        assert sum(r["amount_fen"] for r in api[key]) == total["amount_fen"], key
    ours = next(r for r in api["by_rule"] if r["key"] == RULE)
    assert ours["flags"] >= 1 and ours["name"] == "测试规则（页面）"
    assert api["group_length"] == 6

    xlsx = web.get("/interception/stats.xlsx", headers=supervisor)
    assert xlsx.status_code == 200 and "spreadsheetml" in xlsx.headers["content-type"]
    book = load_workbook(io.BytesIO(xlsx.content))
    rows = list(book["按规则"].iter_rows(values_only=True))
    mine = next(r for r in rows if r[0] == RULE)
    assert mine[2] == ours["flags"]
    assert rows[-1][0] == "合计" and rows[-1][2] == total["flags"]

    drilled = web.get("/interception/stats?region=511025", headers=supervisor)
    assert drilled.status_code == 200 and "按乡镇（街道）" in drilled.text
    bad = web.get("/interception/stats?date_from=2026-12-01&date_to=2026-11-01", headers=supervisor)
    assert bad.status_code == 422


def test_statistics_stay_in_the_county(web, auth, rule_version):
    handler = auth("county_handler")
    assert web.get("/interception/stats", headers=handler).status_code == 200
    with new_session() as s:
        other = s.scalar(select(Region.code).where(Region.level == RegionLevel.COUNTY.value,
                                                   Region.code != "511025000000").order_by(Region.code))
        assert s.scalar(select(Rule.name).where(Rule.code == RULE)) == "测试规则（页面）"
    assert web.get(f"/interception/stats?region={other[:6]}", headers=handler).status_code == 403
    assert web.get(f"/api/v1/interception/stats?region={other[:6]}", headers=handler).status_code == 403
    assert web.get("/interception/stats", headers=auth("village_clerk")).status_code == 403


# ---------------------------------------------------------------- in a real browser


@pytest.mark.browser
def test_in_a_browser_the_charts_draw_and_a_flag_is_confirmed(browser, serve, rule_version, clock, tmp_path):
    from yikatong.web.app import create_app

    app_id, [flag_id] = flagged(("测试：浏览器核实",))
    server = serve(create_app(clock=clock))
    problems: list[str] = []
    context = browser.new_context()
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{server}/login")
    page.fill("#username", "county_handler")
    page.fill("#password", PASSWORD)
    with page.expect_navigation(url=f"{server}/"):
        page.click("button[type=submit]")

    page.goto(f"{server}/interception/stats")
    for chart in ("rules", "regions", "items", "months"):  # ECharts draws into a canvas in each box
        page.wait_for_selector(f"#chart-{chart} canvas")

    page.goto(f"{server}/flags?rule={RULE}")
    page.click(f"a[href='/flags/{flag_id}']")
    page.fill("[data-testid=verify-opinion]", "经核实情况属实")
    evidence = tmp_path / "核实记录.txt"
    evidence.write_text("入户核实记录", encoding="utf-8")
    page.set_input_files("[data-testid=verify-document]", str(evidence))
    page.once("dialog", lambda d: d.accept())  # the warning that the application will be rejected
    with page.expect_navigation(url=f"**/flags/{flag_id}?msg=confirm"):
        page.click("[data-testid=confirm]")
    assert page.inner_text("[data-testid=flag-status]") == "核实属实"
    page.click("[data-testid=application-link]")
    page.wait_for_url(f"**/applications/{app_id}")
    assert page.inner_text("[data-testid=status]") == "已否决"
    assert problems == []
    context.close()
