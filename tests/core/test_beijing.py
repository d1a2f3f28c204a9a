"""Instants are aware UTC in memory and naive UTC in the database; dates and shown times are Beijing's."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from yikatong.core.clock import BEIJING, FixedClock, beijing_at, beijing_date, format_beijing, system_clock
from yikatong.core.db import Base, bulk_insert


class _Base(DeclarativeBase):  # a metadata of its own, with the platform's column types
    type_annotation_map = Base.type_annotation_map


class Stamp(_Base):
    __tablename__ = "test_stamps"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]


def test_the_clock_is_aware_utc():
    assert system_clock.now().tzinfo is UTC
    fixed = FixedClock(datetime(2026, 12, 1, 16, 30))  # naive: taken to be UTC
    assert fixed.now() == datetime(2026, 12, 1, 16, 30, tzinfo=UTC) and fixed.now().utcoffset().total_seconds() == 0
    assert FixedClock(datetime(2026, 12, 2, 0, 30, tzinfo=BEIJING)).now() == fixed.now()


def test_beijing_dates_and_times_before_eight_in_the_morning():
    for wall in (time(0, 30), time(7, 59)):
        moment = beijing_at(date(2026, 12, 2), wall)
        assert moment.date() == date(2026, 12, 1)  # UTC's date is still yesterday
        assert beijing_date(moment) == date(2026, 12, 2)
        assert format_beijing(moment) == f"2026-12-02 {wall:%H:%M}"
    assert format_beijing(None) == ""


def test_a_datetime_column_stores_naive_utc_and_reads_aware_utc():
    engine = create_engine("sqlite://")
    Stamp.__table__.create(engine)
    with Session(engine) as s:
        s.add_all([Stamp(id=1, at=datetime(2026, 12, 2, 0, 30, tzinfo=BEIJING)),  # any zone is converted
                   Stamp(id=2, at=datetime(2026, 12, 1, 16, 30))])  # naive is UTC
        bulk_insert(s, Stamp.__table__, [{"id": 3, "at": datetime(2026, 12, 2, 7, 59, tzinfo=BEIJING)}])
        s.commit()
        stored = dict(s.execute(text("SELECT id, at FROM test_stamps")).all())
        assert stored == {1: "2026-12-01 16:30:00.000000", 2: "2026-12-01 16:30:00.000000",
                          3: "2026-12-01 23:59:00.000000"}
        read = s.scalars(select(Stamp.at).order_by(Stamp.id)).all()
        assert read == [datetime(2026, 12, 1, 16, 30, tzinfo=UTC)] * 2 + [datetime(2026, 12, 1, 23, 59, tzinfo=UTC)]
        assert all(r.tzinfo is not None for r in read)
        # comparisons in SQL take aware values in any zone
        later = s.scalars(select(Stamp.id).where(Stamp.at > datetime(2026, 12, 2, 1, tzinfo=BEIJING))).all()
        assert later == [3]
