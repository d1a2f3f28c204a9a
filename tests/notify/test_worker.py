"""`ykt worker`: plain-words help, and one round against the test database that scans, writes the
digest to the outbox and delivers it to the file sink."""

from __future__ import annotations

import json

from sqlalchemy import select
from typer.testing import CliRunner

from yikatong.cli import app
from yikatong.core import clock as clocks
from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session
from yikatong.core.settings import get_settings
from yikatong.notify.models import OutboxMessage, OutboxStatus
from yikatong.workflow.models import Application

from .conftest import FRIDAY, at

runner = CliRunner()


def test_worker_help_is_in_plain_words():
    result = runner.invoke(app, ["worker", "--help"])
    assert result.exit_code == 0
    for words in ("--once", "--interval", "--sink", "--region", "electronic eye", "exactly once", "Ctrl-C"):
        assert words in result.output


def test_worker_once_reminds_and_delivers_to_the_file(committed_area, monkeypatch):
    area = committed_area(2)
    monkeypatch.setattr(clocks, "system_clock", FixedClock(at(FRIDAY)))
    result = runner.invoke(app, ["worker", "--once", "--sink", "file", "--region", area.village])
    assert result.exit_code == 0, result.output
    output = "".join(result.output.split())
    assert "第1轮" in output and "到期提醒2件/1条" in output and "发送失败0条" in output
    with new_session() as s:
        [message] = area.outbox(s)
        assert (message.kind, message.status, message.sent_at) == ("reminder", OutboxStatus.SENT, at(FRIDAY))
        assert all(s.get(Application, i).reminded for i in area.app_ids)
    lines = [json.loads(line) for line in
             (get_settings().data_dir / "outbox" / "messages.jsonl").read_text("utf-8").splitlines()]
    assert [line["dedupe_key"] for line in lines].count(message.dedupe_key) == 1

    again = runner.invoke(app, ["worker", "--once", "--sink", "file", "--region", area.village])
    assert again.exit_code == 0 and "到期提醒0件/0条" in "".join(again.output.split())
    with new_session() as s:
        assert len(area.outbox(s)) == 1
        assert s.scalar(select(OutboxMessage.status).where(OutboxMessage.id == message.id)) == OutboxStatus.SENT


def test_worker_refuses_a_bad_region_and_an_unconfigured_gateway(monkeypatch):
    bad = runner.invoke(app, ["worker", "--once", "--region", "12x"])
    assert bad.exit_code != 0 and "区划代码格式错误" in bad.output
    gateway = runner.invoke(app, ["worker", "--once", "--sink", "gateway"])
    assert gateway.exit_code != 0 and "YKT_WECHAT_URL" in str(gateway.exception or gateway.output)
