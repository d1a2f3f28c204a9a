"""`ykt road ...` (the review road of one subsidy item) and `ykt calendar ...` (the working-day
calendar that every deadline counts with). Changes are audited with the system as the actor; a road
is changed through workflow.road.change_road, the same function as the page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # imported lazily below: `ykt --help` stays quick
    from yikatong.workflow.models import Step
    from yikatong.workflow.road import Road, Station

WEEKDAYS = "一二三四五六日"
HOLIDAY, WORKDAY = "休", "班"
# What people write in the 类型 column; the canonical forms are 休 and 班.
KIND_WORDS = {"休": False, "休息": False, "放假": False, "节假日": False, "假": False,
              "班": True, "上班": True, "补班": True, "调休上班": True, "工作日": True}
CALENDAR_HEADERS = {"日期": "day", "类型": "kind", "说明": "note"}
NOTE_MAX = 40
SHOWN_ERRORS = 200


# ---------------------------------------------------------------- the road


def parse_steps(text: str) -> list[Step]:
    """'村评,公示,镇审,县定,市管' (commas, 、 or spaces) -> [Step...]; Invalid in Chinese."""
    from yikatong.core.errors import Invalid
    from yikatong.workflow.models import Step
    from yikatong.workflow.road import ORDER

    names = [t for t in re.split(r"[,，、\s]+", text.strip()) if t]
    if not names:
        raise Invalid("请用 --steps 列出环节，如 村评,公示,镇审,县定,市管")
    steps = []
    for name in names:
        try:
            step = Step(name)
        except ValueError:
            step = None
        if step not in ORDER:
            raise Invalid(f"未知的审核环节：{name}（可选：{'、'.join(ORDER)}）")
        steps.append(step)
    return steps


def parse_numbers(text: str | None, what: str) -> dict[Step | None, int]:
    """'村评=5,公示=7' -> {Step.VILLAGE: 5, Step.PUBLICITY: 7}; a bare '1' -> {None: 1} (every station)."""
    from yikatong.core.errors import Invalid
    from yikatong.workflow.models import Step

    out: dict[Step | None, int] = {}
    if text is None or not text.strip():
        return out
    if re.fullmatch(r"\s*\d+\s*", text):
        return {None: int(text)}
    for part in (p for p in re.split(r"[,，、\s]+", text.strip()) if p):
        m = re.fullmatch(r"(.+?)[=：:](\d+)", part)
        if not m:
            raise Invalid(f"{what}应写作 环节=天数，用逗号分隔，如 村评=5,镇审=5；无法识别：{part}")
        try:
            step = Step(m.group(1))
        except ValueError:
            raise Invalid(f"{what}中的环节“{m.group(1)}”不存在") from None
        out[step] = int(m.group(2))
    return out


def stations_for(current: Road, steps: list[Step], days: dict[Step | None, int], remind: dict[Step | None, int],
                 list_entry: str | None) -> list[Station]:
    """The new stations: given values first, then the item's current ones, then the defaults."""
    from yikatong.core.errors import Invalid
    from yikatong.workflow.models import Step
    from yikatong.workflow.road import DEFAULT_DAYS, DEFAULT_LIST_ENTRY, DEFAULT_REMIND_BEFORE, Station

    for step in [s for s in days if s is not None] + [s for s in remind if s is not None]:
        if step not in steps:
            raise Invalid(f"“{step}”不在 --steps 所列环节中")
    before = {s.step: s for s in current.stations}
    entry: Step | None
    if list_entry:
        try:
            entry = Step(list_entry.strip())
        except ValueError:
            raise Invalid(f"接收部门名单的环节“{list_entry}”不存在") from None
        if entry not in steps:
            raise Invalid(f"接收部门名单的环节“{entry}”不在 --steps 所列环节中")
    else:  # keep where lists entered, if that station stays
        old = next((s.step for s in current.stations if s.list_entry), None)
        entry = old if old in steps else (DEFAULT_LIST_ENTRY if DEFAULT_LIST_ENTRY in steps else None)
    out = []
    for step in steps:
        kept = before.get(step)
        out.append(Station(
            step=step,
            days=days.get(step, kept.days if kept else DEFAULT_DAYS[step]),
            remind_before=remind.get(step, remind.get(None, kept.remind_before if kept else DEFAULT_REMIND_BEFORE)),
            list_entry=step is entry))
    return out


def _print_road(item, road, configured: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from yikatong.security.roles import ROLE_LABELS
    from yikatong.workflow.models import Step
    from yikatong.workflow.road import STEP_ROLE

    table = Table(title=f"{item.code} {item.name} 审核流程（{'已单独配置' if configured else '默认流程'}）")
    for header in ("序号", "环节", "办理人", "时限", "提前提醒", "接收部门名单"):
        table.add_column(header)
    entry = road.list_entry()
    for n, s in enumerate(road.stations, start=1):
        limit = f"{s.days} 天（公示期）" if s.step is Step.PUBLICITY else f"{s.days} 个工作日"
        table.add_row(str(n), s.step.value, ROLE_LABELS[STEP_ROLE[s.step]], limit, f"{s.remind_before} 个工作日",
                      "是" if s.step == entry else "")
    Console().print(table)


def _item(session, code: str):
    from yikatong.catalog.models import SubsidyItem
    from yikatong.core.errors import NotFound

    item = session.get(SubsidyItem, code.strip())
    if item is None:
        raise NotFound(f"补贴项目“{code}”不存在（项目编码如 ZS007、SD001，可在“补贴项目”页面查看）")
    return item


def register_road(app: typer.Typer) -> None:
    road_app = typer.Typer(
        help="The review road of a subsidy item: which stations its applications pass (村评 village "
             "evaluation, 公示 publicity, 镇审 township, 县定 county department, 市管 city finance), how many "
             "working days each station has, when the handler is reminded, and where department lists enter.",
        no_args_is_help=True)

    @road_app.command("show")
    def show(item_code: str = typer.Argument(..., help="Item code, e.g. ZS007")) -> None:
        """Show an item's road: stations in order, deadlines, reminders, where lists enter."""
        from sqlalchemy import select

        from yikatong.core.db import transaction
        from yikatong.workflow.models import RoadStep
        from yikatong.workflow.road import road_for

        with transaction() as session:
            item = _item(session, item_code)
            configured = session.scalar(select(RoadStep.step).where(RoadStep.item_code == item.code)) is not None
            _print_road(item, road_for(session, item), configured)

    @road_app.command("set")
    def set_road(
        item_code: str = typer.Argument(..., help="Item code, e.g. ZS007"),
        steps: str = typer.Option(..., "--steps", help="The stations in order, comma separated, e.g. "
                                  "村评,公示,镇审,县定,市管. 市管 is always last; 公示 needs 村评 before it."),
        days: str | None = typer.Option(None, "--days", help="Deadline of each station in working days (公示: "
                                        "calendar days of the window), e.g. 村评=5,公示=7,镇审=5,县定=10,市管=5. "
                                        "A station not given keeps its current deadline (or the default)."),
        remind: str | None = typer.Option(None, "--remind", help="Remind the handler this many working days "
                                          "before the deadline: one number for every station (e.g. 1), or per "
                                          "station (e.g. 县定=2). Must be less than the deadline."),
        list_entry: str | None = typer.Option(None, "--list-entry", help="The station where department lists "
                                              "(Excel/CSV or the API) enter, e.g. 县定. Default: unchanged."),
    ) -> None:
        """Replace an item's road. Checked before anything is written; the change is audited."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.workflow.road import change_road, road_for

        with transaction() as session:
            item = _item(session, item_code)
            stations = stations_for(road_for(session, item), parse_steps(steps), parse_numbers(days, "--days"),
                                    parse_numbers(remind, "--remind"), list_entry)
            _, after = change_road(session, item, stations, None, system_clock.now())
            typer.echo(f"已更新 {item.code} {item.name} 的审核流程：{'→'.join(after.steps)}")
            typer.echo("（已在办的申请仍按原流程走完当前环节；新申请和下一次流转按新流程。）")
            _print_road(item, after, True)

    app.add_typer(road_app, name="road")


# ---------------------------------------------------------------- the calendar


@dataclass
class CalendarRowError:
    row: int | None
    column: str
    value: str
    reason: str


DATE_FORMS = (re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"), re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$"),
              re.compile(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})$"), re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日$"),
              re.compile(r"^(\d{4})(\d{2})(\d{2})$"))


def parse_day(text: str) -> date:
    """'2026-10-01', '2026/10/1', '2026年10月1日', '20261001' -> date; ValueError in Chinese."""
    value = re.sub(r"\s+00:00(:00)?$", "", (text or "").strip())  # an Excel date-time cell at midnight
    for form in DATE_FORMS:
        m = form.match(value)
        if m:
            try:
                return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                raise ValueError(f"没有这一天：{value}") from None
    raise ValueError("日期应写作 2026-10-01（也可 2026/10/1 或 2026年10月1日）")


def parse_calendar(table) -> tuple[list[tuple[date, bool, str]], list[CalendarRowError]]:
    """Rows of a calendar file (日期, 类型 休/班, 说明) -> (days, errors). Every row is checked."""
    errors: list[CalendarRowError] = []
    columns: dict[str, int] = {}
    for index, header in enumerate(table.headers):
        name = (header or "").strip()
        if not name:
            continue
        if name not in CALENDAR_HEADERS:
            errors.append(CalendarRowError(1, name, name, f"未知的列名“{name}”：只能是 日期、类型、说明"))
        elif name in columns:
            errors.append(CalendarRowError(1, name, name, f"列名“{name}”重复"))
        else:
            columns[name] = index
    for required in ("日期", "类型"):
        if required not in columns:
            errors.append(CalendarRowError(1, required, "", f"缺少“{required}”列"))
    if errors:
        return [], errors
    days: list[tuple[date, bool, str]] = []
    seen: dict[date, int] = {}

    def cell(cells: list, name: str) -> str:
        index = columns.get(name)
        return (cells[index] or "").strip() if index is not None and index < len(cells) else ""

    for row, cells in table.rows:
        text_day, kind, note = cell(cells, "日期"), cell(cells, "类型"), cell(cells, "说明")
        day = working = None
        try:
            day = parse_day(text_day)
        except ValueError as e:
            errors.append(CalendarRowError(row, "日期", text_day, str(e) if text_day else "日期不能为空"))
        if kind in KIND_WORDS:
            working = KIND_WORDS[kind]
        else:
            errors.append(CalendarRowError(row, "类型", kind, "类型应为“休”（节假日放假）或“班”（调休上班）"))
        if len(note) > NOTE_MAX:
            errors.append(CalendarRowError(row, "说明", note, f"说明不能超过{NOTE_MAX}个字"))
        if day is not None:
            if day in seen:
                errors.append(CalendarRowError(row, "日期", text_day, f"与第{seen[day]}行是同一天"))
            else:
                seen[day] = row
        if day is not None and working is not None:
            days.append((day, working, note))
    if not table.rows:
        errors.append(CalendarRowError(None, "", "", "文件中没有数据行"))
    return days, errors


def _kind_label(working: bool) -> str:
    return WORKDAY if working else HOLIDAY


def _weekday(day: date) -> str:
    return "周" + WEEKDAYS[day.weekday()]


def _plain_note(day: date, working: bool) -> str:
    """What the calendar says when the marked day is like that anyway (harmless, but worth saying)."""
    weekend = day.weekday() >= 5
    if working and not weekend:
        return f"（{_weekday(day)}本来就是工作日）"
    if not working and weekend:
        return f"（{_weekday(day)}本来就休息）"
    return ""


def register_calendar(app: typer.Typer) -> None:
    cal_app = typer.Typer(
        help="The working-day calendar: deadlines count Monday to Friday, less public holidays (休), plus "
             "weekend make-up working days (班, 调休). Enter each year's official holiday schedule here.",
        no_args_is_help=True)

    @cal_app.command("set")
    def set_calendar_day(
        day: str = typer.Argument(..., help="The day, e.g. 2026-10-01"),
        holiday: bool = typer.Option(False, "--holiday", help="A public holiday: no one works (休)"),
        workday: bool = typer.Option(False, "--workday", help="A weekend day worked to make up for a holiday "
                                     "(调休上班, 班)"),
        note: str = typer.Option("", "--note", help="What the day is, e.g. 国庆节 or 国庆节调休"),
    ) -> None:
        """Mark one day as a holiday (--holiday) or a make-up working day (--workday)."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.core.errors import Invalid
        from yikatong.security import audit
        from yikatong.workflow.calendar import set_day

        if holiday == workday:
            raise Invalid("请指定 --holiday（放假）或 --workday（调休上班）其中之一")
        try:
            parsed = parse_day(day)
        except ValueError as e:
            raise Invalid(str(e)) from None
        if len(note.strip()) > NOTE_MAX:
            raise Invalid(f"说明不能超过{NOTE_MAX}个字")
        with transaction() as session:
            set_day(session, parsed, workday, note.strip())
            audit.record(session, None, "calendar.set", "calendar_day", parsed.isoformat(), system_clock.now(),
                         detail={"type": _kind_label(workday), "note": note.strip()})
        said = f"：{note.strip()}" if note.strip() else ""
        typer.echo(f"已设置 {parsed}（{_weekday(parsed)}）为“{_kind_label(workday)}”{said}"
                   f"{_plain_note(parsed, workday)}")

    @cal_app.command("remove")
    def remove_calendar_day(day: str = typer.Argument(..., help="The day, e.g. 2026-10-01")) -> None:
        """Forget one day's entry: it becomes an ordinary day again (working Monday to Friday)."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.core.errors import Invalid, NotFound
        from yikatong.security import audit
        from yikatong.workflow.models import CalendarDay

        try:
            parsed = parse_day(day)
        except ValueError as e:
            raise Invalid(str(e)) from None
        with transaction() as session:
            row = session.get(CalendarDay, parsed)
            if row is None:
                raise NotFound(f"{parsed} 没有设置过")
            session.delete(row)
            audit.record(session, None, "calendar.remove", "calendar_day", parsed.isoformat(), system_clock.now(),
                         detail={"type": _kind_label(row.working), "note": row.note})
        typer.echo(f"已删除 {parsed} 的设置，恢复为普通{'工作日' if parsed.weekday() < 5 else '休息日'}")

    @cal_app.command("list")
    def list_calendar(year: int | None = typer.Option(None, "--year", help="The year to list (default: this "
                                                       "year)")) -> None:
        """List the holidays and make-up working days of a year."""
        from rich.console import Console
        from rich.table import Table
        from sqlalchemy import select

        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.workflow.models import CalendarDay

        year = year or system_clock.now().year
        with transaction() as session:
            rows = session.scalars(select(CalendarDay).where(
                CalendarDay.day.between(date(year, 1, 1), date(year, 12, 31))).order_by(CalendarDay.day)).all()
            table = Table(title=f"{year}年 节假日与调休上班")
            for header in ("日期", "星期", "类型", "说明"):
                table.add_column(header)
            for r in rows:
                table.add_row(r.day.isoformat(), _weekday(r.day), _kind_label(r.working), r.note)
            holidays = sum(1 for r in rows if not r.working)
        console = Console()
        if not rows:
            console.print(f"{year}年没有设置节假日或调休（期限按周一至周五计算）。"
                          "用 ykt calendar import 导入全年安排。")
            return
        console.print(table)
        console.print(f"共 {len(rows)} 天：放假 {holidays} 天，调休上班 {len(rows) - holidays} 天")

    @cal_app.command("import")
    def import_calendar(
        file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                    help="CSV (or .xlsx) with the columns 日期, 类型 (休 or 班), 说明"),
        encoding: str = typer.Option("utf-8", "--encoding", help="Encoding of a CSV file: utf-8 or gb18030"),
    ) -> None:
        """Load a year's holiday schedule, all or nothing: if any row is wrong nothing is written and
        every problem is listed with its row. Days already set are overwritten. Format: docs/data-formats.md."""
        from rich.console import Console
        from rich.table import Table

        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.core.readers import FileError, read_table
        from yikatong.security import audit
        from yikatong.workflow.calendar import set_day

        err = Console(stderr=True)
        try:
            table = read_table(file.read_bytes(), encoding)
        except FileError as e:
            err.print(f"[red]无法读取 {file.name}：{e.reason}[/red]")
            raise typer.Exit(2) from None
        days, errors = parse_calendar(table)
        if errors:
            report = Table(title=f"日历导入失败：{file.name} 共 {len(errors)} 处错误，未导入任何数据")
            for header in ("行号", "列名", "值", "原因"):
                report.add_column(header)
            for e in errors[:SHOWN_ERRORS]:
                report.add_row("" if e.row is None else str(e.row), e.column, e.value, e.reason)
            err.print(report)
            err.print("请修改文件后重新导入。")
            raise typer.Exit(1)
        now: datetime = system_clock.now()
        with transaction() as session:
            for day, working, note in days:
                set_day(session, day, working, note)
            audit.record(session, None, "calendar.import", "calendar", file.name, now, detail={
                "days": len(days), "first": min(d for d, *_ in days).isoformat(),
                "last": max(d for d, *_ in days).isoformat()})
        holidays = sum(1 for _, working, _ in days if not working)
        typer.echo(f"已导入 {file.name}：{len(days)} 天（放假 {holidays} 天，调休上班 {len(days) - holidays} 天）")

    app.add_typer(cal_app, name="calendar")


def register(app: typer.Typer) -> None:
    register_road(app)
    register_calendar(app)
