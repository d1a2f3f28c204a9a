"""A savepoint after only SELECTs must stay inside the caller's transaction (pysqlite would commit it)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from yikatong.core.db import new_session, savepoint
from yikatong.workflow.models import CalendarDay

DAY = date(2031, 5, 5)


def test_rollback_after_a_released_savepoint_undoes_its_writes(migrated):
    with new_session() as session:
        session.execute(select(CalendarDay)).all()  # only a read so far: no transaction on pysqlite
        with savepoint(session):
            session.add(CalendarDay(day=DAY, working=False, note="测试"))
        session.rollback()
    with new_session() as session:
        assert session.get(CalendarDay, DAY) is None


def test_a_failed_savepoint_keeps_the_outer_work(migrated):
    with new_session() as session:
        session.add(CalendarDay(day=DAY, working=True, note="外层"))
        session.flush()
        try:
            with savepoint(session):
                session.add(CalendarDay(day=DAY, working=False, note="重复"))
                session.flush()
        except Exception:  # noqa: BLE001 - the duplicate key is the point
            pass
        assert session.get(CalendarDay, DAY).note == "外层"
        session.rollback()
