"""The marks interception leaves on applications: their count of open flags and the 存疑拦截 record
on their trail.

Workflow owns the applications and their trail, so only workflow writes them. This module is the
door interception uses to do it. It imports nothing above workflow.models, so interception.screening
(which workflow.service itself calls to screen claims as they enter) can use it without an import
cycle: workflow.service -> interception.screening -> workflow.flag_marks -> workflow.models.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from yikatong.core.db import bulk_insert
from yikatong.workflow.models import Action, Application, ReviewRecord, Step

CHUNK = 900
SYSTEM_NAME = "系统"
OPINION_MAX = 1000


@dataclass(frozen=True)
class FlagsRaised:
    """New flags on one application, for its trail: the rules' codes and "rule name: evidence" lines."""

    application_id: int
    status: str
    stage: str | None
    rules: list[str]
    lines: list[str]


def record_flags_raised(session: Session, raised: Sequence[FlagsRaised], now: datetime) -> None:
    """One 存疑拦截 record per newly flagged application, naming the rules and the facts."""
    records = [dict(
        application_id=r.application_id, step=r.stage or Step.CITY.value, action=Action.FLAG_RAISED.value,
        to_stage=r.stage, status_after=r.status, user_id=None, actor_name=SYSTEM_NAME, actor_role="system", at=now,
        opinion="；".join(r.lines)[:OPINION_MAX], detail=json.dumps({"rules": r.rules}, ensure_ascii=False))
        for r in raised]
    if records:
        bulk_insert(session, ReviewRecord.__table__, records)


def set_open_flags(session: Session, application_ids: Sequence[int], open_count: Any) -> None:
    """Set applications.open_flags for `application_ids` to `open_count`: a scalar subquery,
    correlated with applications.id, that counts the application's flags still 待核实 (interception
    knows its flags; workflow writes its applications)."""
    ids = list(application_ids)
    for start in range(0, len(ids), CHUNK):
        session.execute(update(Application).where(Application.id.in_(ids[start:start + CHUNK]))
                        .values(open_flags=open_count).execution_options(synchronize_session=False))
