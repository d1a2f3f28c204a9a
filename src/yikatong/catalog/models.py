"""Tables of the catalogue. Amounts are integer fen."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from yikatong.core.db import Base


class FundingLevel(StrEnum):
    CENTRAL = "中央"
    PROVINCE = "省"
    CITY = "市"
    COUNTY = "县"


class Basis(StrEnum):
    """What the standard amount is paid per."""

    PERSON = "人"
    HOUSEHOLD = "户"
    MU = "亩"


class Frequency(StrEnum):
    MONTH = "月"
    QUARTER = "季"
    HALF_YEAR = "半年"
    YEAR = "年"
    ONCE = "一次性"


class Department(Base):
    """A handling department (经办部门): a sector office at city, county or township level."""

    __tablename__ = "departments"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    sector: Mapped[str] = mapped_column(String(20))  # 民政, 农业农村, ... same sector across levels


class Bank(Base):
    """A paying bank (代发银行) chosen by the city."""

    __tablename__ = "banks"
    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    account_prefix: Mapped[str] = mapped_column(String(8))  # BIN of its social security card accounts


class TreasuryAccount(Base):
    """A treasury or special-fund account (国库/专户) money leaves from, straight to the card."""

    __tablename__ = "treasury_accounts"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(4))  # 国库 / 专户
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    bank_code: Mapped[str] = mapped_column(ForeignKey("banks.code"))
    account_number: Mapped[str] = mapped_column(String(32))


class SubsidyCategory(Base):
    __tablename__ = "subsidy_categories"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))

    items: Mapped[list[SubsidyItem]] = relationship(back_populates="category", order_by="SubsidyItem.code")


class SubsidyItem(Base):
    """One subsidy item (补贴项目) and its standard."""

    __tablename__ = "subsidy_items"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    category_code: Mapped[str] = mapped_column(ForeignKey("subsidy_categories.code"), index=True)
    funding_level: Mapped[str] = mapped_column(String(4))
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"))
    basis: Mapped[str] = mapped_column(String(2))
    standard_fen: Mapped[int] = mapped_column(BigInteger)  # the standard in force today (display)
    frequency: Mapped[str] = mapped_column(String(4))
    village_publicity: Mapped[bool] = mapped_column(Boolean, default=True)  # 是否村级公示
    means_tested: Mapped[bool] = mapped_column(Boolean, default=False)  # 是否需家庭经济状况核查
    # Age conditions (年龄条件) in whole years at the start of the claimed period; None: no limit.
    min_age: Mapped[int | None] = mapped_column(Integer)
    max_age: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")

    category: Mapped[SubsidyCategory] = relationship(back_populates="items")
    department: Mapped[Department] = relationship()


class ItemExclusion(Base):
    """Two items one person may not receive for the same time (互斥项目), e.g. two kinds of basic
    living allowance. Stored once per pair, in code order (item_code < other_code)."""

    __tablename__ = "item_exclusions"
    item_code: Mapped[str] = mapped_column(ForeignKey("subsidy_items.code"), primary_key=True)
    other_code: Mapped[str] = mapped_column(ForeignKey("subsidy_items.code"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(200), default="")


class ItemStandard(Base):
    """One dated standard of an item (补贴标准及其生效日期): the standard in force for a claim is the
    latest row valid from on or before the first day of the claimed period — the county's own row
    if the county has one in force, else the city-wide one (county_code NULL). Rows are never
    changed: a new standard is a new row, so earlier claims keep the price of their period."""

    __tablename__ = "item_standards"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_code: Mapped[str] = mapped_column(ForeignKey("subsidy_items.code"))
    valid_from: Mapped[date] = mapped_column(Date)
    county_code: Mapped[str | None] = mapped_column(String(6))  # 6-digit county prefix; NULL: city-wide
    standard_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500), default="")  # 文件依据 or why it changed
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_by_name: Mapped[str] = mapped_column(String(60), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_item_standards_lookup", "item_code", "county_code", "valid_from"),)
