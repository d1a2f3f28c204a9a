"""What every long CLI command shows: the Rich progress bar, fed by the (stage, done, total) callback
the services take, and the errors of a refused file (imports and shared data sets alike)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

Progress = Callable[[str, int, int], None]
SHOWN_ERRORS = 200


@contextmanager
def progress_bar(labels: Mapping[str, str] | None = None, *, group: Callable[[str], str] | None = None,
                 stderr: bool = True) -> Iterator[Progress]:
    """Yield a callback that draws one bar per stage. `labels` renames stages for the bar; `group`
    maps several stages onto one bar (which then shows the latest stage's name)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=stderr), transient=False) as bar:
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            key = group(stage) if group else stage
            description = (labels or {}).get(stage, stage)
            if key not in tasks:
                tasks[key] = bar.add_task(description, total=max(total, 1))
            bar.update(tasks[key], completed=done, total=max(total, 1), description=description)

        yield on_progress


def write_error_report(out, path: Path, errors) -> None:
    """The refused file's errors as a CSV (UTF-8 with BOM, so Excel opens it) for whoever fixes the file."""
    import csv

    from yikatong.core.spreadsheet import safe_row  # a cell that looks like a formula stays text

    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["行号", "列名", "值", "原因"])
        writer.writerows(safe_row([e.row or "", e.column, e.value, e.reason]) for e in errors)
    out.print(f"错误清单已写入 {path}")


def print_errors(out, title: str, errors, error_count: int) -> None:
    """The refused file's errors as a table (row, column, value, reason), at most SHOWN_ERRORS of them.
    `errors` are objects with row, column, value and reason (imports and shared data sets alike)."""
    from rich.table import Table

    table = Table(title=f"{title} 共 {error_count:,} 处错误，未导入任何数据")
    table.add_column("行号", justify="right")
    table.add_column("列名")
    table.add_column("值")
    table.add_column("原因")
    for e in errors[:SHOWN_ERRORS]:
        table.add_row("" if e.row is None else str(e.row), e.column, e.value, e.reason)
    out.print(table)
    if error_count > SHOWN_ERRORS:
        out.print(f"仅显示前 {SHOWN_ERRORS} 处错误；用 --report 文件.csv 导出错误清单（最多1000条）。")
    out.print("请修改文件后重新导入。")
