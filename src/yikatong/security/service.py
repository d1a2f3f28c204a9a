"""Login, sessions and user management."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from yikatong.core.errors import AuthRequired, Conflict, Invalid, TooManyAttempts
from yikatong.core.settings import get_settings
from yikatong.registry.models import Region
from yikatong.security import audit
from yikatong.security.models import LoginFailure, User, UserSession
from yikatong.security.roles import Role

_hasher = PasswordHasher()
# Verified against when the username is unknown, so timing does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("not-a-password")

MIN_PASSWORD = 8


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"密码至少{MIN_PASSWORD}位")
    return _hasher.hash(password)


def create_user(
    session: Session,
    username: str,
    password: str,
    role: Role | str,
    region_code: str,
    display_name: str,
    now: datetime,
    *,
    department_code: str | None = None,
    bank_code: str | None = None,
    actor: User | None = None,
    password_hash: str | None = None,
) -> User:
    role = Role(role)
    if session.scalar(select(User.id).where(User.username == username)):
        raise Conflict(f"用户名已存在：{username}")
    if session.get(Region, region_code) is None:
        raise Invalid(f"区划代码不存在：{region_code}")
    if role is Role.COUNTY_HANDLER and not department_code:
        raise Invalid("县级部门经办员必须指定所属部门")
    if role is Role.BANK and not bank_code:
        raise Invalid("代发银行用户必须指定银行")
    user = User(
        username=username,
        display_name=display_name,
        password_hash=password_hash or hash_password(password),
        role=role.value,
        region_code=region_code,
        department_code=department_code,
        bank_code=bank_code,
        created_at=now,
    )
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.create", "user", user.id, now, region_code=region_code,
                 detail={"username": username, "role": role.value})
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


LOGIN_REFUSED = "用户名或密码错误（连续输错多次将暂时锁定）"
TOO_MANY = "尝试过于频繁，请稍后再试"


def login(session: Session, username: str, password: str, now: datetime, ip: str = "") -> tuple[User, str]:
    """Check the password and open a server-side session. Returns the user and the session token.

    Every refusal (unknown user, wrong password, locked or disabled account) answers the same, so the
    answer tells an outsider nothing about which accounts exist or are locked. Failures are stored
    (login_failures): too many from one address within the lockout window refuse that address with
    TooManyAttempts (429); too many for one account from one address lock that account for that address
    (等保: 登录失败处理) — a guesser elsewhere cannot lock an administrator out. The caller commits
    even when this raises, so failures count and are audited."""
    settings = get_settings()
    since = now - timedelta(minutes=settings.lockout_minutes)
    recent = select(func.count()).select_from(LoginFailure).where(LoginFailure.ip == ip, LoginFailure.at > since)
    user = session.scalar(select(User).where(User.username == username))
    if (session.scalar(recent) or 0) >= settings.max_failures_per_address:
        audit.record(session, user, "auth.login_throttled", "user", user.id if user else username, now, ip=ip,
                     detail={"username": username})
        raise TooManyAttempts(TOO_MANY)
    locked = user is not None and (session.scalar(recent.where(LoginFailure.username == username)) or 0) \
        >= settings.max_failed_logins
    try:
        # The same hash work whoever asks, so timing does not tell the cases apart either.
        _hasher.verify(user.password_hash if user is not None and not locked else _DUMMY_HASH, password)
        good = user is not None and not locked and user.active
    except VerificationError:
        good = False
    if not good:
        session.execute(delete(LoginFailure).where(LoginFailure.at <= since))  # older ones count no more
        session.add(LoginFailure(at=now, ip=ip, username=username[:40]))
        why = "unknown_user" if user is None else "locked" if locked else "inactive" if not user.active \
            else "bad_password"
        audit.record(session, user, "auth.login_failed", "user", user.id if user else username, now, ip=ip,
                     detail={"username": username, "reason": why})
        raise AuthRequired(LOGIN_REFUSED)
    session.execute(delete(LoginFailure).where(LoginFailure.ip == ip, LoginFailure.username == username))
    user.last_login_at = now
    token = secrets.token_urlsafe(32)
    session.add(UserSession(token_hash=_token_hash(token), user_id=user.id, created_at=now,
                            expires_at=now + timedelta(hours=settings.session_hours), ip=ip))
    audit.record(session, user, "auth.login", "user", user.id, now, ip=ip)
    return user, token


def user_for_token(session: Session, token: str | None, now: datetime) -> User | None:
    if not token:
        return None
    row = session.scalar(select(UserSession).where(UserSession.token_hash == _token_hash(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    user = session.get(User, row.user_id)
    return user if user is not None and user.active else None


def logout(session: Session, token: str, now: datetime) -> None:
    row = session.scalar(select(UserSession).where(UserSession.token_hash == _token_hash(token)))
    if row is not None and row.revoked_at is None:
        row.revoked_at = now
        user = session.get(User, row.user_id)
        audit.record(session, user, "auth.logout", "user", row.user_id, now)
