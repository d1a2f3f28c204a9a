"""Working days (工作日): Monday to Friday, less public holidays, plus weekend make-up days (调休),
as recorded in the calendar_days table (`ykt calendar set`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from yikatong.workflow.models import CalendarDay


@dataclass(frozen=True)
class WorkCalendar:
    holidays: frozenset[date] = field(default_factory=frozenset)  # weekdays off
    workdays: frozenset[date] = field(default_factory=frozenset)  # weekend days on

    def is_working(self, day: date) -> bool:
        if day in self.holidays:
            return False
        return day.weekday() < 5 or day in self.workdays

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after `start` (start itself does not count): a station entered on
        Friday with 1 working day is due on Monday."""
        day = start
        counted = 0
        while counted < n:
            day += timedelta(days=1)
            if self.is_working(day):
                counted += 1
        return day

    def subtract_working_days(self, end: date, n: int) -> date:
        """The n-th working day before `end` (the reminder day before a deadline)."""
        day = end
        counted = 0
        while counted < n:
            day -= timedelta(days=1)
            if self.is_working(day):
                counted += 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]: how late a station is on `end` when it was due on `start`."""
        if end <= start:
            return 0
        return sum(1 for k in range(1, (end - start).days + 1) if self.is_working(start + timedelta(days=k)))


def load_calendar(session: Session) -> WorkCalendar:
    rows = session.execute(select(CalendarDay.day, CalendarDay.working)).all()
    return WorkCalendar(frozenset(d for d, working in rows if not working),
                        frozenset(d for d, working in rows if working))


def set_day(session: Session, day: date, working: bool, note: str = "") -> None:
    """Mark one day as a holiday (working=False) or a make-up working day (working=True)."""
    row = session.get(CalendarDay, day)
    if row is None:
        session.add(CalendarDay(day=day, working=working, note=note))
    else:
        row.working, row.note = working, note
