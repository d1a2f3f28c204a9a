"""Time comes from a clock object so tests can move it by days without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC).replace(tzinfo=None)


class FixedClock(Clock):
    """A clock that stands still until told to move (tests)."""

    def __init__(self, start: datetime):
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, **kwargs: float) -> datetime:
        self._now += timedelta(**kwargs)
        return self._now


system_clock = Clock()
