"""Workflow fixtures: demo users, a clock that moves by days, and fresh applications."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session

# A Monday, so tests can count working days across the weekend that follows.
MONDAY = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MONDAY)


PASSWORD = "ykt-demo-2026"  # every demo user's


@pytest.fixture
def web(city, clock):
    """The app over HTTP (in process), reading time from `clock`."""
    from fastapi.testclient import TestClient

    from yikatong.web.app import create_app

    with TestClient(create_app(clock=clock)) as client:
        yield client


def login(web, username: str) -> dict[str, str]:
    """Bearer headers of a demo user, logged in through the API."""
    r = web.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def users(city, db):
    from yikatong.security.models import User

    return {u.username: u for u in db.scalars(select(User)).all()}


POOL = {"village_clerk": (240, 60), "village_clerk2": (40, 10)}  # persons, of which with a household


@pytest.fixture(scope="session")
def claimant_pool(city) -> dict[str, list[tuple[int, bool]]]:
    """Fresh persons in the two demo villages, committed once before any test writes, so tests never
    run a small village out of people without a live claim, and a live test server sees them too."""
    from yikatong.catalog.models import Bank
    from yikatong.core.idnumber import make_id_number
    from yikatong.core.protect import protect
    from yikatong.registry.models import Card, CardStatus, Household, Person
    from yikatong.security.models import User

    pool: dict[str, list[tuple[int, bool]]] = {}
    with new_session() as s:
        bank = s.scalars(select(Bank).order_by(Bank.code)).first()
        serial = itertools.count(1)
        for username, (count, with_household) in POOL.items():
            village = s.scalar(select(User.region_code).where(User.username == username))
            people = pool.setdefault(village, [])
            for k in range(count):
                n = next(serial)
                # Born in 1900-1901 (no synthetic resident is that old), so the numbers cannot collide.
                birth = date(1900 + n // 336, 1 + n // 28 % 12, 1 + n % 28)
                protected = protect("id_number", make_id_number(village[:6], birth, n % 500, n % 2 == 0))
                household_id = None
                if k < with_household:
                    household = Household(code=f"T{village}-{n:05d}", region_code=village, address="",
                                          created_at=MONDAY, updated_at=MONDAY)
                    s.add(household)
                    s.flush()
                    household_id = household.id
                person = Person(id_number_enc=protected.enc, id_number_hash=protected.hash,
                                id_number_masked=protected.masked, name=f"测试{_NAMES[n % 10]}{_NAMES[n // 10 % 10]}",
                                gender="男" if n % 2 == 0 else "女", birth_date=birth, region_code=village,
                                household_id=household_id, relation="户主" if household_id else None,
                                is_beneficiary=True, has_active_card=True, created_at=MONDAY, updated_at=MONDAY)
                s.add(person)
                s.flush()
                # An active card of their own: the interception rules flag a claim with no card to pay into.
                account = protect("bank_account", f"{bank.account_prefix}{900000000 + n:011d}")
                s.add(Card(card_number=f"TC{n:010d}", person_id=person.id, bank_code=bank.code,
                           bank_account_enc=account.enc, bank_account_hash=account.hash,
                           bank_account_masked=account.masked, status=CardStatus.ACTIVE.value,
                           issued_on=date(2020, 1, 1), created_at=MONDAY, updated_at=MONDAY))
                people.append((person.id, household_id is not None))
        s.commit()
    return pool


_NAMES = "甲乙丙丁戊己庚辛壬癸"
_used: set[int] = set()


@pytest.fixture
def claimant(city, db, users, claimant_pool):
    """make(item_code, village=None, with_household=False) -> a person of the clerk's village (or of
    `village`) without a live claim, never handed out before in this run. `item_code` is used only
    outside the pool's villages, to skip people who already claim that item."""
    from yikatong.registry.models import Person
    from yikatong.workflow.models import LIVE_STATUSES, Application

    def make(item_code: str = "ZS007", village: str | None = None, with_household: bool = False) -> Person:
        village = village or users["village_clerk"].region_code
        for person_id, has_household in claimant_pool.get(village, []):
            if person_id not in _used and (has_household or not with_household):
                _used.add(person_id)
                return db.get(Person, person_id)
        busy = select(Application.person_id).where(Application.item_code == item_code,
                                                   Application.status.in_(LIVE_STATUSES))
        q = select(Person).where(Person.region_code == village, Person.id.not_in(busy), Person.id.not_in(_used))
        if with_household:
            q = q.where(Person.household_id.is_not(None))
        person = db.scalars(q.order_by(Person.id)).first()
        assert person is not None, "the test village ran out of people"
        _used.add(person.id)
        return person

    return make
