"""`ykt jobs ...` and `ykt intercept run --job`: queue a city run, list it, run it here with a
progress bar, show its result; cancelling a finished job is refused; `ykt worker --once` runs queued
jobs too."""

from __future__ import annotations

import re

from sqlalchemy import select
from typer.testing import CliRunner

from yikatong.cli import app
from yikatong.core.db import new_session
from yikatong.jobs.models import Job

runner = CliRunner()


def _queued(output: str) -> int:
    found = re.search(r"后台任务 #(\d+)", output)
    assert found, output
    return int(found.group(1))


def test_queue_list_run_show_and_cancel(city, only_my_rules):
    result = runner.invoke(app, ["intercept", "run", "--job", "--user", "city_finance"])
    assert result.exit_code == 0, result.output
    job_id = _queued(result.output)
    listed = runner.invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0 and str(job_id) in listed.output and "排队中" in listed.output

    ran = runner.invoke(app, ["jobs", "run-once"])
    assert ran.exit_code == 0, ran.output
    assert f"任务 #{job_id}" in ran.output and "已完成" in ran.output and '"run_id"' in ran.output
    shown = runner.invoke(app, ["jobs", "show", str(job_id)])
    assert shown.exit_code == 0 and "已完成" in shown.output and "新增存疑信息" in shown.output

    refused = runner.invoke(app, ["jobs", "cancel", str(job_id)])
    assert refused.exit_code == 1 and "不能取消" in refused.output
    assert runner.invoke(app, ["jobs", "run-once"]).output.strip() == "没有排队中的任务"
    assert runner.invoke(app, ["jobs", "show", "999999999"]).exit_code == 1


def test_cancel_a_queued_job_and_the_worker_runs_the_others(city, only_my_rules):
    first = _queued(runner.invoke(app, ["intercept", "run", "--job"]).output)
    second = _queued(runner.invoke(app, ["intercept", "run", "--job"]).output)
    cancelled = runner.invoke(app, ["jobs", "cancel", str(first)])
    assert cancelled.exit_code == 0 and "已取消" in cancelled.output
    # a region nobody lives in: the electronic eye has nothing to do there, the jobs run all the same
    worker = runner.invoke(app, ["worker", "--once", "--sink", "console", "--region", "990101"])
    assert worker.exit_code == 0, worker.output
    assert re.search(r"后台任务 1\s*个", worker.output), worker.output
    with new_session() as s:
        assert [s.get(Job, i).status for i in (first, second)] == ["已取消", "已完成"]
        assert s.scalar(select(Job.id).where(Job.status == "排队中")) is None
