"""Catalogue API and page: subsidy items, departments, paying banks."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from yikatong.catalog import schemas, service
from yikatong.catalog.models import FundingLevel
from yikatong.security.models import User
from yikatong.security.roles import Perm
from yikatong.web.deps import DbSession, RegionFilter, require
from yikatong.web.templating import templates

api = APIRouter(prefix="/api/v1", tags=["catalogue"])
pages = APIRouter(include_in_schema=False)
reader = require(Perm.CATALOG_READ)


@api.get("/items", response_model=list[schemas.ItemOut])
def api_items(q: str = "", funding_level: str = "", db: Session = DbSession, user: User = Depends(reader)):
    """Subsidy items (补贴项目); standard amounts in integer fen."""
    return service.list_items(db, q, funding_level)


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
