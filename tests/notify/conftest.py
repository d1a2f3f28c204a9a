"""Outbox fixtures. The dispatcher works in its own transactions, so these tests commit their rows;
each works with its own village, clerk and dedupe keys and never assumes global counts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select, update

from yikatong.core.db import new_session
from yikatong.notify.models import OutboxMessage
from yikatong.registry.models import Person
from yikatong.security.models import User
from yikatong.workflow import service
from yikatong.workflow.models import LIVE_STATUSES, Application, Status

MONDAY = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
DEMO_CLERKS = ("village_clerk", "village_clerk2")  # their villages hold the demo stories: left alone
FRIDAY, NEXT_TUESDAY = date(2026, 12, 4), date(2026, 12, 8)  # reminder day and first overdue day of 村评


def at(day: date, hour: int = 8) -> datetime:
    return datetime(day.year, day.month, day.day, hour, 0, tzinfo=UTC)


@dataclass
class Area:
    village: str
    clerk_id: int
    app_ids: list[int]
    numbers: list[str]

    def outbox(self, session, *user_ids: int) -> list[OutboxMessage]:
        """This area's messages: to its clerk (and the given users) about its applications."""
        ids = user_ids or (self.clerk_id,)
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.user_id.in_(ids))
                               .order_by(OutboxMessage.id)).all()
        return [m for m in rows if any(n in m.body for n in self.numbers)]


def roomy_village(session, people: int) -> str:
    """A village of 资中县 outside the demo villages with the most people free to claim 农村低保."""
    demo = select(User.region_code).where(User.role == "village_clerk", User.username.in_(DEMO_CLERKS))
    live = select(Application.person_id).where(Application.item_code == "ZS007",
                                               Application.status.in_(LIVE_STATUSES))
    village = session.scalar(select(Person.region_code).where(Person.region_code.like("511025%"),
                                                              Person.region_code.not_in(demo),
                                                              Person.id.not_in(live))
                             .group_by(Person.region_code).having(func.count() >= people)
                             .order_by(func.count().desc(), Person.region_code).limit(1))
    assert village is not None, "no village of 资中县 has enough people left"
    return village


@pytest.fixture
def committed_area(city):
    """make(n) -> an Area: a village of 资中县, a clerk of its own (on WeChat) and n applications for
    农村低保 accepted on Monday 30 Nov, all committed. The village's other open applications (the
    demo city's) are flagged as already reminded and escalated for the test, so the eye writes about
    the test's applications only, and get their flags back afterwards; the clerk is deactivated."""
    restore: list[tuple[list[int], bool, bool]] = []
    clerks: list[int] = []

    def make(n: int = 2) -> Area:
        with new_session() as s:
            village = roomy_village(s, n + 2)
            before = s.execute(select(Application.id, Application.reminded, Application.escalated).where(
                Application.region_code == village, Application.status == Status.OPEN.value)).all()
            for flags in {(r.reminded, r.escalated) for r in before}:
                restore.append(([r.id for r in before if (r.reminded, r.escalated) == flags], *flags))
            if before:
                s.execute(update(Application).where(Application.id.in_([r.id for r in before]))
                          .values(reminded=True, escalated=True))
            clerk = User(username=f"outbox-{uuid.uuid4().hex[:10]}", display_name="测试村 经办员", password_hash="!",
                         role="village_clerk", region_code=village, active=True, leader=False,
                         wechat_openid=f"oTEST-{uuid.uuid4().hex[:8]}", created_at=MONDAY)
            s.add(clerk)
            s.flush()
            clerks.append(clerk.id)
            live = select(Application.person_id).where(Application.item_code == "ZS007",
                                                       Application.status.in_(LIVE_STATUSES))
            people = s.scalars(select(Person.id).where(Person.region_code == village, Person.id.not_in(live))
                               .order_by(Person.id).limit(n)).all()
            apps = [service.accept(s, clerk, person_id=p, item_code="ZS007", period="2026-11", now=MONDAY)
                    for p in people]
            s.commit()
            return Area(village, clerk.id, [a.id for a in apps], [a.number for a in apps])

    yield make
    with new_session() as s:
        for ids, reminded, escalated in restore:
            s.execute(update(Application).where(Application.id.in_(ids)).values(reminded=reminded, escalated=escalated))
        if clerks:  # the test's clerk leaves: later tests in the village do not write to them
            s.execute(update(User).where(User.id.in_(clerks)).values(active=False))
        s.commit()
