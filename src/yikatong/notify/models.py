"""The transactional outbox (消息发件箱): a message is a row written in the same transaction as the
change that causes it, and a dispatcher delivers pending rows afterwards."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yikatong.core.db import Base


class OutboxStatus(StrEnum):
    PENDING = "待发送"
    SENT = "已发送"
    FAILED = "发送失败"  # gave up after MAX_ATTEMPTS; kept for the operator


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique: whoever writes the same message twice (a rerun scan) is refused by the database.
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # reminder / escalation / ...
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # A citizen (arrival SMS, 到账短信): the phone on file in the registry, not a staff account.
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    channel: Mapped[str] = mapped_column(String(10))  # wechat / sms / console
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text, default="{}")  # JSON for template messages
    status: Mapped[str] = mapped_column(String(4), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime | None]  # after a failure: when to try again (backoff)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_outbox_messages_pending", "status", "id"),)
