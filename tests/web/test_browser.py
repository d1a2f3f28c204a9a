"""A real Chromium (Debian's /usr/bin/chromium, driven by Playwright) against a real uvicorn server."""

from __future__ import annotations

import pytest

from yikatong.core import crypto
from yikatong.core.protect import reveal

from .conftest import DEMO_PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(app, serve):
    return serve(app)


def test_village_clerk_opens_own_person_and_is_refused_the_next_village(server, browser, people):
    page = browser.new_page()
    page.goto(f"{server}/persons/{people['own'].id}")
    assert "/login" in page.url  # not logged in: sent to the login page, then back
    page.fill("#username", "village_clerk")
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation(url=f"**/persons/{people['own'].id}"):
        page.click("button[type=submit]")
    assert page.inner_text("[data-testid=person-name]") == people["own"].name
    assert page.inner_text("[data-testid=masked-id_number]") == people["own"].id_number_masked

    page.click("[data-testid=reveal-id_number]")  # htmx: the clear number replaces the mask
    page.wait_for_selector("[data-testid=clear-id_number]")
    assert page.inner_text("[data-testid=clear-id_number]") == reveal(crypto.ID_NUMBER, people["own"].id_number_enc)

    response = page.goto(f"{server}/persons/{people['other'].id}")
    assert response.status == 403
    assert "无权查看本辖区以外的人员" in page.inner_text("[data-testid=error]")
    assert people["other"].name not in page.content()

    page.goto(f"{server}/")
    assert page.inner_text("[data-testid=who]").endswith("村级经办员")
    page.fill("input[name=q]", people["own"].name[:1])
    with page.expect_navigation(url="**/persons?q=*"):
        page.click("form.inline button")
    rows = page.locator("[data-testid=results] tbody tr")
    assert rows.count() >= 1
    page.close()


def test_city_home_draws_the_card_holding_chart(server, browser):
    page = browser.new_page()
    page.goto(f"{server}/login")
    page.fill("#username", "city_finance")
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation(url=f"{server}/"):
        page.click("button[type=submit]")
    page.wait_for_selector("#rate-chart canvas")  # ECharts rendered from our own static/vendor copy
    rows = page.locator("[data-testid=children] tbody tr")
    assert rows.count() == 5  # the five county-level areas of the city
    page.close()
