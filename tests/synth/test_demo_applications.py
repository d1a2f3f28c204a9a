"""The demo city's applications (synth.applications): every state and station, real work in every
demo reviewer's inbox with overdue and due-next stations, an open publicity list with objections,
complete trails, applicants who fit their items; the same seed gives the same applications whatever
the demo day, only the dates move."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from yikatong.core.db import make_engine
from yikatong.core.migrate import upgrade
from yikatong.registry.models import Person
from yikatong.synth.applications import TEST_ITEMS
from yikatong.synth.city import build_city
from yikatong.workflow import publicity, service
from yikatong.workflow.calendar import load_calendar
from yikatong.workflow.models import (
    Application,
    Objection,
    ObjectionStatus,
    Publicity,
    PublicityEntry,
    ReviewRecord,
    Status,
    Step,
)

REVIEWERS = ("village_clerk", "village_clerk2", "township_reviewer", "county_handler", "city_finance")
STATIONS = {s.value for s in (Step.VILLAGE, Step.PUBLICITY, Step.TOWNSHIP, Step.COUNTY, Step.CITY)}


@pytest.fixture
def users(city, db):
    from yikatong.security.models import User

    return {u.username: u for u in db.scalars(select(User)).all()}


def demo_rows(city):
    """Only the build's own applications: other tests commit rows of their own."""
    first, last = city.application_ids
    return Application.id.between(first, last)


def demo_area(users) -> str:
    return users["township_reviewer"].region_code[:9]


def test_the_report_counts_what_the_build_wrote(city, db):
    assert city.applications > 0 and sum(city.applications_by_status.values()) == city.applications
    assert db.scalar(select(func.count()).select_from(Application).where(demo_rows(city))) == city.applications


def test_every_status_and_every_station_appears_in_the_demo_area(city, db, users):
    rows = db.execute(select(Application.status, Application.stage, Application.returned)
                      .where(demo_rows(city), Application.region_code.like(demo_area(users) + "%"))).all()
    assert {r.status for r in rows} == {s.value for s in Status}
    assert {r.stage for r in rows if r.status == Status.OPEN} == STATIONS
    assert any(r.returned for r in rows)  # returned for correction, waiting at 村评
    published = db.scalars(select(Application.publicity_id).where(
        demo_rows(city), Application.stage == Step.PUBLICITY.value)).all()
    assert None in published and any(published)  # waiting to be published, and on a list


def test_every_demo_reviewer_finds_work_some_of_it_overdue(city, db, users):
    today = city.demo_day
    next_working = load_calendar(db).add_working_days(today, 1)
    first, last = city.application_ids
    due_next = 0
    for username in REVIEWERS:
        box = service.inbox(db, users[username], service.InboxFilter(), today, size=100)
        mine = [r for r in box.rows if first <= r.id <= last]
        assert mine, f"{username} has no demo application waiting"
        assert any(r.due_on < today for r in mine), f"{username} has nothing overdue"
        due_next += sum(r.due_on == next_working for r in mine)
    assert due_next >= 3  # the electronic eye reminds someone tomorrow
    # The county handler's inbox holds civil-affairs (民政) items only; other sectors wait at 县定 too.
    county = service.inbox(db, users["county_handler"], service.InboxFilter(), today, size=100)
    assert {row.item_code for row in county.rows} and all(
        db.get(Application, row.id).sector == "民政" for row in county.rows)
    assert db.scalar(select(Application.id).where(demo_rows(city), Application.stage == Step.COUNTY.value,
                                                  Application.sector != "民政"))


def test_the_supervisor_sees_the_whole_city(city, db, users):
    counts = service.counts_by_status(db, users["supervisor"])
    assert counts.get(Status.OPEN, 0) > 0 and counts.get(Status.APPROVED, 0) > 0
    counties = db.scalars(select(Application.region_code).where(demo_rows(city), service.visible(
        db, users["supervisor"]))).all()
    assert len({code[:6] for code in counties}) == 5  # every county of the city has claims
    overdue = db.scalar(select(Application.id).where(demo_rows(city), Application.due_on < city.demo_day,
                                                     Application.region_code.not_like(demo_area(users) + "%")))
    assert overdue is not None  # the overdue board has work beyond the demo villages


def test_an_open_publicity_list_with_an_open_and_a_resolved_objection(city, db, users):
    lists = db.scalars(select(Publicity).where(Publicity.region_code == users["village_clerk"].region_code)).all()
    open_lists = [p for p in lists if publicity.is_open(p, city.demo_day)]
    assert open_lists
    entries = db.scalars(select(PublicityEntry.application_id).where(
        PublicityEntry.publicity_id.in_([p.id for p in open_lists]))).all()
    objections = db.scalars(select(Objection).where(Objection.application_id.in_(entries))).all()
    assert {o.status for o in objections} == {s.value for s in ObjectionStatus}
    for o in objections:
        app = db.get(Application, o.application_id)
        if o.status == ObjectionStatus.OPEN:
            assert app.open_objections == 1 and app.stage == Step.PUBLICITY
        elif o.status == ObjectionStatus.DISMISSED:  # answered, still on the list until the window ends
            assert app.open_objections == 0 and app.stage == Step.PUBLICITY and o.opinion
        else:
            assert app.status == Status.REJECTED
    # everything published before that has been moved on by the nightly close
    assert all(p.closed_at is not None for p in lists if not publicity.is_open(p, city.demo_day))


def test_an_approved_application_passed_every_station_in_order(city, db, users):
    approved = db.scalars(select(Application).where(
        demo_rows(city), Application.status == Status.APPROVED.value,
        Application.region_code == users["village_clerk"].region_code)).all()
    assert approved
    for app in approved:
        records = db.scalars(select(ReviewRecord).where(ReviewRecord.application_id == app.id)
                             .order_by(ReviewRecord.id)).all()
        assert [(r.step, r.action) for r in records] == [
            ("户报", "提交申请"), ("村评", "通过"), ("公示", "公示开始"), ("公示", "公示期满"),
            ("镇审", "通过"), ("县定", "通过"), ("市管", "通过")]
        assert [r.at for r in records] == sorted(r.at for r in records)
        assert [r.actor_role for r in records] == [
            "village_clerk", "village_clerk", "village_clerk", "system", "township_reviewer", "county_handler",
            "city_finance"]
        assert app.decided_at.date() < city.demo_day and app.stage is None


def test_applicants_fit_their_items(city, db, users):
    rows = db.execute(select(Application.item_code, Application.region_code, Application.quantity_centi,
                             Application.basis, Person.is_beneficiary, Person.birth_date, Person.relation)
                      .join(Person, Person.id == Application.person_id).where(demo_rows(city))).all()
    assert rows
    for r in rows:
        community = r.region_code[9:12] < "200"  # 001-199 are 社区, 200+ are 村
        age = city.demo_day.year - r.birth_date.year
        if r.item_code in ("ZS006", "ZS007"):  # 城市低保 / 农村低保
            assert r.is_beneficiary and community == (r.item_code == "ZS006")
        if r.item_code == "SD001":  # 高龄津贴（80至89周岁）
            assert 80 <= age <= 90
        if r.basis == "亩":
            assert not community and 100 <= r.quantity_centi <= 4500 and r.relation == "户主"
        if r.region_code.startswith(demo_area(users)):
            assert r.item_code not in TEST_ITEMS  # left to the tests' own claims


TINY = 0.0005


def _build(tmp_path: Path, name: str, today: date) -> Engine:
    url = f"sqlite:///{tmp_path / name}"
    upgrade(url)
    engine = make_engine(url)
    build_city(engine, TINY, 4, today=today, claims=False, shared_data=False)  # the demo stories alone
    return engine


def _contents(engine: Engine) -> tuple[list, list]:
    with engine.connect() as c:
        apps = c.execute(select(
            Application.id, Application.item_code, Application.person_id, Application.region_code,
            Application.status, Application.stage, Application.returned, Application.quantity_centi,
            Application.amount_fen, Application.source, Application.open_objections, Application.publicity_id,
        ).order_by(Application.id)).all()
        records = c.execute(select(
            ReviewRecord.application_id, ReviewRecord.step, ReviewRecord.action, ReviewRecord.to_stage,
            ReviewRecord.status_after, ReviewRecord.user_id, ReviewRecord.actor_name, ReviewRecord.opinion,
        ).order_by(ReviewRecord.id)).all()
    return apps, records


def test_same_seed_same_applications_whatever_the_demo_day(tmp_path):
    # A Saturday and a Wednesday months later: on a weekend the demo counts from the Friday before.
    days = {date(2026, 11, 28): date(2026, 11, 27), date(2027, 3, 3): date(2027, 3, 3)}
    engines = [_build(tmp_path, f"{n}.db", day) for n, day in enumerate(days)]
    try:
        apps, records = _contents(engines[0])
        assert apps and all(_contents(e) == (apps, records) for e in engines[1:])
        dates = select(Application.created_at).order_by(Application.id)
        late = []
        for engine, counted_from in zip(engines, days.values(), strict=True):
            with engine.connect() as c:
                late.append(c.scalar(select(func.count()).select_from(Application)
                                     .where(Application.due_on < counted_from)))
                if engine is not engines[0]:
                    with engines[0].connect() as a:
                        shifted = {(y - x).days for (x,), (y,) in zip(a.execute(dates), c.execute(dates), strict=True)}
                    assert min(shifted) > 0  # every date moved with the demo day...
        assert late[0] > 0 and len(set(late)) == 1  # ...and the same stations are overdue on it
    finally:
        for engine in engines:
            engine.dispose()
