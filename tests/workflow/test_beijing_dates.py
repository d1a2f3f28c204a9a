"""The platform's calendar is Beijing's: between 00:00 and 08:00 Beijing time the UTC date is still
yesterday, and a claim entered, a list published, a reminder decided or a page shown then must go by
the Beijing date; every time a person reads is Beijing wall-clock time.

Each test runs at 00:30 and at 07:59 Beijing time (16:30 and 23:59 UTC of the previous day)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

import pytest

from yikatong.core.clock import FixedClock, beijing_at, beijing_date
from yikatong.core.db import transaction
from yikatong.security.models import User
from yikatong.workflow import publicity, service
from yikatong.workflow.calendar import load_calendar
from yikatong.workflow.eye import scan
from yikatong.workflow.models import Action, Publicity, Step
from yikatong.workflow.road import road_for

from .conftest import login

SPECIAL = "ZS017"  # 计划生育特别扶助: monthly, not publicised (村评 -> 镇审)
FARMLAND = "ZS001"  # 耕地地力保护补贴: yearly, publicised
WEDNESDAY = date(2026, 12, 2)  # in Beijing; UTC is still Tuesday before 08:00
EARLY = [time(0, 30), time(7, 59)]


def set_clock(clock: FixedClock, moment: datetime) -> None:
    clock.advance(seconds=(moment - clock.now()).total_seconds())


@pytest.mark.parametrize("wall", EARLY)
def test_a_claim_is_numbered_and_given_its_deadline_by_the_beijing_date(db, users, claimant, wall):
    now = beijing_at(WEDNESDAY, wall)
    assert now.astimezone(UTC).date() == WEDNESDAY - timedelta(days=1)  # the hours where UTC is yesterday
    app = service.accept(db, users["village_clerk"], person_id=claimant(SPECIAL).id, item_code=SPECIAL,
                         period="2026-12", now=now)
    assert app.number.startswith("SQ20261202")
    station = road_for(db, app.item).station(Step.VILLAGE)
    assert app.due_on == load_calendar(db).add_working_days(WEDNESDAY, station.days)


@pytest.mark.parametrize("wall", EARLY)
def test_a_publicity_list_runs_seven_full_beijing_days(db, users, claimant, wall):
    clerk = users["village_clerk"]
    now = beijing_at(WEDNESDAY, wall)
    app = service.accept(db, clerk, person_id=claimant(FARMLAND).id, item_code=FARMLAND, period="2026",
                         quantity="3", now=now)
    service.decide(db, app, clerk, Action.APPROVE, "评议通过", now)
    publicity.publish(db, clerk, now, village=app.region_code)
    pub = db.get(Publicity, app.publicity_id)
    last_day = date(2026, 12, 8)
    assert (pub.starts_on, pub.ends_on) == (WEDNESDAY, last_day)

    # The last minute of the window (15:59 UTC): still open, nothing moves.
    end = beijing_at(last_day, time(23, 59))
    assert publicity.is_open(pub, beijing_date(end))
    assert publicity.close_ended(db, end, region=app.region_code) == 0
    assert app.stage == Step.PUBLICITY
    # The next Beijing morning, while UTC is still the last day: the window has ended.
    after = beijing_at(last_day + timedelta(days=1), wall)
    assert not publicity.is_open(pub, beijing_date(after))
    assert publicity.close_ended(db, after, region=app.region_code) >= 1
    assert app.stage == Step.TOWNSHIP


@pytest.mark.parametrize("wall", EARLY)
def test_the_electronic_eye_reminds_and_escalates_by_the_beijing_date(db, users, claimant, wall):
    app = service.accept(db, users["village_clerk"], person_id=claimant(SPECIAL).id, item_code=SPECIAL,
                         period="2026-12", now=beijing_at(WEDNESDAY, time(10)))
    region = app.region_code
    # The evening before the reminder day: nothing yet.
    scan(db, beijing_at(app.remind_on - timedelta(days=1), time(23, 59)), region=region)
    assert not app.reminded
    report = scan(db, beijing_at(app.remind_on, wall), region=region)
    assert report.today == app.remind_on and app.reminded
    assert not app.escalated
    scan(db, beijing_at(app.due_on, time(23, 59)), region=region)
    assert not app.escalated  # due today: not late yet
    report = scan(db, beijing_at(app.due_on + timedelta(days=1), wall), region=region)
    assert report.today == app.due_on + timedelta(days=1) and app.escalated


# ---------------------------------------------------------------- what people see


def committed_claim(users, claimant, now: datetime) -> tuple[int, str, date]:
    with transaction() as s:
        clerk = s.get(User, users["village_clerk"].id)
        app = service.accept(s, clerk, person_id=claimant(SPECIAL).id, item_code=SPECIAL, period="2026-12", now=now)
        return app.id, app.number, app.due_on


@pytest.mark.parametrize("wall", EARLY)
def test_the_inbox_counts_a_claim_overdue_from_the_beijing_morning_after_its_deadline(web, clock, users,
                                                                                        claimant, wall):
    app_id, number, due_on = committed_claim(users, claimant, beijing_at(WEDNESDAY, time(10)))
    village = users["village_clerk"].region_code
    query = f"/api/v1/inbox?overdue=true&village={village}&item_code={SPECIAL}&size=200"

    set_clock(clock, beijing_at(due_on, time(23, 59)))
    headers = login(web, "village_clerk")
    before = web.get(query, headers=headers).json()
    assert number not in {i["number"] for i in before["rows"]}
    assert web.get(f"/api/v1/applications/{app_id}", headers=headers).json()["overdue_days"] == 0

    set_clock(clock, beijing_at(due_on + timedelta(days=1), wall))
    headers = login(web, "village_clerk")
    after = web.get(query, headers=headers).json()
    assert number in {i["number"] for i in after["rows"]}
    assert after["overdue"] >= before["overdue"] + 1
    assert web.get(f"/api/v1/applications/{app_id}", headers=headers).json()["overdue_days"] >= 1
    page = web.get(f"/applications?overdue=1&item={SPECIAL}&village={village}", headers=headers)
    assert page.status_code == 200 and number in page.text


@pytest.mark.parametrize("wall", EARLY)
def test_pages_show_the_beijing_today(web, clock, claimant, wall):
    # New Year's morning in Beijing, New Year's Eve in UTC: a monthly claim defaults to January.
    set_clock(clock, beijing_at(date(2027, 1, 1), wall))
    person = claimant(SPECIAL)
    page = web.get(f"/applications/new?item_code={SPECIAL}&person_id={person.id}", headers=login(web, "village_clerk"))
    assert page.status_code == 200
    assert 'value="2027-01"' in page.text and 'value="2026-12"' not in page.text
    board = web.get("/overdue", headers=login(web, "township_reviewer"))
    assert board.status_code == 200 and "截至 2027-01-01" in board.text


@pytest.mark.parametrize("wall", EARLY)
def test_the_trail_shows_beijing_wall_clock_time(web, clock, users, claimant, wall):
    now = beijing_at(WEDNESDAY, wall)
    set_clock(clock, now)
    app_id, _, _ = committed_claim(users, claimant, now)
    headers = login(web, "village_clerk")
    shown = f"2026-12-02 {wall:%H:%M}"
    utc = f"{now.astimezone(UTC):%Y-%m-%d %H:%M}"
    page = web.get(f"/applications/{app_id}", headers=headers)
    assert page.status_code == 200
    assert shown in page.text and utc not in page.text
    exported = web.get(f"/applications/{app_id}/trail.csv", headers=headers)
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[1][2] == f"{shown}:00"
