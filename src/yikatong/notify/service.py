"""Writing to the outbox (消息发件箱) and reading it back.

Whoever causes a message writes it with `enqueue` in its own transaction; the dispatcher
(notify.dispatcher) delivers it later. A dedupe key already in the outbox is skipped by the
database itself (INSERT .. ON CONFLICT DO NOTHING on the unique key), so writing the same message
twice — a rerun, a retried transaction — leaves one row."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from yikatong.core.errors import Forbidden
from yikatong.core.masking import mask_name
from yikatong.notify.models import OutboxMessage, OutboxStatus
from yikatong.notify.notifier import Channel, Recipient
from yikatong.registry.models import Person
from yikatong.security.models import User
from yikatong.security.roles import Role


def channel_for(openid: str | None, has_phone: bool) -> Channel:
    """WeChat when the user follows the official account, else SMS when a phone is on file."""
    if openid:
        return Channel.WECHAT
    if has_phone:
        return Channel.SMS
    return Channel.CONSOLE


@dataclass
class Draft:
    """A message about to be written to the outbox."""

    dedupe_key: str
    kind: str
    user_id: int | None
    channel: str
    title: str
    body: str
    payload: dict[str, Any] = field(default_factory=dict)


def _insert(session: Session):
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(OutboxMessage)


def enqueue(session: Session, drafts: list[Draft], now: datetime) -> list[str]:
    """Write messages as 待发送 in the caller's transaction. Returns the dedupe keys actually written
    (a draft whose key is already in the outbox writes nothing)."""
    if not drafts:
        return []
    rows = [dict(dedupe_key=d.dedupe_key, kind=d.kind, user_id=d.user_id, channel=d.channel, title=d.title[:100],
                 body=d.body, payload=json.dumps(d.payload, ensure_ascii=False, sort_keys=True),
                 status=OutboxStatus.PENDING.value, attempts=0, last_error="", created_at=now, sent_at=None)
            for d in drafts]
    keys: list[str] = []
    statement = (_insert(session).on_conflict_do_nothing(index_elements=["dedupe_key"])
                 .returning(OutboxMessage.dedupe_key))
    for start in range(0, len(rows), 1000):
        keys.extend(session.scalars(statement, rows[start:start + 1000]).all())
    return keys


def recipient_of(user: User | None) -> Recipient:
    if user is None:
        return Recipient(None, "（无收件人）")
    return Recipient(user.id, user.display_name, user.wechat_openid, user.phone_enc, user.phone_masked)


def recipient_of_person(person: Person) -> Recipient:
    """A citizen on the registry's phone (arrival SMS): the name masked, as it is on every page."""
    return Recipient(None, mask_name(person.name), None, person.phone_enc, person.phone_masked, person_id=person.id)


# ---------------------------------------------------------------- the operator's view


@dataclass
class OutboxSummary:
    by_status: dict[str, int]
    oldest_pending: datetime | None
    problems: list[dict[str, Any]]  # pending rows that failed at least once, and rows given up


def outbox_summary(session: Session, user: User, limit: int = 50) -> OutboxSummary:
    """Counts by status and the messages in trouble, for the system administrator (运维). Bodies are
    not shown (an arrival SMS names a beneficiary, masked, and the amount paid); a citizen's message
    has no staff recipient."""
    if user.role != Role.SYSTEM_ADMIN:
        raise Forbidden("消息发件箱仅系统管理员可查看")
    by_status = {s.value: 0 for s in OutboxStatus}
    by_status.update(dict(session.execute(select(OutboxMessage.status, func.count())
                                          .group_by(OutboxMessage.status)).all()))
    oldest = session.scalar(select(func.min(OutboxMessage.created_at))
                            .where(OutboxMessage.status == OutboxStatus.PENDING.value))
    rows = session.execute(
        select(OutboxMessage.id, OutboxMessage.dedupe_key, OutboxMessage.kind, OutboxMessage.channel,
               OutboxMessage.title, OutboxMessage.status, OutboxMessage.attempts, OutboxMessage.last_error,
               OutboxMessage.created_at, User.display_name)
        .outerjoin(User, User.id == OutboxMessage.user_id)
        .where((OutboxMessage.status == OutboxStatus.FAILED.value)
               | ((OutboxMessage.status == OutboxStatus.PENDING.value) & (OutboxMessage.attempts > 0)))
        .order_by(OutboxMessage.id.desc()).limit(limit)).all()
    problems = [dict(id=r.id, dedupe_key=r.dedupe_key, kind=r.kind, channel=r.channel, title=r.title,
                     status=r.status, attempts=r.attempts, last_error=r.last_error, created_at=r.created_at,
                     recipient=r.display_name) for r in rows]
    return OutboxSummary(by_status, oldest, problems)
