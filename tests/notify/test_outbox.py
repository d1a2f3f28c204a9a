"""The transactional outbox under crashes and failures: every message reaches its person exactly
once, a failure is kept and retried with backoff, and a scan that does not commit leaves nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session, transaction
from yikatong.notify.dispatcher import MAX_ATTEMPTS, Dispatcher, retry_delay
from yikatong.notify.models import OutboxMessage, OutboxStatus
from yikatong.notify.notifier import GatewaySimulator, SimulatedCrash
from yikatong.notify.service import Draft, enqueue
from yikatong.security.models import User
from yikatong.workflow.eye import scan
from yikatong.workflow.models import Application

from .conftest import FRIDAY, NEXT_TUESDAY, at


def user_id(name: str) -> int:
    with new_session() as s:
        return s.scalar(select(User.id).where(User.username == name))


def flags(app_ids: list[int]) -> list[tuple[bool, bool]]:
    with new_session() as s:
        return [(a.reminded, a.escalated) for a in s.scalars(select(Application).where(Application.id.in_(app_ids))
                                                              .order_by(Application.id))]


def test_crash_after_sending_before_marking_delivers_every_message_exactly_once(committed_area):
    area = committed_area(2)
    supervisor = user_id("supervisor")
    for day in (FRIDAY, NEXT_TUESDAY):  # a reminder on Friday, escalations on Tuesday; each scan commits
        with transaction() as s:
            scan(s, at(day), region=area.village)
    with new_session() as s:
        mine = area.outbox(s, area.clerk_id, supervisor)
        keys = [m.dedupe_key for m in mine]
    assert len(keys) == 3 and len(set(keys)) == 3  # reminder to the clerk; escalation to clerk and supervisor
    assert flags(area.app_ids) == [(True, True), (True, True)]

    gateway = GatewaySimulator()
    gateway.crash_on(keys[0])  # message 1 goes out, then the worker dies before marking it sent
    clock = FixedClock(at(NEXT_TUESDAY, 9))
    with pytest.raises(SimulatedCrash):
        Dispatcher(gateway, clock).run()
    with new_session() as s:
        first = s.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == keys[0]))
        assert (first.status, first.attempts) == (OutboxStatus.PENDING, 0)  # the crashed transaction left nothing

    report = Dispatcher(gateway, clock).run()  # the restart
    assert report.sent >= 3 and report.failed == 0
    assert all(gateway.deliveries[k] == 1 for k in keys)  # exactly once at the person's side
    assert gateway.calls[keys[0]] == 2  # ...although the first message was handed over twice
    with new_session() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key.in_(keys))).all()
        assert {r.status for r in rows} == {OutboxStatus.SENT} and all(r.sent_at == clock.now() for r in rows)
    Dispatcher(gateway, clock).run()  # nothing of ours is handed over again
    assert [gateway.calls[k] for k in keys] == [2, 1, 1]


def test_a_scan_that_does_not_commit_leaves_neither_flags_nor_messages(committed_area):
    area = committed_area(2)

    class Crash(Exception):
        pass

    with pytest.raises(Crash), transaction() as s:
        report = scan(s, at(FRIDAY), region=area.village)
        assert report.reminded == 2 and report.reminders == 1
        raise Crash  # the process dies before the commit
    assert flags(area.app_ids) == [(False, False), (False, False)]
    with new_session() as s:
        assert area.outbox(s) == []

    with transaction() as s:  # the restart: the same reminder, not lost, written once
        again = scan(s, at(FRIDAY, 9), region=area.village)
    assert (again.reminded, again.reminders) == (2, 1)
    with new_session() as s:
        [message] = area.outbox(s)
        assert message.kind == "reminder" and message.status == OutboxStatus.PENDING
    assert flags(area.app_ids) == [(True, False), (True, False)]
    with transaction() as s:
        assert scan(s, at(FRIDAY, 10), region=area.village).reminders == 0


def _draft(key: str, clerk_id: int) -> Draft:
    return Draft(dedupe_key=key, kind="test", user_id=clerk_id, channel="wechat", title="测试消息", body="测试")


def test_a_failure_stays_pending_with_the_error_and_is_retried_with_backoff(committed_area):
    import uuid

    area = committed_area(0)
    key = f"test:{uuid.uuid4().hex}"
    clock = FixedClock(at(FRIDAY))
    with transaction() as s:
        assert enqueue(s, [_draft(key, area.clerk_id)], clock.now()) == [key]
        assert enqueue(s, [_draft(key, area.clerk_id)], clock.now()) == []  # the same key is written once

    def row() -> OutboxMessage:
        with new_session() as s:
            return s.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == key))

    gateway = GatewaySimulator()
    gateway.fail_key(key, "网关超时")
    dispatcher = Dispatcher(gateway, clock)
    report = dispatcher.run()
    assert report.retrying >= 1 and any("网关超时" in e for e in report.errors)
    r = row()
    assert (r.status, r.attempts, r.last_error, r.sent_at) == (OutboxStatus.PENDING, 1, "网关超时", None)

    dispatcher.run()  # too early: not tried again
    assert row().attempts == 1
    clock.advance(seconds=retry_delay(1).total_seconds() - 1)
    Dispatcher(gateway, clock).run()  # a fresh worker follows the same schedule
    assert row().attempts == 1
    clock.advance(seconds=1)
    dispatcher.run()
    assert row().attempts == 2

    gateway.fail_key(key, None)  # the gateway is back
    clock.advance(seconds=retry_delay(2).total_seconds())
    dispatcher.run()
    r = row()
    assert (r.status, r.attempts) == (OutboxStatus.SENT, 3) and gateway.deliveries[key] == 1


def test_after_max_attempts_the_message_is_given_up(committed_area):
    import uuid

    area = committed_area(0)
    key = f"test:{uuid.uuid4().hex}"
    clock = FixedClock(at(FRIDAY))
    with transaction() as s:
        enqueue(s, [_draft(key, area.clerk_id)], clock.now())
    gateway = GatewaySimulator()
    gateway.fail_key(key, "号码不存在")
    for _ in range(MAX_ATTEMPTS + 2):
        Dispatcher(gateway, clock).run()
        clock.advance(seconds=retry_delay(MAX_ATTEMPTS).total_seconds())
    with new_session() as s:
        r = s.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == key))
        assert (r.status, r.attempts, r.last_error) == (OutboxStatus.FAILED, MAX_ATTEMPTS, "号码不存在")
    assert gateway.calls[key] == MAX_ATTEMPTS and gateway.deliveries[key] == 0


def test_the_backoff_holds_when_the_message_is_long_past_due(committed_area):
    """A message written long ago (the worker was down) is not retried on every round."""
    import uuid

    area = committed_area(0)
    key = f"test:{uuid.uuid4().hex}"
    clock = FixedClock(at(FRIDAY))
    with transaction() as s:
        enqueue(s, [_draft(key, area.clerk_id)], clock.now() - timedelta(days=1))
    gateway = GatewaySimulator()
    gateway.fail_key(key, "网关超时")
    dispatcher = Dispatcher(gateway, clock)
    dispatcher.run()
    dispatcher.run()
    assert gateway.calls[key] == 1
    clock.advance(seconds=retry_delay(1).total_seconds())
    dispatcher.run()
    assert gateway.calls[key] == 2
    gateway.fail_key(key, None)
    clock.advance(hours=1)
    dispatcher.run()
    assert gateway.deliveries[key] == 1


def _is_postgres() -> bool:
    from yikatong.core.db import engine

    return engine().dialect.name == "postgresql"


@pytest.mark.skipif("not _is_postgres()", reason="row locks: PostgreSQL (SQLite has a single writer)")
def test_two_workers_never_take_the_same_row(committed_area):
    import uuid

    area = committed_area(0)
    keys = [f"test:{uuid.uuid4().hex}" for _ in range(2)]
    clock = FixedClock(at(FRIDAY))
    with transaction() as s:
        enqueue(s, [_draft(k, area.clerk_id) for k in keys], clock.now())
    gateway = GatewaySimulator()
    with new_session() as other, other.begin():  # another worker is sending the first message right now
        other.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key == keys[0]).with_for_update()).one()
        report = Dispatcher(gateway, clock).run()
        assert report.skipped >= 1
        assert gateway.calls[keys[0]] == 0 and gateway.deliveries[keys[1]] == 1
    Dispatcher(gateway, clock).run()
    assert gateway.deliveries[keys[0]] == 1


@pytest.mark.skipif("not _is_postgres()", reason="concurrent scans: PostgreSQL")
def test_two_scans_at_once_write_each_digest_once(committed_area):
    import threading

    area = committed_area(2)
    results = {}
    first = new_session()
    try:
        results["first"] = scan(first, at(FRIDAY), region=area.village)  # holds the scan lock, not committed

        def second() -> None:
            with transaction() as s:
                results["second"] = scan(s, at(FRIDAY), region=area.village)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=1)
        assert thread.is_alive()  # waiting for the first scan's lock
        first.commit()
        thread.join(timeout=30)
        assert not thread.is_alive()
    finally:
        first.close()
    assert (results["first"].reminders, results["second"].reminders, results["second"].reminded) == (1, 0, 0)
    with new_session() as s:
        assert len(area.outbox(s)) == 1
