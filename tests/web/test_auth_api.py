"""Login, sessions, lockout, logout and the API's refusal without a session."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import select

from yikatong.core.clock import FixedClock
from yikatong.core.db import transaction
from yikatong.security.models import AuditEvent
from yikatong.security.service import create_user

from .conftest import DEMO_PASSWORD, token_for


def test_login_gives_a_token_that_identifies_the_user(client, city):
    token = token_for(client, "village_clerk")
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["username"] == "village_clerk"
    assert me["role"] == "village_clerk" and me["role_label"] == "村级经办员"
    assert "person.read" in me["permissions"] and "catalog.manage" not in me["permissions"]


def test_wrong_password_is_refused_in_chinese_and_audited(client, db, city):
    before = db.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()))
    r = client.post("/api/v1/auth/login", json={"username": "village_clerk", "password": "wrong-password"})
    assert r.status_code == 401 and r.json()["detail"].startswith("用户名或密码错误")
    r = client.post("/api/v1/auth/login", json={"username": "nobody-here", "password": "wrong-password"})
    assert r.status_code == 401 and r.json()["detail"].startswith("用户名或密码错误")  # same answer: no user probing
    failed = db.scalars(select(AuditEvent).where(AuditEvent.id > before,
                                                 AuditEvent.action == "auth.login_failed")).all()
    assert [e.username for e in failed] == ["village_clerk", "system"]  # the unknown name is audited too
    assert '"username": "nobody-here"' in failed[1].detail


def test_api_without_session_is_401_and_pages_redirect_to_login(client, city):
    assert client.get("/api/v1/persons").status_code == 401
    assert client.get("/api/v1/persons", headers={"Authorization": "Bearer forged"}).status_code == 401
    r = client.get("/persons?q=张", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/persons%3Fq%3D%E5%BC%A0"


def test_account_locks_after_repeated_failures(client, city):
    name = f"lock-{uuid.uuid4().hex[:8]}"
    with transaction() as s:
        create_user(s, name, "right-password", "township_reviewer", "511000000000", "锁定测试",
                    datetime(2026, 1, 1, tzinfo=UTC))
    for _ in range(5):
        client.post("/api/v1/auth/login", json={"username": name, "password": "bad-password"})
    r = client.post("/api/v1/auth/login", json={"username": name, "password": "right-password"})
    assert r.status_code == 401 and "锁定" in r.json()["detail"]  # the same answer as any refusal


def test_sessions_expire_and_logout_revokes(city):
    from yikatong.web.app import create_app

    clock = FixedClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    with TestClient(create_app(clock=clock)) as c:
        token = token_for(c, "township_reviewer")
        headers = {"Authorization": f"Bearer {token}"}
        assert c.get("/api/v1/me", headers=headers).status_code == 200
        clock.advance(hours=7, minutes=59)
        assert c.get("/api/v1/me", headers=headers).status_code == 200
        clock.advance(minutes=2)  # past the 8-hour session
        assert c.get("/api/v1/me", headers=headers).status_code == 401

        token = token_for(c, "township_reviewer")
        headers = {"Authorization": f"Bearer {token}"}
        assert c.post("/api/v1/auth/logout", headers=headers).status_code == 204
        assert c.get("/api/v1/me", headers=headers).status_code == 401


def test_page_login_sets_a_strict_httponly_cookie(client, city):
    r = client.post("/login", data={"username": "supervisor", "password": DEMO_PASSWORD, "next": "//evil.example"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"  # no open redirect
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    r = client.post("/login", data={"username": "supervisor", "password": "nope-nope"})
    assert r.status_code == 401 and "用户名或密码错误" in r.text


def test_security_headers_on_every_answer(client, city):
    r = client.get("/login")
    assert r.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
