"""The rule pages and the rule API: a supervisor writes, checks, dry-runs and switches on a rule
through the web client; the refusals appear next to the SQL; a village clerk gets 403; city finance
runs the city check from the button.

Requests commit, so every test uses a rule code nobody else uses, and a rule switched on is switched
off again before the test ends."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session, transaction
from yikatong.core.money import format_fen
from yikatong.interception import service
from yikatong.interception.models import Flag, Rule, RuleVersion
from yikatong.jobs.runner import Runner
from yikatong.security.models import AuditEvent
from yikatong.workflow.models import LIVE_STATUSES, Application

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PASSWORD = "ykt-demo-2026"
LIVE = LIVE_STATUSES


@pytest.fixture
def web(city):
    from yikatong.web.app import create_app

    with TestClient(create_app(clock=FixedClock(NOW))) as client:
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


@pytest.fixture
def only_my_rules(city):
    """Every active rule off during the test (a committed city run then flags nothing on the shared
    test city), and back on after it."""
    with transaction() as s:
        service.sync_builtin_rules(s, NOW)
        was_on = [r.code for r in s.scalars(select(Rule).where(Rule.active))]
        for r in s.scalars(select(Rule).where(Rule.code.in_(was_on))):
            r.active = False
    yield
    with transaction() as s:
        for r in s.scalars(select(Rule).where(Rule.code.in_(was_on))):
            r.active = True


def _code() -> str:
    return "W_" + uuid.uuid4().hex[:10].upper()


def _form(code: str, sql: str, action: str = "save", **kw) -> dict[str, str]:
    data = dict(code=code, name="网页测试规则", explanation="网页测试用的规则说明", severity="中", items="all", sql=sql,
                params="", action=action)
    data.update(kw)
    return data


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_supervisor_writes_dry_runs_and_activates_a_rule(web, auth):
    supervisor = auth("supervisor")
    with new_session() as s:
        apps = s.execute(select(Application.number, Application.amount_fen).where(Application.status.in_(LIVE))
                         .order_by(Application.id).limit(3)).all()
    assert len(apps) == 3
    listed = ", ".join(f"'{n}'" for n, _ in apps)
    sql = f"SELECT a.application_id, '网页测试命中 ' || a.number AS evidence FROM applications a " \
          f"WHERE a.number IN ({listed})"
    code = _code()

    page = web.get("/rules", headers=supervisor)
    assert page.status_code == 200
    assert "DECEASED" in page.text and 'href="/rules/new"' in page.text and "立即比对" in page.text

    # refusals appear next to the SQL, and what was typed stays in the form
    for bad, message in [("DELETE FROM applications", "不允许使用 DELETE"),
                         ("SELECT id AS application_id, username AS evidence FROM users", "不允许访问数据表 users"),
                         ("SELECT a.application_id, a.salary AS evidence FROM applications a", "salary"),
                         ("SELECT a.application_id FROM applications a",
                          "查询结果必须包含列：application_id、evidence"),
                         (f"{sql}; DELETE FROM applications", "只能包含一条SQL语句")]:
        r = web.post("/rules/new", data=_form(code, bad), headers=supervisor)
        assert r.status_code == 422, bad
        error = re.search(r'data-testid="rule-error">([^<]*)<', r.text)
        assert error and message in error.group(1), (bad, error)
        assert "网页测试规则" in r.text  # the form keeps what was typed
    with new_session() as s:
        assert s.get(Rule, code) is None  # nothing saved

    checked = web.post("/rules/new", data=_form(code, sql, action="check"), headers=supervisor)
    assert checked.status_code == 200 and 'data-testid="rule-checked"' in checked.text
    assert "校验通过" in checked.text
    with new_session() as s:
        assert s.get(Rule, code) is None  # checking saves nothing

    saved = web.post("/rules/new", data=_form(code, sql), headers=supervisor, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == f"/rules/{code}?saved=1"
    page = web.get(saved.headers["location"], headers=supervisor)
    assert page.status_code == 200
    assert "已保存第1版（未启用）" in page.text and "尚未试运行" in page.text
    assert f'action="/rules/{code}/versions/1/dry-run"' in page.text

    refused = web.post(f"/rules/{code}/versions/1/activate", headers=supervisor, follow_redirects=False)
    assert refused.status_code == 422 and "请先试运行" in refused.text

    started = web.post(f"/rules/{code}/versions/1/dry-run", headers=supervisor, follow_redirects=False)
    assert started.status_code == 303 and started.headers["location"].startswith("/jobs/")  # a job, not run here
    assert Runner(FixedClock(NOW)).run_once() == int(started.headers["location"].rsplit("/", 1)[1])
    job = web.get(started.headers["location"], headers=supervisor)
    assert 'data-testid="job-done"' in job.text
    dry = web.get(re.search(r'href="([^"]+)" data-testid="job-result-link"', job.text).group(1), headers=supervisor)
    assert dry.status_code == 200 and 'data-testid="dry-run"' in dry.text
    assert re.search(r'data-testid="dry-hits">3<', dry.text)
    total = format_fen(sum(a for _, a in apps))
    assert f'data-testid="dry-amount">{total}<' in dry.text
    sample = dry.text.split('data-testid="dry-sample"')[1].split("</table>")[0]
    assert all(n in sample for n, _ in apps)
    assert f'action="/rules/{code}/versions/1/activate"' in dry.text
    with new_session() as s:
        assert s.scalar(select(Flag.id).where(Flag.rule_code == code)) is None  # a dry run raises no flag

    on = web.post(f"/rules/{code}/versions/1/activate", headers=supervisor, follow_redirects=False)
    try:
        assert on.status_code == 303
        page = web.get(on.headers["location"], headers=supervisor)
        assert "已启用 · 第1版" in page.text and "正在运行" in page.text
        assert "命中 3 笔" in _text(page.text)
        listing = web.get("/rules", headers=supervisor)
        row = listing.text.split(f'data-testid="rule-{code}"')[1].split("</tr>")[0]
        assert "第1版" in row and "监督人员" in row

        # a new version starts from the latest one; the first stays as it was
        form = web.get(f"/rules/new?code={code}", headers=supervisor)
        assert "保存后成为规则" in form.text and f'value="{code}"' in form.text
        v2 = web.post("/rules/new", data=_form(code, sql.replace("网页测试命中", "第二版命中")), headers=supervisor,
                      follow_redirects=False)
        assert v2.headers["location"] == f"/rules/{code}?saved=2"
        page = web.get(f"/rules/{code}", headers=supervisor)
        assert 'data-testid="version-2"' in page.text and 'data-testid="version-1"' in page.text
        assert "已启用 · 第1版" in page.text  # still version 1 until version 2 is dry-run and switched on
    finally:
        off = web.post(f"/rules/{code}/deactivate", headers=supervisor, follow_redirects=False)
    assert off.status_code == 303
    assert "未启用" in web.get(f"/rules/{code}", headers=supervisor).text
    with new_session() as s:
        rule = s.get(Rule, code)
        assert (rule.active, rule.latest_version) == (False, 2)
        actions = set(s.scalars(select(AuditEvent.action).where(AuditEvent.object_id == code)))
        assert {"rule.save", "rule.dry_run", "rule.activate", "rule.deactivate"} <= actions


def test_builtin_rules_are_copied_not_changed(web, auth):
    supervisor = auth("supervisor")
    form = web.get("/rules/new?code=DECEASED", headers=supervisor)
    assert form.status_code == 200
    assert "内置规则 DECEASED 不能修改" in form.text and 'name="code" value=""' in form.text
    assert "deaths" in form.text  # its SQL is the draft
    sql = "SELECT a.application_id, 'x' AS evidence FROM applications a WHERE a.application_id < 0"
    r = web.post("/rules/new", data=_form("DECEASED", sql), headers=supervisor)
    assert r.status_code == 403 and "内置规则不能修改，请另建规则" in r.text
    page = web.get("/rules/DECEASED", headers=supervisor)
    assert page.status_code == 200 and "复制为新规则" in page.text and "死亡" in page.text


def test_village_clerk_and_city_finance_duties(web, auth):
    clerk = auth("village_clerk")
    for method, url in [("get", "/rules"), ("get", "/rules/new"), ("get", "/rules/DECEASED"),
                        ("post", "/rules/run"), ("post", "/rules/DECEASED/deactivate"), ("get", "/api/v1/rules")]:
        r = getattr(web, method)(url, headers=clerk, follow_redirects=False)
        assert r.status_code == 403, url
    r = web.post("/rules/new", data=_form(_code(), "SELECT 1"), headers=clerk)
    assert r.status_code == 403
    r = web.post("/api/v1/rules/check", json={"sql": "SELECT 1"}, headers=clerk)
    assert r.status_code == 403
    assert 'href="/rules"' not in web.get("/", headers=clerk).text

    finance = auth("city_finance")  # runs the checks, does not write rules
    page = web.get("/rules", headers=finance)
    assert page.status_code == 200 and "立即比对" in page.text and 'href="/rules/new"' not in page.text
    assert web.get("/rules/new", headers=finance).status_code == 403
    assert web.post("/rules/DECEASED/versions/1/dry-run", headers=finance).status_code == 403


def test_run_now_button(web, auth, only_my_rules):
    finance = auth("city_finance")
    page = web.get("/rules", headers=finance)
    assert 'data-testid="run-now"' in page.text
    r = web.post("/rules/run", headers=finance, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/jobs/")  # the worker runs it
    Runner(FixedClock(NOW)).run_once()
    job = web.get(r.headers["location"], headers=finance)
    page = web.get(re.search(r'href="([^"]+)" data-testid="job-result-link"', job.text).group(1), headers=finance)
    assert 'data-testid="run-done"' in page.text and "比对完成" in page.text
    assert 'data-testid="runs"' in page.text
    assert web.get("/static/js/rules.js").status_code == 200


def test_rule_api(web, auth):
    supervisor = auth("supervisor")
    r = web.post("/api/v1/rules/check", json={"sql": "SELECT * FROM read_csv('/etc/passwd')"}, headers=supervisor)
    assert r.status_code == 200 and r.json()["ok"] is False
    assert "read_csv" in r.json()["message"]
    sql = "SELECT a.application_id, 'API' AS evidence FROM applications a WHERE a.amount_fen < $floor_fen"
    r = web.post("/api/v1/rules/check", json={"sql": sql, "params": {"floor_fen": 0}}, headers=supervisor)
    body = r.json()
    assert body["ok"] is True and body["tables"] == ["applications"] and body["datasets"] == []
    assert body["columns"] == ["application_id", "evidence"]

    code = _code()
    rule = dict(code=code, name="接口测试规则", explanation="接口测试", severity="低", items="means_tested", sql=sql,
                params={"floor_fen": 0})
    r = web.post("/api/v1/rules", json=rule, headers=supervisor)
    assert r.status_code == 201, r.text
    v = r.json()
    assert (v["code"], v["version"], v["running"], v["params"], v["dry_run_at"]) == (code, 1, False,
                                                                                     {"floor_fen": 0}, None)
    r = web.post("/api/v1/rules", json=dict(rule, sql="SELECT 1 AS application_id", params={}), headers=supervisor)
    assert r.status_code == 422 and "查询结果必须包含列" in r.json()["detail"]
    r = web.post("/api/v1/rules", json=dict(rule, code="DECEASED"), headers=supervisor)
    assert r.status_code == 403 and "内置规则不能修改" in r.json()["detail"]

    r = web.post(f"/api/v1/rules/{code}/versions/1/activate", headers=supervisor)
    assert r.status_code == 422 and "请先试运行" in r.json()["detail"]
    r = web.post(f"/api/v1/rules/{code}/versions/1/dry-run", headers=supervisor)
    assert r.status_code == 202, r.text  # queued: the request itself runs nothing
    job_url = r.json()["url"]
    assert web.get(job_url, headers=supervisor).json()["status"] == "排队中"
    assert Runner(FixedClock(NOW)).run_once() == r.json()["job_id"]
    result = web.get(job_url, headers=supervisor).json()["result"]
    assert (result["hits"], result["amount_fen"], result["sample"]) == (0, 0, [])
    assert result["applications"] > 0
    r = web.post(f"/api/v1/rules/{code}/versions/1/activate", headers=supervisor)
    try:
        assert r.status_code == 200 and (r.json()["active"], r.json()["active_version"]) == (True, 1)
        listed = {x["code"]: x for x in web.get("/api/v1/rules", headers=supervisor).json()}
        assert listed[code]["active"] and listed["DECEASED"]["origin"] == "内置"
        got = web.get(f"/api/v1/rules/{code}/versions/1", headers=supervisor).json()
        assert got["running"] is True and got["dry_run_hits"] == 0
    finally:
        r = web.post(f"/api/v1/rules/{code}/deactivate", headers=supervisor)
    assert r.status_code == 200 and r.json()["active"] is False
    assert web.post(f"/api/v1/rules/{code}/versions/9/dry-run", headers=supervisor).status_code == 404
    with new_session() as s:
        assert s.scalar(select(RuleVersion.dry_run_hits).where(RuleVersion.rule_code == code)) == 0


@pytest.mark.browser
def test_in_a_browser_a_rule_is_written_and_the_run_shows_its_progress(browser, serve, city, only_my_rules, tmp_path):
    from yikatong.web.app import create_app

    server = serve(create_app(clock=FixedClock(NOW)))
    problems: list[str] = []
    context = browser.new_context()
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{server}/login")
    page.fill("#username", "supervisor")
    page.fill("#password", PASSWORD)
    with page.expect_navigation(url=f"{server}/"):
        page.click("button[type=submit]")

    page.click("nav >> text=比对规则")
    page.click("[data-testid=new-rule]")
    code = _code()
    page.fill("[data-testid=rule-code]", code)
    page.fill("[data-testid=rule-name]", "浏览器测试规则")
    page.fill("[data-testid=rule-explanation]", "浏览器测试用的规则说明")
    page.fill("[data-testid=rule-sql]", "SELECT a.application_id, 'x' AS evidence FROM applications a, "
                                        "read_csv('/etc/passwd') f")
    page.click("[data-testid=rule-save]")
    assert "read_csv" in page.inner_text("[data-testid=rule-error]")
    page.fill("[data-testid=rule-sql]", "SELECT a.application_id, 'x' AS evidence FROM applications a "
                                        "WHERE a.application_id < 0")
    with page.expect_navigation(url=f"**/rules/{code}?saved=1"):
        page.click("[data-testid=rule-save]")
    # the dry run is a job: its page polls (htmx) until the worker has run it, then links to the figures
    with page.expect_navigation(url="**/jobs/*"):
        page.click("[data-testid=dry-run-1]")
    assert page.inner_text("[data-testid=job-state]") == "排队中"
    stop = threading.Event()

    def worker() -> None:
        runner = Runner(FixedClock(NOW), beat_seconds=0.2)
        while not stop.wait(0.2):
            runner.run_pending(stop.is_set)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        page.wait_for_selector("[data-testid=job-result-link]", timeout=60_000)
        page.click("[data-testid=job-result-link]")
        assert page.inner_text("[data-testid=dry-hits]") == "0"
        page.screenshot(path=str(tmp_path / "rule.png"), full_page=True)

        # 立即比对: the page answers at once with the job's page, which shows the run's end
        page.goto(f"{server}/rules")
        with page.expect_navigation(url="**/jobs/*"):
            page.click("[data-testid=run-now]")
        assert "全市比对" in page.inner_text("[data-testid=job]")
        page.wait_for_selector("[data-testid=job-result-link]", timeout=60_000)
        page.click("[data-testid=job-result-link]")
        page.wait_for_selector("[data-testid=run-done]")
    finally:
        stop.set()
        thread.join(60)
    assert problems == []
    context.close()
