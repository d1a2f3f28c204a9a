"""`ykt user create`: the account can log in, has the given scope, and the creation is audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from typer.testing import CliRunner

from yikatong.cli import app
from yikatong.core.errors import AuthRequired
from yikatong.security.models import AuditEvent, User
from yikatong.security.service import login


def test_create_user_from_the_command_line(db, city):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(app, ["user", "create", name, "--role", "township_reviewer",
                                      "--region", "511025000000", "--name", "测试审核员",
                                      "--password", "a-long-password"])
    assert result.exit_code == 0, result.output
    assert "已创建用户" in result.output
    user = db.scalar(select(User).where(User.username == name))
    assert (user.role, user.region_code, user.display_name) == ("township_reviewer", "511025000000", "测试审核员")
    assert user.password_hash.startswith("$argon2")
    assert login(db, name, "a-long-password", datetime(2026, 3, 1, tzinfo=UTC))[0].id == user.id
    try:
        login(db, name, "wrong-password!", datetime(2026, 3, 1, tzinfo=UTC))
        raise AssertionError("a wrong password was accepted")
    except AuthRequired:
        pass
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.action == "user.create",
                                                 AuditEvent.object_id == str(user.id)))


def test_bad_input_is_refused_in_chinese(city):
    runner = CliRunner()
    short = runner.invoke(app, ["user", "create", f"cli-{uuid.uuid4().hex[:8]}", "--role", "village_clerk",
                                "--region", "511025000000", "--password", "short"])
    assert short.exit_code != 0 and "密码至少8位" in str(short.exception or short.output)
    unknown = runner.invoke(app, ["user", "create", f"cli-{uuid.uuid4().hex[:8]}", "--role", "village_clerk",
                                  "--region", "999999999999", "--password", "a-long-password"])
    assert unknown.exit_code != 0 and "区划代码不存在" in str(unknown.exception or unknown.output)


def test_the_ykt_command_prints_the_reason_not_a_traceback(city):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "yikatong.cli", "user", "create", "nobody-x", "--role",
                           "village_clerk", "--region", "999999999999", "--password", "a-long-password"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "错误：区划代码不存在：999999999999" in done.stderr and "Traceback" not in done.stderr
