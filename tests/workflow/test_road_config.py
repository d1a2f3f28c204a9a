"""Per-item roads (审核流程配置): what configure_road refuses, where counter applications and department
lists enter, the page that city finance edits (and nobody else), the JSON view, `ykt road`.

Items used here and nowhere else (no other test, no demo story): SD089 村民小组长误工补贴 and SD088
离任村干部生活补助 are reconfigured inside the test's own transaction (rolled back); SD090 村级后备
干部补助 is changed through the page and the command line, which commit, and is put back to the
default road after each test."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from typer.testing import CliRunner

from yikatong.catalog.models import SubsidyItem
from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session, transaction
from yikatong.core.errors import Invalid
from yikatong.security.models import AuditEvent
from yikatong.workflow import service
from yikatong.workflow.models import Action, Application, RoadStep, Source, Step
from yikatong.workflow.road import Station, change_road, configure_road, default_road, road_for

from .conftest import MONDAY

DEMO_PASSWORD = "ykt-demo-2026"
COUNTER_ONLY = "SD089"  # rolled back
LISTED = "SD088"  # rolled back
EDITED = "SD090"  # committed by the page and the CLI: restored
V, P, T, C, M = Step.VILLAGE, Step.PUBLICITY, Step.TOWNSHIP, Step.COUNTY, Step.CITY


def stations(*steps: Step, days: int = 5, remind: int = 1, entry: Step | None = None) -> list[Station]:
    return [Station(s, days, remind, s is entry) for s in steps]


@pytest.mark.parametrize(("road", "message"), [
    ([], "至少要有一个环节"),
    (stations(V, P, T, C), "须经“市管”"),
    (stations(T, V, M), "顺序"),
    (stations(P, T, M), "“公示”须在“村评”之后"),
    (stations(V, V, M), "不能重复"),
    (stations(Step.APPLY, M), "户报"),
    ([Station(V, 5, 1, True), Station(C, 10, 1, True), Station(M, 5, 1, False)], "只能有一个环节接收部门名单"),
    (stations(V, M, days=0), "1至90天"),
    (stations(V, M, days=91), "1至90天"),
    (stations(V, M, days=3, remind=3), "提前提醒天数应小于时限"),
])
def test_configure_road_refuses_what_is_not_a_road(city, db, road, message):
    item = db.get(SubsidyItem, COUNTER_ONLY)
    with pytest.raises(Invalid, match=message):
        configure_road(db, item, road)
    assert road_for(db, item) == default_road(item)  # nothing written


def test_an_item_without_village_steps_starts_at_the_township(db, users, claimant, clock):
    item = db.get(SubsidyItem, COUNTER_ONLY)
    configure_road(db, item, [Station(T, 3, 1, False), Station(C, 10, 2, True), Station(M, 5, 1, False)])
    app = service.accept(db, users["village_clerk"], person_id=claimant(COUNTER_ONLY).id, item_code=COUNTER_ONLY,
                         period="2026-11", now=clock.now())
    assert app.stage == Step.TOWNSHIP and app.owner_region == users["township_reviewer"].region_code
    assert str(app.due_on) == "2026-12-03"  # Monday + 3 working days
    today = clock.now().date()
    assert app.id in service.inbox_ids(db, users["township_reviewer"], service.InboxFilter(), today)
    assert app.id not in service.inbox_ids(db, users["village_clerk"], service.InboxFilter(), today)
    service.decide(db, app, users["township_reviewer"], Action.APPROVE, "", clock.now())
    assert app.stage == Step.COUNTY and str(app.remind_on) == "2026-12-10"  # due 14 Dec, reminded 2 days before


def _list_claim(db, users, claimant, clock):
    person = claimant(LISTED)
    prepared = service.prepare_claims(db, users["city_finance"], [service.Claim(
        ref=1, person_id=person.id, item_code=LISTED, period="2026-11")], Source.LIST, clock.now())
    assert not prepared.errors
    [app_id] = service.enter_claims(db, users["city_finance"], prepared, Source.LIST, clock.now())
    return prepared, db.get(Application, app_id)


def test_the_list_entry_station_decides_where_department_lists_land(db, users, claimant, clock):
    item = db.get(SubsidyItem, LISTED)
    today = clock.now().date()
    _, default = _list_claim(db, users, claimant, clock)  # the default road: lists enter at 县定
    assert default.stage == Step.COUNTY and default.owner_region == "511025000000"

    configure_road(db, item, [Station(V, 5, 1, True), Station(P, 7, 1, False), Station(T, 5, 1, False),
                              Station(C, 10, 1, False), Station(M, 5, 1, False)])
    prepared, at_village = _list_claim(db, users, claimant, clock)
    assert prepared.entry[LISTED] == Step.VILLAGE
    assert at_village.stage == Step.VILLAGE and at_village.owner_region == at_village.region_code
    assert at_village.id in service.inbox_ids(db, users["village_clerk"], service.InboxFilter(), today)

    configure_road(db, item, [Station(V, 5, 1, False), Station(C, 10, 1, True), Station(M, 5, 1, False)])
    _, at_county = _list_claim(db, users, claimant, clock)
    assert at_county.stage == Step.COUNTY
    counter = service.accept(db, users["village_clerk"], person_id=claimant(LISTED).id, item_code=LISTED,
                             period="2026-11", now=clock.now())
    assert counter.stage == Step.VILLAGE  # the village counter always starts at the first station


def test_a_station_with_waiting_applications_cannot_be_dropped(db, users, claimant, clock):
    item = db.get(SubsidyItem, COUNTER_ONLY)
    service.accept(db, users["village_clerk"], person_id=claimant(COUNTER_ONLY).id, item_code=COUNTER_ONLY,
                   period="2026-11", now=clock.now())
    with pytest.raises(Invalid, match="“村评”1件"):
        change_road(db, item, stations(T, M), users["city_finance"], clock.now())
    change_road(db, item, stations(V, T, M), users["city_finance"], clock.now())  # 村评 stays: fine
    assert road_for(db, item).steps == [V, T, M]


# ---------------------------------------------------------------- the page, the API, the CLI


@pytest.fixture
def restore_edited(city):
    yield
    with transaction() as s:
        s.execute(delete(RoadStep).where(RoadStep.item_code == EDITED))


@pytest.fixture(scope="module")
def web(city):
    from yikatong.web.app import create_app

    with TestClient(create_app(clock=FixedClock(MONDAY))) as c:
        yield c


def login(web, username: str) -> dict[str, str]:
    r = web.post("/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def last_change(s) -> AuditEvent:
    return s.scalars(select(AuditEvent).where(AuditEvent.action == "road.configure", AuditEvent.object_id == EDITED)
                     .order_by(AuditEvent.id.desc())).first()


def road_of(code: str) -> list[tuple[str, int, int, bool]]:
    with new_session() as s:
        road = road_for(s, s.get(SubsidyItem, code))
        return [(st.step.value, st.days, st.remind_before, st.list_entry) for st in road.stations]


def test_catalogue_readers_see_the_road_but_cannot_change_it(web, restore_edited):
    reviewer = login(web, "township_reviewer")
    page = web.get(f"/catalog/items/{EDITED}/road", headers=reviewer)
    assert page.status_code == 200
    assert "村级后备干部补助" in page.text and "默认流程" in page.text and 'data-testid="road-form"' not in page.text
    assert "村评 → 公示 → 镇审 → 县定 → 市管" in page.text
    r = web.post(f"/catalog/items/{EDITED}/road", headers=reviewer, data={"steps": ["township"], "days_township": "5",
                                                                          "days_city": "5"})
    assert r.status_code == 403
    assert web.get(f"/catalog/items/{EDITED}/road", headers=login(web, "auditadmin")).status_code == 403
    assert web.get("/catalog/items/NOPE/road", headers=reviewer).status_code == 404
    catalogue = web.get("/catalog", headers=reviewer).text
    assert f'href="/catalog/items/{EDITED}/road"' in catalogue

    api = web.get("/api/v1/items/ZS007/road", headers=login(web, "bank")).json()
    assert [s["step"] for s in api["stations"]] == ["村评", "公示", "镇审", "县定", "市管"]
    assert api["list_entry"] == "县定" and api["stations"][3]["handler_role_label"] == "县级部门经办员"
    assert road_of(EDITED) == [(s.step.value, s.days, s.remind_before, s.list_entry)
                               for s in default_road(SubsidyItem(code=EDITED, village_publicity=True)).stations]


def test_city_finance_edits_the_road_on_the_page(web, restore_edited):
    finance = login(web, "city_finance")
    form = web.get(f"/catalog/items/{EDITED}/road", headers=finance)
    assert 'data-testid="road-form"' in form.text and 'name="days_county"' in form.text
    r = web.post(f"/catalog/items/{EDITED}/road", headers=finance, follow_redirects=False, data={
        "steps": ["village", "county"], "days_village": "4", "remind_village": "1", "days_county": "8",
        "remind_county": "2", "days_city": "6", "remind_city": "0", "list_entry": "county",
        "days_publicity": "7", "days_township": "5"})  # unchecked stations' fields come along and are ignored
    assert r.status_code == 303 and r.headers["location"] == f"/catalog/items/{EDITED}/road?saved=1"
    assert road_of(EDITED) == [("村评", 4, 1, False), ("县定", 8, 2, True), ("市管", 6, 0, False)]
    shown = web.get(r.headers["location"], headers=finance).text
    assert "审核流程已保存" in shown and "已单独配置" in shown and "村评 → 县定 → 市管" in shown
    assert web.get(f"/api/v1/items/{EDITED}/road", headers=finance).json()["configured"] is True
    with new_session() as s:
        event = last_change(s)
        assert event.username == "city_finance" and '"县定"' in event.detail and '"公示"' in event.detail

    bad = web.post(f"/catalog/items/{EDITED}/road", headers=finance, data={
        "steps": ["publicity"], "days_publicity": "7", "remind_publicity": "1", "days_city": "5"})
    assert bad.status_code == 422 and "“公示”须在“村评”之后" in bad.text
    assert 'data-testid="road-form"' in bad.text  # the form again, with what was typed
    bad = web.post(f"/catalog/items/{EDITED}/road", headers=finance, data={
        "steps": ["village"], "days_village": "五", "days_city": "5"})
    assert bad.status_code == 422 and "“村评”环节时限应填写1至90的整数" in bad.text
    assert road_of(EDITED) == [("村评", 4, 1, False), ("县定", 8, 2, True), ("市管", 6, 0, False)]  # unchanged


def test_ykt_road_show_and_set(restore_edited):
    from yikatong.cli import app

    runner = CliRunner()
    shown = runner.invoke(app, ["road", "show", EDITED])
    assert shown.exit_code == 0 and "默认流程" in shown.output and "10 个工作日" in shown.output
    r = runner.invoke(app, ["road", "set", EDITED, "--steps", "村评,镇审,县定,市管", "--days", "村评=3,县定=8",
                            "--remind", "2", "--list-entry", "村评"])
    assert r.exit_code == 0, r.output
    assert "村评→镇审→县定→市管" in r.output
    assert road_of(EDITED) == [("村评", 3, 2, True), ("镇审", 5, 2, False), ("县定", 8, 2, False),
                               ("市管", 5, 2, False)]
    with new_session() as s:
        event = last_change(s)
        assert event.username == "system" and event.user_id is None
    refused = runner.invoke(app, ["road", "set", EDITED, "--steps", "公示,市管"])
    assert isinstance(refused.exception, Invalid) and "村评" in refused.exception.message
    unknown = runner.invoke(app, ["road", "set", EDITED, "--steps", "村评,复核,市管"])
    assert isinstance(unknown.exception, Invalid) and "未知的审核环节：复核" in unknown.exception.message
    assert road_of(EDITED)[0] == ("村评", 3, 2, True)  # the refused ones changed nothing
