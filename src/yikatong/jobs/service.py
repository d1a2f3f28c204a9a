"""Jobs (后台任务): start one, read it, cancel it; and the writes of the runner that holds it.

A job is claimed by one runner with a conditional UPDATE (on PostgreSQL the candidate row is first
taken with SELECT .. FOR UPDATE SKIP LOCKED, as the outbox dispatcher does), so two workers never run
the same job. While it runs, the runner writes a heartbeat; a running job whose heartbeat is older
than YKT_JOB_STALE_SECONDS lost its runner (killed, machine restarted) and is claimed again. Every
write of a runner names its worker and attempt, so a runner that was taken over cannot overwrite
the job any more. Handlers must therefore be safe to run again: their work is one transaction or
idempotent (the city run skips flags it already raised).

Domains register their kinds here (`register`); this package imports no domain: `load_kinds`
imports `yikatong.job_kinds`, which lists every domain's kinds, as `yikatong.models` lists tables."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from yikatong.core.clock import beijing_time
from yikatong.core.errors import Conflict, Forbidden, Invalid, NotFound
from yikatong.jobs.models import FINISHED, Job, JobStatus
from yikatong.security.models import User

LOG_MAX = 20_000  # characters of log kept (the latest)


@dataclass(frozen=True)
class Kind:
    name: str
    title: str  # the page's name for it, e.g. 全市比对
    handler: Callable[[Any], dict[str, Any]]  # (JobContext) -> result (JSON-able)


_KINDS: dict[str, Kind] = {}


def register(name: str, title: str) -> Callable[[Callable], Callable]:
    """Decorator: `@register("interception.city_run", "全市比对")` over a handler `(ctx) -> dict`."""
    def add(handler: Callable) -> Callable:
        _KINDS[name] = Kind(name, title, handler)
        return handler
    return add


def load_kinds() -> dict[str, Kind]:
    importlib.import_module("yikatong.job_kinds")
    return _KINDS


def kind_of(name: str) -> Kind:
    kind = load_kinds().get(name)
    if kind is None:
        raise Invalid(f"未知的任务类型：{name}")
    return kind


# ---------------------------------------------------------------- what users do


def start(session: Session, kind: str, params: dict[str, Any], user: User | None, now: datetime,
          title: str | None = None) -> Job:
    """Queue a job; the worker runs it. Returns at once."""
    job = Job(kind=kind, title=title or kind_of(kind).title, params=json.dumps(params, ensure_ascii=False),
              started_by=user.id if user else None, status=JobStatus.QUEUED.value, stage="排队等待", done=0, total=0,
              error="", log="", cancel_requested=False, worker="", attempts=0, created_at=now)
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, user: User | None, job_id: int) -> Job:
    """One job; a user sees the jobs they started (None: the operator at the command line sees all)."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("任务不存在")
    if user is not None and job.started_by != user.id:
        raise Forbidden("只能查看本人发起的任务")
    return job


def recent_jobs(session: Session, user: User | None, limit: int = 50) -> list[Job]:
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if user is not None:
        query = query.where(Job.started_by == user.id)
    return list(session.scalars(query))


def cancel(session: Session, user: User | None, job_id: int, now: datetime) -> Job:
    """A queued job is cancelled at once; a running one is asked to stop, and its handler stops at its
    next step, leaving nothing half-written."""
    job = get_job(session, user, job_id)
    queued = session.execute(update(Job).where(Job.id == job.id, Job.status == JobStatus.QUEUED.value)
                             .values(status=JobStatus.CANCELLED.value, stage="已取消", finished_at=now))
    if queued.rowcount == 0:
        asked = session.execute(update(Job).where(Job.id == job.id, Job.status == JobStatus.RUNNING.value)
                                .values(cancel_requested=True))
        if asked.rowcount == 0:
            session.refresh(job)
            raise Conflict(f"任务已{job.status}，不能取消")
    session.flush()
    session.refresh(job)
    return job


def params_of(job: Job) -> dict[str, Any]:
    return json.loads(job.params or "{}")


def result_of(job: Job) -> dict[str, Any]:
    return json.loads(job.result or "{}")


# ---------------------------------------------------------------- what the runner does


def _claimable(now: datetime, stale_seconds: float):
    stale = now - timedelta(seconds=stale_seconds)
    return or_(Job.status == JobStatus.QUEUED.value,
               and_(Job.status == JobStatus.RUNNING.value, Job.heartbeat_at < stale))


def claim(session: Session, worker: str, now: datetime, stale_seconds: float) -> tuple[int, int] | None:
    """Take the oldest queued job, or a running one whose runner died: (job id, attempt), or None.
    The caller commits."""
    for _ in range(5):  # a candidate taken by another worker meanwhile: try the next one
        job_id = session.scalar(select(Job.id).where(_claimable(now, stale_seconds)).order_by(Job.id).limit(1)
                                .with_for_update(skip_locked=True))
        if job_id is None:
            return None
        attempt = session.scalar(select(Job.attempts).where(Job.id == job_id)) + 1
        taken = session.execute(update(Job).where(Job.id == job_id, _claimable(now, stale_seconds))
                                .values(status=JobStatus.RUNNING.value, worker=worker, attempts=attempt,
                                        started_at=now, heartbeat_at=now))
        if taken.rowcount == 1:
            return job_id, attempt
    return None


def _mine(job_id: int, worker: str, attempt: int):
    return and_(Job.id == job_id, Job.worker == worker, Job.attempts == attempt,
                Job.status == JobStatus.RUNNING.value)


def beat(session: Session, job_id: int, worker: str, attempt: int, now: datetime, *, stage: str, done: int,
         total: int, log: str) -> bool | None:
    """Record progress and the heartbeat. Returns whether cancelling was asked, or None when the job is
    no longer this runner's (taken over, or cancelled while queued)."""
    written = session.execute(update(Job).where(_mine(job_id, worker, attempt))
                              .values(heartbeat_at=now, stage=stage[:100], done=done, total=total,
                                      log=log[-LOG_MAX:]))
    if written.rowcount == 0:
        return None
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def finish(session: Session, job_id: int, worker: str, attempt: int, now: datetime, status: JobStatus, *,
           result: dict[str, Any] | None = None, error: str = "", log: str = "", stage: str | None = None,
           done: int = 0, total: int = 0) -> bool:
    """The end of a run; False when the job is no longer this runner's (nothing is written)."""
    values: dict[str, Any] = dict(status=status.value, finished_at=now, heartbeat_at=now, error=error,
                                  log=log[-LOG_MAX:], done=done, total=total,
                                  result=json.dumps(result, ensure_ascii=False) if result is not None else None)
    if stage is not None:
        values["stage"] = stage[:100]
    return session.execute(update(Job).where(_mine(job_id, worker, attempt)).values(**values)).rowcount == 1


def is_finished(job: Job) -> bool:
    return job.status in FINISHED


def shown(moment: datetime | None) -> str:
    """A job's time as people read it: Beijing time."""
    return f"{beijing_time(moment):%Y-%m-%d %H:%M:%S}" if moment else ""
