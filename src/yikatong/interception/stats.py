"""Statistics of interception (拦截统计): the flags raised, by rule, item, region and month, with
the open / confirmed / cleared split and each rule's precision.

What each figure counts:
- 拦截记录 (`flags`): flags raised, one per rule hit on an application. An application hit by three
  rules is three records. Records and their amounts add up: the sum over rules, over items, over
  regions and over months each equals the total.
- 涉及金额 (`amount_fen`): the money at stake the rules reported, summed over the records (an
  application with two flags counts its amount at stake twice).
- 涉及申请 (`applications`): distinct applications with at least one flag in the row. An application's
  flags share its item and region, so this adds up over items and regions; over rules and months it
  does not (one application can be hit by several rules, in several months).
- 申请金额 (`applications_amount_fen`, totals only): the amounts of those distinct applications.
- 准确率 (`precision`): confirmed / (confirmed + cleared); None while nothing is verified.

For a city or a county the figures add up the flag tallies (interception.tallies: a few thousand rows
per township, item, rule, day and status, kept exact at every write); below a county (a township's
villages) they are SQL group-bys over that township's `flags` (which carry the item, region and amount
copied from the application). Both are restricted to the viewer's region subtree and, for a county
department, its sector's items, and give the same figures (tests/interception/test_tallies.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time, timedelta
from decimal import Decimal
from io import BytesIO
from typing import Any

from sqlalchemy import ColumnElement, case, distinct, func, select
from sqlalchemy.orm import Session

from yikatong.catalog.models import SubsidyItem
from yikatong.core.clock import beijing_at
from yikatong.core.errors import Invalid
from yikatong.interception import tallies
from yikatong.interception.models import Flag, FlagStatus, FlagTally, Rule
from yikatong.interception.service import sector_items
from yikatong.registry.service import region_names
from yikatong.security.models import User
from yikatong.security.roles import Perm, require_perm
from yikatong.security.scope import (
    PREFIX_LENGTHS,
    child_prefix_length,
    pad_code,
    require_region,
    within,
)
from yikatong.workflow.models import Application
from yikatong.workflow.service import user_sector


@dataclass
class StatRow:
    """One line of a breakdown (or the total): records and amounts, split by status."""

    key: str  # rule code, item code, region code (12 digits) or month (2026-11); "" for the total
    name: str
    flags: int = 0
    amount_fen: int = 0
    applications: int = 0
    open: int = 0
    open_fen: int = 0
    confirmed: int = 0
    confirmed_fen: int = 0
    cleared: int = 0
    cleared_fen: int = 0

    @property
    def verified(self) -> int:
        return self.confirmed + self.cleared

    @property
    def precision(self) -> float | None:
        """准确率: the share of verified flags found true; None while none is verified."""
        return self.confirmed / self.verified if self.verified else None


@dataclass
class FlagStats:
    region_code: str  # the region the statistics cover (the viewer's, or a drill-down below it)
    region_name: str
    group_length: int  # leading digits the region breakdown groups by (6 county, 9 township, 12 village)
    date_from: date | None
    date_to: date | None
    total: StatRow
    applications_amount_fen: int  # the amounts of the distinct applications flagged
    by_rule: list[StatRow] = field(default_factory=list)
    by_item: list[StatRow] = field(default_factory=list)
    by_region: list[StatRow] = field(default_factory=list)
    by_month: list[StatRow] = field(default_factory=list)

    @property
    def level_label(self) -> str:
        return LEVEL_LABELS.get(self.group_length, "区域")

    @property
    def breakdowns(self) -> list[tuple[str, str, list[StatRow]]]:
        """(sheet title, key header, rows) of the four breakdowns."""
        return [("按规则", "规则代码", self.by_rule), ("按项目", "项目代码", self.by_item),
                (f"按{self.level_label}", "区划代码", self.by_region), ("按月份", "月份", self.by_month)]


LEVEL_LABELS = {4: "市", 6: "县（区）", 9: "乡镇（街道）", 12: "村（社区）"}


# ---------------------------------------------------------------- scope


def flag_scope(session: Session, user: User) -> ColumnElement[bool]:
    """SQL condition: the flags `user` may read: the region subtree, and for a county department its
    sector's items (the department verifies the flags on its own items)."""
    require_perm(user, Perm.FLAG_READ)
    condition = within(Flag.region_code, user.region_code)
    sector = user_sector(session, user)
    if sector is not None:  # the items' sector, as interception.service.visible_flags (flags copy the item)
        condition = condition & Flag.item_code.in_(sector_items(sector))
    return condition


def drill_region(user: User, region: str | None) -> str:
    """The 12-digit code of the region to break down: the user's own, or one inside it (403 outside)."""
    if not region or not region.strip():
        return pad_code(user.region_code)
    try:
        code = pad_code(region)
    except ValueError as e:
        raise Invalid(str(e)) from None
    require_region(user.region_code, code)
    return code


def _group_length(code: str) -> int:
    """Digits that name the regions one level below `code` (a village groups by itself). A province or
    city groups by county, the level statistics are read at by default."""
    child = child_prefix_length(code) or 12
    return max(child, PREFIX_LENGTHS[2])


def _month(session: Session, column: Any) -> ColumnElement[str]:
    """The Beijing month of a stored (naive UTC) instant: Beijing is UTC+8 all year (no summer time)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(column + timedelta(hours=8), "YYYY-MM")
    return func.substr(func.datetime(column, "+8 hours"), 1, 7)  # SQLite stores '2026-11-30 09:00:00.000000'


# ---------------------------------------------------------------- the statistics


def _tallies():
    """The aggregate columns of a StatRow, in field order after key and name."""
    def on(status: FlagStatus, value: Any) -> Any:
        return func.coalesce(func.sum(case((Flag.status == status.value, value), else_=0)), 0)

    return (func.count(Flag.id), func.coalesce(func.sum(Flag.amount_fen), 0), func.count(distinct(Flag.application_id)),
            on(FlagStatus.OPEN, 1), on(FlagStatus.OPEN, Flag.amount_fen),
            on(FlagStatus.CONFIRMED, 1), on(FlagStatus.CONFIRMED, Flag.amount_fen),
            on(FlagStatus.CLEARED, 1), on(FlagStatus.CLEARED, Flag.amount_fen))


def _row(key: str, name: str, values: Any) -> StatRow:
    n = [int(v or 0) for v in values]
    return StatRow(key, name, *n)


def _grouped(session: Session, key: Any, condition: ColumnElement[bool]) -> list[StatRow]:
    rows = session.execute(select(key, *_tallies()).where(condition).group_by(key)).all()
    return [_row(r[0], "", r[1:]) for r in rows]


@dataclass
class _Figures:
    """The figures before names and order: breakdowns keyed by rule, item, region prefix and month."""

    total: StatRow
    applications_amount_fen: int
    by_rule: list[StatRow]
    by_item: list[StatRow]
    by_region: list[StatRow]
    by_month: list[StatRow]


def tally_scope(session: Session, user: User, code: str) -> ColumnElement[bool]:
    """SQL condition on flag_tallies: the tallies of region `code` (a city or county inside the user's
    region) the user may read: for a county department, its sector's items."""
    require_perm(user, Perm.FLAG_READ)
    require_region(user.region_code, code)
    condition = within(FlagTally.region_code, code)
    sector = user_sector(session, user)
    if sector is not None:
        condition = condition & FlagTally.item_code.in_(sector_items(sector))
    return condition


def _add(row: StatRow, status: str, count: int, amount: int) -> None:
    row.flags += count
    row.amount_fen += amount
    if status == FlagStatus.OPEN.value:
        row.open, row.open_fen = row.open + count, row.open_fen + amount
    elif status == FlagStatus.CONFIRMED.value:
        row.confirmed, row.confirmed_fen = row.confirmed + count, row.confirmed_fen + amount
    elif status == FlagStatus.CLEARED.value:
        row.cleared, row.cleared_fen = row.cleared + count, row.cleared_fen + amount


def _from_tallies(session: Session, user: User, code: str, length: int, date_from: date | None,
                  date_to: date | None) -> _Figures:
    """The figures of a city or county, added up from the flag tallies: the F rows (per township) and
    G rows (per county and rule) in scope for records and amounts, and the marks dated in the range
    whose previous mark is before it for the distinct applications (see interception.tallies)."""
    t = FlagTally
    scope = tally_scope(session, user, code)
    if date_from:
        scope &= t.day >= date_from
    if date_to:
        scope &= t.day <= date_to
    marks = scope & (t.prev_day < (date_from or tallies.NEVER + timedelta(days=1)))
    region = func.substr(t.region_code, 1, length)
    month = tallies.month_of(session, t.day)
    total = StatRow("", "合计")
    buckets: dict[str, dict[str, StatRow]] = {"rule": {}, "item": {}, "region": {}, "month": {}}
    for item, place, when, status, count, amount in session.execute(
            select(t.item_code, region, month, t.status, func.sum(t.count), func.sum(t.amount_fen))
            .where(scope, t.kind == tallies.FLAGS).group_by(t.item_code, region, month, t.status)):
        if not count:
            continue
        for bucket, key in (("item", item), ("region", place), ("month", when)):
            _add(buckets[bucket].setdefault(key, StatRow(key, "")), status, int(count), int(amount))
        _add(total, status, int(count), int(amount))
    for rule, status, count, amount in session.execute(
            select(t.rule_code, t.status, func.sum(t.count), func.sum(t.amount_fen))
            .where(scope, t.kind == tallies.FLAGS_BY_RULE).group_by(t.rule_code, t.status)):
        if count:
            _add(buckets["rule"].setdefault(rule, StatRow(rule, "")), status, int(count), int(amount))

    def applications(bucket: str, key: str, count: int) -> None:
        row = buckets[bucket].get(key)
        if row is not None:
            row.applications += count

    amount_total = 0
    for item, place, count, amount in session.execute(
            select(t.item_code, region, func.sum(t.count), func.sum(t.amount_fen))
            .where(marks, t.kind == tallies.APPLICATIONS).group_by(t.item_code, region)):
        applications("item", item, int(count))
        applications("region", place, int(count))
        total.applications += int(count)
        amount_total += int(amount)
    for rule, count in session.execute(select(t.rule_code, func.sum(t.count))
                                       .where(marks, t.kind == tallies.BY_RULE).group_by(t.rule_code)):
        applications("rule", rule, int(count))
    for when, count in session.execute(select(month, func.sum(t.count))
                                       .where(marks, t.kind == tallies.BY_MONTH).group_by(month)):
        applications("month", when, int(count))
    return _Figures(total, amount_total, *(list(buckets[b].values()) for b in ("rule", "item", "region", "month")))


def _from_flags(session: Session, user: User, code: str, length: int, date_from: date | None,
                date_to: date | None) -> _Figures:
    """The figures of a township or village: SQL group-bys over its flags."""
    condition = flag_scope(session, user) & within(Flag.region_code, code)
    if date_from:
        condition &= Flag.raised_at >= beijing_at(date_from, time())  # Beijing days
    if date_to:
        condition &= Flag.raised_at < beijing_at(date_to + timedelta(days=1), time())
    total = _row("", "合计", session.execute(select(*_tallies()).where(condition)).one())
    flagged = select(Flag.application_id).where(condition).distinct()
    applications_amount = int(session.scalar(
        select(func.coalesce(func.sum(Application.amount_fen), 0)).where(Application.id.in_(flagged))) or 0)
    return _Figures(total, applications_amount, _grouped(session, Flag.rule_code, condition),
                    _grouped(session, Flag.item_code, condition),
                    _grouped(session, func.substr(Flag.region_code, 1, length), condition),
                    _grouped(session, _month(session, Flag.raised_at), condition))


def flag_stats(session: Session, user: User, *, date_from: date | None = None, date_to: date | None = None,
               region: str | None = None, from_flags: bool = False) -> FlagStats:
    """The interception statistics the user may see, for flags raised from `date_from` to `date_to`
    (inclusive, either open-ended) in `region` (a region inside the user's; default the user's own).
    `from_flags` counts over the flags even where the tallies would answer (to check them)."""
    if date_from and date_to and date_from > date_to:
        raise Invalid("开始日期不能晚于结束日期")
    code = drill_region(user, region)
    length = _group_length(code)
    count = _from_tallies if tallies.tallied(code) and not from_flags else _from_flags
    figures = count(session, user, code, length, date_from, date_to)

    rule_names = dict(session.execute(select(Rule.code, Rule.name)).all())
    by_rule = figures.by_rule
    for r in by_rule:
        r.name = rule_names.get(r.key, r.key)
    by_rule.sort(key=lambda r: (-r.flags, r.key))

    by_item = figures.by_item
    item_names = dict(session.execute(select(SubsidyItem.code, SubsidyItem.name).where(
        SubsidyItem.code.in_([r.key for r in by_item]))).all()) if by_item else {}
    for r in by_item:
        r.name = item_names.get(r.key, r.key)
    by_item.sort(key=lambda r: (-r.flags, r.key))

    by_region = figures.by_region
    for r in by_region:
        r.key = r.key.ljust(12, "0")
    names = region_names(session, {r.key for r in by_region} | {code})
    for r in by_region:
        r.name = names.get(r.key, r.key)
    by_region.sort(key=lambda r: r.key)

    by_month = figures.by_month
    for r in by_month:
        r.name = f"{r.key[:4]}年{int(r.key[5:7])}月"
    by_month.sort(key=lambda r: r.key)

    return FlagStats(region_code=code, region_name=names.get(code, code), group_length=length,
                     date_from=date_from, date_to=date_to, total=figures.total,
                     applications_amount_fen=figures.applications_amount_fen, by_rule=by_rule, by_item=by_item,
                     by_region=by_region, by_month=by_month)


# ---------------------------------------------------------------- the flags list's counts


def status_counts(session: Session, user: User, *, rule: str = "", item: str = "",
                  region: str | None = None) -> dict[str, int] | None:
    """Flags per status the user may read, of a rule and an item (either or none), in `region` (a
    checked 12-digit code inside the user's, or None for the user's own): from the tallies for a city
    or county; None below (the caller counts that township's or village's flags itself)."""
    code = region or pad_code(user.region_code)
    if not tallies.tallied(code):
        return None
    t = FlagTally
    condition = tally_scope(session, user, code) & (t.kind == (tallies.FLAGS_BY_RULE if rule else tallies.FLAGS))
    if rule:
        condition &= t.rule_code == rule
    if item:
        condition &= t.item_code == item
    counts = {s.value: 0 for s in FlagStatus}
    for status, count in session.execute(select(t.status, func.sum(t.count)).where(condition).group_by(t.status)):
        counts[status] = int(count or 0)
    return counts


def flag_choices(session: Session, user: User) -> tuple[list[str], list[str]] | None:
    """(rule codes, item codes) with flags the user may read, from the tallies; None when the user's
    region is below a county (the caller asks the flags)."""
    code = pad_code(user.region_code)
    if not tallies.tallied(code):
        return None
    t = FlagTally
    condition = tally_scope(session, user, code) & (t.count != 0)
    rules = list(session.scalars(select(t.rule_code).where(condition, t.kind == tallies.FLAGS_BY_RULE).distinct()))
    items = list(session.scalars(select(t.item_code).where(condition, t.kind == tallies.FLAGS).distinct()))
    return rules, items


# ---------------------------------------------------------------- Excel

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MONEY = "#,##0.00"
HEADERS = ("拦截记录（条）", "涉及申请（件）", "涉及金额（元）", "待核实（条）", "待核实金额（元）",
           "核实属实（条）", "属实金额（元）", "核实排除（条）", "排除金额（元）", "准确率")
MONEY_COLUMNS = (5, 7, 9, 11)  # 1-based, after the key and name columns


def yuan(fen: int) -> Decimal:
    """Fen to yuan, exactly (Excel shows two decimals)."""
    return Decimal(fen) / 100


def _line(r: StatRow) -> list[Any]:
    return [r.flags, r.applications, yuan(r.amount_fen), r.open, yuan(r.open_fen), r.confirmed,
            yuan(r.confirmed_fen), r.cleared, yuan(r.cleared_fen), r.precision]


def _scope_text(stats: FlagStats) -> str:
    start = stats.date_from.isoformat() if stats.date_from else "最早"
    end = stats.date_to.isoformat() if stats.date_to else "至今"
    return f"{stats.region_name}，存疑信息产生时间 {start} 至 {end}"


def export_xlsx(stats: FlagStats) -> bytes:
    """The statistics as a workbook: a summary sheet and one sheet per breakdown, amounts in yuan as
    numbers (two decimals), a totals row at the foot of each breakdown."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    from yikatong.core.spreadsheet import append_row

    book = Workbook()
    summary = book.active
    summary.title = "汇总"
    summary.append(["存疑信息拦截统计"])
    summary["A1"].font = Font(bold=True, size=14)
    append_row(summary, ["统计范围", _scope_text(stats)])
    t = stats.total
    facts: list[tuple[str, Any, str | None]] = [
        ("拦截记录（条）", t.flags, None), ("涉及申请（件）", t.applications, None),
        ("涉及金额（元）", yuan(t.amount_fen), MONEY),
        ("涉及申请金额（元）", yuan(stats.applications_amount_fen), MONEY),
        ("待核实（条）", t.open, None), ("核实属实（条）", t.confirmed, None),
        ("属实金额（元）", yuan(t.confirmed_fen), MONEY), ("核实排除（条）", t.cleared, None),
        ("准确率", t.precision, "0.0%")]
    for label, value, fmt in facts:
        summary.append([label, value])
        if fmt:
            summary.cell(row=summary.max_row, column=2).number_format = fmt
    summary.append([])
    summary.append(["口径", "拦截记录按规则命中计，一件申请被多条规则命中计多条；各表记录数、金额合计相等。"
                            "涉及申请为去重后的申请件数，按规则、按月份各行相加可能大于合计。准确率＝属实÷（属实＋排除）。"])
    summary.column_dimensions["A"].width = 20
    summary.column_dimensions["B"].width = 60

    for title, key_header, rows in stats.breakdowns:
        sheet = book.create_sheet(title)
        sheet.append([key_header, "名称", *HEADERS])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for r in rows:
            append_row(sheet, [r.key, r.name, *_line(r)])
        sheet.append(["合计", "", *_line(t)])
        for cell in sheet[sheet.max_row]:
            cell.font = Font(bold=True)
        for row in sheet.iter_rows(min_row=2):
            for column in MONEY_COLUMNS:
                row[column - 1].number_format = MONEY
            row[len(HEADERS) + 1].number_format = "0.0%"
        for column, width in zip("ABCDEFGHIJKL", (14, 36, 14, 14, 16, 12, 16, 14, 16, 14, 16, 10), strict=True):
            sheet.column_dimensions[column].width = width
    out = BytesIO()
    book.save(out)
    return out.getvalue()
