"""`ykt import KIND FILE`: load a CSV or Excel file; `ykt import template KIND OUT`: an empty file."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from yikatong.core.progress import print_errors, write_error_report
from yikatong.imports.kinds import KINDS, Kind


class Encoding(StrEnum):
    UTF8 = "utf-8"
    GB18030 = "gb18030"


class TemplateFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


STAGES = {"读取": "读取文件", "校验": "逐行校验", "核对": "与数据库核对", "写入": "写入数据库"}


def _columns_help(kind: Kind) -> str:
    lines = [f"{c.header} ({c.alias}{', required' if c.required else ''})" for c in kind.columns]
    return "; ".join(lines)


def _make_command(kind: Kind):
    def command(
        file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                    help="The file to load: CSV or Excel .xlsx (first sheet; header in row 1)."),
        encoding: Encoding = typer.Option(Encoding.UTF8, "--encoding",
                                          help="Text encoding of a CSV file: utf-8 (with or without BOM) or "
                                               "gb18030 (also reads GBK files saved by older Excel). "
                                               "Ignored for .xlsx."),
        user: str | None = typer.Option(None, "--user",
                                        help="Import as this user: their role and region limit what may be "
                                             "loaded and the audit trail names them. Default: the system."),
        dry_run: bool = typer.Option(False, "--dry-run",
                                     help="Check every row and report, but write nothing."),
        report: Path | None = typer.Option(None, "--report",
                                           help="Also write every error (row, column, value, reason) to this "
                                                "CSV file, for fixing the data in Excel."),
    ) -> None:
        _run(kind, file, encoding.value, user, dry_run, report)

    command.__doc__ = (
        f"Load {kind.label} ({kind.name}) from a CSV or .xlsx file. {kind.summary}\n\n"
        "All or nothing: if any row is wrong nothing is written and every problem is listed with its row, "
        "column and reason. Loading the same file again changes nothing. "
        f"Columns: {_columns_help(kind)}. Details: docs/data-formats.md."
    )
    return command


def _run(kind: Kind, file: Path, encoding: str, username: str | None, dry_run: bool, report_path: Path | None) -> None:
    from rich.console import Console
    from sqlalchemy import select

    from yikatong.core.clock import system_clock
    from yikatong.core.db import transaction
    from yikatong.core.errors import DomainError
    from yikatong.core.progress import progress_bar
    from yikatong.imports.service import import_file
    from yikatong.security.models import User

    out = Console()
    err = Console(stderr=True)
    try:
        with transaction() as session:
            actor = None
            if username:
                actor = session.scalar(select(User).where(User.username == username))
                if actor is None or not actor.active:
                    err.print(f"[red]用户不存在或已停用：{username}[/red]")
                    raise typer.Exit(2)
            with progress_bar(STAGES) as on_progress:
                result = import_file(session, kind.name, file, file.name, actor=actor, now=system_clock.now(),
                                     encoding=encoding, on_progress=on_progress, dry_run=dry_run)
            if dry_run:
                session.rollback()
    except DomainError as e:
        err.print(f"[red]{e.message}[/red]")
        raise typer.Exit(2) from None
    _print_report(out, result)
    if report_path is not None and result.errors:
        write_error_report(out, report_path, result.errors)
    if not result.ok:
        raise typer.Exit(1)


def _print_report(out, report) -> None:
    from rich.table import Table

    if report.ok:
        done = "校验（未写入）" if report.dry_run else "完成"
        table = Table(title=f"{report.kind_label}导入{done}：{report.filename}")
        for header in ("数据行", "新增", "更新", "未变"):
            table.add_column(header, justify="right")
        table.add_row(*(f"{n:,}" for n in (report.total_rows, report.added, report.updated, report.unchanged)))
        out.print(table)
        if report.extra.get("categories_added") or report.extra.get("categories_updated"):
            out.print(f"补贴类别：新增 {report.extra.get('categories_added', 0)} 个，"
                      f"更新 {report.extra.get('categories_updated', 0)} 个")
        if report.extra.get("standards_added"):
            out.print(f"补贴标准：新增带生效日期的标准 {report.extra['standards_added']} 条")
        if report.dry_run:
            out.print("试运行（--dry-run）：全部数据校验通过，未写入数据库。")
        return
    print_errors(out, f"{report.kind_label}导入失败：{report.filename}", report.errors, report.error_count)


def register(app: typer.Typer) -> None:
    import_app = typer.Typer(
        help="Load regions, departments, banks, the subsidy catalogue, households, persons and cards, and "
             "department lists of claims (applications) and budget allocations (budget), from CSV or Excel (.xlsx) "
             "files. Each file is all or "
             "nothing; formats: docs/data-formats.md. Order for a new city: regions, departments, banks, "
             "catalogue, households, persons, cards; then applications and budget.",
        no_args_is_help=True,
    )
    for kind in KINDS.values():
        import_app.command(kind.name)(_make_command(kind))

    @import_app.command("template")
    def template(
        kind: str = typer.Argument(..., help="What the file is for: " + ", ".join(KINDS)),
        out: Path = typer.Argument(..., dir_okay=False, help="Where to write the empty file, e.g. persons.xlsx"),
        fmt: TemplateFormat | None = typer.Option(None, "--format",
                                                  help="csv or xlsx. Default: from the OUT file's extension."),
    ) -> None:
        """Write an empty import file with the right column headers (xlsx: text columns, and a sheet
        explaining each column)."""
        from yikatong.imports.kinds import get_kind
        from yikatong.imports.template import template_bytes

        spec = get_kind(kind)
        if spec is None:
            typer.echo(f"未知的导入类型：{kind}。可用：{', '.join(KINDS)}", err=True)
            raise typer.Exit(2)
        chosen = fmt.value if fmt else ("xlsx" if out.suffix.lower() == ".xlsx" else "csv")
        out.write_bytes(template_bytes(spec, chosen))
        typer.echo(f"已写入{spec.label}导入模板：{out}（{chosen}）")

    app.add_typer(import_app, name="import")
