"""Following a job from a terminal: its summary, and a Rich progress bar until it ends (`ykt jobs wait`,
`ykt intercept run --job --wait`)."""

from __future__ import annotations

import json


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True, highlight=False)


def print_job(job) -> None:
    from yikatong.jobs import service

    out = _console()
    out.print(f"[bold]任务 #{job.id}[/bold] {job.title}（{job.kind}）：{job.status}")
    out.print(f"进度：{job.stage} {job.done:,}/{job.total:,}" if job.total else f"进度：{job.stage}")
    if job.error:
        out.print(f"[red]{job.error}[/red]")
    if job.result:
        out.print("结果：" + json.dumps(service.result_of(job), ensure_ascii=False))
    if job.log:
        out.print(job.log)


def wait_for(job_id: int, poll: float = 1.0) -> str:
    """Show a running job's progress (Rich) until it ends; returns its final status. Someone must run
    it: `ykt worker`, or `ykt jobs run-once` in another terminal."""
    import time

    from yikatong.core.db import new_session
    from yikatong.core.progress import progress_bar
    from yikatong.jobs import service

    with progress_bar() as on_progress:
        while True:
            with new_session() as session:
                job = service.get_job(session, None, job_id)
            if job.total:
                on_progress(job.title, job.done, job.total)
            if service.is_finished(job):
                break
            time.sleep(poll)
    print_job(job)
    return job.status
