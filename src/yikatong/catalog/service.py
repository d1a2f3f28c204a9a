"""Reading the catalogue; the dated standards of its items."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from yikatong.catalog import schemas
from yikatong.catalog.models import Bank, Department, ItemStandard, SubsidyItem
from yikatong.core.clock import beijing_date
from yikatong.core.errors import Invalid, NotFound
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, require_perm


def list_items(session: Session, q: str = "", funding_level: str = "") -> list[schemas.ItemOut]:
    stmt = select(SubsidyItem).options(joinedload(SubsidyItem.category), joinedload(SubsidyItem.department))
    if q:
        stmt = stmt.where(SubsidyItem.name.contains(q) | SubsidyItem.code.startswith(q))
    if funding_level:
        stmt = stmt.where(SubsidyItem.funding_level == funding_level)
    return [
        schemas.ItemOut(
            code=i.code, name=i.name, category_code=i.category_code, category_name=i.category.name,
            funding_level=i.funding_level, department_code=i.department_code, department_name=i.department.name,
            basis=i.basis, standard_fen=i.standard_fen, frequency=i.frequency,
            village_publicity=i.village_publicity, means_tested=i.means_tested,
        )
        for i in session.scalars(stmt.order_by(SubsidyItem.code)).all()
    ]


def list_departments(session: Session, region_prefix: str = "") -> list[schemas.DepartmentOut]:
    stmt = select(Department).order_by(Department.region_code, Department.code)
    if region_prefix:
        stmt = stmt.where(Department.region_code.startswith(region_prefix))
    return [schemas.DepartmentOut.model_validate(d, from_attributes=True) for d in session.scalars(stmt)]


def list_banks(session: Session) -> list[schemas.BankOut]:
    return [schemas.BankOut.model_validate(b, from_attributes=True)
            for b in session.scalars(select(Bank).order_by(Bank.code))]


# ---------------------------------------------------------------- dated standards


class StandardBook:
    """The dated standards of some items, for pricing many claims without a query each."""

    def __init__(self, rows: Iterable[ItemStandard]):
        # (item, county or None) -> ([valid_from...], [standard_fen...]) in date order; of two rows
        # valid from the same day the later one (higher id) wins
        book: dict[tuple[str, str | None], list[tuple[date, int, int]]] = {}
        for r in rows:
            book.setdefault((r.item_code, r.county_code), []).append((r.valid_from, r.id or 0, r.standard_fen))
        self._book = {key: ([d for d, _, _ in sorted(v)], [f for _, _, f in sorted(v)]) for key, v in book.items()}
        self.items = {item for item, _ in self._book}

    def _latest(self, key: tuple[str, str | None], day: date) -> int | None:
        found = self._book.get(key)
        if not found:
            return None
        at = bisect_right(found[0], day)
        return found[1][at - 1] if at else None

    def standard(self, item_code: str, region_code: str, day: date) -> int | None:
        """The standard in force on `day` for a claim of `region_code` (any code under a county):
        the county's own standard if it has one in force, else the city-wide one; None: none yet."""
        county = self._latest((item_code, region_code[:6]), day)
        return county if county is not None else self._latest((item_code, None), day)


def standard_book(session: Session, item_codes: Iterable[str]) -> StandardBook:
    codes = sorted(set(item_codes))
    return StandardBook(session.scalars(select(ItemStandard).where(ItemStandard.item_code.in_(codes))).all()
                        if codes else [])


def standard_history(session: Session, item_code: str) -> list[schemas.StandardOut]:
    """Every dated standard of an item, newest first."""
    rows = session.scalars(select(ItemStandard).where(ItemStandard.item_code == item_code)
                           .order_by(ItemStandard.valid_from.desc(), ItemStandard.id.desc())).all()
    return [schemas.StandardOut.model_validate(r, from_attributes=True) for r in rows]


_COUNTY = re.compile(r"^\d{6}$")


def add_standard(session: Session, actor: User | None, item_code: str, valid_from: date, standard_fen: int,
                 now: datetime, *, county_code: str | None = None, reason: str = "", ip: str = "") -> ItemStandard:
    """A new dated standard (调整标准). Claims of periods starting before `valid_from` keep the
    standard they were priced with; the item's displayed standard follows the city-wide one in
    force today."""
    if actor is not None:
        require_perm(actor, Perm.CATALOG_MANAGE)
    item = session.get(SubsidyItem, (item_code or "").strip())
    if item is None:
        raise NotFound(f"补贴项目“{item_code}”不存在")
    if standard_fen is None or standard_fen < 0:
        raise Invalid("补贴标准不能为负数")
    county_code = (county_code or "").strip() or None
    if county_code is not None and not _COUNTY.match(county_code):
        raise Invalid("县级区划代码应为6位数字，城市统一标准请留空")
    reason = (reason or "").strip()
    if actor is not None and not reason:
        raise Invalid("请填写调整依据（文件名称或原因）")
    row = ItemStandard(item_code=item.code, valid_from=valid_from, county_code=county_code,
                       standard_fen=standard_fen, reason=reason[:500], created_by=actor.id if actor else None,
                       created_by_name=actor.display_name if actor else "系统", created_at=now)
    session.add(row)
    session.flush()
    refresh_current_standards(session, [item.code], beijing_date(now))
    audit.record(session, actor, "catalog.standard", "item", item.code, now, ip=ip,
                 detail={"valid_from": valid_from.isoformat(), "county_code": county_code,
                         "standard_fen": standard_fen, "reason": reason[:500]})
    return row


def refresh_current_standards(session: Session, item_codes: Iterable[str], today: date) -> None:
    """subsidy_items.standard_fen shows the city-wide standard in force today (pricing reads the
    dated rows, never this column)."""
    codes = sorted(set(item_codes))
    book = standard_book(session, codes)
    for code in codes:
        current = book.standard(code, "", today)
        if current is not None:
            session.execute(update(SubsidyItem).where(SubsidyItem.code == code, SubsidyItem.standard_fen != current)
                            .values(standard_fen=current))
