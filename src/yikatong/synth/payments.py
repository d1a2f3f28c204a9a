"""The demo city's payment loop (演示发放): money moves in the demo as it would in the city, through the
real services, so a newcomer sees it from the finance, bank and supervisor side.

For the item with the most claims at the end of the road, its two earliest periods: a budget (指标) by
funding level; a batch per period and bank (made by city_finance, approved by city_finance2); the bank's
files exported; the bank simulator's answer with a few failures; the return, the statement and the
treasury's detail taken in;
reconciliation; one failure released by its department and paid again in a later batch, reconciled too.
Arrival SMS wait in the outbox; passbooks show what was paid."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yikatong.disbursement import budget, exchange, reconcile, rework, service
from yikatong.disbursement.bank.connector import registry
from yikatong.disbursement.bank.sim import simulate
from yikatong.disbursement.models import OrderStatus, PaymentOrder
from yikatong.security.models import User
from yikatong.workflow.models import Application, Status

FAILURE_RATE = 0.04  # a demo-sized batch shows a few failures (the city's own rate is 0.05 %)
MAKER, CHECKER = "city_finance", "city_finance2"


@dataclass
class DemoPayments:
    item_code: str = ""
    period: str = ""
    batches: list[str] = field(default_factory=list)
    paid: int = 0
    failed: int = 0
    repaid: int = 0
    sms: int = 0
    balanced: int = 0
    skipped: str = ""  # why nothing was paid, if so


def _pick(session: Session) -> tuple[str, list[str], int] | None:
    """The item with the most claims at the end of the road (已通过 or 待支付), its two earliest periods
    with such claims (a passbook with history) and their total."""
    end = Application.status.in_((Status.APPROVED.value, Status.PAYABLE.value))
    item = session.scalar(select(Application.item_code).where(end).group_by(Application.item_code)
                          .order_by(func.count().desc(), Application.item_code))
    if item is None:
        return None
    periods = list(session.scalars(select(Application.period).where(end, Application.item_code == item)
                                   .group_by(Application.period).order_by(Application.period).limit(2)))
    total = session.scalar(select(func.sum(Application.amount_fen)).where(
        end, Application.item_code == item, Application.period.in_(periods)))
    return item, periods, int(total or 0)


def _user(session: Session, username: str) -> User:
    return session.scalar(select(User).where(User.username == username))


def _pay_one_batch(sessions: Callable[[], Session], report: DemoPayments, item: str, period: str, bank: str,
                   now: datetime, seed: int, failure_rate: float) -> int | None:
    """Build, approve, export, answer, take in and reconcile one batch. Returns its id (None: nothing to pay)."""
    with sessions() as s, s.begin():
        built = service.build_batch(s, _user(s, MAKER), item_code=item, period=period, bank_code=bank, now=now)
        if built.batch is None:
            return None
        batch_id = built.batch.id
    with sessions() as s, s.begin():
        service.approve_batch(s, _user(s, CHECKER), batch_id, now)
    with sessions() as s, s.begin():
        files = exchange.export_batch(s, _user(s, MAKER), batch_id, now)
        number = service.get_batch(s, None, batch_id).number
        paths = [exchange.bank_dir() / number / f.name for f in files]
    answers = exchange.bank_dir() / "simulated" / number
    results = [simulate(path, answers, failure_rate, seed) for path in paths]
    for r in results:
        with sessions() as s, s.begin():
            bank_user = _user(s, "bank")  # the bank uploads its own answers; finance those of other banks
            uploader = bank_user if bank_user is not None and bank_user.bank_code == bank else _user(s, MAKER)
            taken = exchange.import_return(s, uploader, batch_id, r.return_file.path, now)
            report.paid += taken.paid
            report.failed += taken.failed
            report.sms += taken.sms_queued
        exchange.remove_files(taken.to_remove)
        with sessions() as s, s.begin():
            exchange.import_statement(s, s.merge(uploader), batch_id, r.statement_file.path, now)
        with sessions() as s, s.begin():
            exchange.import_treasury(s, _user(s, MAKER), r.treasury_file.path, now)
    with sessions() as s, s.begin():
        run = reconcile.reconcile_batch(s, _user(s, MAKER), batch_id, now)
        report.balanced += run.balanced
    report.batches.append(number)
    return batch_id


def run_demo_payments(sessions: Callable[[], Session], now: datetime, seed: int = 1) -> DemoPayments:
    """The loop over the demo city (see the module's doc). Safe to call on a city without end-of-road claims:
    it pays nothing and says why."""
    report = DemoPayments()
    with sessions() as s, s.begin():
        picked = _pick(s)
        if picked is None:
            report.skipped = "没有已通过或待支付的申请"
            return report
        item, periods, total_fen = picked
        report.item_code, report.period = item, "、".join(periods)
        # the year's allocation, by funding level, with room for re-payments
        allocation = (total_fen * 3 // 2 + 99) // 100 * 100
        central, province = allocation * 60 // 100, allocation * 25 // 100
        for year in sorted({int(p[:4]) for p in periods}):
            budget.set_allocations(s, _user(s, MAKER), [
                budget.AllocationInput(item, year, "中央", central, "演示：中央补助资金"),
                budget.AllocationInput(item, year, "省", province, "演示：省级补助资金"),
                budget.AllocationInput(item, year, "市", allocation - central - province, "演示：市级配套资金")],
                now, source="demo")
    first_batches = {}
    for p_no, period in enumerate(periods):
        for n, bank in enumerate(sorted(registry())):
            batch_id = _pay_one_batch(sessions, report, item, period, bank, now, seed + 10 * p_no + n, FAILURE_RATE)
            if batch_id is not None:
                first_batches[(period, bank)] = batch_id
    # one failure back from its department and paid again (the card stays the same: released)
    with sessions() as s, s.begin():
        failed = s.scalar(select(PaymentOrder).where(PaymentOrder.batch_id.in_(first_batches.values()),
                                                     PaymentOrder.status == OrderStatus.FAILED.value)
                          .order_by(PaymentOrder.id))
        if failed is None:
            return report
        bank, period = failed.bank_code, failed.period
        rework.release(s, _user(s, MAKER), [failed.id], "演示：已与银行核实，账户已解冻，重新发放", now)
    batch_id = _pay_one_batch(sessions, report, item, period, bank, now, seed + 100, 0.0)
    if batch_id is not None:
        with sessions() as s:
            report.repaid = s.scalar(select(func.count()).select_from(PaymentOrder).where(
                PaymentOrder.batch_id == batch_id, PaymentOrder.retry_of.is_not(None),
                PaymentOrder.status == OrderStatus.PAID.value)) or 0
    with sessions() as s, s.begin():
        for day in sorted({o for o in s.scalars(select(PaymentOrder.paid_on).where(
                PaymentOrder.paid_on.is_not(None)).distinct())}):
            reconcile.reconcile_day(s, _user(s, MAKER), day, now)
    return report
