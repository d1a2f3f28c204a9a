"""Budget (指标): what each item may pay in a year, by funding level (中央/省/市/县), and how much of it
approved batches have committed and paid orders have spent.

The yearly totals (`BudgetYear`) move only by conditional UPDATEs: an allocation may not fall below
what is committed, and a batch is committed only while it fits (committed + batch <= allocated). Two
approvals at once therefore never exceed an allocation together, on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from yikatong.catalog.models import FundingLevel, SubsidyItem
from yikatong.core.errors import Blocked, Forbidden, Invalid, NotFound
from yikatong.core.money import format_fen
from yikatong.disbursement.models import SPENT_STATUSES, BudgetAllocation, BudgetYear, PaymentOrder
from yikatong.registry.models import RegionLevel
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, require_perm
from yikatong.security.scope import level_of

MIN_YEAR, MAX_YEAR = 2000, 2099
MAX_ALLOCATION_FEN = 10**15  # 10 trillion yuan: far above any item's year, far below BIGINT


@dataclass(frozen=True)
class AllocationInput:
    item_code: str
    year: int
    funding_level: str
    amount_fen: int
    note: str = ""


@dataclass
class BudgetLine:
    """One item and year as the budget page shows it."""

    item_code: str
    item_name: str
    year: int
    allocated_fen: int
    committed_fen: int
    spent_fen: int
    levels: dict[str, int] = field(default_factory=dict)  # funding level -> allocated

    @property
    def remaining_fen(self) -> int:
        return self.allocated_fen - self.committed_fen


def require_city_budget(user: User) -> None:
    """Allocations are the city's: entered by city finance (a county office has no budget of its own here)."""
    require_perm(user, Perm.BUDGET_MANAGE)
    if level_of(user.region_code) not in (RegionLevel.CITY, RegionLevel.PROVINCE):
        raise Forbidden("补贴资金指标由市财政录入")


def check_allocation(value: AllocationInput) -> None:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise Invalid(f"年度应在{MIN_YEAR}至{MAX_YEAR}之间")
    if value.funding_level not in {f.value for f in FundingLevel}:
        raise Invalid("资金级次应为以下之一：" + "、".join(f.value for f in FundingLevel))
    if not 0 <= value.amount_fen <= MAX_ALLOCATION_FEN:
        raise Invalid("指标金额应为非负金额")
    if len(value.note) > 200:
        raise Invalid("说明不能超过200字")


def set_allocations(session: Session, user: User | None, values: Sequence[AllocationInput], now: datetime,
                    *, ip: str = "", source: str = "page") -> tuple[int, int, int]:
    """Enter allocations: a new item, year and level is added, an existing one gets the new amount.
    Returns (added, updated, unchanged). `user` None is the system (the command line)."""
    if user is not None:
        require_city_budget(user)
    added = updated = unchanged = 0
    for value in values:
        check_allocation(value)
        if session.get(SubsidyItem, value.item_code) is None:
            raise NotFound(f"补贴项目不存在：{value.item_code}")
        row = session.scalar(select(BudgetAllocation).where(
            BudgetAllocation.item_code == value.item_code, BudgetAllocation.year == value.year,
            BudgetAllocation.funding_level == value.funding_level))
        old = row.amount_fen if row else 0
        if row is not None and old == value.amount_fen and row.note == value.note:
            unchanged += 1
            continue
        _move_allocated(session, value.item_code, value.year, value.amount_fen - old)
        who = {"updated_by": user.id if user else None, "updated_by_name": user.display_name if user else "系统",
               "updated_at": now}
        if row is None:
            session.add(BudgetAllocation(item_code=value.item_code, year=value.year, funding_level=value.funding_level,
                                         amount_fen=value.amount_fen, note=value.note, **who))
            added += 1
        else:
            row.amount_fen, row.note = value.amount_fen, value.note
            for k, v in who.items():
                setattr(row, k, v)
            updated += 1
        audit.record(session, user, "budget.set", "budget", f"{value.item_code}/{value.year}/{value.funding_level}",
                     now, region_code=user.region_code if user else None, ip=ip,
                     detail={"before_fen": old, "after_fen": value.amount_fen, "note": value.note, "source": source})
    session.flush()
    return added, updated, unchanged


def ensure_year(session: Session, item_code: str, year: int) -> None:
    """The item's totals row for the year, created empty if missing (a concurrent creator is harmless)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(BudgetYear).values(item_code=item_code, year=year, allocated_fen=0, committed_fen=0)
                    .on_conflict_do_nothing())


def _move_allocated(session: Session, item_code: str, year: int, delta: int) -> None:
    ensure_year(session, item_code, year)
    moved = session.execute(
        update(BudgetYear).where(BudgetYear.item_code == item_code, BudgetYear.year == year,
                                 BudgetYear.allocated_fen + delta >= BudgetYear.committed_fen)
        .values(allocated_fen=BudgetYear.allocated_fen + delta).execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        totals = session.get(BudgetYear, (item_code, year), populate_existing=True)
        raise Blocked(f"{item_code} {year}年度指标不能低于已审批批次占用的金额："
                      f"已占用{format_fen(totals.committed_fen)}元，"
                      f"调整后指标{format_fen(totals.allocated_fen + delta)}元")


def figures(session: Session, item_code: str, year: int) -> tuple[int, int]:
    """(allocated, committed) of an item's year, read fresh."""
    row = session.execute(select(BudgetYear.allocated_fen, BudgetYear.committed_fen).where(
        BudgetYear.item_code == item_code, BudgetYear.year == year)).first()
    return (row.allocated_fen, row.committed_fen) if row else (0, 0)


def refusal(session: Session, item_code: str, year: int, batch_fen: int) -> str | None:
    """The Chinese refusal with the figures when `batch_fen` exceeds what remains, else None."""
    allocated, committed = figures(session, item_code, year)
    if committed + batch_fen <= allocated:
        return None
    return (f"超出指标：{item_code} {year}年度指标{format_fen(allocated)}元，已审批批次占用{format_fen(committed)}元，"
            f"本批次{format_fen(batch_fen)}元，剩余可用{format_fen(allocated - committed)}元")


def commit_batch(session: Session, item_code: str, year: int, batch_fen: int) -> None:
    """Take `batch_fen` from the year's allocation, only while it fits (a conditional UPDATE)."""
    ensure_year(session, item_code, year)
    moved = session.execute(
        update(BudgetYear).where(BudgetYear.item_code == item_code, BudgetYear.year == year,
                                 BudgetYear.committed_fen + batch_fen <= BudgetYear.allocated_fen)
        .values(committed_fen=BudgetYear.committed_fen + batch_fen)
        .execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        raise Blocked(refusal(session, item_code, year, batch_fen) or "超出指标")


def release(session: Session, item_code: str, year: int, fen: int) -> None:
    """Give back to the year what failed payments did not spend (the money returned to the treasury);
    a re-payment takes it again when its batch is approved."""
    session.execute(update(BudgetYear).where(BudgetYear.item_code == item_code, BudgetYear.year == year,
                                             BudgetYear.committed_fen >= fen)
                    .values(committed_fen=BudgetYear.committed_fen - fen).execution_options(synchronize_session=False))


def overview(session: Session, user: User | None, *, year: int | None = None,
             item_code: str | None = None) -> list[BudgetLine]:
    """Allocated, committed and spent per item and year (spent: orders the bank paid, status 成功).
    `user` None is the system (the command line)."""
    if user is not None:
        require_perm(user, Perm.PAYMENT_READ)
    query = select(BudgetYear, SubsidyItem.name).join(SubsidyItem, SubsidyItem.code == BudgetYear.item_code)
    if year is not None:
        query = query.where(BudgetYear.year == year)
    if item_code:
        query = query.where(BudgetYear.item_code == item_code)
    lines = {(y.item_code, y.year): BudgetLine(y.item_code, name, y.year, y.allocated_fen, y.committed_fen, 0)
             for y, name in session.execute(query.order_by(BudgetYear.year.desc(), BudgetYear.item_code))}
    if not lines:
        return []
    codes = sorted({k[0] for k in lines})
    levels = select(BudgetAllocation.item_code, BudgetAllocation.year, BudgetAllocation.funding_level,
                    BudgetAllocation.amount_fen).where(BudgetAllocation.item_code.in_(codes))
    for r in session.execute(levels):
        if (r.item_code, r.year) in lines:
            lines[(r.item_code, r.year)].levels[r.funding_level] = r.amount_fen
    spent = select(PaymentOrder.item_code, PaymentOrder.year, func.sum(PaymentOrder.amount_fen)).where(
        PaymentOrder.item_code.in_(codes), PaymentOrder.status.in_(SPENT_STATUSES)).group_by(
        PaymentOrder.item_code, PaymentOrder.year)
    for code, y, total in session.execute(spent):
        if (code, y) in lines:
            lines[(code, y)].spent_fen = int(total or 0)
    return list(lines.values())
