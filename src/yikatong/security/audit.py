"""The audit trail (审计日志): who, when, what, from where. Written in the caller's transaction so
a write and its audit record commit or roll back together."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from yikatong.security.models import AuditEvent, User


def record(
    session: Session,
    actor: User | None,
    action: str,
    object_type: str,
    object_id: str | int,
    now: datetime,
    *,
    region_code: str | None = None,
    ip: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        at=now,
        user_id=actor.id if actor else None,
        username=actor.username if actor else "system",
        role=actor.role if actor else "system",
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        region_code=region_code,
        detail=json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
        ip=ip,
    )
    session.add(event)
    return event


def record_export(session: Session, actor: User, what: str, fmt: str, filters: dict[str, Any], rows: int,
                  now: datetime, *, ip: str = "", object_id: str | int = "") -> AuditEvent:
    """A file of personal data leaving the platform (an Excel or CSV download): who, which list, with
    which filter, how many rows."""
    used = {k: v for k, v in filters.items() if v not in (None, "", False)}
    return record(session, actor, f"export.{what}", what, object_id or f"{rows}行", now,
                  region_code=actor.region_code, ip=ip, detail={"format": fmt, "filter": used, "rows": rows})
