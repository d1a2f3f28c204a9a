"""A large delivery uploaded on the data set page is imported by a job: the page answers at once with
the job's page, the worker stores the snapshot, the outcome shows on the data set page; run again after
its runner died, the job does not store the delivery twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session, transaction
from yikatong.core.settings import get_settings
from yikatong.jobs import service as jobs
from yikatong.jobs.models import Job, JobStatus
from yikatong.jobs.runner import JobContext, Runner, upload_path
from yikatong.sharing.jobs import shared_import
from yikatong.sharing.models import SharedSnapshot

from .conftest import DEATH_HEADERS, NOW, agency, csv_bytes, death_rows, remove_snapshots


@pytest.fixture
def small_limit(monkeypatch):
    monkeypatch.setenv("YKT_IMPORT_JOB_BYTES", "200")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    with transaction() as s:
        s.execute(update(Job).where(Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
                  .values(status=JobStatus.CANCELLED.value, finished_at=NOW))


def _mine(name: str) -> list[SharedSnapshot]:
    with new_session() as s:
        return list(s.scalars(select(SharedSnapshot).where(SharedSnapshot.agency == name)))


def test_a_large_delivery_is_imported_by_a_job_once(web, auth, small_limit):
    headers = auth("city_finance")
    name = agency()
    try:
        data = csv_bytes(DEATH_HEADERS, death_rows(6))
        r = web.post("/sharing/deaths", headers=headers, files={"file": ("死亡.csv", data, "text/csv")},
                     data={"agency": name, "as_of": "2026-10-31"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/jobs/")
        job_id = int(r.headers["location"].rsplit("/", 1)[1])
        assert upload_path(job_id).exists() and not _mine(name)

        # a runner stores the delivery and dies before recording the end; after the limit it runs again
        with transaction() as s:
            assert jobs.claim(s, "dead-worker", NOW, 60) == (job_id, 1)
        with new_session() as s:
            ctx = JobContext(job_id, jobs.params_of(s.get(Job, job_id)), s.get(Job, job_id).started_by, NOW)
        path = upload_path(job_id)
        kept = path.read_bytes()
        shared_import(ctx)
        path.write_bytes(kept)  # it died before deleting the upload
        assert len(_mine(name)) == 1
        Runner(FixedClock(NOW + timedelta(seconds=61)), stale_seconds=60).run_once()
        with new_session() as s:
            job = s.get(Job, job_id)
            assert (job.status, job.attempts) == ("已完成", 2) and "不重复导入" in job.log
        assert len(_mine(name)) == 1 and _mine(name)[0].rows == 6
        assert not upload_path(job_id).exists()

        # a fresh one, run straight through, shows its outcome on the data set page
        r = web.post("/sharing/deaths", headers={**headers, "HX-Request": "true"},
                     files={"file": ("死亡2.csv", csv_bytes(DEATH_HEADERS, death_rows(6)), "text/csv")},
                     data={"agency": name, "as_of": "2026-10-30"})
        job_id = int(r.headers["HX-Redirect"].rsplit("/", 1)[1])
        Runner(FixedClock(NOW)).run_once()
        page = web.get(f"/jobs/{job_id}", headers=headers)
        assert "已保存 6 行" in page.text
        outcome = web.get(f"/sharing/deaths?job={job_id}", headers=headers)
        assert 'data-testid="sharing-ok"' in outcome.text and "死亡2.csv" in outcome.text
        assert len(_mine(name)) == 2
    finally:
        remove_snapshots(name)
