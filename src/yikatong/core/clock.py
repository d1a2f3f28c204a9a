"""Time comes from a clock object so tests can move it by days without sleeping.

Instants are aware UTC datetimes in memory (the database keeps them as naive UTC, see
core.db.UTCDateTime). Every calendar date people reason with (deadlines, publicity windows, application
numbers, "today") is the date in Beijing (Asia/Shanghai, UTC+8): between 00:00 and 08:00 Beijing time
the UTC date is still yesterday, so `now.date()` is never the answer — use `beijing_date(now)`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock(Clock):
    """A clock that stands still until told to move (tests). A naive start is taken to be UTC."""

    def __init__(self, start: datetime):
        self._now = as_utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, **kwargs: float) -> datetime:
        self._now += timedelta(**kwargs)
        return self._now


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC (how the database keeps instants)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def beijing_time(moment: datetime) -> datetime:
    """The same instant on Beijing's wall clock (aware, Asia/Shanghai): what a person is shown."""
    return as_utc(moment).astimezone(BEIJING)


def format_beijing(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An instant as a person reads it: Beijing wall-clock time ("" for none). Pages (the `bj`
    filter), exports, messages and the CLI all show times this way."""
    return "" if moment is None else beijing_time(moment).strftime(fmt)


def beijing_date(moment: datetime) -> date:
    """The calendar date in Beijing at `moment`."""
    return beijing_time(moment).date()


def beijing_noon(day: date) -> datetime:
    """Noon of a Beijing calendar day (04:00 UTC): handy for tests and seeds."""
    return beijing_at(day, time(12))


def beijing_at(day: date, wall: time) -> datetime:
    """The instant (aware UTC) when Beijing's wall clock shows `wall` on `day`."""
    return datetime.combine(day, wall, tzinfo=BEIJING).astimezone(UTC)


system_clock = Clock()
