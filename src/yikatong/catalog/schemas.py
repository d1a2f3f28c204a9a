from __future__ import annotations

from pydantic import BaseModel


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
