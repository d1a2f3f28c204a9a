"""Two pre-payment gates over the same applications at the same moment (threads released together,
a session each, committed data): each application moves to 待支付 once — by one gate, the other
reports it as 待支付 — with one 转入待支付 record, and neither gate errs. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from yikatong.core.db import new_session, transaction
from yikatong.interception import screening
from yikatong.interception import service as interception
from yikatong.interception.models import Flag
from yikatong.workflow.models import Action, Application, ReviewRecord, Status

from .test_flag_pages import MONDAY, rule_version  # noqa: F401 - rule_version is a fixture
from .test_gate_pages import GATE_RULE, _active_rule_hitting, _approved, _off


def _race(ids: list[int]) -> list[object]:
    """Two gates over `ids`, released together; what each returned (or the error it raised)."""
    barrier = threading.Barrier(2)
    results: list[object] = []

    def gate() -> None:
        with new_session() as s:
            try:
                barrier.wait(timeout=30)
                result = interception.gate(s, ids, MONDAY)
                s.commit()
                results.append(result)
            except Exception as e:  # noqa: BLE001 - any error is what the test reports
                s.rollback()
                results.append(repr(e))

    threads = [threading.Thread(target=gate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(isinstance(r, interception.GateResult) for r in results), results
    return results


def test_two_gates_at_once_move_each_application_once(rule_version):  # noqa: F811
    ids = [_approved() for _ in range(3)]
    with transaction() as s:  # the rule files are in the database before the race (a first sync is not raced here)
        screening.sync_builtin_rules(s, MONDAY)
    results = _race(ids)
    moved = sorted(i for r in results for i in r.allowed)
    reported = sorted(i for r in results for i, status in r.not_payable.items() if status == Status.PAYABLE)
    assert moved == ids and reported == ids
    with new_session() as s:
        assert {s.get(Application, i).status for i in ids} == {Status.PAYABLE.value}
        records = s.scalar(select(func.count()).select_from(ReviewRecord).where(
            ReviewRecord.application_id.in_(ids), ReviewRecord.action == Action.PAYABLE.value))
        assert records == len(ids)


def test_two_gates_finding_the_same_new_flag_record_it_once(rule_version):  # noqa: F811
    """Both gates run the rule and find the same fact at once: the unique index on (application, rule,
    fact key) keeps one flag, the other gate writes nothing and errs not; both report it blocked."""
    app_id = _approved()
    with transaction() as s:
        screening.sync_builtin_rules(s, MONDAY)
    _active_rule_hitting(app_id)
    try:
        results = _race([app_id])
    finally:
        _off()
    assert all([b.application_id for b in r.blocked] == [app_id] for r in results)
    assert sum(r.new_flags for r in results) == 1
    with new_session() as s:
        flags = s.scalars(select(Flag).where(Flag.application_id == app_id, Flag.rule_code == GATE_RULE)).all()
        assert len(flags) == 1
        assert s.get(Application, app_id).open_flags == 1 and s.get(Application, app_id).status == Status.APPROVED
        raised = s.scalar(select(func.count()).select_from(ReviewRecord).where(
            ReviewRecord.application_id == app_id, ReviewRecord.action == Action.FLAG_RAISED.value))
        assert raised == 1
