"""Cross-site request forgery: a state-changing request with the session cookie must come from this site.

The browser test posts a form from a page on another port of 127.0.0.1 (the same site, so the SameSite=Strict
cookie still travels) while a clerk is logged in; the other tests check the rule request by request."""

from __future__ import annotations

import threading
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from yikatong.core.db import new_session, transaction
from yikatong.registry.models import Person
from yikatong.security.models import User
from yikatong.workflow import service
from yikatong.workflow.models import LIVE_STATUSES, Application, ReviewRecord

from .conftest import DEMO_PASSWORD

ITEM = "ZS017"  # 计划生育特别扶助: per person, monthly, the clerk's station first (村评)


def waiting_application() -> int:
    """A committed application of village_clerk's village, waiting at 村评."""
    with transaction() as s:
        clerk = s.scalar(select(User).where(User.username == "village_clerk"))
        busy = select(Application.person_id).where(Application.item_code == ITEM,
                                                   Application.status.in_(LIVE_STATUSES))
        # born after 1901: the workflow tests keep older test residents for themselves
        person = s.scalars(select(Person).where(Person.region_code == clerk.region_code, Person.id.not_in(busy),
                                                Person.birth_date > date(1902, 1, 1))
                           .order_by(Person.id.desc())).first()
        return service.accept(s, clerk, person_id=person.id, item_code=ITEM, period="2026-10",
                              now=datetime(2026, 10, 9, 9, 0)).id


def state_of(app_id: int) -> tuple[str | None, int]:
    with new_session() as s:
        return (s.get(Application, app_id).stage,
                s.scalar(select(func.count()).where(ReviewRecord.application_id == app_id)))


@pytest.fixture
def evil_site():
    """evil_site(html) -> the URL of a page with that HTML on another port of 127.0.0.1."""
    servers: list[ThreadingHTTPServer] = []

    def start(html: str) -> str:
        class Page(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/prize.html"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_a_form_posted_from_another_port_does_nothing(app, serve, browser, evil_site):
    site = serve(app)
    app_id = waiting_application()
    before = state_of(app_id)
    attack = evil_site(f"""<!doctype html><html><body>
      <form id="f" method="post" action="{site}/applications/{app_id}/decision">
        <input name="decision" value="reject"><input name="opinion" value="不符合条件（伪造）"></form>
      <script>document.getElementById('f').submit()</script></body></html>""")

    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{site}/login")
    page.fill("#username", "village_clerk")
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation(url=f"{site}/"):
        page.click("button[type=submit]")

    with page.expect_navigation(url=f"{site}/applications/**", timeout=15_000) as landed:
        page.goto(attack)  # the page posts its form at once
    assert state_of(app_id) == before  # nothing decided, nothing written
    # the cookie travelled (same site, so SameSite=Strict lets it): the origin check is what refused it
    assert landed.value.status == 403 and "不是从本站页面发出" in page.inner_text("body")

    # the clerk's own page still decides (the same browser, the same cookie, this site's origin)
    page.goto(f"{site}/applications/{app_id}")
    assert page.is_visible("[data-testid=decision-form]")
    context.close()


def test_origin_and_referer_are_checked_for_cookie_writes(client):
    app_id = waiting_application()
    r = client.post("/login", data={"username": "village_clerk", "password": DEMO_PASSWORD},
                    headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert r.status_code == 303  # login from our own page works
    decision = {"decision": "reject", "opinion": "伪造的驳回"}
    url = f"/applications/{app_id}/decision"
    for bad in ({"Origin": "http://testserver:8081"}, {"Origin": "null"}, {"Origin": "http://evil.example"},
                {"Referer": "http://testserver:9000/prize.html"}):
        r = client.post(url, data=decision, headers=bad, follow_redirects=False)
        assert r.status_code == 403 and "不是从本站页面发出" in r.text, bad
    assert client.post("/api/v1/auth/logout", headers={"Origin": "http://evil.example"}).status_code == 403
    assert state_of(app_id)[0] == "村评"
    # a GET is never refused, and a POST from this site's own page goes through
    assert client.get(f"/applications/{app_id}", headers={"Origin": "http://evil.example"}).status_code == 200
    r = client.post(url, data={"decision": "approve", "opinion": "评议通过"},
                    headers={"Referer": f"http://testserver/applications/{app_id}"}, follow_redirects=False)
    assert r.status_code == 303 and state_of(app_id)[0] != "村评"


def test_bearer_api_calls_are_not_affected(client):
    token = client.post("/api/v1/auth/login", json={"username": "village_clerk", "password": DEMO_PASSWORD},
                        headers={"Origin": "http://testserver"}).json()["token"]
    r = client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}",
                                                    "Origin": "http://another.example"})
    assert r.status_code == 204


def test_the_public_objection_form_from_the_site_still_works(city):
    from yikatong.web.app import create_app

    with TestClient(create_app()) as c:  # the public page's form posts to the same site: not refused
        r = c.post("/public/publicity/999999/objections", data={"entry": "1", "reason": "理由写得足够长了"},
                   headers={"Origin": "http://testserver"})
        assert r.status_code == 404  # reaches the handler (no such list), not the origin check
        r = c.post("/public/publicity/999999/objections", data={"entry": "1", "reason": "理由写得足够长了"},
                   headers={"Origin": "http://testserver:1234"})
        assert r.status_code == 403
