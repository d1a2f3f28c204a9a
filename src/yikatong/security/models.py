"""Users, server-side sessions and the append-only audit trail."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from yikatong.core.db import Base


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    display_name: Mapped[str] = mapped_column(String(60))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(30))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))  # scope: this region's subtree
    department_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"))
    bank_code: Mapped[str | None] = mapped_column(ForeignKey("banks.code"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # 分管领导: the electronic eye escalates overdue work to the leaders of the handling office.
    leader: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Where the electronic eye reaches the user: WeChat official-account openid, and a work mobile
    # (encrypted like every phone number).
    wechat_openid: Mapped[str | None] = mapped_column(String(64))
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_masked: Mapped[str | None] = mapped_column(String(20))
    # No longer written: failures are counted per address in login_failures (see security.service.login).
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class UserSession(Base):
    """A login. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ip: Mapped[str] = mapped_column(String(45), default="")
    revoked_at: Mapped[datetime | None]


class AuditEvent(Base):
    """审计日志: every write and every clear read of personal data. Database triggers refuse
    UPDATE and DELETE on this table (see the initial migration)."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    username: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(30))
    action: Mapped[str] = mapped_column(String(40), index=True)
    object_type: Mapped[str] = mapped_column(String(30))
    object_id: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str | None] = mapped_column(String(12))
    detail: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str] = mapped_column(String(45), default="")


class LoginFailure(Base):
    """A failed login, kept in the database so every worker process sees the same count: too many from
    one address slow that address down; too many for one account from one address lock the account for
    that address only, so nobody can lock an administrator out from afar."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    ip: Mapped[str] = mapped_column(String(45), index=True)
    username: Mapped[str] = mapped_column(String(40))
