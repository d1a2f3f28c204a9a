"""What a user may do with an application is one service function, `workflow.service.allowed_actions`:
the page offers exactly those actions, the API reports them, and no template decides by comparing a
Chinese status or station name."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from yikatong.workflow import publicity, service
from yikatong.workflow.models import Action, Step
from yikatong.workflow.service import AppAction

from .test_interception import _accept, _deaths, _to_county
from .test_views import FARMLAND, SPECIAL, accepted, at_township, auth  # noqa: F401 - fixtures

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "yikatong"


def _allowed(db, users, app, username):
    return service.allowed_actions(db, users[username], app)


def test_each_role_may_do_what_the_station_allows(db, users, claimant, clock):
    app = service.accept(db, users["village_clerk"], person_id=claimant(SPECIAL).id, item_code=SPECIAL,
                         period="2026-11", now=clock.now())  # not publicised: 村评 -> 镇审
    assert _allowed(db, users, app, "village_clerk") == {AppAction.DECIDE, AppAction.WITHDRAW}  # 村评 is first
    assert _allowed(db, users, app, "township_reviewer") == set()  # not her station yet
    assert _allowed(db, users, app, "supervisor") == set()

    service.decide(db, app, users["village_clerk"], Action.APPROVE, "评议通过", clock.now())
    assert app.stage == Step.TOWNSHIP
    assert _allowed(db, users, app, "township_reviewer") == {AppAction.DECIDE, AppAction.RETURN}
    assert _allowed(db, users, app, "village_clerk") == {AppAction.WITHDRAW}

    service.decide(db, app, users["township_reviewer"], Action.RETURN, "材料不全", clock.now())
    assert app.stage == Step.VILLAGE and app.returned
    assert _allowed(db, users, app, "village_clerk") == {AppAction.DECIDE, AppAction.CORRECT, AppAction.WITHDRAW}

    service.decide(db, app, users["village_clerk"], Action.REJECT, "不符合条件", clock.now())
    for username in ("village_clerk", "township_reviewer", "county_handler", "supervisor"):
        assert _allowed(db, users, app, username) == set()  # a closed application offers nothing


def test_publicity_is_not_decided_and_objections_go_to_village_and_township(db, users, claimant, clock):
    app = service.accept(db, users["village_clerk"], person_id=claimant(FARMLAND).id, item_code=FARMLAND,
                         period="2026", quantity="3", now=clock.now())
    service.decide(db, app, users["village_clerk"], Action.APPROVE, "评议通过", clock.now())
    assert app.stage == Step.PUBLICITY
    assert _allowed(db, users, app, "village_clerk") == {AppAction.WITHDRAW}  # 公示 ends by itself
    [pub] = publicity.publish(db, users["village_clerk"], clock.now(), village=app.region_code)
    publicity.raise_objection(db, pub.id, app.id, "该户家中有人在县城工作", clock.now())
    db.refresh(app)
    assert AppAction.RESOLVE_OBJECTION in _allowed(db, users, app, "village_clerk")
    assert _allowed(db, users, app, "township_reviewer") == {AppAction.RESOLVE_OBJECTION}
    assert _allowed(db, users, app, "county_handler") == set()


def test_the_items_department_verifies_open_flags(db, users, claimant, clock):
    person = claimant()
    _deaths(db, clock, (person, date(2026, 10, 3)))
    app = _accept(db, users, person, clock)
    assert app.open_flags == 1
    assert AppAction.VERIFY in _allowed(db, users, app, "county_handler")
    assert AppAction.VERIFY not in _allowed(db, users, app, "village_clerk")
    _to_county(db, users, app, clock)
    assert _allowed(db, users, app, "county_handler") == {AppAction.DECIDE, AppAction.RETURN, AppAction.VERIFY}


def test_the_page_and_the_api_offer_the_allowed_actions(web, auth, users, claimant, clock):  # noqa: F811
    app_id = at_township(users, claimant(SPECIAL), clock)
    reviewer, clerk = auth("township_reviewer"), auth("village_clerk")
    assert web.get(f"/api/v1/applications/{app_id}", headers=reviewer).json()["actions"] == ["decide", "return"]
    assert web.get(f"/api/v1/applications/{app_id}", headers=clerk).json()["actions"] == ["withdraw"]
    page = web.get(f"/applications/{app_id}", headers=reviewer).text
    assert 'data-testid="decision-form"' in page and 'data-testid="return"' in page
    assert 'data-testid="withdraw-form"' not in page
    page = web.get(f"/applications/{app_id}", headers=clerk).text
    assert 'data-testid="decision-form"' not in page and 'data-testid="withdraw-form"' in page
    # at 村评, the first station, there is nothing to return to: no return button
    first = accepted(users, claimant(SPECIAL), clock)
    page = web.get(f"/applications/{first}", headers=clerk).text
    assert 'data-testid="decision-form"' in page and 'data-testid="return"' not in page


_NAMES = "办理中|已通过|已否决|已撤回|户报|村评|公示|镇审|县定|市管|待核实|核实属实|核实排除"
_COMPARISON = re.compile(rf"""(==|!=)\s*["'](?:{_NAMES})["']|["'](?:{_NAMES})["']\s*(==|!=)""")


def test_templates_do_not_compare_statuses_or_stations():
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for block in re.findall(r"{[{%].*?[%}]}", line):
                if _COMPARISON.search(block):
                    found.append(f"{path.relative_to(TEMPLATES)}:{number}: {block}")
    assert found == []
