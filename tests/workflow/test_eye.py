"""The electronic eye (电子眼): reminders on the working day before a deadline, escalation to the
leader and the region's supervisors once it has passed, one digest per person, reruns that write
nothing, the overdue board, and `ykt worker`.

Every scan here is limited to one village whose earlier applications are set aside for the test
(see `area`), so the digests hold exactly the applications the test made."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select, update

from yikatong.core.clock import FixedClock, beijing_at
from yikatong.core.protect import protect
from yikatong.notify.models import OutboxMessage, OutboxStatus
from yikatong.registry.models import Person, Region
from yikatong.security.models import User
from yikatong.workflow import service
from yikatong.workflow.calendar import set_day
from yikatong.workflow.eye import Kind, scan
from yikatong.workflow.models import LIVE_STATUSES, Action, Application, Source, Status, Step
from yikatong.workflow.overdue import board_to_excel, overdue_board

from .conftest import MONDAY

ZIZHONG = "511025000000"
LOW_INCOME = "ZS007"  # 民政, per person, monthly
THURSDAY, FRIDAY, SATURDAY = date(2026, 12, 3), date(2026, 12, 4), date(2026, 12, 5)
NEXT_MONDAY, NEXT_TUESDAY = date(2026, 12, 7), date(2026, 12, 8)


def at(day: date, hour: int = 8) -> datetime:
    """`hour` o'clock in Beijing on `day`."""
    return beijing_at(day, time(hour))


def make_user(db, role: str, region: str, name: str, *, leader: bool = False, openid: str | None = None,
              phone: str | None = None, department: str | None = None, active: bool = True) -> User:
    user = User(username=f"eye-{uuid.uuid4().hex[:10]}", display_name=name, password_hash="!", role=role,
                region_code=region, department_code=department, active=active, leader=leader, wechat_openid=openid,
                created_at=MONDAY)
    if phone:
        protected = protect("phone", phone)
        user.phone_enc, user.phone_masked = protected.enc, protected.masked
    db.add(user)
    db.flush()
    return user


def roomy_village(db, people: int = 12) -> str:
    """A village of 资中县 outside the demo villages with the most people free to claim 农村低保."""
    demo = select(User.region_code).where(User.username.in_(("village_clerk", "village_clerk2")))
    live = select(Application.person_id).where(Application.item_code == LOW_INCOME,
                                               Application.status.in_(LIVE_STATUSES))
    return db.scalar(select(Person.region_code).where(Person.region_code.like("511025%"),
                                                      Person.region_code.not_in(demo), Person.id.not_in(live))
                     .group_by(Person.region_code).having(func.count() >= people)
                     .order_by(func.count().desc(), Person.region_code).limit(1))


@pytest.fixture
def area(db, users, claimant):
    """A village with its own clerk (on WeChat) and a person-picker for it. The village's open
    applications from before the test (the demo city's) are flagged as already reminded and
    escalated in the test's transaction, so the eye writes about the test's applications only."""
    village = roomy_village(db)
    assert village is not None
    db.execute(update(Application).where(Application.region_code == village, Application.status == Status.OPEN.value)
               .values(reminded=True, escalated=True))
    clerk = make_user(db, "village_clerk", village, "测试村 经办员", openid="oTEST-clerk")

    class Area:
        code = village
        township = village[:9] + "000"

        def __init__(self):
            self.clerk = clerk

        def accept(self, clock, item=LOW_INCOME, period="2026-11"):
            person = claimant(item, village=village)
            return service.accept(db, clerk, person_id=person.id, item_code=item, period=period, now=clock.now())

    return Area()


@pytest.fixture
def messages(db, area):
    """messages(user_id, kind=None) -> the outbox rows written for a user since the test began."""
    since = db.scalar(select(func.max(OutboxMessage.id))) or 0

    def read(user_id: int, kind: Kind | None = None) -> list[OutboxMessage]:
        q = select(OutboxMessage).where(OutboxMessage.user_id == user_id, OutboxMessage.id > since)
        if kind:
            q = q.where(OutboxMessage.kind == kind.value)
        return list(db.scalars(q.order_by(OutboxMessage.id)))

    return read


def numbers_in(message: OutboxMessage) -> list[str]:
    return json.loads(message.payload)["numbers"]


# ---------------------------------------------------------------- reminders


def test_reminder_comes_on_the_working_day_before_a_monday_deadline(db, area, clock, messages):
    app = area.accept(clock)  # Monday 30 Nov; 村评 5 working days -> due Monday 7 Dec
    assert (app.due_on, app.remind_on) == (NEXT_MONDAY, FRIDAY)

    report = scan(db, at(THURSDAY), region=area.code)
    assert not app.reminded and report.reminded == 0
    assert messages(area.clerk.id) == []

    report = scan(db, at(FRIDAY), region=area.code)
    assert app.reminded and not app.escalated
    assert (report.reminded, report.reminders, report.escalations) == (1, 1, 0)
    [message] = messages(area.clerk.id)
    assert message.kind == "reminder" and message.channel == "wechat" and message.status == OutboxStatus.PENDING
    assert numbers_in(message) == [app.number]
    assert "您有1件补贴申请将于12月7日到期" in message.body and app.number in message.body
    assert message.dedupe_key.startswith(f"eye:reminder:20261204:{area.clerk.id}:")

    # The weekend and the deadline day itself bring nothing new.
    for day in (SATURDAY, NEXT_MONDAY):
        assert scan(db, at(day), region=area.code).reminders == 0
    assert len(messages(area.clerk.id)) == 1


def test_a_holiday_moves_the_deadline_and_the_reminder(db, area, clock, messages):
    set_day(db, FRIDAY, working=False, note="测试假日")
    db.flush()
    app = area.accept(clock)  # Tue Wed Thu (Fri off) Mon Tue: due Tuesday 8 Dec, reminded Monday 7 Dec
    assert (app.due_on, app.remind_on) == (NEXT_TUESDAY, NEXT_MONDAY)
    scan(db, at(FRIDAY), region=area.code)
    assert not app.reminded
    scan(db, at(NEXT_MONDAY), region=area.code)
    assert app.reminded
    scan(db, at(NEXT_TUESDAY), region=area.code)
    assert not app.escalated  # the deadline day still counts
    scan(db, at(NEXT_TUESDAY + timedelta(days=1)), region=area.code)
    assert app.escalated
    [escalation] = messages(area.clerk.id, Kind.ESCALATION)
    assert json.loads(escalation.payload)["overdue_days"] == 1


def test_one_digest_per_person_and_channel_by_contact(db, area, clock, messages):
    apps = [area.accept(clock) for _ in range(3)]
    sms_clerk = make_user(db, "village_clerk", area.code, "测试村 短信经办员", phone="13900001111")
    nobody = make_user(db, "village_clerk", area.code, "测试村 无联系方式")
    gone = make_user(db, "village_clerk", area.code, "测试村 已停用", openid="oTEST-gone", active=False)
    report = scan(db, at(FRIDAY), region=area.code)
    assert (report.reminded, report.reminders) == (3, 3)  # three applications, three clerks, one message each
    for user, channel in ((area.clerk, "wechat"), (sms_clerk, "sms"), (nobody, "console")):
        [message] = messages(user.id)
        assert message.channel == channel
        assert sorted(numbers_in(message)) == sorted(a.number for a in apps)
        assert "您有3件补贴申请将于12月7日到期" in message.body
    assert messages(gone.id) == []


def test_rerunning_the_scan_writes_nothing_new(db, area, clock):
    area.accept(clock)
    area.accept(clock)
    first = scan(db, at(FRIDAY), region=area.code)
    assert first.reminders == 1
    count = db.scalar(select(func.count()).select_from(OutboxMessage))
    again = scan(db, at(FRIDAY, 15), region=area.code)
    assert (again.reminded, again.reminders, again.escalated) == (0, 0, 0)
    assert db.scalar(select(func.count()).select_from(OutboxMessage)) == count


def test_a_digest_is_written_once_even_if_the_flags_are_cleared(db, area, clock, messages):
    """The dedupe key is the second guard: the same applications on the same day make the same key."""
    app = area.accept(clock)
    scan(db, at(FRIDAY), region=area.code)
    app.reminded = False
    db.flush()
    report = scan(db, at(FRIDAY, 16), region=area.code)
    assert report.reminded == 1 and report.reminders == 0
    assert len(messages(area.clerk.id)) == 1


def test_back_at_a_station_means_a_new_reminder(db, area, users, clock, messages):
    item = "ZS017"  # 计划生育特别扶助: not publicised, 村评 -> 镇审 -> 县定 -> 市管
    app = area.accept(clock, item=item)
    reviewer = make_user(db, "township_reviewer", area.township, "测试镇 审核员", openid="oTEST-town")
    service.decide(db, app, area.clerk, Action.APPROVE, "", clock.now())
    assert app.stage == Step.TOWNSHIP
    scan(db, at(FRIDAY), region=area.code)  # 镇审 due Monday 7 Dec
    assert [numbers_in(m) for m in messages(reviewer.id)] == [[app.number]]
    service.decide(db, app, reviewer, Action.RETURN, "材料不全", at(FRIDAY))
    clock2 = FixedClock(at(FRIDAY))
    service.correct(db, app, area.clerk, clock2.now(), note="补充说明")
    service.decide(db, app, area.clerk, Action.APPROVE, "", clock2.now())
    assert app.stage == Step.TOWNSHIP and not app.reminded
    day = app.remind_on
    scan(db, at(day), region=area.code)
    assert len(messages(reviewer.id)) == 2  # a new visit of the station is a new key


# ---------------------------------------------------------------- escalation


@pytest.fixture
def county_app(db, area, users, clock, claimant):
    """A 民政 department list entry of the test village: it waits at 县定 (due Monday 14 Dec)."""
    person = claimant(LOW_INCOME, village=area.code)
    handler = users["county_handler"]
    prepared = service.prepare_claims(db, handler, [service.Claim(ref=1, person_id=person.id, item_code=LOW_INCOME,
                                                                  period="2026-11")], Source.LIST, clock.now())
    [app_id] = service.enter_claims(db, handler, prepared, Source.LIST, clock.now())
    app = db.get(Application, app_id)
    assert (app.stage, app.owner_region, app.due_on, app.remind_on) == (Step.COUNTY, ZIZHONG, date(2026, 12, 14),
                                                                         date(2026, 12, 11))
    return app


def test_county_reminder_goes_to_the_handler_not_the_leader(db, area, users, county_app, messages):
    scan(db, at(date(2026, 12, 10)), region=area.code)
    assert not county_app.reminded
    scan(db, at(date(2026, 12, 11)), region=area.code)
    [reminder] = messages(users["county_handler"].id)
    assert numbers_in(reminder) == [county_app.number]
    assert messages(users["county_leader"].id) == []


def test_escalation_the_day_after_the_deadline_reaches_leader_and_supervisors_of_the_region(db, area, users,
                                                                                          county_app, messages):
    county_supervisor = make_user(db, "supervisor", ZIZHONG, "资中县纪委 监督员", phone="13900002222")
    elsewhere = make_user(db, "supervisor", "511011000000", "东兴区纪委 监督员", openid="oTEST-dx")
    other_sector = make_user(db, "county_handler", ZIZHONG, "资中县农业农村局 领导", leader=True,
                             openid="oTEST-ny", department="D511025-NY")
    leader = users["county_leader"]
    assert scan(db, at(date(2026, 12, 14)), region=area.code).escalated == 0  # due today: not late yet
    report = scan(db, at(date(2026, 12, 15)), region=area.code)
    assert county_app.escalated and report.escalated == 1
    for user in (leader, users["supervisor"], county_supervisor):
        [message] = messages(user.id, Kind.ESCALATION)
        assert numbers_in(message) == [county_app.number]
        assert "已超期1个工作日" in message.body and message.title == "补贴申请超期督办"
    assert "您分管的业务有1件" in messages(leader.id, Kind.ESCALATION)[0].body
    assert "您辖区内有1件" in messages(county_supervisor.id, Kind.ESCALATION)[0].body
    assert messages(county_supervisor.id)[0].channel == "sms"
    for user in (elsewhere, other_sector, users["county_handler"]):  # the office has a leader: not the handler
        assert messages(user.id, Kind.ESCALATION) == []
    assert scan(db, at(date(2026, 12, 16)), region=area.code).escalations == 0


def test_overdue_work_at_the_village_reaches_its_clerk_when_there_is_no_leader(db, area, users, clock, messages):
    app = area.accept(clock)
    report = scan(db, at(NEXT_TUESDAY), region=area.code)  # the worker was down on Friday: no late reminder
    assert app.escalated and not app.reminded and report.reminders == 0
    [message] = messages(area.clerk.id)
    assert message.kind == "escalation" and "您有1件补贴申请已超过办理时限" in message.body
    assert numbers_in(messages(users["supervisor"].id, Kind.ESCALATION)[0]) == [app.number]


def test_running_publicity_waits_without_reminders_and_closes_in_the_scan(db, area, clock, messages):
    from yikatong.workflow import publicity

    app = area.accept(clock)
    service.decide(db, app, area.clerk, Action.APPROVE, "评议通过", clock.now())
    [pub] = publicity.publish(db, area.clerk, clock.now(), village=area.code)
    scan(db, at(pub.ends_on), region=area.code)  # the last day of the window: nothing to do for the clerk
    assert not app.reminded and messages(area.clerk.id) == []
    report = scan(db, at(pub.ends_on + timedelta(days=1)), region=area.code)
    assert report.publicity_moved >= 1 and app.stage == Step.TOWNSHIP


# ---------------------------------------------------------------- the overdue board


def village_row(board, village: str):
    rows = [r for r in board.rows if r.region_code == village and r.stage == "村评"]
    assert len(rows) <= 1  # one row per office and station
    return rows[0] if rows else None


def test_overdue_board_groups_by_office_and_is_scoped(db, area, users, county_app, clock):
    today = date(2026, 12, 16)  # village station due 7 Dec, county 14 Dec
    before = village_row(overdue_board(db, users["city_finance"], today), area.code)
    late = [area.accept(clock) for _ in range(2)]
    reviewer = make_user(db, "township_reviewer", area.township, "测试镇 审核员")

    board = overdue_board(db, users["city_finance"], today)
    v = village_row(board, area.code)
    assert v.count == (before.count if before else 0) + 2
    assert v.amount_fen == (before.amount_fen if before else 0) + sum(a.amount_fen for a in late)
    if before is None or before.oldest_due >= NEXT_MONDAY:
        assert v.oldest_due == NEXT_MONDAY and v.days_overdue == 7  # Tue 8 .. Wed 16 Dec: 7 working days
    assert v.days_overdue == len([d for d in range((today - v.oldest_due).days)
                                  if (v.oldest_due + timedelta(days=d + 1)).weekday() < 5])
    assert area.clerk.display_name in v.handlers and v.department.endswith(("村委会", "居委会"))
    [c] = [r for r in board.rows if r.region_code == ZIZHONG and r.stage == "县定" and r.department == "资中县民政局"]
    assert c.count >= 1 and set(c.handlers) >= {users["county_handler"].display_name,
                                                 users["county_leader"].display_name}

    own = overdue_board(db, reviewer, today)
    assert all(r.region_code.startswith(area.code[:9]) or r.stage in ("县定", "市管") for r in own.rows)
    assert village_row(own, area.code).count == v.count
    # the county row a township reviewer sees counts only applications of their township
    [mine] = [r for r in own.rows if r.stage == "县定" and r.department == "资中县民政局"]
    assert mine.count == db.scalar(select(func.count()).select_from(Application).where(
        Application.stage == "县定", Application.sector == "民政", Application.status == "办理中",
        Application.due_on < today, Application.region_code.like(area.code[:9] + "%")))

    other_township = db.scalar(select(Region.code).where(Region.parent_code == ZIZHONG,
                                                         Region.code != area.township).order_by(Region.code))
    stranger = make_user(db, "township_reviewer", other_township, "另一镇 审核员")
    assert all(r.region_code != area.code for r in overdue_board(db, stranger, today).rows)

    by_stage = overdue_board(db, users["city_finance"], today, stage="县定")
    assert by_stage.rows and all(r.stage == "县定" for r in by_stage.rows)
    assert not [r for r in overdue_board(db, users["city_finance"], today, item_code="ZS001").rows
                if r.region_code == area.code]

    # a county department sees its own sector only
    agriculture = make_user(db, "county_handler", ZIZHONG, "资中县农业农村局 经办员", department="D511025-NY")
    assert all(r.stage != "县定" or r.department != "资中县民政局" for r in overdue_board(db, agriculture, today).rows)
    assert not [r for r in overdue_board(db, agriculture, today).rows if r.region_code == area.code]

    workbook = board_to_excel(board)
    from io import BytesIO

    from openpyxl import load_workbook
    sheet = load_workbook(BytesIO(workbook)).active
    assert sheet["A2"].value == "区域" and sheet.max_row == len(board.rows) + 3


def test_overdue_api_and_page(users):
    """The API and the page show the same rows; the board needs overdue.read."""
    from fastapi.testclient import TestClient

    from yikatong.core.db import new_session
    from yikatong.security.service import login
    from yikatong.synth.users import DEMO_PASSWORD
    from yikatong.web.app import create_app

    today = at(date(2026, 12, 16))
    client = TestClient(create_app(FixedClock(today)))
    with new_session() as s:
        tokens = {name: login(s, name, DEMO_PASSWORD, today)[1] for name in ("township_reviewer", "sysadmin")}
        s.commit()
    headers = {n: {"Authorization": f"Bearer {t}"} for n, t in tokens.items()}
    r = client.get("/api/v1/overdue", headers=headers["township_reviewer"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == sum(row["count"] for row in body["rows"])
    assert all(row["region_code"].startswith(users["township_reviewer"].region_code[:9])
               or row["stage"] in ("县定", "市管") for row in body["rows"])
    assert client.get("/api/v1/overdue", headers=headers["sysadmin"]).status_code == 403
    assert client.get("/api/v1/overdue?stage=乱写", headers=headers["township_reviewer"]).status_code == 422
    page = client.get("/overdue", headers=headers["township_reviewer"])
    assert page.status_code == 200 and "超期督办" in page.text and 'href="/overdue"' in page.text
    export = client.get("/overdue/export.xlsx", headers=headers["township_reviewer"])
    assert export.status_code == 200 and export.content[:2] == b"PK"
    outbox = client.get("/api/v1/outbox", headers=headers["sysadmin"])
    assert outbox.status_code == 200 and "待发送" in outbox.json()["by_status"]
    assert client.get("/api/v1/outbox", headers=headers["township_reviewer"]).status_code == 403
