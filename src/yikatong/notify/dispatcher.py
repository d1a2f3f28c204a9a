"""The outbox dispatcher: delivers 待发送 messages, each exactly once.

Why exactly once, step by step:

1. A message is born in the transaction that causes it (the electronic eye writes the reminder in
   the transaction that sets `reminded`, the bank's return writes the arrival SMS in the transaction
   that marks the order paid: disbursement.arrival). Both commit or neither does, so a crash before
   the commit loses no reminder (the rerun finds the application still unreminded) and a commit
   never leaves a flag without its message.
2. The outbox's `dedupe_key` is unique: writing the same message twice leaves one row.
3. The dispatcher takes one row at a time in its own short transaction — on PostgreSQL with
   SELECT .. FOR UPDATE SKIP LOCKED, so two workers never hold the same row — sends it, and marks
   it 已发送 in that same transaction. SQLite has a single writer; run one worker there.
4. If the worker dies after the gateway accepted the message but before the commit, the row is
   still 待发送 and is sent again after the restart — with the same dedupe key, which every notifier
   hands to its gateway as the idempotency key (WeChat `client_msg_id`, the SMS gateway's `out_id`,
   FileSink's own key check). The gateway drops the repeat, so the person gets it once. Delivery is
   at-least-once from the database's side and exactly-once at the person's side because the last
   hop is idempotent; a gateway that forgets keys (WeChat keeps them 10 minutes) narrows that to
   "exactly once unless the worker stays down longer than the gateway remembers".

A failed send (NotifyError, or any error of the notifier) adds one to `attempts`, keeps the error
in `last_error` and sets `next_attempt_at` with exponential backoff (1, 2, 4 ... minutes after the
failure); the row stays 待发送 and becomes 发送失败 after MAX_ATTEMPTS. The schedule lives in the
row, so it holds across restarts and workers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from yikatong.core.clock import Clock, system_clock
from yikatong.core.db import new_session
from yikatong.notify.models import OutboxMessage, OutboxStatus
from yikatong.notify.notifier import Notifier, NotifyError, OutgoingMessage
from yikatong.notify.service import recipient_of, recipient_of_person
from yikatong.registry.models import Person
from yikatong.security.models import User

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
RETRY_BASE = timedelta(minutes=1)
BATCH = 50


def retry_delay(attempts: int) -> timedelta:
    """How long after its `attempts`-th failure a message is tried again: 1, 2, 4 ... minutes."""
    return RETRY_BASE * 2 ** (attempts - 1)


def due_condition(now: datetime):
    """SQL: pending rows never tried, or whose next attempt is due."""
    return and_(OutboxMessage.status == OutboxStatus.PENDING.value,
                or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now))


@dataclass
class DispatchReport:
    sent: int = 0
    retrying: int = 0  # failed this time, will be tried again
    failed: int = 0  # gave up: 发送失败
    skipped: int = 0  # taken by another worker meanwhile
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.sent + self.retrying + self.failed


class Dispatcher:
    """Delivers due outbox messages through `notifier`. Keep one per worker process."""

    def __init__(self, notifier: Notifier, clock: Clock = system_clock,
                 sessions: Callable[[], Session] = new_session, batch: int = BATCH):
        self.notifier, self.clock, self.sessions, self.batch = notifier, clock, sessions, batch

    def run(self, limit: int | None = None, should_stop: Callable[[], bool] = lambda: False) -> DispatchReport:
        """One sweep over the due messages, oldest first, each tried at most once."""
        report = DispatchReport()
        after = 0
        while limit is None or report.attempted + report.skipped < limit:
            now = self.clock.now()
            with self.sessions() as session:
                ids = session.scalars(select(OutboxMessage.id).where(due_condition(now), OutboxMessage.id > after)
                                      .order_by(OutboxMessage.id).limit(self.batch)).all()
            for message_id in ids:
                if should_stop() or (limit is not None and report.attempted + report.skipped >= limit):
                    return report
                after = message_id
                self._deliver(message_id, report)
            if len(ids) < self.batch:
                break
        return report

    def _deliver(self, message_id: int, report: DispatchReport) -> None:
        with self.sessions() as session, session.begin():
            row = session.scalars(select(OutboxMessage)
                                  .where(OutboxMessage.id == message_id, due_condition(self.clock.now()))
                                  .with_for_update(skip_locked=True)).first()
            if row is None:  # another worker holds it or has sent it
                report.skipped += 1
                return
            if row.person_id is not None:  # a citizen (arrival SMS): the registry's phone
                recipient = recipient_of_person(session.get(Person, row.person_id))
            else:
                recipient = recipient_of(session.get(User, row.user_id) if row.user_id else None)
            message = OutgoingMessage(outbox_id=row.id, dedupe_key=row.dedupe_key, kind=row.kind,
                                      channel=row.channel, recipient=recipient, title=row.title,
                                      body=row.body, payload=json.loads(row.payload or "{}"))
            row.attempts += 1
            try:
                self.notifier.send(message)
            except Exception as e:  # noqa: BLE001 - one bad message must not stop the queue
                if not isinstance(e, NotifyError):
                    log.exception("notifier error on outbox message %s", row.id)
                row.last_error = f"{e}"[:2000] or e.__class__.__name__
                now = self.clock.now()
                if row.attempts >= MAX_ATTEMPTS:
                    row.status = OutboxStatus.FAILED.value
                    report.failed += 1
                else:
                    row.next_attempt_at = now + retry_delay(row.attempts)
                    report.retrying += 1
                report.errors.append(f"#{row.id} {row.last_error}")
                return
            row.status = OutboxStatus.SENT.value
            row.sent_at = self.clock.now()
            report.sent += 1


def dispatch(notifier: Notifier, clock: Clock = system_clock, limit: int | None = None) -> DispatchReport:
    """One sweep with a fresh dispatcher (scripts, tests)."""
    return Dispatcher(notifier, clock).run(limit)
