"""Two verifiers deciding the same flag at the same moment (threads released together by a barrier,
a session each, committed data): exactly one succeeds, the other gets a Conflict asking to refresh —
never two verdicts on the trail, never two leads, never another error. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from yikatong.core.db import new_session
from yikatong.core.errors import Conflict
from yikatong.interception import service as interception
from yikatong.interception.models import Flag, FlagStatus, Lead
from yikatong.security.models import User
from yikatong.workflow.models import Action, Application, ReviewRecord, Status

from .test_flag_pages import MONDAY, flagged, rule_version  # noqa: F401 - rule_version is a fixture

RACED = "该存疑信息已被他人核实，请刷新"


def _race(flag_id: int, confirms: tuple[bool, bool]) -> list[str]:
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def verify(confirm: bool) -> None:
        with new_session() as s:
            try:
                user = s.scalar(select(User).where(User.username == "county_handler"))
                flag = s.get(Flag, flag_id)
                barrier.wait(timeout=30)
                interception.verify(s, flag, user, confirm=confirm, opinion="并发核实", document_sha256=None,
                                    now=MONDAY)
                s.commit()
                outcomes.append("ok")
            except Conflict as e:
                s.rollback()
                outcomes.append(e.message)
            except Exception as e:  # noqa: BLE001 - any other error is what the test reports
                s.rollback()
                outcomes.append(repr(e))

    threads = [threading.Thread(target=verify, args=(c,)) for c in confirms]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


@pytest.mark.parametrize("confirms", [(True, True), (True, False), (False, False)],
                         ids=["both-confirm", "confirm-and-clear", "both-clear"])
def test_two_verifiers_at_once_one_verdict(rule_version, confirms):  # noqa: F811
    for _ in range(3):
        app_id, [flag_id] = flagged(("测试：并发核实",))
        outcomes = _race(flag_id, confirms)
        assert sorted(outcomes) == ["ok", RACED], outcomes
        with new_session() as s:
            flag = s.get(Flag, flag_id)
            verdicts = s.scalar(select(func.count()).select_from(ReviewRecord).where(
                ReviewRecord.application_id == app_id,
                ReviewRecord.action.in_((Action.FLAG_CONFIRMED.value, Action.FLAG_CLEARED.value))))
            rejections = s.scalar(select(func.count()).select_from(ReviewRecord).where(
                ReviewRecord.application_id == app_id, ReviewRecord.action == Action.REJECT.value))
            leads = s.scalar(select(func.count()).select_from(Lead).where(Lead.flag_id == flag_id))
            app = s.get(Application, app_id)
            assert verdicts == 1 and app.open_flags == 0
            if flag.status == FlagStatus.CONFIRMED:
                assert (leads, rejections, app.status) == (1, 1, Status.REJECTED)
            else:
                assert (leads, rejections, app.status) == (0, 0, Status.OPEN)
