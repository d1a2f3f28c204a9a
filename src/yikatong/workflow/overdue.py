"""The overdue board (超期督办): open stations past their deadline, by region, department, station
and person in charge, within the viewer's region (and, for a county department, its sector)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from io import BytesIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yikatong.catalog.models import Department, SubsidyItem
from yikatong.registry.models import Region
from yikatong.security.models import User
from yikatong.security.roles import Perm, Role, require_perm
from yikatong.security.scope import within
from yikatong.workflow.calendar import WorkCalendar, load_calendar
from yikatong.workflow.eye import Staff, load_staff
from yikatong.workflow.models import Application, Status, Step
from yikatong.workflow.road import ORDER, STEP_ROLE
from yikatong.workflow.service import user_sector

CITY_SECTOR = "财政"  # 市管 is the city finance bureau's station


@dataclass
class OverdueRow:
    region_code: str  # the office's region (owner_region)
    region_name: str
    department: str
    stage: str
    handlers: list[str]  # persons in charge (经办人)
    count: int
    amount_fen: int
    oldest_due: date
    days_overdue: int  # working days past the oldest deadline

    @property
    def handler_names(self) -> str:
        return "、".join(self.handlers) or "（未配置经办人）"


@dataclass
class OverdueBoard:
    today: date
    rows: list[OverdueRow]
    stage: str | None = None
    item_code: str | None = None
    items: list[tuple[str, str]] = field(default_factory=list)  # (code, name) of items with overdue work
    stations: list[str] = field(default_factory=lambda: [s.value for s in ORDER])

    @property
    def total(self) -> int:
        return sum(r.count for r in self.rows)

    @property
    def amount_fen(self) -> int:
        return sum(r.amount_fen for r in self.rows)


def _scope(session: Session, user: User):
    require_perm(user, Perm.OVERDUE_READ)
    condition = within(Application.region_code, user.region_code)
    sector = user_sector(session, user)
    if sector is not None:
        condition &= Application.sector == sector
    return condition


def _office_name(stage: str, region: Region | None, code: str, sector: str | None,
                 departments: dict[tuple[str, str], str]) -> str:
    name = region.name if region else code
    step = Step(stage)
    if step is Step.COUNTY:
        return departments.get((code, sector or ""), f"{name}{sector or ''}主管部门")
    if step is Step.CITY:
        return departments.get((code, CITY_SECTOR), f"{name}财政局")
    if step is Step.TOWNSHIP:
        return f"{name}{'办事处' if name.endswith('街道') else '人民政府'}"
    return f"{name}{'居委会' if name.endswith('社区') else '村委会'}"


def overdue_board(session: Session, user: User, today: date, *, stage: str | None = None,
                  item_code: str | None = None, calendar: WorkCalendar | None = None,
                  staff: Staff | None = None) -> OverdueBoard:
    """Overdue open applications grouped by the office that must act: counts, the amount at stake,
    the oldest deadline and how many working days it is overdue. Most overdue first."""
    scope = _scope(session, user)
    condition = scope & (Application.status == Status.OPEN.value) & (Application.due_on < today)
    if stage:
        condition &= Application.stage == Step(stage).value
    if item_code:
        condition &= Application.item_code == item_code
    grouped = session.execute(
        select(Application.owner_region, Application.stage, Application.sector, func.count(),
               func.sum(Application.amount_fen), func.min(Application.due_on))
        .where(condition).group_by(Application.owner_region, Application.stage, Application.sector)).all()
    # Only the county station splits by the department's sector; elsewhere one office does every item.
    merged: dict[tuple[str, str, str | None], list] = {}
    for owner, step, sector, n, amount, oldest in grouped:
        key = (owner, step, sector if STEP_ROLE[Step(step)] is Role.COUNTY_HANDLER else None)
        if key in merged:
            row = merged[key]
            row[0] += n
            row[1] += int(amount or 0)
            row[2] = min(row[2], oldest)
        else:
            merged[key] = [n, int(amount or 0), oldest]

    owners = {k[0] for k in merged}
    regions = {r.code: r for r in session.scalars(select(Region).where(Region.code.in_(owners))).all()}
    departments = {(d.region_code, d.sector): d.name for d in session.scalars(
        select(Department).where(Department.region_code.in_(owners))).all()}
    calendar = calendar or load_calendar(session)
    staff = staff or load_staff(session)
    rows = []
    for (owner, step, sector), (n, amount, oldest) in merged.items():
        office = staff.office(step, owner, sector or "")
        rows.append(OverdueRow(
            region_code=owner, region_name=regions[owner].full_name if owner in regions else owner,
            department=_office_name(step, regions.get(owner), owner, sector, departments), stage=step,
            handlers=[p.display_name for p in office.handlers + office.leaders], count=n, amount_fen=amount,
            oldest_due=oldest, days_overdue=calendar.working_days_between(oldest, today)))
    rows.sort(key=lambda r: (-r.days_overdue, -r.count, r.region_code, r.stage))

    item_rows = session.execute(
        select(SubsidyItem.code, SubsidyItem.name).where(SubsidyItem.code.in_(
            select(Application.item_code).where(scope, Application.status == Status.OPEN.value,
                                                Application.due_on < today).distinct()))
        .order_by(SubsidyItem.code)).all()
    return OverdueBoard(today, rows, stage or None, item_code or None, [(c, n) for c, n in item_rows])


EXCEL_HEADERS = ("区域", "区划代码", "责任单位", "环节", "经办人", "超期件数", "涉及金额（元）", "最早应办结日期",
                 "超期工作日")


def _yuan(fen: int) -> Decimal:
    return Decimal(fen) / 100  # exact; Excel shows it with two decimals


def board_to_excel(board: OverdueBoard) -> bytes:
    """The board as an Excel workbook (one sheet, one row per office)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    from yikatong.core.spreadsheet import append_row

    book = Workbook()
    sheet = book.active
    sheet.title = "超期督办"
    sheet.append([f"超期督办统计（截至{board.today}）"])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append(list(EXCEL_HEADERS))
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for r in board.rows:
        append_row(sheet, [r.region_name, r.region_code, r.department, r.stage, r.handler_names, r.count,
                      _yuan(r.amount_fen), r.oldest_due, r.days_overdue])
        sheet.cell(row=sheet.max_row, column=7).number_format = "#,##0.00"
        sheet.cell(row=sheet.max_row, column=8).number_format = "yyyy-mm-dd"
    sheet.append(["合计", "", "", "", "", board.total, _yuan(board.amount_fen), None, None])
    sheet.cell(row=sheet.max_row, column=7).number_format = "#,##0.00"
    for column, width in zip("ABCDEFGHI", (36, 16, 28, 8, 40, 10, 16, 16, 12), strict=True):
        sheet.column_dimensions[column].width = width
    out = BytesIO()
    book.save(out)
    return out.getvalue()
