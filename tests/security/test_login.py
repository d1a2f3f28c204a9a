"""Login refusals tell nothing, and guessing from one address neither locks others out nor goes on for ever."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session, transaction
from yikatong.security.models import AuditEvent
from yikatong.security.service import create_user

PASSWORD = "right-password"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 5, 4, 10, 0))


@pytest.fixture
def from_address(city, clock):
    """from_address("10.1.2.3") -> a client whose requests come from that address."""
    from yikatong.web.app import create_app

    app = create_app(clock=clock)
    clients: list[TestClient] = []

    def make(ip: str) -> TestClient:
        client = TestClient(app, client=(ip, 40000))
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


def new_admin() -> str:
    name = f"adm-{uuid.uuid4().hex[:8]}"
    with transaction() as s:
        create_user(s, name, PASSWORD, "system_admin", "511000000000", "系统管理员", datetime(2026, 1, 1))
    return name


def attempt(client: TestClient, username: str, password: str):
    return client.post("/api/v1/auth/login", json={"username": username, "password": password})


def test_unknown_and_locked_accounts_get_the_same_answer(from_address):
    client = from_address("10.9.0.1")
    admin = new_admin()
    for _ in range(5):
        assert attempt(client, admin, "bad-password").status_code == 401
    locked = attempt(client, admin, PASSWORD)  # the right password, but locked
    unknown = attempt(client, f"nobody-{uuid.uuid4().hex[:6]}", "bad-password")
    wrong = attempt(client, new_admin(), "bad-password")
    assert locked.status_code == unknown.status_code == wrong.status_code == 401
    assert locked.json() == unknown.json() == wrong.json()
    page_locked = client.post("/login", data={"username": admin, "password": PASSWORD})
    page_unknown = client.post("/login", data={"username": "nobody-else", "password": PASSWORD})
    assert page_locked.status_code == page_unknown.status_code == 401
    assert locked.json()["detail"] in page_locked.text and locked.json()["detail"] in page_unknown.text


def test_a_guesser_locks_an_account_only_for_their_own_address(from_address, clock):
    guesser, admin_desk = from_address("10.9.1.1"), from_address("10.9.1.2")
    admin = new_admin()
    for _ in range(6):
        attempt(guesser, admin, "bad-password")
    assert attempt(guesser, admin, PASSWORD).status_code == 401  # locked for the guesser
    assert attempt(admin_desk, admin, PASSWORD).status_code == 200  # the administrator still gets in
    clock.advance(minutes=16)  # the lock lasts the lockout window
    assert attempt(guesser, admin, PASSWORD).status_code == 200


def test_many_failures_from_one_address_are_slowed_down_and_audited(from_address, clock):
    guesser, other = from_address("10.9.2.1"), from_address("10.9.2.2")
    admins = [new_admin() for _ in range(4)]
    answers = [attempt(guesser, admins[k % 4], "bad-password").status_code for k in range(20)]
    assert answers == [401] * 20
    r = attempt(guesser, admins[0], PASSWORD)
    assert r.status_code == 429 and r.json()["detail"] == "尝试过于频繁，请稍后再试"
    page = guesser.post("/login", data={"username": admins[1], "password": PASSWORD})
    assert page.status_code == 429 and "尝试过于频繁，请稍后再试" in page.text
    # every account still opens from another address; and the guesser again once the window has passed
    assert all(attempt(other, name, PASSWORD).status_code == 200 for name in admins)
    clock.advance(minutes=16)
    assert attempt(guesser, admins[2], PASSWORD).status_code == 200
    with new_session() as s:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.ip == "10.9.2.1")).all()
    assert actions.count("auth.login_failed") == 20 and actions.count("auth.login_throttled") == 2


def test_failed_logins_for_unknown_users_and_locked_accounts_are_audited(from_address):
    client = from_address("10.9.3.1")
    admin = new_admin()
    ghost = f"ghost-{uuid.uuid4().hex[:6]}"
    attempt(client, ghost, "bad-password")
    for _ in range(5):
        attempt(client, admin, "bad-password")
    attempt(client, admin, PASSWORD)
    with new_session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.ip == "10.9.3.1",
                                                    AuditEvent.action == "auth.login_failed")
                           .order_by(AuditEvent.id)).all()
    assert f'"username": "{ghost}"' in events[0].detail and '"reason": "unknown_user"' in events[0].detail
    assert events[0].user_id is None
    assert '"reason": "locked"' in events[-1].detail and events[-1].username == admin


def test_session_cookie_is_secure_with_hsts_over_https(city, monkeypatch):
    from yikatong.core.settings import reset_settings
    from yikatong.web.app import create_app

    plain = TestClient(create_app())
    r = plain.post("/login", data={"username": "supervisor", "password": "ykt-demo-2026"}, follow_redirects=False)
    assert "secure" not in r.headers["set-cookie"].lower() and "strict-transport-security" not in r.headers
    monkeypatch.setenv("YKT_HTTPS", "1")
    reset_settings()
    try:
        r = TestClient(create_app()).post("/login", data={"username": "supervisor", "password": "ykt-demo-2026"},
                                          follow_redirects=False)
        assert r.status_code == 303 and "; secure" in r.headers["set-cookie"].lower()
        assert r.headers["strict-transport-security"].startswith("max-age=31536000")
        assert "strict-transport-security" in TestClient(create_app()).get("/login").headers
    finally:
        monkeypatch.delenv("YKT_HTTPS")
        reset_settings()
    # a request that came in over HTTPS (uvicorn trusts nginx's X-Forwarded-Proto) needs no setting
    r = TestClient(create_app(), base_url="https://testserver").get("/login")
    assert r.headers["strict-transport-security"].startswith("max-age=")
