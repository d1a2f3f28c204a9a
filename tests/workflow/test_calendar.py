"""Working days: weekends, a holiday week with make-up days (调休), deadlines that follow the calendar
table, and `ykt calendar set / remove / list / import` against the test database.

The command-line tests commit, so they only touch the year 2031 (no other test has a deadline
there) and remove what they wrote."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import delete, select
from typer.testing import CliRunner

from yikatong.core.db import transaction
from yikatong.core.errors import Invalid
from yikatong.security.models import AuditEvent
from yikatong.workflow import service
from yikatong.workflow.calendar import WorkCalendar, load_calendar, set_day
from yikatong.workflow.models import CalendarDay, Step

# A National Day week as the State Council publishes them: Thursday 1 to Wednesday 7 October off
# (the weekend inside it is off anyway), the Sunday before and the Saturday after worked instead.
NATIONAL_DAY = frozenset(date(2026, 10, d) for d in (1, 2, 5, 6, 7))
MAKE_UP = frozenset({date(2026, 9, 27), date(2026, 10, 10)})
YEAR = 2031


def test_plain_weeks_skip_the_weekend():
    cal = WorkCalendar()
    friday, monday = date(2026, 12, 4), date(2026, 12, 7)
    assert not cal.is_working(date(2026, 12, 5)) and not cal.is_working(date(2026, 12, 6))
    assert cal.add_working_days(friday, 1) == monday  # a Friday deadline of 1 day falls on Monday
    assert cal.add_working_days(date(2026, 11, 30), 5) == monday  # Monday + 5 working days
    assert cal.subtract_working_days(monday, 1) == friday  # the reminder before a Monday deadline
    assert cal.working_days_between(friday, monday) == 1
    assert cal.working_days_between(monday, friday) == 0  # not late before the deadline


def test_a_holiday_week_and_its_make_up_days():
    cal = WorkCalendar(NATIONAL_DAY, MAKE_UP)
    assert cal.is_working(date(2026, 9, 27)) and cal.is_working(date(2026, 10, 10))  # Sunday, Saturday
    assert not cal.is_working(date(2026, 10, 1)) and not cal.is_working(date(2026, 10, 3))
    assert cal.add_working_days(date(2026, 9, 25), 1) == date(2026, 9, 27)  # Friday -> the make-up Sunday
    assert cal.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)  # over the whole week
    assert cal.add_working_days(date(2026, 9, 30), 3) == date(2026, 10, 10)  # the make-up Saturday counts
    assert cal.add_working_days(date(2026, 9, 30), 4) == date(2026, 10, 12)
    assert cal.subtract_working_days(date(2026, 10, 8), 1) == date(2026, 9, 30)
    assert cal.subtract_working_days(date(2026, 10, 12), 2) == date(2026, 10, 9)
    assert cal.subtract_working_days(date(2026, 9, 28), 1) == date(2026, 9, 27)
    assert cal.working_days_between(date(2026, 9, 25), date(2026, 10, 8)) == 5  # 27, 28, 29, 30 Sep and 8 Oct


def test_deadlines_of_new_applications_follow_the_calendar_table(db, users, claimant, clock):
    # Tuesday to Thursday after the test Monday off (inside this test's transaction only)
    for day in (1, 2, 3):
        set_day(db, date(2026, 12, day), False, "测试假日")
    db.flush()
    assert not load_calendar(db).is_working(date(2026, 12, 2))
    app = service.accept(db, users["village_clerk"], person_id=claimant().id, item_code="ZS007", period="2026-11",
                         now=clock.now())
    # 村评 has 5 working days: Fri 4, Mon 7, Tue 8, Wed 9, Thu 10 December; reminded the day before
    assert (app.stage, app.due_on, app.remind_on) == (Step.VILLAGE, date(2026, 12, 10), date(2026, 12, 9))


# ---------------------------------------------------------------- the command line


@pytest.fixture
def ykt(city):
    """Run `ykt ...` in-process against the test database; the year 2031 is emptied afterwards."""
    from yikatong.cli import app

    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    with transaction() as s:
        s.execute(delete(CalendarDay).where(CalendarDay.day.between(date(YEAR, 1, 1), date(YEAR, 12, 31))))


def days_of_year(db) -> dict[date, tuple[bool, str]]:
    db.expire_all()
    return {r.day: (r.working, r.note) for r in db.scalars(select(CalendarDay).where(
        CalendarDay.day.between(date(YEAR, 1, 1), date(YEAR, 12, 31))))}


def test_set_list_and_remove_days(ykt, db):
    r = ykt("calendar", "set", f"{YEAR}-10-01", "--holiday", "--note", "国庆节")
    assert r.exit_code == 0, r.output
    assert f"已设置 {YEAR}-10-01（周三）为“休”：国庆节" in r.output
    r = ykt("calendar", "set", f"{YEAR}-09-28", "--workday", "--note", "国庆节调休")  # a Sunday
    assert r.exit_code == 0, r.output
    assert days_of_year(db) == {date(YEAR, 10, 1): (False, "国庆节"), date(YEAR, 9, 28): (True, "国庆节调休")}
    assert load_calendar(db).add_working_days(date(YEAR, 9, 26), 1) == date(YEAR, 9, 28)  # Friday -> Sunday

    listed = ykt("calendar", "list", "--year", str(YEAR))
    assert listed.exit_code == 0
    assert f"{YEAR}-09-28" in listed.output and "国庆节调休" in listed.output
    assert "放假 1 天，调休上班 1 天" in listed.output

    r = ykt("calendar", "set", f"{YEAR}-10-01", "--workday")  # set again: replaced, not duplicated
    assert r.exit_code == 0 and days_of_year(db)[date(YEAR, 10, 1)] == (True, "")
    assert "周三本来就是工作日" in r.output

    r = ykt("calendar", "remove", f"{YEAR}-10-01")
    assert r.exit_code == 0 and date(YEAR, 10, 1) not in days_of_year(db)
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.object_id == f"{YEAR}-10-01")
                         .order_by(AuditEvent.id)).all()
    assert actions[-3:] == ["calendar.set", "calendar.set", "calendar.remove"]


def test_set_refuses_unclear_requests(ykt, db):
    both = ykt("calendar", "set", f"{YEAR}-10-01", "--holiday", "--workday")
    assert both.exit_code != 0 and isinstance(both.exception, Invalid) and "其中之一" in both.exception.message
    bad = ykt("calendar", "set", f"{YEAR}-02-30", "--holiday")
    assert isinstance(bad.exception, Invalid) and "没有这一天" in bad.exception.message
    assert days_of_year(db) == {}


def test_import_a_years_schedule(ykt, db, tmp_path):
    good = tmp_path / "holidays.csv"
    good.write_text("日期,类型,说明\n"
                    f"{YEAR}-10-01,休,国庆节\n"
                    f"{YEAR}/10/2,休,国庆节\n"
                    f"{YEAR}年10月3日,休,国庆节\n"
                    f"{YEAR}-09-28,班,国庆节调休\n", encoding="utf-8-sig")  # Excel's UTF-8 with a BOM
    r = ykt("calendar", "import", str(good))
    assert r.exit_code == 0, r.output
    assert "4 天（放假 3 天，调休上班 1 天）" in r.output
    assert days_of_year(db) == {date(YEAR, 10, 1): (False, "国庆节"), date(YEAR, 10, 2): (False, "国庆节"),
                                date(YEAR, 10, 3): (False, "国庆节"), date(YEAR, 9, 28): (True, "国庆节调休")}
    again = ykt("calendar", "import", str(good))  # the same file again changes nothing
    assert again.exit_code == 0 and len(days_of_year(db)) == 4


def test_a_bad_file_imports_nothing_and_names_every_row(ykt, db, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("日期,类型,说明\n"
                   f"{YEAR}-05-01,休,劳动节\n"
                   f"{YEAR}-02-30,休,不存在的日子\n"
                   f"{YEAR}-05-02,假期,\n"
                   f"{YEAR}-5-1,班,\n", encoding="gb18030")
    r = ykt("calendar", "import", str(bad), "--encoding", "gb18030")
    assert r.exit_code == 1
    text = " ".join(r.output.split())
    assert "共 3 处错误，未导入任何数据" in text
    assert "没有这一天" in text and "类型应为“休”" in text and "与第2行是同一天" in text
    assert days_of_year(db) == {}  # not even the good first row

    wrong_header = tmp_path / "header.csv"
    wrong_header.write_text("日子,类型\n2031-05-01,休\n", encoding="utf-8")
    r = ykt("calendar", "import", str(wrong_header))
    assert r.exit_code == 1 and "未知的列名“日子”" in " ".join(r.output.split())
