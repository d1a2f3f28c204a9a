"""`ykt jobs ...`: list, show, cancel, wait for, and run queued jobs (后台任务). `ykt worker` runs them
too, between its rounds."""

from __future__ import annotations

import typer

from yikatong.core.errors import DomainError
from yikatong.jobs.follow import _console, print_job, wait_for


def register(app: typer.Typer) -> None:
    jobs_app = typer.Typer(help="Background jobs (后台任务): city runs, dry runs, large imports and exports "
                                "started from the pages run here or in `ykt worker`.", no_args_is_help=True)

    @jobs_app.command("list")
    def list_jobs(limit: int = typer.Option(30, "--limit", min=1, max=1000)) -> None:
        """The latest jobs, newest first."""
        from rich.table import Table

        from yikatong.core.db import new_session
        from yikatong.jobs import service
        from yikatong.jobs.service import shown

        table = Table(title="后台任务（北京时间）")
        for header in ("编号", "任务", "状态", "进度", "发起时间", "结束时间"):
            table.add_column(header)
        with new_session() as session:
            for j in service.recent_jobs(session, None, limit):
                table.add_row(str(j.id), j.title, j.status, f"{j.stage} {j.done:,}/{j.total:,}" if j.total else j.stage,
                              shown(j.created_at), shown(j.finished_at))
        _console().print(table)

    @jobs_app.command("show")
    def show(job_id: int = typer.Argument(..., help="Job number")) -> None:
        """One job: status, progress, result and log."""
        from yikatong.core.db import new_session
        from yikatong.jobs import service

        try:
            with new_session() as session:
                print_job(service.get_job(session, None, job_id))
        except DomainError as e:
            _console(stderr=True).print(f"[red]{e.message}[/red]")
            raise typer.Exit(1) from None

    @jobs_app.command("cancel")
    def cancel(job_id: int = typer.Argument(..., help="Job number")) -> None:
        """Cancel a job: a queued one at once, a running one at its next step (nothing half-written)."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.jobs import service

        try:
            with transaction() as session:
                job = service.cancel(session, None, job_id, system_clock.now())
                status = job.status
        except DomainError as e:
            _console(stderr=True).print(f"[red]{e.message}[/red]")
            raise typer.Exit(1) from None
        typer.echo(f"任务 #{job_id}：{'已取消' if status == '已取消' else '已要求取消，将在当前步骤结束后停止'}")

    @jobs_app.command("wait")
    def wait(job_id: int = typer.Argument(..., help="Job number")) -> None:
        """Show a job's progress until it ends. Exit code 1 unless it completed."""
        try:
            status = wait_for(job_id)
        except DomainError as e:
            _console(stderr=True).print(f"[red]{e.message}[/red]")
            raise typer.Exit(1) from None
        if status != "已完成":
            raise typer.Exit(1)

    @jobs_app.command("run-once")
    def run_once() -> None:
        """Run the oldest queued job (or one whose runner died) here, with a progress bar, then exit."""
        from yikatong.core.db import new_session
        from yikatong.core.progress import progress_bar
        from yikatong.jobs import service
        from yikatong.jobs.runner import Runner

        with progress_bar() as on_progress:
            job_id = Runner(on_progress=on_progress).run_once()
        if job_id is None:
            typer.echo("没有排队中的任务")
            return
        with new_session() as session:
            job = service.get_job(session, None, job_id)
        print_job(job)
        if job.status != "已完成":
            raise typer.Exit(1)

    app.add_typer(jobs_app, name="jobs")
