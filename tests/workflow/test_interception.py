"""Interception on the review road: a claim is screened the moment it is entered, an open flag stops
it at 县定 and at the pre-payment gate, and the department verifies (confirm -> rejected + lead,
clear -> may go on), every step on the append-only trail."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from yikatong.core.errors import Blocked, Conflict, Forbidden, Invalid
from yikatong.core.masking import mask_id_number
from yikatong.core.protect import reveal
from yikatong.interception import service as interception
from yikatong.interception.models import Flag, FlagStatus, Lead, RuleRun
from yikatong.sharing import store
from yikatong.workflow import publicity, service
from yikatong.workflow.models import Action, Application, ReviewRecord, Status, Step

LOW_INCOME = "ZS007"  # 农村低保: per person, monthly, publicised, means-tested


def _deaths(db, clock, *people_and_dates):
    """A deaths delivery (rolled back with the test) naming `people` with their death dates."""
    rows = [{"id_hash": p.id_number_hash, "id_masked": mask_id_number(reveal("id_number", p.id_number_enc)),
             "name": p.name, "death_date": d, "source": "火化记录"} for p, d in people_and_dates]
    table = pa.Table.from_pylist(rows, schema=store.arrow_schema(store.BY_CODE["deaths"]))
    return store.save_snapshot(db, "deaths", table, agency="市民政局", as_of=clock.now().date(), filename="deaths.csv",
                               file_sha256="0" * 64, file_format="csv", actor=None, now=clock.now())


def _accept(db, users, person, clock, period="2026-11"):
    return service.accept(db, users["village_clerk"], person_id=person.id, item_code=LOW_INCOME, period=period,
                          now=clock.now())


def _to_county(db, users, app, clock):
    service.decide(db, app, users["village_clerk"], Action.APPROVE, "评议通过", clock.now())
    publicity.publish(db, users["village_clerk"], clock.now(), village=app.region_code)
    clock.advance(days=8)
    publicity.close_ended(db, clock.now())
    service.decide(db, app, users["township_reviewer"], Action.APPROVE, "", clock.now())
    assert app.stage == Step.COUNTY


def _flags(db, app):
    return db.scalars(select(Flag).where(Flag.application_id == app.id).order_by(Flag.id)).all()


def test_a_claim_is_flagged_when_entered_and_stopped_at_the_county(db, users, claimant, clock):
    dead, alive = claimant(), claimant()
    _deaths(db, clock, (dead, date(2026, 10, 3)), (alive, date(2026, 12, 20)))  # alive: dies after the period
    app = _accept(db, users, dead, clock)
    clean = _accept(db, users, alive, clock)
    [flag] = _flags(db, app)
    assert (flag.rule_code, flag.status, flag.amount_fen) == ("DECEASED", FlagStatus.OPEN, app.amount_fen)
    assert "2026-10-03" in flag.evidence and "火化记录" in flag.evidence
    assert app.open_flags == 1 and _flags(db, clean) == [] and clean.open_flags == 0
    trail = db.scalars(select(ReviewRecord.action).where(ReviewRecord.application_id == app.id)).all()
    assert trail == ["提交申请", "存疑拦截"]

    _to_county(db, users, app, clock)
    with pytest.raises(Blocked, match="存疑信息未核实"):
        service.decide(db, app, users["county_handler"], Action.APPROVE, "同意", clock.now())
    assert app.stage == Step.COUNTY
    bulk = service.bulk_decide(db, users["county_handler"], [app.id], Action.APPROVE, "", clock.now())
    assert bulk.done == [] and "存疑信息未核实" in bulk.skipped[0][1]
    # returning for correction is still possible while a flag is open
    service.decide(db, app, users["county_handler"], Action.RETURN, "请核对身份信息", clock.now(),
                   return_to=Step.TOWNSHIP)
    assert app.stage == Step.TOWNSHIP


def test_clearing_needs_an_opinion_and_the_department(db, users, claimant, clock):
    person = claimant()
    _deaths(db, clock, (person, date(2026, 11, 1)))
    app = _accept(db, users, person, clock)
    [flag] = _flags(db, app)
    with pytest.raises(Forbidden):
        interception.verify(db, flag, users["village_clerk"], confirm=False, opinion="x", document_sha256=None,
                            now=clock.now())
    with pytest.raises(Invalid, match="核实意见"):
        interception.verify(db, flag, users["county_handler"], confirm=False, opinion="  ", document_sha256=None,
                            now=clock.now())
    interception.verify(db, flag, users["county_handler"], confirm=False,
                        opinion="经核实为同名同姓他人，身份证号码录入错误已更正", document_sha256=None, now=clock.now())
    assert flag.status == FlagStatus.CLEARED and app.open_flags == 0
    with pytest.raises(Conflict):
        interception.verify(db, flag, users["county_handler"], confirm=True, opinion="再次", document_sha256=None,
                            now=clock.now())
    _to_county(db, users, app, clock)
    service.decide(db, app, users["county_handler"], Action.APPROVE, "同意", clock.now())
    assert app.stage == Step.CITY
    records = db.scalars(select(ReviewRecord).where(ReviewRecord.application_id == app.id,
                                                    ReviewRecord.action == Action.FLAG_CLEARED.value)).all()
    assert len(records) == 1 and "同名同姓" in records[0].opinion and "DECEASED" in records[0].detail
    # a rerun finds the same fact again: nothing new is raised, the cleared flag stays cleared
    run = interception.screen(db, [app.id], clock.now())
    assert run.hits == 1 and run.new_flags == 0 and app.open_flags == 0


def test_confirming_rejects_and_keeps_a_lead(db, users, claimant, clock):
    person = claimant()
    _deaths(db, clock, (person, date(2026, 9, 9)))
    app = _accept(db, users, person, clock)
    [flag] = _flags(db, app)
    interception.verify(db, flag, users["county_handler"], confirm=True, opinion="经核实，本人已于9月死亡",
                        document_sha256=None, now=clock.now())
    assert app.status == Status.REJECTED and app.stage is None and app.open_flags == 0
    lead = db.scalars(select(Lead).where(Lead.flag_id == flag.id)).one()
    assert (lead.application_id, lead.amount_fen, lead.rule_code) == (app.id, app.amount_fen, "DECEASED")
    actions = db.scalars(select(ReviewRecord.action).where(ReviewRecord.application_id == app.id)
                         .order_by(ReviewRecord.id)).all()
    assert actions[-2:] == ["核实属实", "否决"]


def _approve(db, app):
    """Through every station (the road itself is tested elsewhere): 已通过, waiting for the gate."""
    service.leave_road(app, Status.APPROVED, app.created_at)
    db.flush()


def test_the_pre_payment_gate_moves_the_clean_and_reports_the_flagged(db, users, claimant, clock):
    a, b, c = claimant(), claimant(), claimant()
    app_a, app_b, app_c = (_accept(db, users, p, clock) for p in (a, b, c))
    for app in (app_a, app_b):
        _approve(db, app)
    # the death is reported after the claims went in: only the gate (or a city run) can see it
    _deaths(db, clock, (b, date(2026, 11, 15)))
    result = interception.gate(db, [app_a.id, app_b.id, app_c.id], clock.now())  # no exception: a result
    assert result.allowed == [app_a.id] and result.blocked_ids == [app_b.id] and result.new_flags == 1
    [blocked] = result.blocked
    assert [f.rule_code for f in blocked.flags] == ["DECEASED"] and result.open_flags == 1
    assert result.not_payable == {app_c.id: Status.OPEN.value} and not result.passed  # 办理中: reported, not moved
    assert "1笔有1条存疑信息未核实" in result.message() and "1笔转入待支付" in result.message()
    db.refresh(app_a), db.refresh(app_b), db.refresh(app_c)
    assert (app_a.status, app_b.status, app_c.status) == (Status.PAYABLE, Status.APPROVED, Status.OPEN)
    assert db.scalar(select(ReviewRecord.action).where(ReviewRecord.application_id == app_a.id)
                     .order_by(ReviewRecord.id.desc()).limit(1)) == Action.PAYABLE
    assert db.scalar(select(func.count()).select_from(RuleRun).where(RuleRun.scope == "gate")) >= 1
    [flag] = _flags(db, app_b)
    interception.verify(db, flag, users["county_handler"], confirm=False, opinion="死亡信息有误，已与民政核对",
                        document_sha256=None, now=clock.now())
    result = interception.gate(db, [app_b.id], clock.now())
    assert (result.checked, result.allowed, result.blocked_ids, result.new_flags) == (1, [app_b.id], [], 0)
    assert result.passed and "发放前比对通过" in result.message()
    # 待支付 is live: a second claim for the same period is refused, as for 已通过
    assert Status.PAYABLE.value in service.LIVE_STATUSES


def test_the_gate_commits_its_flags_even_when_it_blocks(users, claimant_pool, clock):
    """In its own transaction, as the CLI and the API run it: the flag the gate found is kept."""
    from yikatong.core.db import transaction
    from yikatong.registry.models import Person
    from yikatong.sharing.models import SharedSnapshot

    with transaction() as s:
        person = s.get(Person, claimant_pool[users["village_clerk"].region_code].pop()[0])
        app = service.accept(s, s.merge(users["village_clerk"]), person_id=person.id, item_code=LOW_INCOME,
                             period="2026-11", now=clock.now())
        _approve(s, app)
        app_id = app.id
        rows = [{"id_hash": person.id_number_hash, "id_masked": "1****", "name": person.name,
                 "death_date": date(2026, 11, 2), "source": "火化记录"}]
        table = pa.Table.from_pylist(rows, schema=store.arrow_schema(store.BY_CODE["deaths"]))
        snapshot_id = store.save_snapshot(s, "deaths", table, agency="门禁测试局", as_of=clock.now().date(),
                                          filename="deaths.csv", file_sha256="1" * 64, file_format="csv",
                                          actor=None, now=clock.now()).id
    try:
        with transaction() as s:
            result = interception.gate(s, [app_id], clock.now())
        assert result.blocked_ids == [app_id] and result.allowed == [] and result.new_flags == 1
        with transaction() as s:
            [flag] = _flags(s, s.get(Application, app_id))
            assert flag.status == FlagStatus.OPEN and s.get(Application, app_id).status == Status.APPROVED
    finally:
        with transaction() as s:  # no other test sees this delivery
            s.delete(s.get(SharedSnapshot, snapshot_id))


def test_city_run_sees_committed_claims_only_and_records_versions(db, users, claimant, clock):
    from yikatong.core.db import engine

    person = claimant()
    app = _accept(db, users, person, clock)  # not committed: the city run reads committed data only
    committed = db.scalar(select(func.count()).select_from(Application)
                          .where(Application.status.in_(service.LIVE_STATUSES), Application.id != app.id))
    _deaths(db, clock, (person, date(2026, 11, 2)))
    run = interception.run_city(engine(), db, clock.now())
    assert run.scope == "city" and run.finished_at is not None and run.applications == committed
    assert _flags(db, app) == []  # the uncommitted claim was not in the city's snapshot
    active = {v.rule_code: v for v, _ in interception.active_specs(db)}
    assert active["DECEASED"].version >= 1
    # the focus screen of the same claim sees it, and the flag names the version that raised it
    interception.screen(db, [app.id], clock.now())
    [flag] = _flags(db, app)
    assert flag.rule_version_id == active["DECEASED"].id
