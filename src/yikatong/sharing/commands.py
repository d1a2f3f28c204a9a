"""`ykt sharing`: load a delivery of a shared data set (信息归集), list the data sets and what is in
force, index older deliveries for look-ups, show a data set's delivery history, write an empty
template, describe the columns."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path

import typer

from yikatong.core.clock import format_beijing
from yikatong.sharing.datasets import DATASETS

STAGES = {"读取": "读取文件", "校验": "逐行校验", "写入": "写入快照"}


class Encoding(StrEnum):
    UTF8 = "utf-8"
    GB18030 = "gb18030"


class TemplateFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


def _codes() -> str:
    return ", ".join(f"{d.code} ({d.label})" for d in DATASETS)


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"日期格式应为 YYYY-MM-DD，如 2026-11-30：{text}") from None


def _import(dataset: str, file: Path, agency: str, as_of: str, encoding: str, username: str | None,
            report_path: Path | None) -> None:
    from rich.console import Console
    from sqlalchemy import select

    from yikatong.core.clock import system_clock
    from yikatong.core.db import transaction
    from yikatong.core.errors import DomainError
    from yikatong.core.progress import progress_bar
    from yikatong.security.models import User
    from yikatong.sharing.importer import import_dataset

    out = Console()
    err = Console(stderr=True)
    day = _parse_day(as_of)
    try:
        with transaction() as session:
            actor = None
            if username:
                actor = session.scalar(select(User).where(User.username == username))
                if actor is None or not actor.active:
                    err.print(f"[red]用户不存在或已停用：{username}[/red]")
                    raise typer.Exit(2)
            with progress_bar(STAGES) as on_progress:
                outcome = import_dataset(session, dataset, file, filename=file.name, agency=agency, as_of=day,
                                         actor=actor, now=system_clock.now(), on_progress=on_progress,
                                         encoding=encoding)
    except DomainError as e:
        err.print(f"[red]{e.message}[/red]")
        raise typer.Exit(2) from None
    _print_outcome(out, outcome)
    if report_path is not None and outcome.errors:
        from yikatong.core.progress import write_error_report

        write_error_report(out, report_path, outcome.errors)
    if not outcome.ok:
        raise typer.Exit(1)


def _print_outcome(out, outcome) -> None:
    from rich.table import Table

    if outcome.ok:
        snap = outcome.snapshot
        table = Table(title=f"{outcome.dataset_label}导入完成：{outcome.filename}")
        for header in ("快照ID", "提供单位", "数据截止日期", "格式", "数据行", "入库行", "合并重复行"):
            table.add_column(header)
        table.add_row(str(snap.id), snap.agency, f"{snap.as_of:%Y-%m-%d}", snap.file_format,
                      f"{outcome.total_rows:,}", f"{outcome.rows:,}", f"{outcome.duplicates_merged:,}")
        out.print(table)
        if snap.in_force:
            out.print(f"快照 {snap.id} 现为{snap.agency}在用的{outcome.dataset_label}数据（取代该单位此前的交付）。")
        else:
            out.print(f"注意：{snap.agency}已有数据截止日期更晚的交付，快照 {snap.id} 已保存但不在用。")
        return
    from yikatong.core.progress import print_errors

    print_errors(out, f"{outcome.dataset_label}导入失败：{outcome.filename}", outcome.errors, outcome.error_count)


def register(app: typer.Typer) -> None:
    sharing = typer.Typer(
        help="Shared data sets from other agencies (信息归集): household register, deaths, payroll, retirees, "
             "vehicles, businesses, real estate, prisoners, village cadres, card status, payments by other "
             "systems. Each delivery is a full extract as of a date, kept as a snapshot; the latest delivery of "
             "each agency is in force and is what the cross-check rules read. Formats: docs/data-formats.md.",
        no_args_is_help=True,
    )

    @sharing.command(
        "import",
        help=(
            "Load one delivery of a shared data set. All or nothing: every row is checked first (ID "
            "numbers, dates, amounts, codes, required cells, end dates not before start dates, "
            "repeated keys); if any row is wrong nothing is stored and every problem is listed with "
            "its row, column and reason (exit status 1). ID numbers are stored only as a keyed hash "
            "and a mask, never in clear."),
    )
    def import_command(
        dataset: str = typer.Argument(..., help="Which data set the file holds: " + _codes()),
        file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                    help="The delivered file: CSV, Excel .xlsx (first sheet) or Parquet. "
                                         "Header (column names) in row 1."),
        agency: str = typer.Option(..., "--agency",
                                   help="The agency that delivered the file, e.g. 市公安局. A new delivery "
                                        "replaces the previous one of the same agency."),
        as_of: str = typer.Option(..., "--as-of", metavar="YYYY-MM-DD",
                                  help="The date the extract is as of (数据截止日期); not in the future."),
        encoding: Encoding = typer.Option(Encoding.UTF8, "--encoding",
                                          help="Text encoding of a CSV file: utf-8 (with or without BOM) or "
                                               "gb18030 (also reads GBK). Ignored for .xlsx and Parquet."),
        user: str | None = typer.Option(None, "--user",
                                        help="Import as this user (needs the shared.import duty); the trail "
                                             "names them. Default: the system."),
        report: Path | None = typer.Option(None, "--report",
                                           help="Also write every listed error (row, column, value, reason) to "
                                                "this CSV file, for fixing the data in Excel."),
    ) -> None:
        _import(dataset, file, agency, as_of, encoding.value, user, report)

    @sharing.command(
        "list",
        help=(
            "List the data sets: rows in force (the latest delivery of each agency, added up) and "
            "the newest delivery."),
    )
    def list_command() -> None:
        from rich.console import Console
        from rich.table import Table

        from yikatong.core.db import new_session
        from yikatong.sharing.service import overview

        with new_session() as session:
            views = overview(session, None)
        table = Table(title="共享数据集")
        for header in ("代码", "名称", "提供单位", "在用数据行", "在用快照", "最新数据截止日期", "最新交付单位"):
            table.add_column(header)
        for view in views:
            latest = view.latest
            table.add_row(view.dataset.code, view.dataset.label, view.dataset.provider, f"{view.rows_in_force:,}",
                          str(len(view.current)), f"{latest.as_of:%Y-%m-%d}" if latest else "—",
                          latest.agency if latest else "尚未交付")
        Console().print(table)

    @sharing.command(
        "index",
        help=(
            "Build the look-up index of every delivery in force that has none yet (deliveries stored by "
            "an older version). Screening a claim looks up its people's rows there instead of reading "
            "whole data sets; a delivery without one gets it on first use, which makes that claim slow. "
            "New deliveries are indexed when they are stored."),
    )
    def index_command() -> None:
        from yikatong.core.db import new_session
        from yikatong.core.progress import progress_bar
        from yikatong.sharing.store import index_deliveries

        with new_session() as session, progress_bar() as on_progress:
            built = index_deliveries(session, on_progress)
        typer.echo(f"已为{built}份在用数据建立检索索引。" if built else "在用数据均已建立检索索引。")

    @sharing.command(
        "history",
        help=(
            "Every delivery of one data set, newest first, with where it came from (agency, as-of "
            "date, file, format, rows, who imported it and when) and whether it is in force."),
    )
    def history_command(dataset: str = typer.Argument(..., help="The data set: " + _codes())) -> None:
        from rich.console import Console
        from rich.table import Table

        from yikatong.core.db import new_session
        from yikatong.core.errors import DomainError
        from yikatong.sharing.service import dataset_view

        try:
            with new_session() as session:
                view = dataset_view(session, None, dataset)
        except DomainError as e:
            typer.echo(e.message, err=True)
            raise typer.Exit(2) from None
        table = Table(title=f"{view.dataset.label}（{view.dataset.code}）交付记录")
        for header in ("快照ID", "提供单位", "数据截止日期", "文件", "格式", "行数", "导入时间", "导入人", "状态"):
            table.add_column(header)
        for snap in view.history:
            table.add_row(str(snap.id), snap.agency, f"{snap.as_of:%Y-%m-%d}", snap.filename, snap.file_format,
                          f"{snap.rows:,}", format_beijing(snap.imported_at), snap.importer_name,
                          "在用" if view.in_force(snap) else "已被取代")
        Console().print(table)
        if not view.history:
            typer.echo("尚无交付记录。")

    @sharing.command(
        "template",
        help=(
            "Write an empty file with the data set's Chinese column headers (xlsx: ID-number and "
            "code columns formatted as text, and a sheet explaining each column)."),
    )
    def template_command(
        dataset: str = typer.Argument(..., help="The data set: " + _codes()),
        fmt: TemplateFormat = typer.Option(TemplateFormat.XLSX, "--format", help="csv or xlsx"),
        out: Path = typer.Option(..., "-o", "--output", dir_okay=False,
                                 help="Where to write the empty file, e.g. deaths.xlsx"),
    ) -> None:
        from yikatong.core.errors import DomainError
        from yikatong.sharing.service import template_bytes

        try:
            out.write_bytes(template_bytes(dataset, fmt.value))
        except DomainError as e:
            typer.echo(e.message, err=True)
            raise typer.Exit(2) from None
        typer.echo(f"已写入{dataset}模板：{out}（{fmt.value}）")

    @sharing.command(
        "datasets",
        help=(
            "Describe every data set column by column: Chinese header, English alias, required or "
            "not, format and meaning."),
    )
    def datasets_command() -> None:
        from rich.console import Console
        from rich.table import Table

        from yikatong.sharing.service import format_zh

        console = Console()
        for d in DATASETS:
            table = Table(title=f"{d.code} — {d.label}（{d.provider}）：{d.summary}", title_justify="left")
            for header in ("列名", "英文别名", "必填", "格式", "说明"):
                table.add_column(header)
            for f in d.fields:
                table.add_row(f.header, f.alias, "是" if f.required else "否", format_zh(f), f.description)
            console.print(table)

    app.add_typer(sharing, name="sharing")
