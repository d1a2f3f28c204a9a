"""Jobs on the web: a job's page (progress polled by htmx, the log, cancel, the result), the list of
one's own jobs, the result file, and the JSON API. Starting a job is the domain's page's business
(it calls jobs.service.start and redirects here); nothing here runs a job."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from yikatong.core.clock import Clock
from yikatong.core.errors import NotFound
from yikatong.jobs import service
from yikatong.jobs.models import Job
from yikatong.jobs.runner import job_dir
from yikatong.jobs.service import shown
from yikatong.security.models import User
from yikatong.web.deps import DbSession, current_user, get_clock
from yikatong.web.templating import templates

api = APIRouter(prefix="/api/v1", tags=["jobs"])
pages = APIRouter(include_in_schema=False)


class JobOut(BaseModel):
    id: int
    kind: str
    title: str
    status: str = Field(description="排队中、运行中、已完成、失败 或 已取消")
    stage: str
    done: int
    total: int
    result: dict[str, Any] | None
    error: str
    log: str
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def job_out(job: Job) -> JobOut:
    return JobOut(id=job.id, kind=job.kind, title=job.title, status=job.status, stage=job.stage, done=job.done,
                  total=job.total, result=service.result_of(job) if job.result else None, error=job.error,
                  log=job.log, cancel_requested=job.cancel_requested, created_at=job.created_at,
                  started_at=job.started_at, finished_at=job.finished_at)


@api.get("/jobs/{job_id:int}", response_model=JobOut)
def api_job(job_id: int, db: Session = DbSession, user: User = Depends(current_user)) -> JobOut:
    """One job you started: status, progress, result (when finished) and log."""
    return job_out(service.get_job(db, user, job_id))


@api.post("/jobs/{job_id:int}/cancel", response_model=JobOut)
def api_cancel(job_id: int, db: Session = DbSession, clock: Clock = Depends(get_clock),
               user: User = Depends(current_user)) -> JobOut:
    """Cancel a job you started: a queued one at once, a running one at its next step. 409 once finished."""
    return job_out(service.cancel(db, user, job_id, clock.now()))


def _back(job: Job) -> str:
    """The page a job was started from (its `back` parameter, a path on this site), for a link on a failed
    job's page."""
    back = str(service.params_of(job).get("back") or "")
    return back if back.startswith("/") and not back.startswith("//") and "\\" not in back else ""


def _context(job: Job) -> dict[str, Any]:
    result = service.result_of(job) if job.result else {}
    return {"job": job, "result": result, "finished": service.is_finished(job), "shown": shown, "back": _back(job),
            "percent": int(100 * job.done / job.total) if job.total else None}


@pages.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, db: Session = DbSession, user: User = Depends(current_user)) -> Response:
    return templates.TemplateResponse(request, "jobs/list.html", {"user": user, "shown": shown,
                                                                 "jobs": service.recent_jobs(db, user)})


@pages.get("/jobs/{job_id:int}", response_class=HTMLResponse)
def job_page(request: Request, job_id: int, db: Session = DbSession, user: User = Depends(current_user)) -> Response:
    job = service.get_job(db, user, job_id)
    return templates.TemplateResponse(request, "jobs/job.html", {"user": user, **_context(job)})


@pages.get("/jobs/{job_id:int}/status", response_class=HTMLResponse)
def job_status(request: Request, job_id: int, db: Session = DbSession,
               user: User = Depends(current_user)) -> Response:
    """The part of the job page htmx polls while the job is not finished."""
    job = service.get_job(db, user, job_id)
    return templates.TemplateResponse(request, "jobs/_status.html", {"user": user, **_context(job)})


@pages.post("/jobs/{job_id:int}/cancel")
def cancel_submit(job_id: int, db: Session = DbSession, clock: Clock = Depends(get_clock),
                  user: User = Depends(current_user)) -> Response:
    service.cancel(db, user, job_id, clock.now())
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@pages.get("/jobs/{job_id:int}/download")
def download(job_id: int, db: Session = DbSession, user: User = Depends(current_user)) -> Response:
    """The job's result file (an export)."""
    job = service.get_job(db, user, job_id)
    name = service.result_of(job).get("file") if job.result else None
    path = job_dir(job.id) / name if name else None
    if path is None or path.name != name or not path.is_file():
        raise NotFound("该任务没有可下载的文件")
    return FileResponse(path, headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})
