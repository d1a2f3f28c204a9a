"""Login and logout (page and API), the current user, the user list and the audit trail."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yikatong.core.clock import Clock
from yikatong.core.errors import AuthRequired, TooManyAttempts
from yikatong.core.settings import get_settings
from yikatong.security import schemas
from yikatong.security.models import AuditEvent, User
from yikatong.security.roles import ROLE_LABELS, ROLE_PERMS, Perm, Role
from yikatong.security.service import login, logout
from yikatong.web.deps import (
    SESSION_COOKIE,
    DbSession,
    PageNo,
    PageSize,
    client_ip,
    current_user,
    get_clock,
    is_https,
    require,
    session_token,
)
from yikatong.web.templating import templates

api = APIRouter(prefix="/api/v1", tags=["auth"])
pages = APIRouter(include_in_schema=False)


def user_out(user: User) -> schemas.UserOut:
    role = Role(user.role)
    return schemas.UserOut(
        id=user.id, username=user.username, display_name=user.display_name, role=role.value,
        role_label=ROLE_LABELS[role], region_code=user.region_code, department_code=user.department_code,
        bank_code=user.bank_code, permissions=sorted(p.value for p in ROLE_PERMS[role]),
    )


@api.post("/auth/login", response_model=schemas.LoginOut)
def api_login(body: schemas.LoginIn, request: Request, db: Session = DbSession,
              clock: Clock = Depends(get_clock)) -> schemas.LoginOut:
    """Log in; send the token as `Authorization: Bearer <token>` on later calls."""
    _, token = _login_committing_failures(db, body.username, body.password, clock, client_ip(request))
    return schemas.LoginOut(token=token, expires_in_hours=get_settings().session_hours)


@api.post("/auth/logout", status_code=204)
def api_logout(request: Request, db: Session = DbSession, clock: Clock = Depends(get_clock)) -> Response:
    token = session_token(request)
    if token:
        logout(db, token, clock.now())
    return Response(status_code=204)


@api.get("/me", response_model=schemas.UserOut)
def api_me(user: User = Depends(current_user)) -> schemas.UserOut:
    return user_out(user)


@api.get("/audit", response_model=schemas.AuditPage, tags=["audit"])
def api_audit(page: PageNo = 1, size: PageSize = 50, action: str = "", db: Session = DbSession,
              user: User = Depends(require(Perm.AUDIT_READ))) -> schemas.AuditPage:
    return _audit_page(db, page, size, action)


@pages.get("/login")
def login_page(request: Request, next: str = "/"):
    return templates.TemplateResponse(request, "login.html", {"user": None, "next": _safe_next(next)})


@pages.post("/login")
def login_submit(request: Request, username: str = Form(...), password: str = Form(...), next: str = Form("/"),
                 db: Session = DbSession, clock: Clock = Depends(get_clock)):
    try:
        _, token = _login_committing_failures(db, username, password, clock, client_ip(request))
    except (AuthRequired, TooManyAttempts) as exc:
        return templates.TemplateResponse(
            request, "login.html", {"user": None, "next": _safe_next(next), "error": exc.message,
                                    "username": username}, status_code=exc.status_code)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=is_https(request),
                        max_age=get_settings().session_hours * 3600)
    return response


@pages.post("/logout")
def logout_submit(request: Request, db: Session = DbSession, clock: Clock = Depends(get_clock)):
    token = session_token(request)
    if token:
        logout(db, token, clock.now())
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict", secure=is_https(request))
    return response


@pages.get("/users")
def users_page(request: Request, db: Session = DbSession, user: User = Depends(require(Perm.USER_MANAGE))):
    users = db.scalars(select(User).order_by(User.role, User.username)).all()
    return templates.TemplateResponse(request, "users.html", {"user": user, "users": users})


@pages.get("/audit")
def audit_page(request: Request, page: PageNo = 1, action: str = "", db: Session = DbSession,
               user: User = Depends(require(Perm.AUDIT_READ))):
    result = _audit_page(db, page, 50, action)
    return templates.TemplateResponse(request, "audit.html", {"user": user, "result": result, "action": action})


def _login_committing_failures(db: Session, username: str, password: str, clock: Clock, ip: str):
    """A failed login must still count (lockout) and be audited, although the request fails."""
    try:
        return login(db, username, password, clock.now(), ip)
    except (AuthRequired, TooManyAttempts):
        db.commit()
        raise


def _audit_page(db: Session, page: int, size: int, action: str) -> schemas.AuditPage:
    size = max(1, min(size, 200))
    page = max(1, page)
    stmt = select(AuditEvent)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = db.scalars(stmt.order_by(AuditEvent.id.desc()).offset((page - 1) * size).limit(size)).all()
    return schemas.AuditPage(total=total, page=page, size=size,
                             items=[schemas.AuditEventOut.model_validate(r, from_attributes=True) for r in rows])


def _safe_next(target: str) -> str:
    """Only redirect inside this site (no open redirects)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"
