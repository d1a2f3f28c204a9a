"""The road of one subsidy item on the web (审核流程配置): a page that shows which stations the item's
applications pass, each one's deadline and reminder, and where department lists enter -- to anyone
who reads the catalogue, editable by whoever manages it (city finance) -- and a JSON view of it.

A change goes through `workflow.road.change_road`, as `ykt road set` does."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from yikatong.catalog.models import Department, SubsidyItem
from yikatong.core.clock import Clock
from yikatong.core.errors import Invalid
from yikatong.security.models import User
from yikatong.security.roles import ROLE_LABELS, Perm, has_perm
from yikatong.web.deps import DbSession, client_ip, get_clock, require
from yikatong.web.templating import templates
from yikatong.workflow.models import Step
from yikatong.workflow.road import (
    DEFAULT_DAYS,
    DEFAULT_REMIND_BEFORE,
    ORDER,
    STEP_ROLE,
    Road,
    Station,
    change_road,
    get_item,
    is_configured,
    road_for,
    waiting_by_station,
)

api = APIRouter(prefix="/api/v1", tags=["workflow"])
pages = APIRouter(include_in_schema=False)
reader = require(Perm.CATALOG_READ)

FIELD = {step: step.name.lower() for step in ORDER}  # form field suffixes: village, publicity...
STEP_HELP = {
    Step.VILLAGE: "村（居）民代表民主评议",
    Step.PUBLICITY: "在村（社区）公示栏公示，期内任何人可提出异议",
    Step.TOWNSHIP: "乡镇（街道）审核",
    Step.COUNTY: "县级主管部门审定",
    Step.CITY: "市财政管理（每个项目必经）",
}


# ---------------------------------------------------------------- JSON


class StationOut(BaseModel):
    step: str
    position: int
    days: int  # working days; for 公示 the calendar days of the window
    remind_before: int  # working days before the deadline
    list_entry: bool  # department lists enter here
    handler_role: str
    handler_role_label: str


class RoadOut(BaseModel):
    item_code: str
    item_name: str
    configured: bool  # false: the default road (no row for this item)
    list_entry: str  # the station department lists enter at
    stations: list[StationOut]


def road_out(session: Session, item: SubsidyItem) -> RoadOut:
    road = road_for(session, item)
    return RoadOut(item_code=item.code, item_name=item.name, configured=is_configured(session, item),
                   list_entry=road.list_entry().value, stations=[
                       StationOut(step=s.step.value, position=n, days=s.days, remind_before=s.remind_before,
                                  list_entry=s.step == road.list_entry(), handler_role=STEP_ROLE[s.step].value,
                                  handler_role_label=ROLE_LABELS[STEP_ROLE[s.step]])
                       for n, s in enumerate(road.stations, start=1)])


@api.get("/items/{code}/road", response_model=RoadOut)
def api_road(code: str, db: Session = DbSession, user: User = Depends(reader)) -> RoadOut:
    """An item's review road (审核流程): its stations in order with deadlines in working days."""
    return road_out(db, get_item(db, code))


# ---------------------------------------------------------------- the page


class RoadForm(BaseModel):
    """The page's form: a checkbox per station, its days and reminder, and the list-entry radio."""

    steps: list[str] = []
    list_entry: str = ""
    days_village: str = ""
    days_publicity: str = ""
    days_township: str = ""
    days_county: str = ""
    days_city: str = ""
    remind_village: str = ""
    remind_publicity: str = ""
    remind_township: str = ""
    remind_county: str = ""
    remind_city: str = ""


def _number(value: str, message: str) -> int:
    try:
        return int(value.strip())
    except (ValueError, AttributeError):
        raise Invalid(message) from None


def stations_from_form(form: RoadForm) -> list[Station]:
    chosen = set(form.steps) | {FIELD[Step.CITY]}  # 市管 is always on the road
    unknown = chosen - set(FIELD.values())
    if unknown:
        raise Invalid("未知的审核环节")
    stations = []
    for step in ORDER:
        name = FIELD[step]
        if name not in chosen:
            continue
        days = _number(getattr(form, f"days_{name}"), f"“{step}”环节时限应填写1至90的整数")
        remind = _number(getattr(form, f"remind_{name}") or "0", f"“{step}”环节提前提醒天数应填写整数")
        stations.append(Station(step, days, remind, form.list_entry == name))
    if form.list_entry and form.list_entry not in chosen:
        raise Invalid("接收部门名单的环节须是所选环节之一")
    return stations


def _rows(road: Road, form: RoadForm | None) -> list[dict]:
    """One row per possible station: what the road has, or (after a refused save) what was typed."""
    on = {s.step: s for s in road.stations}
    entry = road.list_entry()
    rows = []
    for step in ORDER:
        name = FIELD[step]
        station = on.get(step)
        if form is not None:
            row = dict(checked=name in form.steps or step is Step.CITY, days=getattr(form, f"days_{name}"),
                       remind=getattr(form, f"remind_{name}"), entry=form.list_entry == name)
        else:
            row = dict(checked=station is not None, days=station.days if station else DEFAULT_DAYS[step],
                       remind=station.remind_before if station else DEFAULT_REMIND_BEFORE,
                       entry=station is not None and step is entry)
        rows.append(dict(row, step=step.value, field=name, role=ROLE_LABELS[STEP_ROLE[step]], help=STEP_HELP[step],
                         position=road.steps.index(step) + 1 if station else None,
                         calendar_days=step is Step.PUBLICITY, required=step is Step.CITY))
    return rows


def _render(request: Request, db: Session, user: User, item: SubsidyItem, *, form: RoadForm | None = None,
            error: str = "", saved: bool = False, status_code: int = 200):
    road = road_for(db, item)
    department = db.get(Department, item.department_code)
    return templates.TemplateResponse(request, "workflow/road.html", {
        "user": user, "item": item, "road": road, "department": department,
        "configured": is_configured(db, item), "rows": _rows(road, form), "waiting": waiting_by_station(db, item),
        "editable": has_perm(user.role, Perm.CATALOG_MANAGE), "error": error, "saved": saved,
    }, status_code=status_code)


@pages.get("/catalog/items/{code}/road")
def road_page(request: Request, code: str, saved: bool = False, db: Session = DbSession,
              user: User = Depends(reader)):
    return _render(request, db, user, get_item(db, code), saved=saved)


@pages.post("/catalog/items/{code}/road")
def road_save(request: Request, code: str, form: Annotated[RoadForm, Form()], db: Session = DbSession,
              user: User = Depends(require(Perm.CATALOG_MANAGE)), clock: Clock = Depends(get_clock)):
    item = get_item(db, code)
    try:
        change_road(db, item, stations_from_form(form), user, clock.now(), client_ip(request))
    except Invalid as e:
        return _render(request, db, user, item, form=form, error=e.message, status_code=422)
    return RedirectResponse(f"/catalog/items/{item.code}/road?saved=1", status_code=303)
