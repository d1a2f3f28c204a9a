"""Reading the catalogue."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from yikatong.catalog import schemas
from yikatong.catalog.models import Bank, Department, SubsidyItem


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
