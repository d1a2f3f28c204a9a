"""Catalogue fixtures: an app client, demo logins and a fresh item of its own per test (committed:
the pages commit what they write, so tests never touch the items other tests price claims with)."""

from __future__ import annotations

import itertools
from datetime import date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

DEMO_PASSWORD = "ykt-demo-2026"
NOW = datetime(2026, 11, 30, 9, 0)
_serial = itertools.count(1)


@pytest.fixture(scope="session")
def app(city):
    from yikatong.web.app import create_app

    return create_app()


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def login(client: TestClient, username: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def login_page(client: TestClient, username: str) -> None:
    r = client.post("/login", data={"username": username, "password": DEMO_PASSWORD}, follow_redirects=False)
    assert r.status_code == 303


@pytest.fixture
def fresh_item(city) -> str:
    """A committed per-person monthly item of a county department, 100.00 yuan since 2020-01-01."""
    from yikatong.catalog.models import Department, ItemStandard, SubsidyItem
    from yikatong.core.db import new_session

    code = f"TSTD{next(_serial):03d}-{datetime.now().strftime('%H%M%S%f')}"[:20]
    with new_session() as s:
        department = s.scalars(select(Department).where(~Department.code.like("D511000-%"))
                               .order_by(Department.code)).first()
        category = s.scalar(select(SubsidyItem.category_code).order_by(SubsidyItem.code))
        s.add(SubsidyItem(code=code, name="标准测试项目", category_code=category, funding_level="县",
                          department_code=department.code, basis="人", standard_fen=10000, frequency="月",
                          village_publicity=True, means_tested=False, description=""))
        s.flush()
        s.add(ItemStandard(item_code=code, valid_from=date(2020, 1, 1), county_code=None, standard_fen=10000,
                           reason="现行标准", created_by_name="系统", created_at=NOW))
        s.commit()
    return code
