"""Catalogue API and page: subsidy items and their dated standards, departments, paying banks."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from yikatong.catalog import schemas, service
from yikatong.catalog.models import FundingLevel, SubsidyItem
from yikatong.core.clock import Clock, beijing_time
from yikatong.core.errors import DomainError, Invalid, NotFound
from yikatong.core.money import parse_yuan
from yikatong.security.models import User
from yikatong.security.roles import Perm, has_perm
from yikatong.web.deps import DbSession, RegionFilter, client_ip, get_clock, require
from yikatong.web.templating import templates

api = APIRouter(prefix="/api/v1", tags=["catalogue"])
pages = APIRouter(include_in_schema=False)
reader = require(Perm.CATALOG_READ)
manager = require(Perm.CATALOG_MANAGE)
ItemCode = Annotated[str, Path(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9_-]+$")]


@api.get("/items", response_model=list[schemas.ItemOut])
def api_items(q: str = "", funding_level: str = "", db: Session = DbSession, user: User = Depends(reader)):
    """Subsidy items (补贴项目); standard amounts in integer fen."""
    return service.list_items(db, q, funding_level)


@api.get("/items/{code}/standards", response_model=list[schemas.StandardOut])
def api_standards(code: ItemCode, db: Session = DbSession, user: User = Depends(reader)):
    """An item's dated standards (补贴标准历史), newest first; county_code null: city-wide."""
    _item(db, code)
    return service.standard_history(db, code)


@api.post("/items/{code}/standards", response_model=schemas.StandardOut, status_code=201)
def api_add_standard(code: ItemCode, body: schemas.StandardIn, request: Request, db: Session = DbSession,
                     clock: Clock = Depends(get_clock), user: User = Depends(manager)):
    """调整标准: a new standard valid from a date (city-wide, or for one county). Claims of periods
    starting before it keep the standard they were priced with."""
    row = service.add_standard(db, user, code, body.valid_from, body.standard_fen, clock.now(),
                               county_code=body.county_code, reason=body.reason, ip=client_ip(request))
    return schemas.StandardOut.model_validate(row, from_attributes=True)


@api.get("/departments", response_model=list[schemas.DepartmentOut])
def api_departments(region_prefix: RegionFilter = "", db: Session = DbSession, user: User = Depends(reader)):
    return service.list_departments(db, region_prefix)


@api.get("/banks", response_model=list[schemas.BankOut])
def api_banks(db: Session = DbSession, user: User = Depends(reader)):
    return service.list_banks(db)


@pages.get("/catalog", response_class=HTMLResponse)
def catalog_page(request: Request, q: str = "", level: str = "", db: Session = DbSession,
                 user: User = Depends(reader)):
    items = service.list_items(db, q, level)
    return templates.TemplateResponse(request, "catalog/items.html", {
        "user": user, "items": items, "q": q, "level": level, "levels": [f.value for f in FundingLevel],
        "categories": len({i.category_code for i in items})})


def _item(db: Session, code: str) -> SubsidyItem:
    item = db.get(SubsidyItem, code)
    if item is None:
        raise NotFound(f"补贴项目“{code}”不存在")
    return item


def _standards_page(request: Request, db: Session, user: User, code: str, *, added: bool = False,
                    error: str = "", form: dict | None = None, status_code: int = 200):
    item = _item(db, code)
    return templates.TemplateResponse(request, "catalog/standards.html", {
        "user": user, "item": item, "history": service.standard_history(db, code), "added": added,
        "error": error, "form": form or {}, "can_manage": has_perm(user.role, Perm.CATALOG_MANAGE),
        "shown": lambda t: beijing_time(t).strftime("%Y-%m-%d %H:%M"),  # Beijing time for people
    }, status_code=status_code)


@pages.get("/catalog/items/{code}/standards", response_class=HTMLResponse)
def standards_page(request: Request, code: ItemCode, added: bool = False, db: Session = DbSession,
                   user: User = Depends(reader)):
    return _standards_page(request, db, user, code, added=added)


@pages.post("/catalog/items/{code}/standards", response_class=HTMLResponse)
def standards_submit(request: Request, code: ItemCode, valid_from: Annotated[str, Form()] = "",
                     standard_yuan: Annotated[str, Form()] = "", county_code: Annotated[str, Form()] = "",
                     reason: Annotated[str, Form()] = "", db: Session = DbSession,
                     clock: Clock = Depends(get_clock), user: User = Depends(manager)):
    form = {"valid_from": valid_from, "standard_yuan": standard_yuan, "county_code": county_code, "reason": reason}
    try:
        try:
            day = date.fromisoformat(valid_from.strip())
        except ValueError:
            raise Invalid("生效日期格式错误，应为 YYYY-MM-DD") from None
        try:
            fen = parse_yuan(standard_yuan.strip())
        except ValueError:
            raise Invalid("补贴标准应为不超过两位小数的非负元金额，如 650 或 12.50") from None
        service.add_standard(db, user, code, day, fen, clock.now(), county_code=county_code, reason=reason,
                             ip=client_ip(request))
    except DomainError as e:
        return _standards_page(request, db, user, code, error=e.message, form=form, status_code=e.status_code)
    return RedirectResponse(f"/catalog/items/{code}/standards?added=1", status_code=303)
