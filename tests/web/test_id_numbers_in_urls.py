"""A clear ID number never travels in a URL (access logs, browser history, Referer): the search posts it."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from yikatong.core import crypto
from yikatong.core.protect import reveal

from .conftest import DEMO_PASSWORD

VIEW_MODULES = ("security.views", "registry.views", "catalog.views", "imports.views", "workflow.submission_views",
                "workflow.views", "workflow.eye_views", "workflow.road_views", "sharing.views", "interception.views",
                "interception.rule_views")


def test_search_by_id_number_posts_it_and_finds_the_person(client, auth, people):
    own_id = reveal(crypto.ID_NUMBER, people["own"].id_number_enc)
    h = auth("village_clerk")
    found = client.post("/api/v1/persons/search", json={"q": own_id}, headers=h).json()
    assert [p["id"] for p in found["items"]] == [people["own"].id]
    assert own_id not in str(found)  # masked in the answer too

    client.post("/login", data={"username": "village_clerk", "password": DEMO_PASSWORD})
    page = client.post("/persons", data={"q": own_id}, follow_redirects=False)
    assert page.status_code == 200 and people["own"].name in page.text and own_id not in page.text
    assert 'method="post" action="/persons"' in client.get("/persons").text  # the search box posts
    assert 'method="post" action="/persons"' in client.get("/").text
    # a name is sent on to a bookmarkable address; an ID number never is
    r = client.post("/persons", data={"q": people["own"].name[:1]}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/persons?q=")

    # the counter's search for the applicant posts too
    page = client.post("/applications/new/search", data={"q": own_id})
    assert page.status_code == 200 and people["own"].name in page.text
    assert f'/applications/new?person_id={people["own"].id}' in page.text
    assert 'method="post" action="/applications/new/search"' in client.get("/applications/new").text


@pytest.mark.parametrize("url", ["/persons?q={id}", "/api/v1/persons?q={id}", "/persons?q={id_lower_x}",
                                 "/applications?q=%20{id}%20", "/api/v1/audit?action={id}", "/login?next=/x%3Fq%3D{id}",
                                 "/api/v1/inbox?village={id}"])
def test_no_route_accepts_an_id_number_in_the_url(client, auth, people, url):
    own_id = reveal(crypto.ID_NUMBER, people["own"].id_number_enc)
    shaped = own_id[:17] + "x"
    r = client.get(url.format(id=own_id, id_lower_x=shaped), headers=auth("village_clerk"), follow_redirects=False)
    assert r.status_code == 422 and "身份证号不能放在网址中" in r.text
    assert people["own"].name not in r.text


def test_every_get_route_is_covered(client, auth, people):
    """The refusal sits in front of every route, so a route added later is covered too."""
    import importlib

    own_id = reveal(crypto.ID_NUMBER, people["own"].id_number_enc)
    h = auth("city_finance")
    modules = [importlib.import_module(f"yikatong.{name}") for name in VIEW_MODULES]
    gets = [r for m in modules for router in (m.api, m.pages) for r in router.routes
            if isinstance(r, APIRoute) and "GET" in r.methods and "{" not in r.path]
    assert len(gets) > 20
    for route in gets:
        r = client.get(f"{route.path}?q={own_id}&id_number={own_id}", headers=h, follow_redirects=False)
        assert r.status_code == 422, route.path


def test_ordinary_long_numbers_pass(client, auth):
    h = auth("village_clerk")
    assert client.get("/api/v1/persons?q=1234567890123456789", headers=h).status_code == 200  # 19 digits
    assert client.get("/api/v1/persons?q=12345678901234567", headers=h).status_code == 200  # 17 digits


@pytest.mark.browser
def test_the_browser_searches_by_id_number_without_putting_it_in_the_address(app, serve, browser, people):
    site = serve(app)
    own_id = reveal(crypto.ID_NUMBER, people["own"].id_number_enc)
    page = browser.new_page()
    page.goto(f"{site}/login")
    page.fill("#username", "village_clerk")
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation(url=f"{site}/"):
        page.click("button[type=submit]")
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    page.fill("input[name=q]", own_id)
    with page.expect_navigation():
        page.click("form.inline button")
    assert page.inner_text("[data-testid=results] tbody tr a") == people["own"].name
    assert seen and not any(own_id in url for url in seen + [page.url])
    page.close()
