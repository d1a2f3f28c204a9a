"""Three-way reconciliation (对账), to the fen: the platform's orders, the bank's returns and statement, and
the treasury's payment detail.

For a batch: every order answered; drawn (支出) once on the bank's statement and once in the treasury's
detail; a paid order never returned, a failed order returned on both sides. So paid + failed-and-returned
= drawn, per batch. For a Beijing booking day: what the bank booked out of and back into the paying
account that day equals what the treasury booked, record by record; and what was drawn that day is paid
or failed. Each run is kept with its figures; every record that does not agree is listed with its kind.
Set-based SQL: a 1,000,000-order batch is one pass over its orders and money lines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from yikatong.core.errors import Invalid
from yikatong.core.money import format_fen
from yikatong.disbursement.models import (
    BatchStatus,
    Difference,
    OrderStatus,
    PaymentBatch,
    Reconciliation,
)
from yikatong.disbursement.service import get_batch
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, require_perm


class DifferenceKind(StrEnum):
    UNANSWERED = "银行未回盘"
    NO_BANK_OUT = "银行对账单无支出"
    NO_TREASURY_OUT = "国库无支出记录"
    PAID_BUT_RETURNED = "成功但银行已退回"
    PAID_BUT_TREASURY_RETURNED = "成功但国库已退回"
    FAILED_NOT_RETURNED = "失败但银行未退回"
    FAILED_NOT_TREASURY_RETURNED = "失败但国库未退回"
    BANK_TREASURY_DAY = "银行与国库当日记账不一致"


PAID, FAILED, WAITING = OrderStatus.PAID.value, OrderStatus.FAILED.value, OrderStatus.APPROVED.value
K = DifferenceKind

# Each order of the batch with what the bank and the treasury booked for it (out and back): one pass over
# the batch's money lines.
_PER_ORDER = f"""
    WITH m AS (SELECT order_id,
                      SUM(CASE WHEN source = 'B' AND amount_fen > 0 THEN amount_fen ELSE 0 END) AS b_out,
                      SUM(CASE WHEN source = 'B' AND amount_fen < 0 THEN -amount_fen ELSE 0 END) AS b_back,
                      SUM(CASE WHEN source = 'T' AND amount_fen > 0 THEN amount_fen ELSE 0 END) AS t_out,
                      SUM(CASE WHEN source = 'T' AND amount_fen < 0 THEN -amount_fen ELSE 0 END) AS t_back
               FROM payment_money_lines WHERE batch_id = :batch AND source IN ('B', 'T') GROUP BY order_id),
         o AS (SELECT o.id, o.end_to_end_id, o.amount_fen, o.status,
                      COALESCE(m.b_out, 0) AS b_out, COALESCE(m.b_back, 0) AS b_back,
                      COALESCE(m.t_out, 0) AS t_out, COALESCE(m.t_back, 0) AS t_back
               FROM payment_orders o LEFT JOIN m ON m.order_id = o.id
               WHERE o.batch_id = :batch AND o.status IN ('{PAID}', '{FAILED}', '{WAITING}')),
         k AS (SELECT o.*, CASE
                 WHEN status = '{WAITING}' THEN '{K.UNANSWERED}'
                 WHEN b_out = 0 THEN '{K.NO_BANK_OUT}'
                 WHEN t_out = 0 THEN '{K.NO_TREASURY_OUT}'
                 WHEN status = '{PAID}' AND b_back > 0 THEN '{K.PAID_BUT_RETURNED}'
                 WHEN status = '{PAID}' AND t_back > 0 THEN '{K.PAID_BUT_TREASURY_RETURNED}'
                 WHEN status = '{FAILED}' AND b_back = 0 THEN '{K.FAILED_NOT_RETURNED}'
                 WHEN status = '{FAILED}' AND t_back = 0 THEN '{K.FAILED_NOT_TREASURY_RETURNED}'
               END AS kind FROM o)
"""

_BATCH_FIGURES = _PER_ORDER + f"""
    SELECT COUNT(*), COALESCE(SUM(amount_fen), 0),
           COALESCE(SUM(CASE WHEN status = '{PAID}' THEN amount_fen ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN status = '{FAILED}' THEN amount_fen ELSE 0 END), 0),
           COALESCE(SUM(b_out), 0), COALESCE(SUM(b_back), 0), COALESCE(SUM(t_out), 0), COALESCE(SUM(t_back), 0),
           COALESCE(SUM(CASE WHEN kind IS NOT NULL THEN 1 ELSE 0 END), 0)
    FROM k"""

_BATCH_DIFFERENCES = """
    INSERT INTO payment_differences (reconciliation_id, order_id, end_to_end_id, kind, order_fen, bank_fen,
                                     treasury_fen)
""" + _PER_ORDER + """
    SELECT :run, id, end_to_end_id, kind, amount_fen, b_out - b_back, t_out - t_back FROM k
    WHERE kind IS NOT NULL ORDER BY id"""

# A booking day: each 流水号 with a line on that day on either side, the two sides' net amounts.
_PER_RECORD_OF_DAY = """
    WITH d AS (SELECT order_id, end_to_end_id,
                      SUM(CASE WHEN source = 'B' AND amount_fen > 0 THEN amount_fen ELSE 0 END) AS b_out,
                      SUM(CASE WHEN source = 'B' AND amount_fen < 0 THEN -amount_fen ELSE 0 END) AS b_back,
                      SUM(CASE WHEN source = 'T' AND amount_fen > 0 THEN amount_fen ELSE 0 END) AS t_out,
                      SUM(CASE WHEN source = 'T' AND amount_fen < 0 THEN -amount_fen ELSE 0 END) AS t_back
               FROM payment_money_lines WHERE booked_on = :day GROUP BY order_id, end_to_end_id)
"""

_DAY_FIGURES = _PER_RECORD_OF_DAY + f"""
    SELECT COUNT(*), COALESCE(SUM(o.amount_fen), 0),
           COALESCE(SUM(CASE WHEN d.b_out > 0 AND o.status = '{PAID}' THEN o.amount_fen ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN d.b_out > 0 AND o.status = '{FAILED}' THEN o.amount_fen ELSE 0 END), 0),
           COALESCE(SUM(d.b_out), 0), COALESCE(SUM(d.b_back), 0), COALESCE(SUM(d.t_out), 0),
           COALESCE(SUM(d.t_back), 0),
           COALESCE(SUM(CASE WHEN d.b_out <> d.t_out OR d.b_back <> d.t_back THEN 1 ELSE 0 END), 0)
    FROM d JOIN payment_orders o ON o.id = d.order_id"""

_DAY_DIFFERENCES = """
    INSERT INTO payment_differences (reconciliation_id, order_id, end_to_end_id, kind, order_fen, bank_fen,
                                     treasury_fen)
""" + _PER_RECORD_OF_DAY + f"""
    SELECT :run, d.order_id, d.end_to_end_id, '{K.BANK_TREASURY_DAY}', o.amount_fen, d.b_out - d.b_back,
           d.t_out - d.t_back
    FROM d JOIN payment_orders o ON o.id = d.order_id
    WHERE d.b_out <> d.t_out OR d.b_back <> d.t_back ORDER BY d.order_id"""


@dataclass(frozen=True)
class Figures:
    orders: int
    orders_fen: int
    paid_fen: int
    failed_fen: int
    bank_out_fen: int
    bank_back_fen: int
    treasury_out_fen: int
    treasury_back_fen: int
    differences: int


def _figures(session: Session, sql: str, params: dict) -> Figures:
    return Figures(*(int(v or 0) for v in session.execute(text(sql), params).one()))


def _record(session: Session, user: User | None, figures: Figures, balanced: bool, now: datetime, *,
            batch: PaymentBatch | None = None, day: date | None = None) -> Reconciliation:
    run = Reconciliation(batch_id=batch.id if batch else None, day=day, orders_fen=figures.orders_fen,
                         paid_fen=figures.paid_fen, failed_fen=figures.failed_fen,
                         bank_out_fen=figures.bank_out_fen, bank_back_fen=figures.bank_back_fen,
                         treasury_out_fen=figures.treasury_out_fen, treasury_back_fen=figures.treasury_back_fen,
                         orders=figures.orders, differences=figures.differences, balanced=balanced,
                         by_name=user.display_name if user else "系统", at=now)
    session.add(run)
    session.flush()
    return run


def reconcile_batch(session: Session, user: User | None, batch_id: int | str, now: datetime, *,
                    ip: str = "") -> Reconciliation:
    """Reconcile one batch; a balanced batch becomes 已对账 (a conditional write)."""
    if user is not None:
        require_perm(user, Perm.PAYMENT_MANAGE)
    batch = get_batch(session, user, batch_id)
    if batch.status not in (BatchStatus.SENT.value, BatchStatus.ANSWERED.value, BatchStatus.RECONCILED.value):
        raise Invalid(f"批次{batch.number}状态为“{batch.status}”，尚未发送银行，不能对账")
    figures = _figures(session, _BATCH_FIGURES, {"batch": batch.id})
    balanced = (figures.differences == 0 and figures.paid_fen + figures.failed_fen == figures.orders_fen
                == figures.bank_out_fen == figures.treasury_out_fen
                and figures.failed_fen == figures.bank_back_fen == figures.treasury_back_fen)
    run = _record(session, user, figures, balanced, now, batch=batch)
    if figures.differences:  # the same pass again, for the records that differ
        session.execute(text(_BATCH_DIFFERENCES), {"batch": batch.id, "run": run.id})
    if balanced:
        session.execute(update(PaymentBatch).where(PaymentBatch.id == batch.id,
                                                   PaymentBatch.status == BatchStatus.ANSWERED.value)
                        .values(status=BatchStatus.RECONCILED.value, version=PaymentBatch.version + 1)
                        .execution_options(synchronize_session=False))
    audit.record(session, user, "payment.reconcile", "payment_batch", batch.number, now,
                 region_code=batch.region_code, ip=ip,
                 detail={"balanced": balanced, "differences": figures.differences, "orders_fen": figures.orders_fen,
                         "paid_fen": figures.paid_fen, "failed_fen": figures.failed_fen})
    session.flush()
    session.refresh(batch)
    return run


def reconcile_day(session: Session, user: User | None, day: date, now: datetime, *, ip: str = "") -> Reconciliation:
    """Reconcile one Beijing booking day across every batch: the bank's and the treasury's lines of that day
    agree record by record, and what was drawn that day is paid or failed."""
    if user is not None:
        require_perm(user, Perm.PAYMENT_MANAGE)
    figures = _figures(session, _DAY_FIGURES, {"day": day})
    balanced = (figures.differences == 0 and figures.bank_out_fen == figures.treasury_out_fen
                and figures.bank_back_fen == figures.treasury_back_fen
                and figures.paid_fen + figures.failed_fen == figures.bank_out_fen)
    run = _record(session, user, figures, balanced, now, day=day)
    session.execute(text(_DAY_DIFFERENCES), {"day": day, "run": run.id})
    audit.record(session, user, "payment.reconcile_day", "payment_day", day.isoformat(), now,
                 region_code=user.region_code if user else None, ip=ip,
                 detail={"balanced": balanced, "differences": figures.differences})
    session.flush()
    return run


def differences(session: Session, run: Reconciliation, *, limit: int | None = 1000) -> list[Difference]:
    query = select(Difference).where(Difference.reconciliation_id == run.id).order_by(Difference.id)
    return list(session.scalars(query.limit(limit) if limit else query))


def summary(run: Reconciliation) -> str:
    what = "平" if run.balanced else f"不平，{run.differences:,}笔差异"
    return (f"对账{what}：支付指令{run.orders:,}笔{format_fen(run.orders_fen)}元；"
            f"回盘成功{format_fen(run.paid_fen)}元、失败{format_fen(run.failed_fen)}元；银行支出{format_fen(run.bank_out_fen)}元、退回"
            f"{format_fen(run.bank_back_fen)}元；国库支出{format_fen(run.treasury_out_fen)}元、退回"
            f"{format_fen(run.treasury_back_fen)}元")
