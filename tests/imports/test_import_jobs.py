"""A large file uploaded on the import page is imported by a job: the page answers at once with the
job's page (htmx follows HX-Redirect), the worker imports it all or nothing, the report shows on the
import page, and the stored upload is deleted when the job ends; a cancelled import writes nothing."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import update

from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session, transaction
from yikatong.core.settings import get_settings
from yikatong.jobs import service as jobs
from yikatong.jobs.models import Job, JobStatus
from yikatong.jobs.runner import Runner, upload_path

from .conftest import NOW, csv_bytes
from .test_service import PERSON_HEADERS, person_rows
from .test_views import client, login, stored  # noqa: F401 - the module's client fixture


@pytest.fixture
def small_limit(monkeypatch):
    monkeypatch.setenv("YKT_IMPORT_JOB_BYTES", "200")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    with transaction() as s:  # nothing left queued for other tests' runners
        s.execute(update(Job).where(Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
                  .values(status=JobStatus.CANCELLED.value, finished_at=NOW))


def _job_id(location: str) -> int:
    assert location.startswith("/jobs/"), location
    return int(location.rsplit("/", 1)[1])


def test_a_large_upload_is_imported_by_a_job(client, area, small_limit):  # noqa: F811
    headers = login(client, area.county_user)
    rows = person_rows(area, 5)
    data = csv_bytes(PERSON_HEADERS, rows)
    assert len(data) > 200
    files = {"file": ("p.csv", data, "text/csv")}
    r = client.post("/imports", headers={**headers, "HX-Request": "true"}, data={"kind": "persons"}, files=files)
    assert r.status_code == 200 and r.headers["HX-Redirect"].startswith("/jobs/")
    job_id = _job_id(r.headers["HX-Redirect"])
    assert upload_path(job_id).read_bytes() == data and stored(rows[0][0]) is None  # stored, not yet imported

    assert Runner(FixedClock(NOW)).run_once() == job_id
    assert all(stored(row[0]) is not None for row in rows)
    assert not upload_path(job_id).exists()  # personal data: gone once imported
    page = client.get(f"/jobs/{job_id}", headers=headers)
    assert 'data-testid="job-summary"' in page.text and "新增 5" in page.text
    report = client.get(f"/imports?job={job_id}", headers=headers)
    assert 'data-testid="import-ok"' in report.text and 'data-testid="import-added">5<' in report.text


def test_a_cancelled_import_writes_nothing(client, area, small_limit):  # noqa: F811
    headers = login(client, area.county_user)
    rows = person_rows(area, 5)
    files = {"file": ("p.csv", csv_bytes(PERSON_HEADERS, rows), "text/csv")}
    r = client.post("/imports", headers=headers, data={"kind": "persons"}, files=files, follow_redirects=False)
    assert r.status_code == 303
    job_id = _job_id(r.headers["location"])

    def cancel_while_checking(stage: str, done: int, total: int) -> None:
        # while it checks the rows (on SQLite a cancel during the write phase waits for the write to end)
        with new_session() as s:
            if stage != "校验" or s.get(Job, job_id).cancel_requested:
                return
        with transaction() as s:
            jobs.cancel(s, None, job_id, NOW)
        time.sleep(0.3)  # a few heartbeats: the runner reads the request

    Runner(FixedClock(NOW), beat_seconds=0.05, on_progress=cancel_while_checking).run_once()
    with new_session() as s:
        assert s.get(Job, job_id).status == "已取消"
    assert all(stored(row[0]) is None for row in rows)
    assert not upload_path(job_id).exists()


def test_a_small_upload_is_still_imported_in_the_request(client, area):  # noqa: F811
    headers = login(client, area.county_user)
    rows = person_rows(area, 2)
    files = {"file": ("p.csv", csv_bytes(PERSON_HEADERS, rows), "text/csv")}
    r = client.post("/imports", headers=headers, data={"kind": "persons"}, files=files)
    assert r.status_code == 200 and 'data-testid="import-ok"' in r.text
