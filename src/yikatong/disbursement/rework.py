"""Failed payments go back to their department (退回重发), and how well payment goes (success rates).

A failed order carries the bank's reason and stays 待处理 on the department's list. It is paid again in a
later batch when the payee's card changed (a new card, or a proxy holder registered) or when the
department releases it (可重发: e.g. the bank fixed the name on its side). The new order links to the
failed one (retry_of, attempt + 1); the unique index on live orders still allows one payment only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from yikatong.catalog.models import Bank, SubsidyItem
from yikatong.core.errors import Conflict, Invalid
from yikatong.core.masking import mask_name
from yikatong.disbursement.models import OrderStatus, PaymentBatch, PaymentOrder, Rework
from yikatong.registry.models import Person
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, require_perm
from yikatong.security.scope import within
from yikatong.workflow.models import Application

RACED = "该笔失败记录已被他人处理，请刷新"


def _scoped(query, user: User | None):
    """Failures of the user's region; a department's user sees its own items only."""
    if user is None:
        return query
    query = query.where(within(PaymentOrder.region_code, user.region_code))
    if user.department_code:
        query = query.where(PaymentOrder.item_code.in_(
            select(SubsidyItem.code).where(SubsidyItem.department_code == user.department_code)))
    return query


@dataclass(frozen=True)
class Failure:
    order_id: int
    application_number: str
    beneficiary: str  # masked
    item_name: str
    period: str
    amount_fen: int
    bank_name: str
    account: str  # masked
    reason: str
    attempt: int
    rework: str
    rework_note: str
    batch_number: str


def failures(session: Session, user: User | None, *, state: str | None = Rework.OPEN.value, limit: int = 500,
             offset: int = 0) -> list[Failure]:
    """Failed orders waiting for their department (state None: 待处理 and 可重发)."""
    if user is not None:
        require_perm(user, Perm.PAYMENT_REWORK)
    states = [state] if state else [Rework.OPEN.value, Rework.READY.value]
    query = _scoped(select(PaymentOrder, Application.number, Person.name, SubsidyItem.name, Bank.name,
                           PaymentBatch.number)
                    .join(Application, Application.id == PaymentOrder.application_id)
                    .join(Person, Person.id == PaymentOrder.person_id)
                    .join(SubsidyItem, SubsidyItem.code == PaymentOrder.item_code)
                    .join(Bank, Bank.code == PaymentOrder.bank_code)
                    .join(PaymentBatch, PaymentBatch.id == PaymentOrder.batch_id)
                    .where(PaymentOrder.status == OrderStatus.FAILED.value, PaymentOrder.rework.in_(states)), user)
    rows = session.execute(query.order_by(PaymentOrder.id).limit(limit).offset(offset)).all()
    return [Failure(o.id, number, mask_name(name), item, o.period, o.amount_fen, bank, o.account_masked,
                    o.fail_reason or o.fail_code, o.attempt, o.rework, o.rework_note, batch)
            for o, number, name, item, bank, batch in rows]


def release(session: Session, user: User | None, order_ids: Sequence[int], note: str, now: datetime, *,
            ip: str = "") -> int:
    """The department says these failed payments may be paid again (可重发), with its note: a conditional
    write per order, so two clerks at once cannot both release one and a released one is not released twice."""
    if user is not None:
        require_perm(user, Perm.PAYMENT_REWORK)
    note = note.strip()
    if not note:
        raise Invalid("请填写处理意见（如：已核实户名，银行已更正）")
    ids = sorted(set(order_ids))
    if not ids:
        raise Invalid("请选择要重发的失败记录")
    allowed = set(session.scalars(_scoped(select(PaymentOrder.id).where(PaymentOrder.id.in_(ids)), user)))
    if allowed != set(ids):
        raise Conflict("部分记录不存在或不在您的管辖范围内")
    moved = session.execute(
        update(PaymentOrder).where(PaymentOrder.id.in_(ids), PaymentOrder.status == OrderStatus.FAILED.value,
                                   PaymentOrder.rework == Rework.OPEN.value)
        .values(rework=Rework.READY.value, rework_note=note[:200],
                rework_by_name=user.display_name if user else "系统", rework_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if moved != len(ids):
        raise Conflict(RACED)
    for order_id in ids:
        audit.record(session, user, "payment.rework_release", "payment_order", order_id, now,
                     region_code=user.region_code if user else None, ip=ip, detail={"note": note})
    session.flush()
    return moved


# ---------------------------------------------------------------- success rates


BY = {"batch": PaymentOrder.batch_id, "item": PaymentOrder.item_code, "bank": PaymentOrder.bank_code,
      "region": func.substr(PaymentOrder.region_code, 1, 6)}  # by county


@dataclass(frozen=True)
class Rate:
    key: str
    answered: int  # first attempts the bank answered
    first_paid: int  # of them paid at the first attempt
    applications: int  # applications with an answered order
    finally_paid: int  # of them paid in the end (at any attempt)

    @property
    def first_rate(self) -> float:  # a ratio shown as a percentage, never money
        return self.first_paid / self.answered if self.answered else 0.0

    @property
    def final_rate(self) -> float:
        return self.finally_paid / self.applications if self.applications else 0.0


def success_rates(session: Session, user: User | None, by: str = "batch", *, item_code: str | None = None,
                  year: int | None = None) -> list[Rate]:
    """First-attempt and final success rates per batch, item, bank or county. A re-payment counts to the
    group of the application's first attempt."""
    if user is not None:
        require_perm(user, Perm.PAYMENT_READ)
    if by not in BY:
        raise Invalid(f"统计口径应为 {'、'.join(BY)} 之一")
    answered = (OrderStatus.PAID.value, OrderStatus.FAILED.value)
    first = (select(PaymentOrder.application_id, BY[by].label("key"),
                    (PaymentOrder.status == OrderStatus.PAID.value).label("first_paid"))
             .where(PaymentOrder.attempt == 1, PaymentOrder.status.in_(answered)))
    if user is not None:
        first = first.where(within(PaymentOrder.region_code, user.region_code))
    if item_code:
        first = first.where(PaymentOrder.item_code == item_code)
    if year:
        first = first.where(PaymentOrder.year == year)
    first = first.subquery()
    paid = select(PaymentOrder.application_id).where(PaymentOrder.status == OrderStatus.PAID.value).subquery()
    rows = session.execute(
        select(first.c.key, func.count(), func.sum(case((first.c.first_paid, 1), else_=0)),
               func.count(paid.c.application_id))
        .select_from(first).outerjoin(paid, paid.c.application_id == first.c.application_id)
        .group_by(first.c.key).order_by(first.c.key)).all()
    return [Rate(str(key), int(n), int(first_paid or 0), int(n), int(final or 0)) for key, n, first_paid, final in rows]
