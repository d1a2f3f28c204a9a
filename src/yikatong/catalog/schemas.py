from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class ItemOut(BaseModel):
    code: str
    name: str
    category_code: str
    category_name: str
    funding_level: str
    department_code: str
    department_name: str
    basis: str
    standard_fen: int
    frequency: str
    village_publicity: bool
    means_tested: bool


class DepartmentOut(BaseModel):
    code: str
    name: str
    region_code: str
    sector: str


class BankOut(BaseModel):
    code: str
    name: str


class StandardOut(BaseModel):
    """One dated standard of an item; county_code NULL: city-wide."""

    item_code: str
    valid_from: date
    county_code: str | None
    standard_fen: int
    reason: str
    created_by_name: str
    created_at: datetime


class StandardIn(BaseModel):
    valid_from: date
    standard_fen: int = Field(ge=0, le=10**13, description="补贴标准（分）")
    county_code: str | None = Field(None, pattern=r"^\d{6}$", description="县级区划代码前6位；空为全市统一标准")
    reason: str = Field(min_length=1, max_length=500, description="调整依据")
