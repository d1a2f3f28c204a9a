"""One application walks the whole road in a real Chromium: the village clerk accepts it with an
evidence file and approves 村评, publishes the publicity list, a villager objects on the public page,
the window ends, the township reviewer dismisses the objection and approves, the county department
and the city finance bureau approve. Each reviewer logs in as themselves in a fresh browser context."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from yikatong.core import crypto
from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session
from yikatong.core.masking import mask_name
from yikatong.core.protect import reveal
from yikatong.workflow.models import Application, PublicityEntry

from .conftest import MONDAY

pytestmark = pytest.mark.browser

PASSWORD = "ykt-demo-2026"


def test_an_application_walks_from_the_village_to_the_city(browser, serve, city, users, claimant, tmp_path):
    from yikatong.web.app import create_app

    clock = FixedClock(MONDAY)
    server = serve(create_app(clock=clock))
    person = claimant("ZS007")
    problems: list[str] = []

    def open_page(context):
        page = context.new_page()
        # Script errors and CSP refusals; a 4xx answer is not a problem of the page.
        page.on("console", lambda m: problems.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        return page

    def login(username: str):
        context = browser.new_context()
        page = open_page(context)
        page.goto(f"{server}/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        with page.expect_navigation(url=f"{server}/"):
            page.click("button[type=submit]")
        return context, page

    def approve(page, opinion: str) -> None:
        page.fill("[data-testid=opinion]", opinion)
        with page.expect_navigation(url="**/applications/*?msg=decided"):
            page.click("[data-testid=approve]")

    # ---- 受理 and 村评: the village clerk
    context, page = login("village_clerk")
    page.wait_for_selector("[data-testid=home-workflow]")  # the home page's inbox box (htmx)
    page.click("nav >> text=待办审核")
    with page.expect_navigation(url="**/applications/new"):
        page.click("[data-testid=new-application]")
    page.fill("input[name=q]", reveal(crypto.ID_NUMBER, person.id_number_enc))
    with page.expect_navigation(url="**/applications/new/search"):  # posted: the number stays out of the URL
        page.click("[data-testid=person-search] button")
    with page.expect_navigation(url=f"**/applications/new?person_id={person.id}"):
        page.click("[data-testid=choose-person]")
    assert person.name in page.inner_text("[data-testid=applicant]")

    page.select_option("[data-testid=item]", "ZS014")  # an area item: the area field appears
    assert page.is_visible("[data-testid=quantity]") and page.input_value("[data-testid=period]") == "2026"
    page.select_option("[data-testid=item]", "ZS007")  # 农村低保, monthly, per person
    assert page.is_hidden("[data-testid=quantity]") and page.input_value("[data-testid=period]") == "2026-11"
    page.wait_for_function("document.querySelector('[data-testid=preview-amount]') !== null"
                           " && document.querySelector('[data-testid=preview]').textContent.includes('2026-11')")
    assert page.inner_text("[data-testid=preview-amount]") == "560.00"
    page.fill("[data-testid=note]", "家庭人均收入低于低保标准，申请农村低保")
    evidence = tmp_path / "收入证明.txt"
    evidence.write_text("家庭收入情况说明：人均月收入 320 元。", encoding="utf-8")
    page.set_input_files("[data-testid=files]", str(evidence))
    with page.expect_navigation(url="**/applications/*?msg=accepted"):
        page.click("[data-testid=accept-submit]")
    app_id = int(page.url.split("/applications/")[1].split("?")[0])
    assert page.inner_text("[data-testid=stage]").startswith("村评")
    assert page.inner_text("[data-testid=document]") == "收入证明.txt"
    assert page.inner_text("[data-testid=amount]") == "560.00"

    approve(page, "经村民代表会议民主评议，同意")
    assert page.inner_text("[data-testid=stage]").startswith("公示")

    # ---- 公示: the clerk publishes the list and opens the printable sheet
    page.click("nav >> text=公示")
    page.wait_for_selector("[data-testid=waiting]")
    with page.expect_navigation(url="**/publicity?published=*"):
        page.click("[data-testid=publish]")
    assert page.is_visible("[data-testid=published]")
    page.goto(f"{server}/applications/{app_id}")
    public_path = page.get_attribute("[data-testid=publicity-link]", "href")
    publicity_id = int(public_path.rsplit("/", 1)[1])
    page.goto(f"{server}/publicity/{publicity_id}/print")
    assert page.is_visible("[data-testid=print]")
    assert person.id_number_masked in page.inner_text("[data-testid=publicity-sheet]")
    context.close()

    # ---- anyone: the public page, no login; an objection during the window
    with new_session() as s:
        position = s.scalar(select(PublicityEntry.position).where(PublicityEntry.application_id == app_id))
    context = browser.new_context()
    page = open_page(context)
    page.goto(f"{server}{public_path}")
    text = page.inner_text("main")
    assert mask_name(person.name) in text and person.id_number_masked in text
    assert person.name not in text and reveal(crypto.ID_NUMBER, person.id_number_enc) not in text
    page.select_option("[data-testid=objection-entry]", str(position))
    page.fill("[data-testid=objection-reason]", "听说该户儿子在县城开店，收入不低")
    page.fill("[data-testid=objection-phone]", "13912345678")
    with page.expect_navigation(url="**?registered=*"):
        page.click("[data-testid=objection-submit]")
    assert page.is_visible("[data-testid=objection-registered]")
    context.close()

    # ---- the window ends (7 days from Monday): no more objections online
    clock.advance(days=7)

    # ---- 镇审: the township reviewer answers the objection, then approves
    context, page = login("township_reviewer")
    page.goto(f"{server}/applications/{app_id}")
    assert page.inner_text("[data-testid=objection-status]") == "待处理"
    assert not page.is_visible("[data-testid=decision-form]")  # still at 公示 until the objection is answered
    page.fill("[data-testid=resolve-opinion]", "经入户核实，其子已分户另居，家庭收入符合条件，异议不成立")
    with page.expect_navigation(url="**/applications/*?msg=resolved"):
        page.click("[data-testid=dismissed]")
    assert page.inner_text("[data-testid=objection-status]") == "异议不成立"
    assert page.inner_text("[data-testid=stage]").startswith("镇审")
    approve(page, "审核通过")
    assert page.inner_text("[data-testid=stage]").startswith("县定")
    context.close()

    # ---- 县定: the county civil-affairs office, through its inbox
    context, page = login("county_handler")
    page.goto(f"{server}/applications?village={person.region_code}&item=ZS007")
    with page.expect_navigation(url=f"**/applications/{app_id}"):
        page.click(f"[data-testid=inbox] a[href='/applications/{app_id}']")
    approve(page, "同意纳入农村低保")
    assert page.inner_text("[data-testid=stage]").startswith("市管")
    context.close()

    # ---- 市管: the city finance bureau
    context, page = login("city_finance")
    page.goto(f"{server}/applications/{app_id}")
    approve(page, "")
    assert page.inner_text("[data-testid=status]") == "已通过"
    actions = page.locator("[data-testid=trail-action]").all_inner_texts()
    assert actions == ["提交申请", "通过", "公示开始", "异议登记", "异议处理", "公示期满", "通过", "通过", "通过"]
    trail = page.inner_text("[data-testid=trail]")
    for name in ("陈明", "刘芳", "张伟", "王建国", "群众"):
        assert name in trail
    assert "异议不成立" in trail
    context.close()

    with new_session() as s:
        assert s.get(Application, app_id).status == "已通过"
    assert problems == []
