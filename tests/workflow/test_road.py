"""The review road: a claim walks village -> publicity -> township -> county -> city; decisions,
returns, corrections, rejections; each move one append-only record."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from yikatong.core.errors import Blocked, Conflict, Forbidden, Invalid
from yikatong.workflow import publicity, service
from yikatong.workflow.models import Action, Application, ReviewRecord, Status, Step

LOW_INCOME = "ZS007"  # 农村低保: per person, monthly, publicised, 民政


def accept(db, users, person, clock, item=LOW_INCOME, period="2026-11", quantity=None):
    return service.accept(db, users["village_clerk"], person_id=person.id, item_code=item, period=period,
                          quantity=quantity, now=clock.now())


def test_amount_is_computed_from_the_standard_in_fen(db, users, claimant, clock):
    app = accept(db, users, claimant("ZS014"), clock, item="ZS014", period="2026", quantity="12.35")
    # 森林生态效益补偿 14.75 yuan per mu x 12.35 mu = 182.1625 -> 182.16 yuan
    assert (app.standard_fen, app.quantity_centi, app.amount_fen) == (1475, 1235, 18216)
    assert app.stage == Step.VILLAGE and app.status == Status.OPEN
    assert app.owner_region == users["village_clerk"].region_code


def test_walk_the_whole_road(db, users, claimant, clock):
    app = accept(db, users, claimant(), clock)
    service.decide(db, app, users["village_clerk"], Action.APPROVE, "评议通过", clock.now())
    assert app.stage == Step.PUBLICITY and app.publicity_id is None
    [pub] = publicity.publish(db, users["village_clerk"], clock.now(), village=app.region_code)
    assert app.publicity_id == pub.id and (pub.ends_on - pub.starts_on).days == 6
    clock.advance(days=6)
    publicity.close_ended(db, clock.now())  # (the demo city's own lists may close: count only ours)
    assert app.stage == Step.PUBLICITY  # the last day of the window still counts
    clock.advance(days=1)
    assert publicity.close_ended(db, clock.now()) >= 1
    assert app.stage == Step.TOWNSHIP and app.owner_region == users["township_reviewer"].region_code
    service.decide(db, app, users["township_reviewer"], Action.APPROVE, "", clock.now())
    assert app.stage == Step.COUNTY
    service.decide(db, app, users["county_handler"], Action.APPROVE, "同意", clock.now())
    service.decide(db, app, users["city_finance"], Action.APPROVE, "", clock.now())
    assert app.status == Status.APPROVED and app.stage is None
    actions = [r.action for r in db.scalars(select(ReviewRecord).where(ReviewRecord.application_id == app.id)
                                            .order_by(ReviewRecord.id))]
    assert actions == ["提交申请", "通过", "公示开始", "公示期满", "通过", "通过", "通过"]


def test_one_live_claim_per_person_item_and_period(db, users, claimant, clock):
    person = claimant()
    accept(db, users, person, clock)
    with pytest.raises(Invalid, match="已有在办或已通过"):
        accept(db, users, person, clock)
    accept(db, users, person, clock, period="2026-12")  # another month is another claim


def test_period_must_match_the_frequency(db, users, claimant, clock):
    with pytest.raises(Invalid, match="2026-11"):
        accept(db, users, claimant(), clock, period="2026Q4")


def test_return_goes_back_for_correction_and_the_correction_is_a_new_record(db, users, claimant, clock):
    app = accept(db, users, claimant("ZS001"), clock, item="ZS001", period="2026", quantity="5")
    service.decide(db, app, users["village_clerk"], Action.APPROVE, "", clock.now())
    publicity.publish(db, users["village_clerk"], clock.now(), village=app.region_code)
    clock.advance(days=8)
    publicity.close_ended(db, clock.now())
    with pytest.raises(Invalid, match="意见"):
        service.decide(db, app, users["township_reviewer"], Action.RETURN, " ", clock.now())
    service.decide(db, app, users["township_reviewer"], Action.RETURN, "面积与确权证书不符", clock.now())
    assert (app.stage, app.returned) == (Step.VILLAGE, True)
    with pytest.raises(Forbidden):
        service.correct(db, app, users["township_reviewer"], clock.now(), quantity="4.5")
    service.correct(db, app, users["village_clerk"], clock.now(), quantity="4.5", opinion="按证书更正")
    assert (app.quantity_centi, app.amount_fen, app.returned) == (450, 47250, False)
    last = db.scalars(select(ReviewRecord).where(ReviewRecord.application_id == app.id)
                      .order_by(ReviewRecord.id.desc())).first()
    assert last.action == "补正" and "52500" in last.detail and "47250" in last.detail


def test_reject_needs_an_opinion_and_ends_the_road(db, users, claimant, clock):
    app = accept(db, users, claimant(), clock)
    with pytest.raises(Invalid):
        service.decide(db, app, users["village_clerk"], Action.REJECT, "", clock.now())
    service.decide(db, app, users["village_clerk"], Action.REJECT, "家庭收入超过低保标准", clock.now())
    assert app.status == Status.REJECTED and app.stage is None
    with pytest.raises(Conflict):
        service.decide(db, app, users["village_clerk"], Action.APPROVE, "", clock.now())


def test_reviewer_cannot_act_outside_region_or_station(db, users, claimant, clock):
    app = accept(db, users, claimant(), clock)
    for outsider in ("village_clerk2", "township_reviewer", "county_handler", "city_finance", "supervisor"):
        with pytest.raises(Forbidden):
            service.decide(db, app, users[outsider], Action.APPROVE, "", clock.now())
    service.decide(db, app, users["village_clerk"], Action.APPROVE, "", clock.now())  # the right one may
    with pytest.raises(Blocked):  # ...but not twice: publicity is not the clerk's to skip
        service.decide(db, app, users["village_clerk"], Action.APPROVE, "", clock.now())


def test_trail_is_append_only_in_the_database(db, users, claimant, clock):
    app = accept(db, users, claimant(), clock)
    db.flush()
    with pytest.raises(Exception, match="append-only"):
        db.execute(text("UPDATE review_records SET opinion = 'x' WHERE application_id = :id"), {"id": app.id})
    db.rollback()


def test_open_objection_blocks_until_resolved(db, users, claimant, clock):
    app = accept(db, users, claimant(), clock)
    service.decide(db, app, users["village_clerk"], Action.APPROVE, "", clock.now())
    [pub] = publicity.publish(db, users["village_clerk"], clock.now(), village=app.region_code)
    clock.advance(days=2)
    objection = publicity.raise_objection(db, pub.id, app.id, "该户有家庭成员在县城经商，收入较高", clock.now(),
                                          name="村民甲", contact="13800001111")
    assert objection.contact_masked == "138****1111" and objection.contact_enc != b"13800001111"
    clock.advance(days=6)
    publicity.close_ended(db, clock.now())
    assert app.stage == Step.PUBLICITY  # held by the open objection
    with pytest.raises(Blocked):
        publicity.raise_objection(db, pub.id, app.id, "窗口已过仍想提异议", clock.now())
    publicity.resolve_objection(db, objection.id, users["township_reviewer"], False, "经核实经商者已分户", clock.now())
    assert app.stage == Step.TOWNSHIP


def test_upheld_objection_rejects(db, users, claimant, clock):
    app = accept(db, users, claimant(), clock)
    service.decide(db, app, users["village_clerk"], Action.APPROVE, "", clock.now())
    [pub] = publicity.publish(db, users["village_clerk"], clock.now(), village=app.region_code)
    objection = publicity.raise_objection(db, pub.id, app.id, "申请人已于上月外出务工且收入稳定", clock.now())
    with pytest.raises(Forbidden):
        publicity.resolve_objection(db, objection.id, users["village_clerk2"], True, "核实属实", clock.now())
    publicity.resolve_objection(db, objection.id, users["village_clerk"], True, "核实属实", clock.now())
    assert app.status == Status.REJECTED


def test_bulk_approve_writes_one_record_each_and_skips_blocked(db, users, claimant, clock):
    apps = [accept(db, users, claimant(), clock) for _ in range(3)]
    result = service.bulk_decide(db, users["village_clerk"], [a.id for a in apps], Action.APPROVE, "集体评议通过",
                                 clock.now())
    assert sorted(result.done) == sorted(a.number for a in apps) and not result.skipped
    for a in apps:
        n = db.scalar(select(ReviewRecord.id).where(ReviewRecord.application_id == a.id,
                                                    ReviewRecord.action == "通过"))
        assert n is not None
    again = service.bulk_decide(db, users["village_clerk"], [a.id for a in apps], Action.APPROVE, "", clock.now())
    assert not again.done and len(again.skipped) == 3


def test_inbox_shows_only_own_station_and_region(db, users, claimant, clock):
    app = accept(db, users, claimant(), clock)
    db.flush()
    mine = service.inbox(db, users["village_clerk"], service.InboxFilter(), clock.now().date(), size=100)
    assert mine.total >= 1
    ids = service.inbox_ids(db, users["village_clerk"], service.InboxFilter(), clock.now().date())
    assert app.id in ids
    assert app.id not in service.inbox_ids(db, users["village_clerk2"], service.InboxFilter(), clock.now().date())
    assert app.id not in service.inbox_ids(db, users["township_reviewer"], service.InboxFilter(), clock.now().date())
    overdue = service.InboxFilter(overdue=True)
    assert app.id not in service.inbox_ids(db, users["village_clerk"], overdue, clock.now().date())
    clock.advance(days=8)  # 5 working days from Monday 30 Nov: due Monday 7 Dec, overdue on Tuesday 8 Dec
    assert db.get(Application, app.id).due_on.isoformat() == "2026-12-07"
    assert app.id in service.inbox_ids(db, users["village_clerk"], overdue, clock.now().date())


def test_a_decision_is_also_on_the_audit_trail(db, users, claimant, clock):
    from yikatong.security.models import AuditEvent

    app = accept(db, users, claimant(), clock)
    service.decide(db, app, users["village_clerk"], Action.APPROVE, "", clock.now(), ip="10.0.0.8")
    db.flush()
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "application.decide",
                                                AuditEvent.object_id == app.number)).one()
    assert (event.username, event.ip) == ("village_clerk", "10.0.0.8") and "村评" in event.detail
