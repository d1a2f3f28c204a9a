"""Jobs tests: the web client, logins, and supervisor rules of their own (requests commit, so every
rule has a fresh code and every active rule is switched off during a test and back on after it)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from yikatong.core.clock import FixedClock
from yikatong.core.db import transaction

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PASSWORD = "ykt-demo-2026"


@pytest.fixture
def web(city):
    from yikatong.web.app import create_app

    with TestClient(create_app(clock=FixedClock(NOW))) as client:
        yield client


@pytest.fixture
def auth(web):
    tokens: dict[str, str] = {}

    def headers(username: str) -> dict[str, str]:
        if username not in tokens:
            r = web.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
            assert r.status_code == 200, r.text
            tokens[username] = r.json()["token"]
        return {"Authorization": f"Bearer {tokens[username]}"}

    return headers


@pytest.fixture(autouse=True)
def no_jobs_left(migrated):
    """Queued jobs a test leaves would be run by the next test's runner (or by `ykt worker --once`):
    cancel them."""
    yield
    from yikatong.jobs.models import Job, JobStatus

    with transaction() as s:
        s.execute(update(Job).where(Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
                  .values(status=JobStatus.CANCELLED.value, finished_at=NOW))


@pytest.fixture
def only_my_rules(city):
    from yikatong.interception import service
    from yikatong.interception.models import Rule

    with transaction() as s:
        service.sync_builtin_rules(s, NOW)
        was_on = [r.code for r in s.scalars(select(Rule).where(Rule.active))]
        for r in s.scalars(select(Rule).where(Rule.code.in_(was_on))):
            r.active = False
    yield
    with transaction() as s:
        for r in s.scalars(select(Rule).where(Rule.code.in_(was_on))):
            r.active = True
        for r in s.scalars(select(Rule).where(Rule.code.like("J\\_%", escape="\\"), Rule.active)):
            r.active = False


@pytest.fixture
def rule():
    """rule(sql, active=False) -> code: a supervisor's rule saved (and, if asked, switched on)."""
    from yikatong.interception import authoring
    from yikatong.security.models import User

    def make(sql: str, active: bool = False) -> str:
        code = "J_" + uuid.uuid4().hex[:10].upper()
        with transaction() as s:
            supervisor = s.scalar(select(User).where(User.username == "supervisor"))
            version = authoring.save_rule(s, supervisor, code=code, name="任务测试规则", explanation="任务测试",
                                          severity="中", items="all", sql=sql, now=NOW)
            if active:
                version.dry_run_at = NOW
                authoring.activate(s, supervisor, version, NOW)
        return code

    return make
