"""The Rich progress bar every long CLI command shows, fed by the (stage, done, total) callback the
services take."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

Progress = Callable[[str, int, int], None]


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
