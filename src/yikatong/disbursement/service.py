"""Payment batches (发放批次) and payment orders: built from applications that finished the road, through
the pre-payment gate, within the item's budget; made by one user, approved by another, then frozen.

- Building: the applications of one item and period (已通过 or 待支付, in the maker's region, not held by
  a live order) whose payee's card is at the batch's bank pass the gate (interception.service.gate);
  those with open flags or no card to pay into stay out, listed with their reasons. A batch that would
  exceed what remains of the item's year is refused whole, with the figures.
- Approving: another user than the maker; a conditional write against the batch's version (of two
  approvers at once exactly one wins); the batch's total is committed against the budget by a
  conditional UPDATE; each order fixes its payee, card account (encrypted), bank, treasury account
  and end-to-end id. Approved batches and their orders are never edited again here.
- An application has at most one live order (not 失败/已撤销): the unique index uq_payment_orders_live."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from yikatong.catalog.models import Bank, SubsidyItem, TreasuryAccount
from yikatong.core import crypto
from yikatong.core.clock import beijing_date
from yikatong.core.db import bulk_insert, savepoint
from yikatong.core.errors import Blocked, Conflict, Forbidden, Invalid, NotFound
from yikatong.core.masking import mask_name
from yikatong.core.money import format_fen
from yikatong.core.protect import reveal
from yikatong.disbursement import budget
from yikatong.disbursement.bank.records import BatchFile, PaymentRecord
from yikatong.disbursement.models import (
    FROZEN_BATCH,
    BatchExclusion,
    BatchStatus,
    OrderStatus,
    PaymentBatch,
    PaymentOrder,
    Rework,
)
from yikatong.disbursement.payees import Payee, payees
from yikatong.interception.service import gate
from yikatong.registry.models import Person
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, Role, has_perm, require_perm
from yikatong.security.scope import in_subtree, parent_of, within
from yikatong.workflow.models import Application, Status
from yikatong.workflow.periods import parse_period

CHUNK = 900
COUNTY_FUNDED = "县"  # the items a county's finance bureau pays itself
BATCH_MAX = 1_000_000  # orders per batch
RACED_BATCH = "该批次已被他人处理，请刷新"
LIVE_ORDER_STATUSES = (OrderStatus.DRAFT.value, OrderStatus.APPROVED.value, OrderStatus.PAID.value)


@dataclass
class Excluded:
    application_id: int
    reason: str


@dataclass
class BuildResult:
    """What building found. `batch` None: nothing to pay, or refused (`refused` says why, with figures).
    The gate's flags and moves to 待支付 are kept either way (the caller commits)."""

    batch: PaymentBatch | None
    candidates: int
    excluded: list[Excluded] = field(default_factory=list)
    refused: str = ""

    def message(self) -> str:
        if self.refused:
            return self.refused
        if self.batch is None:
            return f"没有可以发放的申请（{self.candidates:,}笔候选，{len(self.excluded):,}笔未纳入）"
        b = self.batch
        return (f"已生成发放批次{b.number}：{b.order_count:,}笔，合计{format_fen(b.total_fen)}元；"
                f"{len(self.excluded):,}笔未纳入，待另一位用户审批")


def _chunks(values: list, size: int = CHUNK):
    for start in range(0, len(values), size):
        yield values[start:start + size]


def default_treasury(session: Session, region_code: str) -> TreasuryAccount:
    """The special subsidy account (专户) of the maker's region or the nearest region above; else its 国库."""
    code: str | None = region_code
    while code is not None:
        accounts = session.scalars(select(TreasuryAccount).where(TreasuryAccount.region_code == code)
                                   .order_by(TreasuryAccount.code)).all()
        for kind in ("专户", "国库"):
            found = [a for a in accounts if a.kind == kind]
            if found:
                return found[0]
        code = parent_of(code)
    raise Invalid("没有可用的国库或专户账户，请先在补贴项目目录中登记")


def build_batch(session: Session, user: User, *, item_code: str, period: str, bank_code: str, now: datetime,
                treasury_code: str | None = None, ip: str = "") -> BuildResult:
    """Build a batch for one item, period and bank from the applications that finished the road."""
    require_perm(user, Perm.PAYMENT_MANAGE)
    require_perm(user, Perm.PAYMENT_GATE)
    item = session.get(SubsidyItem, item_code.strip())
    if item is None:
        raise NotFound(f"补贴项目不存在：{item_code}")
    if user.role == Role.COUNTY_FINANCE.value and item.funding_level != COUNTY_FUNDED:
        raise Forbidden(f"县级财政只发放县级资金项目；{item.name}为{item.funding_level}级资金，由市财政发放")
    try:
        label = parse_period(item.frequency, period).label
    except ValueError as e:
        raise Invalid(str(e)) from None
    if session.get(Bank, bank_code.strip()) is None:
        raise NotFound(f"代发银行不存在：{bank_code}")
    bank_code = bank_code.strip()
    if treasury_code:
        treasury = session.get(TreasuryAccount, treasury_code.strip())
        if treasury is None:
            raise NotFound(f"国库/专户账户不存在：{treasury_code}")
        if not in_subtree(treasury.region_code, user.region_code):
            raise Forbidden("只能使用本级或上级的国库/专户账户")
    else:
        treasury = default_treasury(session, user.region_code)

    held = select(PaymentOrder.application_id).where(PaymentOrder.status.in_(LIVE_ORDER_STATUSES),
                                                     PaymentOrder.item_code == item.code, PaymentOrder.period == label)
    rows = session.execute(select(Application.id, Application.person_id).where(
        Application.item_code == item.code, Application.period == label,
        Application.status.in_((Status.APPROVED.value, Status.PAYABLE.value)),
        within(Application.region_code, user.region_code), Application.id.not_in(held)).order_by(Application.id)).all()
    if len(rows) > BATCH_MAX:
        raise Invalid(f"一个批次最多{BATCH_MAX:,}笔，请按区划分批")
    found = payees(session, [r.person_id for r in rows], beijing_date(now))
    failed_before = last_failures(session, [r.id for r in rows])
    excluded: list[Excluded] = []
    at_bank: list[int] = []
    for r in rows:
        payee = found[r.person_id]
        before = failed_before.get(r.id)
        if isinstance(payee, str):
            excluded.append(Excluded(r.id, payee))
        elif before is not None and before.rework == Rework.OPEN.value and payee.account_hash == before.account_hash:
            excluded.append(Excluded(r.id, f"上次发放失败（{before.fail_reason}），收款卡未更换，待主管部门处理后重发"))
        elif payee.bank_code == bank_code:
            at_bank.append(r.id)
    result = BuildResult(batch=None, candidates=len(at_bank) + len(excluded), excluded=excluded)
    if not at_bank:
        return result

    checked = gate(session, at_bank, now, actor=user)
    for b in checked.blocked:
        result.excluded.append(Excluded(b.application_id, "存疑信息未核实：" + "；".join(f.evidence for f in b.flags)))
    payable = set(checked.allowed)
    for app_id, status in checked.not_payable.items():
        if status == Status.PAYABLE.value:
            payable.add(app_id)
        elif app_id not in checked.blocked_ids:
            result.excluded.append(Excluded(app_id, f"状态为“{status}”，不能发放"))
    payable -= set(checked.blocked_ids)
    if not payable:
        return result
    apps = []
    for chunk in _chunks(sorted(payable)):
        apps.extend(session.execute(select(Application.id, Application.person_id, Application.amount_fen,
                                           Application.region_code).where(Application.id.in_(chunk))).all())
    total = sum(a.amount_fen for a in apps)
    year = int(label[:4])
    refused = budget.refusal(session, item.code, year, total)
    if refused:
        result.refused = refused + "。批次未生成"
        return result

    # the number names the batch's id, known after the insert: a unique placeholder until then
    batch = PaymentBatch(number=f"tmp{uuid.uuid4().hex[:17]}", item_code=item.code, period=label,
                         year=year, bank_code=bank_code, treasury_code=treasury.code, region_code=user.region_code,
                         status=BatchStatus.DRAFT.value, order_count=len(apps), total_fen=total,
                         blocked_count=len(result.excluded), made_by=user.id, made_by_name=user.display_name,
                         made_at=now)
    try:
        with savepoint(session):
            session.add(batch)
            session.flush()
            batch.number = f"FF{beijing_date(now):%Y%m%d}{batch.id:06d}"
            session.flush()
            bulk_insert(session, PaymentOrder.__table__, [
                dict(batch_id=batch.id, application_id=a.id, person_id=a.person_id, item_code=item.code, period=label,
                     year=year, region_code=a.region_code, amount_fen=a.amount_fen, status=OrderStatus.DRAFT.value,
                     bank_code=bank_code, payee_name="", by_proxy=False, account_hash="", account_masked="",
                     fail_code="", fail_reason="", rework="", rework_note="", rework_by_name="",
                     retry_of=failed_before[a.id].id if a.id in failed_before else None,
                     attempt=failed_before[a.id].attempt + 1 if a.id in failed_before else 1)
                for a in apps])
    except IntegrityError:
        raise Conflict("部分申请已被另一个批次纳入，请刷新后重新生成") from None
    bulk_insert(session, BatchExclusion.__table__,
                [dict(batch_id=batch.id, application_id=e.application_id, reason=e.reason[:2000])
                 for e in result.excluded])
    audit.record(session, user, "payment.batch_build", "payment_batch", batch.number, now,
                 region_code=user.region_code, ip=ip,
                 detail={"item": item.code, "period": label, "bank": bank_code, "orders": len(apps), "total_fen": total,
                         "excluded": len(result.excluded), "treasury": treasury.code})
    session.flush()
    result.batch = batch
    return result


def last_failures(session: Session, application_ids: list[int]) -> dict[int, PaymentOrder]:
    """Each application's latest failed order, if it has one: a new order pays it again (retry_of)."""
    out: dict[int, PaymentOrder] = {}
    for chunk in _chunks(sorted(application_ids)):
        for order in session.scalars(select(PaymentOrder).where(
                PaymentOrder.application_id.in_(chunk), PaymentOrder.status == OrderStatus.FAILED.value)
                .order_by(PaymentOrder.id)):
            out[order.application_id] = order  # the latest wins
    return out


def visible_batches(user: User | None):
    """The batches `user` may read: their region's subtree (None: the system, every batch)."""
    if user is None:
        return select(PaymentBatch)
    require_perm(user, Perm.PAYMENT_READ)
    return select(PaymentBatch).where(within(PaymentBatch.region_code, user.region_code))


def get_batch(session: Session, user: User | None, batch_id: int | str) -> PaymentBatch:
    """A batch by id or number, inside the user's region (else 404: says nothing about others)."""
    if user is not None:
        require_perm(user, Perm.PAYMENT_READ)
    key = str(batch_id).strip()
    batch = session.get(PaymentBatch, int(key)) if key.isdigit() and len(key) < 12 else session.scalar(
        select(PaymentBatch).where(PaymentBatch.number == key))
    if batch is None or (user is not None and not in_subtree(user.region_code, batch.region_code)):
        raise NotFound("发放批次不存在或无权查看")
    return batch


def list_batches(session: Session, user: User | None, *, limit: int = 200) -> list[PaymentBatch]:
    return list(session.scalars(visible_batches(user).order_by(PaymentBatch.id.desc()).limit(limit)))


def may_approve(user: User, batch: PaymentBatch) -> bool:
    return (batch.status == BatchStatus.DRAFT.value and batch.made_by != user.id
            and has_perm(user.role, Perm.PAYMENT_MANAGE) and in_subtree(user.region_code, batch.region_code))


def approve_batch(session: Session, user: User, batch_id: int | str, now: datetime, *, seen_version: int | None = None,
                  ip: str = "") -> PaymentBatch:
    """Approve (审批) a batch made by someone else: fix every order and commit the budget. A conditional
    write against the batch's version: of two approvers at the same moment exactly one succeeds."""
    require_perm(user, Perm.PAYMENT_MANAGE)
    with savepoint(session):  # on SQLite: take the write lock before reading the batch
        batch = get_batch(session, user, batch_id)
        session.refresh(batch)
        if batch.status != BatchStatus.DRAFT.value or (seen_version is not None and seen_version != batch.version):
            raise Conflict(RACED_BATCH)
        if batch.made_by == user.id:
            raise Forbidden("制单人不能审批自己生成的批次：须由另一位用户审批")
        batch.status = BatchStatus.APPROVED.value
        batch.approved_by, batch.approved_by_name, batch.approved_at = user.id, user.display_name, now
        try:
            session.flush()  # UPDATE .. WHERE id = ? AND version = ?: the loser of a race matches no row
        except StaleDataError:
            raise Conflict(RACED_BATCH) from None
        budget.commit_batch(session, batch.item_code, batch.year, batch.total_fen)
        _fix_orders(session, batch, now)
    audit.record(session, user, "payment.batch_approve", "payment_batch", batch.number, now,
                 region_code=batch.region_code, ip=ip,
                 detail={"orders": batch.order_count, "total_fen": batch.total_fen, "maker": batch.made_by_name})
    session.flush()
    return batch


def end_to_end_id(batch_id: int, order_id: int) -> str:
    """Unique platform-wide (order ids are) and at most 35 characters (ISO 20022 EndToEndId)."""
    return f"YKT{batch_id:06d}-{order_id:010d}"


def _fix_orders(session: Session, batch: PaymentBatch, now: datetime) -> None:
    orders = session.execute(select(PaymentOrder.id, PaymentOrder.person_id).where(
        PaymentOrder.batch_id == batch.id, PaymentOrder.status == OrderStatus.DRAFT.value)
        .order_by(PaymentOrder.id)).all()
    if len(orders) != batch.order_count:
        raise Conflict(RACED_BATCH)
    found = payees(session, [o.person_id for o in orders], beijing_date(now))
    wrong = [(o.id, found[o.person_id]) for o in orders
             if isinstance(found[o.person_id], str) or found[o.person_id].bank_code != batch.bank_code]
    if wrong:
        why = [f"支付指令{i}：{p if isinstance(p, str) else '社会保障卡已改为其他银行'}" for i, p in wrong[:20]]
        raise Blocked(f"{len(wrong):,}笔支付指令的收款卡已变化，批次不能审批，请撤销后重新生成：" + "；".join(why))
    values = []
    for o in orders:
        payee: Payee = found[o.person_id]  # type: ignore[assignment]
        values.append(dict(oid=o.id, status=OrderStatus.APPROVED.value, payee_name=payee.name,
                           by_proxy=payee.proxy_id is not None, proxy_id=payee.proxy_id, card_id=payee.card_id,
                           account_enc=payee.account_enc, account_hash=payee.account_hash,
                           account_masked=payee.account_masked, treasury_code=batch.treasury_code,
                           end_to_end_id=end_to_end_id(batch.id, o.id), approved_at=now))
    statement = (update(PaymentOrder.__table__).where(PaymentOrder.__table__.c.id == bindparam("oid"),
                                                      PaymentOrder.__table__.c.status == OrderStatus.DRAFT.value)
                 .values({k: bindparam(k) for k in values[0] if k != "oid"}) if values else None)
    for chunk in _chunks(values, 5000):
        session.connection().execute(statement, chunk)


def cancel_batch(session: Session, user: User, batch_id: int | str, now: datetime, *, ip: str = "") -> PaymentBatch:
    """Drop a batch not yet approved (its maker or another finance user): its applications are free again."""
    require_perm(user, Perm.PAYMENT_MANAGE)
    with savepoint(session):
        batch = get_batch(session, user, batch_id)
        session.refresh(batch)
        if batch.status != BatchStatus.DRAFT.value:
            raise Conflict(RACED_BATCH)
        batch.status = BatchStatus.CANCELLED.value
        try:
            session.flush()
        except StaleDataError:
            raise Conflict(RACED_BATCH) from None
        session.execute(update(PaymentOrder).where(PaymentOrder.batch_id == batch.id)
                        .values(status=OrderStatus.CANCELLED.value).execution_options(synchronize_session=False))
    audit.record(session, user, "payment.batch_cancel", "payment_batch", batch.number, now,
                 region_code=batch.region_code, ip=ip)
    session.flush()
    return batch


def batch_orders(session: Session, batch: PaymentBatch, *, limit: int = 500, offset: int = 0) -> list[dict]:
    """Orders as pages show them: accounts masked, names of beneficiary and payee."""
    rows = session.execute(
        select(PaymentOrder, Person.name, Application.number).join(Person, Person.id == PaymentOrder.person_id)
        .join(Application, Application.id == PaymentOrder.application_id)
        .where(PaymentOrder.batch_id == batch.id).order_by(PaymentOrder.id).limit(limit).offset(offset)).all()
    return [{"id": o.id, "application_id": o.application_id, "application_number": number,
             "beneficiary": mask_name(name), "payee": mask_name(o.payee_name) if o.payee_name else "",
             "by_proxy": o.by_proxy, "account": o.account_masked, "amount_fen": o.amount_fen, "status": o.status,
             "end_to_end_id": o.end_to_end_id or ""} for o, name, number in rows]


def order_counts(session: Session, batch: PaymentBatch) -> dict[str, int]:
    return dict(session.execute(select(PaymentOrder.status, func.count()).where(PaymentOrder.batch_id == batch.id)
                                .group_by(PaymentOrder.status)).all())


def batch_file(session: Session, batch: PaymentBatch, *, accounts: bool = True) -> BatchFile:
    """The approved batch as its bank sees it. Accounts are decrypted here and only here: the result goes
    straight into the bank's file (disbursement.bank). `accounts=False`: without them (empty), to check a
    return or statement against the batch."""
    if batch.status not in FROZEN_BATCH:
        raise Invalid("批次尚未审批，不能生成银行文件")
    item = session.get(SubsidyItem, batch.item_code)
    treasury = session.get(TreasuryAccount, batch.treasury_code)
    purpose = f"{period_words(batch.period)} {item.name}"[:140]
    columns = (PaymentOrder.end_to_end_id, PaymentOrder.payee_name, PaymentOrder.amount_fen) + (
        (PaymentOrder.account_enc,) if accounts else ())
    records = [PaymentRecord(end_to_end_id=o.end_to_end_id, payee_name=o.payee_name,
                             account=reveal(crypto.BANK_ACCOUNT, o.account_enc) if accounts else "",
                             amount_fen=o.amount_fen, purpose=purpose)
               for o in session.execute(select(*columns).where(
                   PaymentOrder.batch_id == batch.id, PaymentOrder.status != OrderStatus.CANCELLED.value)
                   .order_by(PaymentOrder.id))]
    return BatchFile(batch_number=batch.number, bank_code=batch.bank_code, created_at=batch.approved_at,
                     debtor_name=treasury.name, debtor_account=treasury.account_number, records=records)


def period_words(period: str) -> str:
    """2026-11 -> 2026年11月, 2026Q4 -> 2026年第4季度, 2026H2 -> 2026年下半年, 2026 -> 2026年."""
    if len(period) == 7 and period[4] == "-":
        return f"{period[:4]}年{int(period[5:])}月"
    if len(period) == 6 and period[4] in "Qq":
        return f"{period[:4]}年第{period[5]}季度"
    if len(period) == 6 and period[4] in "Hh":
        return f"{period[:4]}年{'上' if period[5] == '1' else '下'}半年"
    return f"{period}年"
