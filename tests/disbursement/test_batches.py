"""Payment batches on SQLite and PostgreSQL: the budget refuses a batch with its figures, the gate keeps
flagged applications out, maker and checker differ, two approvers at once (one wins), the database holds
one live order per application, and the payee is the proxy holder while the proxy is valid."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from yikatong.core import crypto
from yikatong.core.db import new_session, transaction
from yikatong.core.errors import Blocked, Conflict, Forbidden
from yikatong.core.protect import protect, reveal
from yikatong.disbursement import budget, service
from yikatong.disbursement.models import (
    BatchExclusion,
    BatchStatus,
    BudgetYear,
    OrderStatus,
    PaymentBatch,
    PaymentOrder,
)
from yikatong.registry.models import Card, Person, ProxyHolding
from yikatong.security.models import User
from yikatong.workflow.models import Application, Status

from .conftest import NOW, STANDARD_FEN, approved, colleague, flag, new_person, set_budget, user_id


def build(paying, username: str = "city_finance") -> service.BuildResult:
    with transaction() as s:
        maker = s.scalar(select(User).where(User.username == username))
        result = service.build_batch(s, maker, item_code=paying.item, period=paying.period, bank_code=paying.bank,
                                     now=NOW)
        if result.batch is not None:
            s.refresh(result.batch)
        return result


def approve(batch_id: int, checker_id: int):
    with transaction() as s:
        return service.approve_batch(s, s.get(User, checker_id), batch_id, NOW)


def test_a_batch_over_the_remaining_budget_is_refused_whole_with_the_figures(paying):
    apps = [approved(paying.item) for _ in range(3)]  # 3 x 500 yuan
    set_budget(paying.item, 1_000)
    result = build(paying)
    assert result.batch is None
    assert result.refused == (f"超出指标：{paying.item} 2026年度指标1,000.00元，已审批批次占用0.00元，"
                              "本批次1,500.00元，剩余可用1,000.00元。批次未生成")
    with new_session() as s:
        batches = select(func.count()).select_from(PaymentBatch).where(PaymentBatch.item_code == paying.item)
        assert s.scalar(batches) == 0
        # the gate ran and kept its moves: the applications wait for payment
        assert {s.get(Application, a).status for a in apps} == {Status.PAYABLE.value}
    set_budget(paying.item, 1_400, level="县")  # 1,000 (市) + 1,400 (县) = 2,400
    result = build(paying)
    assert result.batch is not None and result.batch.order_count == 3 and result.batch.total_fen == 3 * STANDARD_FEN
    approve(result.batch.id, colleague())
    # a second item-year batch that no longer fits: the figures count the approved one as committed
    approved(paying.item)
    approved(paying.item)
    approved(paying.item)
    refused = build(paying).refused
    assert "指标2,400.00元，已审批批次占用1,500.00元，本批次1,500.00元，剩余可用900.00元" in refused
    with new_session() as s:
        [line] = budget.overview(s, s.scalar(select(User).where(User.username == "supervisor")), item_code=paying.item)
        assert (line.allocated_fen, line.committed_fen, line.spent_fen) == (240_000, 150_000, 0)
        assert line.levels == {"市": 100_000, "县": 140_000}


def test_an_allocation_cannot_fall_below_what_approved_batches_committed(paying):
    approved(paying.item)
    set_budget(paying.item, 600)
    approve(build(paying).batch.id, colleague())
    with pytest.raises(Blocked, match="不能低于已审批批次占用的金额：已占用500.00元，调整后指标400.00元"):
        set_budget(paying.item, 400)
    with new_session() as s:
        assert s.get(BudgetYear, (paying.item, 2026)).allocated_fen == 60_000


def test_the_gate_runs_first_and_flagged_applications_stay_out_with_their_reasons(paying):
    clean, flagged = approved(paying.item), approved(paying.item)
    flag(flagged, "测试：已死亡人员")
    no_card = approved(paying.item, new_person(card=False))
    set_budget(paying.item, 10_000)
    result = build(paying)
    assert result.batch is not None and result.batch.order_count == 1
    reasons = {e.application_id: e.reason for e in result.excluded}
    assert reasons == {flagged: "存疑信息未核实：测试：已死亡人员", no_card: "无正常状态的社会保障卡"}
    with new_session() as s:
        assert s.scalars(select(PaymentOrder.application_id).where(
            PaymentOrder.batch_id == result.batch.id)).all() == [clean]
        kept = dict(s.execute(select(BatchExclusion.application_id, BatchExclusion.reason).where(
            BatchExclusion.batch_id == result.batch.id)).all())
        assert kept == reasons
        assert s.get(Application, flagged).status == Status.APPROVED.value  # not moved to 待支付


def test_maker_cannot_approve_their_own_batch(paying):
    approved(paying.item)
    set_budget(paying.item, 1_000)
    batch = build(paying).batch
    with pytest.raises(Forbidden, match="制单人不能审批自己生成的批次"):
        approve(batch.id, user_id("city_finance"))
    with new_session() as s:
        assert s.get(PaymentBatch, batch.id).status == BatchStatus.DRAFT.value
        assert s.get(BudgetYear, (paying.item, 2026)).committed_fen == 0
    approve(batch.id, colleague())
    with pytest.raises(Conflict, match="该批次已被他人处理，请刷新"):  # frozen once approved
        approve(batch.id, colleague())


def test_two_approvers_at_once_exactly_one_wins(paying):
    for _ in range(2):
        approved(paying.item)
    set_budget(paying.item, 1_000)
    batch = build(paying).batch
    checkers = [colleague(), colleague()]
    barrier = threading.Barrier(2)
    out: list[object] = [None, None]

    def run(k: int) -> None:
        barrier.wait()
        try:
            approve(batch.id, checkers[k])
            out[k] = "ok"
        except Exception as e:  # noqa: BLE001 - the test looks at what each thread met
            out[k] = e

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(map(str, out)) == ["ok", "该批次已被他人处理，请刷新"], out
    assert [type(o) for o in out if o != "ok"] == [Conflict]
    with new_session() as s:
        b = s.get(PaymentBatch, batch.id)
        assert b.status == BatchStatus.APPROVED.value and b.approved_by in checkers
        assert s.get(BudgetYear, (paying.item, 2026)).committed_fen == 2 * STANDARD_FEN  # committed once


def test_an_application_has_one_live_order_held_by_the_database(paying):
    app_id = approved(paying.item)
    set_budget(paying.item, 1_000)
    batch = build(paying).batch
    assert build(paying).batch is None  # the service leaves it out of a second batch...
    with new_session() as s:
        first = s.scalar(select(PaymentOrder).where(PaymentOrder.batch_id == batch.id))
    order = dict(batch_id=batch.id, application_id=app_id, person_id=first.person_id, item_code=paying.item,
                 period=paying.period, year=2026, region_code="0", amount_fen=1, bank_code=paying.bank,
                 payee_name="", by_proxy=False, account_hash="", account_masked="")
    # ...and the database refuses a second live order written past the service, on either engine
    with transaction() as s, pytest.raises(IntegrityError):
        s.execute(insert(PaymentOrder), [dict(order, status=OrderStatus.APPROVED.value)])
        s.flush()
    # a failed order does not hold the application: it may be paid again
    with transaction() as s:
        s.get(PaymentOrder, first.id).status = OrderStatus.FAILED.value
    with transaction() as s:
        s.execute(insert(PaymentOrder), [dict(order, status=OrderStatus.DRAFT.value)])
        with pytest.raises(IntegrityError):
            s.execute(insert(PaymentOrder), [dict(order, status=OrderStatus.PAID.value)])
        s.rollback()


def test_a_person_is_paid_once_per_item_and_period_even_through_another_application(paying):
    person = new_person()
    app_id = approved(paying.item, person)
    set_budget(paying.item, 1_000)
    batch = build(paying).batch
    with transaction() as s:  # the application withdrawn after it went into a batch, and entered again
        s.get(Application, app_id).status = Status.WITHDRAWN.value
    again = approved(paying.item, person)
    order = dict(batch_id=batch.id, application_id=again, person_id=person, item_code=paying.item,
                 period=paying.period, year=2026, region_code="0", amount_fen=1, bank_code=paying.bank,
                 payee_name="", by_proxy=False, account_hash="", account_masked="", status=OrderStatus.DRAFT.value)
    with transaction() as s, pytest.raises(IntegrityError):
        s.execute(insert(PaymentOrder), [order])
        s.flush()
    with transaction() as s:  # another period is another payment
        s.execute(insert(PaymentOrder), [dict(order, period="2026-12")])


def _proxy(s, person_id: int, holder_id: int, until: date) -> int:
    holder = s.get(Person, holder_id)
    number = protect("id_number", reveal(crypto.ID_NUMBER, holder.id_number_enc))
    proxy = ProxyHolding(person_id=person_id, holder_name=holder.name, holder_id_number_enc=number.enc,
                         holder_id_number_hash=number.hash, holder_id_number_masked=number.masked,
                         holder_relation="子女", reason="本人失能，由子女代管社保卡", approver_name="测试",
                         approved_on=date(2026, 1, 5), valid_from=date(2026, 1, 5), valid_until=until, created_at=NOW)
    s.add(proxy)
    s.flush()
    return proxy.id


def test_the_payee_is_the_proxy_holder_while_the_proxy_is_valid(paying):
    with_proxy, expired, holder = new_person(), new_person(), new_person()
    today = date(2026, 12, 2)  # NOW in Beijing
    with transaction() as s:
        valid_id = _proxy(s, with_proxy, holder, today)  # valid through the approval's day
        _proxy(s, expired, holder, today - timedelta(days=1))
    apps = {approved(paying.item, with_proxy): with_proxy, approved(paying.item, expired): expired}
    set_budget(paying.item, 1_000)
    batch = build(paying).batch
    approve(batch.id, colleague())
    with new_session() as s:
        orders = {o.application_id: o for o in s.scalars(select(PaymentOrder).where(PaymentOrder.batch_id == batch.id))}
        people = [with_proxy, expired, holder]
        cards = {c.person_id: c for c in s.scalars(select(Card).where(Card.person_id.in_(people)))}
        names = {p.id: p.name for p in s.scalars(select(Person).where(Person.id.in_([expired, holder])))}
        by_person = {apps[a]: o for a, o in orders.items()}
        paid_to_holder, own = by_person[with_proxy], by_person[expired]
        assert (paid_to_holder.by_proxy, paid_to_holder.proxy_id, paid_to_holder.card_id) == (True, valid_id,
                                                                                              cards[holder].id)
        assert paid_to_holder.payee_name == names[holder]
        assert (own.by_proxy, own.card_id, own.payee_name) == (False, cards[expired].id, names[expired])
        # fixed on the order: encrypted at rest, with its keyed hash and mask; the status and ids
        for o, card in ((paid_to_holder, cards[holder]), (own, cards[expired])):
            clear = reveal(crypto.BANK_ACCOUNT, card.bank_account_enc)
            assert clear.encode() not in o.account_enc and reveal(crypto.BANK_ACCOUNT, o.account_enc) == clear
            assert (o.account_hash, o.account_masked) == (card.bank_account_hash, card.bank_account_masked)
            assert o.status == OrderStatus.APPROVED.value and o.treasury_code == batch.treasury_code
            assert o.end_to_end_id == f"YKT{batch.id:06d}-{o.id:010d}" and len(o.end_to_end_id) <= 35
        # the bank's view: clear accounts only here
        file = service.batch_file(s, s.get(PaymentBatch, batch.id))
        assert file.batch_number == batch.number and file.total_fen == 2 * STANDARD_FEN
        assert {r.account for r in file.records} == {reveal(crypto.BANK_ACCOUNT, cards[p].bank_account_enc)
                                                     for p in (holder, expired)}
        assert all(r.purpose.startswith("2026年11月 测试发放项目") for r in file.records)
