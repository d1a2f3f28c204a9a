"""A supervisor's rule that passes the checker but would run for minutes is stopped at the time limit
(YKT_RULE_TIMEOUT_SECONDS) with a Chinese message, in a dry run and in a city run, while the web
server keeps answering; both run as jobs, off the request."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session
from yikatong.core.settings import get_settings
from yikatong.interception import authoring
from yikatong.jobs.models import Job
from yikatong.jobs.runner import Runner

from .conftest import NOW

LIMIT = 2
RUNAWAY = {
    "repeat": "SELECT a.application_id, repeat('x', 2000000000) AS evidence FROM applications a",
    "cross join": "SELECT a.application_id, b.number || c.number AS evidence "
                  "FROM applications a, applications b, applications c",
}
STOPPED = f"规则运行超过{LIMIT}秒，已停止：请缩小范围或改写规则"


@pytest.fixture
def short_limit(monkeypatch):
    monkeypatch.setenv("YKT_RULE_TIMEOUT_SECONDS", str(LIMIT))
    get_settings.cache_clear()
    yield LIMIT
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_runaway_rules_pass_the_checker():
    for sql in RUNAWAY.values():
        authoring.validate_sql(sql)


def _job(job_id: int) -> Job:
    with new_session() as s:
        return s.get(Job, job_id)


@pytest.mark.parametrize("name", list(RUNAWAY))
def test_a_runaway_dry_run_is_stopped_at_the_limit_and_the_server_answers_meanwhile(name, web, auth, rule,
                                                                                    short_limit):
    supervisor = auth("supervisor")
    code = rule(RUNAWAY[name])
    started = time.perf_counter()
    r = web.post(f"/rules/{code}/versions/1/dry-run", headers=supervisor, follow_redirects=False)
    assert r.status_code == 303 and time.perf_counter() - started < 2  # the page answers at once
    job_id = int(r.headers["location"].rsplit("/", 1)[1])

    runner = threading.Thread(target=Runner(FixedClock(NOW), beat_seconds=0.2).run_once)
    begun = time.perf_counter()
    runner.start()
    answers = []
    while runner.is_alive():  # the worker runs the rule; the web server keeps answering
        asked = time.perf_counter()
        page = web.get(f"/jobs/{job_id}/status", headers=supervisor)
        assert page.status_code == 200
        answers.append(time.perf_counter() - asked)
        time.sleep(0.2)
    runner.join()
    took = time.perf_counter() - begun
    job = _job(job_id)
    assert job.status == "失败" and STOPPED in job.error, job.error
    assert took < LIMIT + 60, took  # unbounded, either rule runs for hours
    assert answers and max(answers) < 1.5, answers
    page = web.get(f"/jobs/{job_id}", headers=supervisor)
    assert STOPPED in page.text and 'data-testid="job-error"' in page.text
    with new_session() as s:  # a failed dry run stores no figures
        assert authoring.get_version(s, code, 1).dry_run_at is None


def test_a_runaway_rule_in_the_city_run_is_stopped_and_the_others_still_run(web, auth, rule, only_my_rules,
                                                                             short_limit):
    from yikatong.interception.models import Flag
    from yikatong.jobs.service import result_of
    from yikatong.workflow.models import Application

    finance = auth("city_finance")
    with new_session() as s:
        number = s.scalar(select(Application.number).where(Application.status == "办理中")
                          .order_by(Application.id.desc()).limit(1))
    runaway = rule(RUNAWAY["cross join"], active=True)
    fine = rule(f"SELECT a.application_id, '限时测试' AS evidence FROM applications a WHERE a.number = '{number}'",
                active=True)
    job_id = int(web.post("/rules/run", headers=finance, follow_redirects=False).headers["location"]
                 .rsplit("/", 1)[1])
    started = time.perf_counter()
    Runner(FixedClock(NOW)).run_once()
    assert time.perf_counter() - started < LIMIT + 60
    job = _job(job_id)
    assert job.status == "已完成", job.error
    page = web.get(f"/rules?run={result_of(job)['run_id']}", headers=finance)
    assert f"{runaway}（规则{runaway}：{STOPPED}）" in page.text
    with new_session() as s:
        assert s.scalar(select(Flag.id).where(Flag.rule_code == runaway)) is None
        assert s.scalar(select(Flag.evidence).where(Flag.rule_code == fine)) == "限时测试"
