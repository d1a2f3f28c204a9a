"""Request dependencies: the database session, the logged-in user, the client address, the clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from yikatong.core.clock import Clock, system_clock
from yikatong.core.db import transaction
from yikatong.core.errors import AuthRequired, Invalid
from yikatong.core.limits import MAX_ID, MAX_PAGE
from yikatong.core.settings import get_settings
from yikatong.security.models import User
from yikatong.security.roles import Perm, require_perm
from yikatong.security.service import user_for_token

SESSION_COOKIE = "ykt_session"

# Limits every route states (and the OpenAPI schema shows): a row id fits the key columns, a page number and a
# page size stay small enough that OFFSET never overflows, a region code is 2 to 12 digits.
RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="记录编号（正整数）")]
PageNo = Annotated[int, Query(ge=1, le=MAX_PAGE, description="页码，从1开始")]
PageSize = Annotated[int, Query(ge=1, le=200, description="每页条数（1至200）")]
REGION_PATTERN = r"^[0-9]{2,12}$"
RegionCode = Annotated[str, Path(pattern=REGION_PATTERN, description="区划代码（2至12位数字）")]
REGION_FILTER = r"^([0-9]{2,12})?$"
RegionFilter = Annotated[str, Query(pattern=REGION_FILTER, description="区划代码或前缀（2至12位数字），可留空")]


def get_db() -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back on any error."""
    with transaction() as session:
        yield session


# Commit before the response is sent (scope="function"): a client that follows a redirect at once
# (the browser after login) must see what this request wrote. Use `db: Session = DbSession` in views.
DbSession = Depends(get_db, scope="function")


def get_clock(request: Request) -> Clock:
    return getattr(request.app.state, "clock", system_clock)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def is_https(request: Request) -> bool:
    """Served over HTTPS: by setting (YKT_HTTPS=1, behind nginx) or as uvicorn sees the request (it trusts
    X-Forwarded-Proto from the proxy on 127.0.0.1)."""
    return get_settings().https or request.url.scheme == "https"


def session_token(request: Request) -> str | None:
    """The token from the session cookie (pages) or an `Authorization: Bearer` header (API clients)."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get(SESSION_COOKIE)


@dataclass(frozen=True)
class Viewer:
    """What the page layout needs of the user; survives the rollback that precedes an error page."""

    display_name: str
    role: str


def optional_user(request: Request, db: Session = DbSession,
                  clock: Clock = Depends(get_clock)) -> User | None:
    user = user_for_token(db, session_token(request), clock.now())
    request.state.viewer = Viewer(user.display_name, user.role) if user else None
    return user


def current_user(user: User | None = Depends(optional_user)) -> User:
    if user is None:
        raise AuthRequired("请先登录")
    return user


def require(perm: Perm):
    """Dependency factory: the current user, who must hold `perm`."""

    def dependency(user: User = Depends(current_user)) -> User:
        require_perm(user, perm)
        return user

    return dependency


def optional_date(text: str | None, label: str) -> date | None:
    """A date typed into a filter form (2026-12-31), or None when left empty."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{label}格式应为 2026-12-31") from None
