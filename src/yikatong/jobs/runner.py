"""The runner: claims a job, runs its handler in this thread, and beats in a second thread.

The heartbeat thread writes the latest progress and log every `beat_seconds` in its own short
transaction and reads whether cancelling was asked; the handler sees that through its context
(`ctx.progress(...)` and `ctx.check()` raise JobCancelled), between chunks of its work. A handler
does its work in its own transaction, so a cancelled or failed job leaves nothing half-written."""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from yikatong.core.clock import Clock, system_clock
from yikatong.core.db import transaction
from yikatong.core.errors import DomainError
from yikatong.core.settings import get_settings
from yikatong.jobs import service
from yikatong.jobs.models import Job, JobStatus

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a handler when its job was cancelled (or taken over by another runner)."""


def job_dir(job_id: int) -> Path:
    """Where a job keeps its files (an export's workbook): YKT_DATA_DIR/jobs/<id>/."""
    return get_settings().data_dir / "jobs" / str(job_id)


UPLOAD = "upload"  # an uploaded file a job works on, in the job's folder


def upload_path(job_id: int) -> Path:
    return job_dir(job_id) / UPLOAD


def store_upload(job_id: int, data: bytes) -> Path:
    """Keep an uploaded file beside its job (an import); the job deletes it when it ends."""
    path = upload_path(job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@dataclass
class JobContext:
    """What a handler gets: its parameters, who started it, `now`, and the progress and log hooks."""

    job_id: int
    params: dict[str, Any]
    user_id: int | None
    now: datetime
    attempt: int = 1  # more than 1: a run again after its runner died
    stage: str = "开始"
    done: int = 0
    total: int = 0
    lines: list[str] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    on_progress: Callable[[str, int, int], None] | None = None

    def check(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelled("任务已取消")

    def progress(self, stage: str, done: int, total: int) -> None:
        """The (stage, done, total) callback the services take; also the place a cancel takes effect."""
        self.stage, self.done, self.total = stage, done, total
        if self.on_progress:
            self.on_progress(stage, done, total)
        self.check()

    def log(self, line: str) -> None:
        self.lines.append(line)

    def output(self, filename: str) -> Path:
        """A path for a result file; the job page offers it for download."""
        folder = job_dir(self.job_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / filename

    @property
    def log_text(self) -> str:
        return "\n".join(self.lines)


def default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class Runner:
    """Runs queued jobs. Keep one per worker thread."""

    def __init__(self, clock: Clock = system_clock, worker: str | None = None, beat_seconds: float = 2.0,
                 stale_seconds: float | None = None,
                 on_progress: Callable[[str, int, int], None] | None = None):
        self.clock, self.worker, self.beat_seconds = clock, worker or default_worker(), beat_seconds
        self.stale_seconds = stale_seconds if stale_seconds is not None else get_settings().job_stale_seconds
        self.on_progress = on_progress

    def run_once(self) -> int | None:
        """Claim one job and run it to its end; the job's id, or None when there was nothing to do."""
        with transaction() as session:
            claimed = service.claim(session, self.worker, self.clock.now(), self.stale_seconds)
        if claimed is None:
            return None
        self.run(*claimed)
        return claimed[0]

    def run_pending(self, should_stop: Callable[[], bool] = lambda: False) -> list[int]:
        ran = []
        while not should_stop():
            job_id = self.run_once()
            if job_id is None:
                break
            ran.append(job_id)
        return ran

    def run(self, job_id: int, attempt: int) -> None:
        with transaction() as session:
            job = session.get(Job, job_id)
            kind = service.load_kinds().get(job.kind)
            ctx = JobContext(job_id, service.params_of(job), job.started_by, self.clock.now(), attempt,
                             on_progress=self.on_progress)
            asked_to_cancel = job.cancel_requested
        if attempt > 1:
            ctx.log(f"{ctx.now:%Y-%m-%d %H:%M:%S} 上次运行中断（第{attempt - 1}次），重新运行")
        if asked_to_cancel:  # cancelled while its runner was dead
            self._finish(ctx, attempt, JobStatus.CANCELLED, stage="已取消")
            return
        if kind is None:
            self._finish(ctx, attempt, JobStatus.FAILED, error=f"未知的任务类型：{job.kind}")
            return
        stop = threading.Event()
        beater = threading.Thread(target=self._beat_loop, args=(ctx, attempt, stop), daemon=True)
        beater.start()
        try:
            result = kind.handler(ctx)
        except JobCancelled:
            stop.set()
            beater.join()
            ctx.log("已取消：未写入任何结果")
            self._finish(ctx, attempt, JobStatus.CANCELLED, stage="已取消")
            return
        except Exception as e:  # noqa: BLE001 - a failed job keeps its message; the worker goes on
            stop.set()
            beater.join()
            message = e.message if isinstance(e, DomainError) else f"任务出错：{e}"
            if not isinstance(e, DomainError):
                log.exception("job %s failed", job_id)
                ctx.log(traceback.format_exc())
            self._finish(ctx, attempt, JobStatus.FAILED, error=message)
            return
        stop.set()
        beater.join()
        self._finish(ctx, attempt, JobStatus.DONE, result=result or {}, stage="已完成")

    def _beat_loop(self, ctx: JobContext, attempt: int, stop: threading.Event) -> None:
        while not stop.wait(self.beat_seconds):
            try:
                with transaction() as session:
                    asked = service.beat(session, ctx.job_id, self.worker, attempt, self.clock.now(), stage=ctx.stage,
                                         done=ctx.done, total=ctx.total, log=ctx.log_text)
            except OperationalError:  # SQLite: the handler holds the write lock; beat again later
                continue
            if asked is None or asked:  # taken over by another runner, or cancelling asked
                ctx.cancelled.set()

    def _finish(self, ctx: JobContext, attempt: int, status: JobStatus, **kw) -> None:
        with transaction() as session:
            if not service.finish(session, ctx.job_id, self.worker, attempt, self.clock.now(), status,
                                  log=ctx.log_text, done=ctx.done, total=ctx.total, **kw):
                log.warning("job %s was taken over by another runner; its end is not recorded here", ctx.job_id)


def run_in_background(poll: float = 2.0) -> threading.Event:
    """A daemon thread that runs queued jobs, for `ykt demo` and `ykt serve --jobs` where no `ykt worker`
    runs beside the web server (one machine, SQLite). Set the returned event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        runner = Runner()
        while not stop.wait(poll):
            try:
                runner.run_pending(stop.is_set)
            except Exception:  # noqa: BLE001 - the database may be away for a moment; keep going
                log.exception("background job runner")

    threading.Thread(target=loop, name="ykt-jobs", daemon=True).start()
    return stop
