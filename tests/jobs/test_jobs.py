"""Jobs: a job runs to its end with progress, result and log; a job is cancelled (queued, or running:
then nothing it did is kept); a job whose runner died is run again after the stale limit, once; the
city run's button starts a job and answers at once; the job page shows the progress and polls."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session, transaction
from yikatong.interception.jobs import CITY_RUN
from yikatong.interception.models import Flag, RuleRun
from yikatong.jobs import service
from yikatong.jobs.models import Job, JobStatus
from yikatong.jobs.runner import JobContext, Runner
from yikatong.security.models import User
from yikatong.workflow.models import Application

from .conftest import NOW

STEPS = 5
gate = threading.Event()  # the slow kind waits here after its first step, until the test lets it go


@service.register("test.count", "测试计数")
def count(ctx: JobContext) -> dict:
    for i in range(1, STEPS + 1):
        ctx.progress("计数", i, STEPS)
        ctx.log(f"第{i}步")
    return {"counted": STEPS}


@service.register("test.slow", "测试慢任务")
def slow(ctx: JobContext) -> dict:
    """Writes a marker job row in its own transaction, step by step; cancelled, the marker is gone."""
    with transaction() as session:
        session.add(Job(kind="test.marker", title=f"marker of {ctx.job_id}", params="{}",
                        status=JobStatus.DONE.value, created_at=ctx.now))
        for i in range(1, 1000):
            ctx.progress("慢慢来", i, 1000)
            if i == 1:
                gate.wait(30)
            time.sleep(0.01)
    return {"steps": 1000}


def _user(name: str) -> User:
    with new_session() as s:
        return s.scalar(select(User).where(User.username == name))


def _start(kind: str, params: dict | None = None, user: str = "city_finance") -> int:
    with transaction() as s:
        return service.start(s, kind, params or {}, _user(user), NOW).id


def _job(job_id: int) -> Job:
    with new_session() as s:
        return s.get(Job, job_id)


def _wait(predicate, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_job_runs_to_completion_with_progress_result_and_log(city):
    job_id = _start("test.count")
    assert _job(job_id).status == "排队中"
    seen: list[tuple[str, int, int]] = []
    ran = Runner(FixedClock(NOW), on_progress=lambda *p: seen.append(p)).run_once()
    assert ran == job_id
    job = _job(job_id)
    assert job.status == "已完成" and (job.done, job.total) == (STEPS, STEPS)
    assert service.result_of(job) == {"counted": STEPS}
    assert job.log.splitlines() == [f"第{i}步" for i in range(1, STEPS + 1)]
    assert seen == [("计数", i, STEPS) for i in range(1, STEPS + 1)]
    assert job.attempts == 1 and job.finished_at == NOW
    assert Runner(FixedClock(NOW)).run_once() is None  # a finished job is not run again


def test_progress_is_written_while_the_job_runs_and_cancel_stops_it_leaving_nothing(city):
    gate.clear()
    job_id = _start("test.slow")
    runner = Runner(FixedClock(NOW), beat_seconds=0.05)
    thread = threading.Thread(target=runner.run_once)
    thread.start()
    try:
        _wait(lambda: _job(job_id).done == 1)  # the heartbeat wrote the progress of the running job
        job = _job(job_id)
        assert job.status == "运行中" and (job.stage, job.total) == ("慢慢来", 1000)
        with transaction() as s:
            asked = service.cancel(s, _user("city_finance"), job_id, NOW)
            assert asked.status == "运行中" and asked.cancel_requested
        gate.set()
        thread.join(30)
    finally:
        gate.set()
    job = _job(job_id)
    assert job.status == "已取消" and job.done < 1000 and job.result is None
    with new_session() as s:  # its transaction was rolled back: the marker it wrote is gone
        assert s.scalar(select(Job.id).where(Job.title == f"marker of {job_id}")) is None
    with transaction() as s, pytest.raises(Exception, match="不能取消"):
        service.cancel(s, _user("city_finance"), job_id, NOW)


def test_a_queued_job_is_cancelled_at_once_and_never_runs(city):
    job_id = _start("test.count")
    with transaction() as s:
        assert service.cancel(s, _user("city_finance"), job_id, NOW).status == "已取消"
    assert Runner(FixedClock(NOW)).run_once() is None
    assert _job(job_id).result is None


def test_only_the_starter_sees_and_cancels_a_job(city):
    from yikatong.core.errors import Forbidden

    job_id = _start("test.count")
    with transaction() as s, pytest.raises(Forbidden):
        service.cancel(s, _user("supervisor"), job_id, NOW)


def _flags(code: str) -> int:
    with new_session() as s:
        return s.scalar(select(func.count()).select_from(Flag).where(Flag.rule_code == code))


def test_a_job_whose_runner_died_is_picked_up_again_and_its_work_not_done_twice(city, only_my_rules, rule):
    with new_session() as s:
        numbers = s.scalars(select(Application.number).where(Application.status.in_(("办理中", "已通过")))
                            .order_by(Application.id).limit(3)).all()
    listed = ", ".join(f"'{n}'" for n in numbers)
    code = rule(f"SELECT a.application_id, '任务测试 ' || a.number AS evidence FROM applications a "
                f"WHERE a.number IN ({listed})", active=True)
    job_id = _start(CITY_RUN)
    # a runner claims the job, does the whole run (its flags commit) and dies before recording the end
    with transaction() as s:
        claimed = service.claim(s, "dead-worker", NOW, stale_seconds=60)
    assert claimed == (job_id, 1)
    from yikatong.interception.jobs import city_run

    city_run(JobContext(job_id, {}, _user("city_finance").id, NOW))
    assert _flags(code) == 3
    # while its heartbeat is fresh nobody else takes it
    assert Runner(FixedClock(NOW + timedelta(seconds=30)), stale_seconds=60).run_once() is None
    # after the limit the worker (restarted) runs it again: the run raises nothing twice
    later = NOW + timedelta(seconds=61)
    assert Runner(FixedClock(later), worker="new-worker", stale_seconds=60).run_once() == job_id
    job = _job(job_id)
    assert (job.status, job.worker, job.attempts) == ("已完成", "new-worker", 2)
    assert service.result_of(job)["new_flags"] == 0 and _flags(code) == 3
    assert "上次运行中断" in job.log
    # the dead runner, were it to wake up, can no longer write the job
    with transaction() as s:
        assert not service.finish(s, job_id, "dead-worker", 1, later, JobStatus.FAILED, error="x")
    assert _job(job_id).status == "已完成"
    assert Runner(FixedClock(later + timedelta(hours=1)), stale_seconds=60).run_once() is None  # done once


def test_a_cancelled_city_run_writes_no_run_and_no_flag(city, only_my_rules, rule):
    code = rule("SELECT a.application_id, '任务测试取消' AS evidence FROM applications a", active=True)
    with new_session() as s:
        runs = s.scalar(select(func.count()).select_from(RuleRun))
    job_id = _start(CITY_RUN)

    def cancel_during_the_rules(stage: str, done: int, total: int) -> None:
        if stage.startswith("规则") and not _job(job_id).cancel_requested:
            with transaction() as s:
                service.cancel(s, None, job_id, NOW)
            time.sleep(0.3)  # a few heartbeats: the runner reads the request

    Runner(FixedClock(NOW), beat_seconds=0.05, on_progress=cancel_during_the_rules).run_once()
    assert _job(job_id).status == "已取消"
    with new_session() as s:
        assert s.scalar(select(func.count()).select_from(RuleRun)) == runs
    assert _flags(code) == 0


def test_the_city_run_button_starts_a_job_and_the_page_shows_its_progress(web, auth, only_my_rules):
    finance = auth("city_finance")
    with new_session() as s:
        runs = s.scalar(select(func.count()).select_from(RuleRun))
    started = time.perf_counter()
    r = web.post("/rules/run", headers=finance, follow_redirects=False)
    assert time.perf_counter() - started < 2
    assert r.status_code == 303 and r.headers["location"].startswith("/jobs/")
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    with new_session() as s:  # the request ran nothing: the job waits for the worker
        assert s.get(Job, job_id).status == "排队中" and s.get(Job, job_id).kind == CITY_RUN
        assert s.scalar(select(func.count()).select_from(RuleRun)) == runs
    page = web.get(f"/jobs/{job_id}", headers=finance)
    assert page.status_code == 200 and "全市比对" in page.text and 'data-testid="job-state">排队中<' in page.text
    assert f'hx-get="/jobs/{job_id}/status"' in page.text and 'hx-trigger="every 1s"' in page.text
    assert 'data-testid="job-cancel"' in page.text and "/static/vendor/htmx.min.js" in page.text
    assert "发起于 2026-12-01 17:00:00" in page.text  # 09:00 UTC is 17:00 in Beijing
    assert web.get("/static/vendor/htmx.min.js").status_code == 200
    assert web.get(f"/jobs/{job_id}", headers=auth("supervisor")).status_code == 403  # not theirs

    # running: the polled part shows the stage and done/total
    with transaction() as s:
        service.claim(s, "w", NOW, 60)
        service.beat(s, job_id, "w", 1, NOW, stage="导出平台数据", done=3, total=12, log="")
    part = web.get(f"/jobs/{job_id}/status", headers=finance)
    assert 'data-testid="job-state">运行中<' in part.text and "导出平台数据：3 / 12" in part.text
    assert 'value="25"' in part.text and 'hx-trigger="every 1s"' in part.text
    api = web.get(f"/api/v1/jobs/{job_id}", headers=finance).json()
    assert (api["status"], api["stage"], api["done"], api["total"]) == ("运行中", "导出平台数据", 3, 12)

    # the runner of that claim died; the restarted worker runs it
    Runner(FixedClock(NOW + timedelta(seconds=61)), stale_seconds=60).run_once()
    part = web.get(f"/jobs/{job_id}/status", headers=finance)
    assert 'data-testid="job-state">已完成<' in part.text and "hx-trigger" not in part.text  # polling stops
    link = part.text.split('data-testid="job-result-link"')[0].rsplit('href="', 1)[1].split('"')[0]
    assert link.startswith("/rules?run=")
    assert 'data-testid="run-done"' in web.get(link, headers=finance).text
    assert f'href="/jobs/{job_id}"' in web.get("/jobs", headers=finance).text


def test_cancel_from_the_page(web, auth):
    finance = auth("city_finance")
    job_id = int(web.post("/rules/run", headers=finance, follow_redirects=False).headers["location"].rsplit("/", 1)[1])
    r = web.post(f"/jobs/{job_id}/cancel", headers=finance, follow_redirects=False)
    assert r.status_code == 303
    page = web.get(f"/jobs/{job_id}", headers=finance)
    assert 'data-testid="job-cancelled"' in page.text and "hx-trigger" not in page.text
    assert web.post(f"/api/v1/jobs/{job_id}/cancel", headers=finance).status_code == 409


def test_the_background_runner_of_ykt_demo_runs_what_the_pages_queue(city):
    from yikatong.jobs.runner import run_in_background

    job_id = _start("test.count")
    stop = run_in_background(poll=0.05)
    try:
        _wait(lambda: _job(job_id).status == "已完成")
    finally:
        stop.set()
