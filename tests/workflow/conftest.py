"""Workflow fixtures: demo users, a clock that moves by days, and fresh applications."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from yikatong.core.clock import FixedClock

# A Monday, so tests can count working days across the weekend that follows.
MONDAY = datetime(2026, 11, 30, 9, 0)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MONDAY)


@pytest.fixture
def users(city, db):
    from yikatong.security.models import User

    return {u.username: u for u in db.scalars(select(User)).all()}


@pytest.fixture
def claimant(city, db, users):
    """make(village=None, item=...) -> a person of the clerk's village without a live claim on the item."""
    from yikatong.registry.models import Person
    from yikatong.workflow.models import LIVE_STATUSES, Application

    used: set[int] = set()

    def make(item_code: str = "ZS007", village: str | None = None, with_household: bool = False) -> Person:
        village = village or users["village_clerk"].region_code
        busy = select(Application.person_id).where(Application.item_code == item_code,
                                                   Application.status.in_(LIVE_STATUSES))
        q = select(Person).where(Person.region_code == village, Person.id.not_in(busy), Person.id.not_in(used))
        if with_household:
            q = q.where(Person.household_id.is_not(None))
        person = db.scalars(q.order_by(Person.id)).first()
        assert person is not None, "the test village ran out of people"
        used.add(person.id)
        return person

    return make
