"""Shared helpers for API and page tests: an app client and demo logins."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

DEMO_PASSWORD = "ykt-demo-2026"


@pytest.fixture(scope="session")
def app(city):
    from yikatong.web.app import create_app

    return create_app()


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def token_for(client: TestClient, username: str, password: str = DEMO_PASSWORD) -> str:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["token"]


@pytest.fixture
def auth(client):
    """auth("village_clerk") -> headers for that demo user."""

    def headers(username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(client, username)}"}

    return headers


@pytest.fixture(scope="session")
def people(city):
    """A person of the clerk's village and one of the next village (village_clerk2's)."""
    from yikatong.core.db import new_session
    from yikatong.registry.models import Person
    from yikatong.security.models import User

    with new_session() as s:
        users = {u.username: u for u in s.scalars(select(User)).all()}
        own_village = users["village_clerk"].region_code
        next_village = users["village_clerk2"].region_code
        own = s.scalars(select(Person).where(Person.region_code == own_village).order_by(Person.id)).first()
        other = s.scalars(select(Person).where(Person.region_code == next_village).order_by(Person.id)).first()
        assert own is not None and other is not None
        return {"own": own, "other": other, "own_village": own_village, "next_village": next_village,
                "users": users}
