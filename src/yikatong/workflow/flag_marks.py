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

from sqlalchemy import column, select, table, update
from sqlalchemy.orm import Session

from yikatong.core.db import bulk_insert, insert_from_duckdb, naive_utc
from yikatong.workflow.models import Action, Application, ReviewRecord, Step

CHUNK = 900
BULK_IDS = 20_000  # more applications than this: their ids go through a temporary table, one UPDATE
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


REVIEW_COLUMNS = ["application_id", "step", "action", "to_stage", "status_after", "user_id", "actor_name",
                  "actor_role", "at", "opinion", "detail"]


def record_flags_raised_from(session: Session, con: Any, fresh: str, now: datetime) -> None:
    """`record_flags_raised` for many applications at once (a city run): `fresh` is a DuckDB table of
    the new flags (application_id, rule_code, name — the rule's —, evidence, status, stage). The same
    records, written from DuckDB in bulk (COPY on PostgreSQL) without a Python object per flag."""
    at = naive_utc(now).strftime("%Y-%m-%d %H:%M:%S.%f")
    rules = "'{\"rules\": [' || string_agg('\"' || rule_code || '\"', ', ' ORDER BY rule_code) || ']}'"
    query = f"""
        SELECT application_id, CASE WHEN COALESCE(stage, '') = '' THEN '{Step.CITY.value}' ELSE stage END,
               '{Action.FLAG_RAISED.value}', stage, status, CAST(NULL AS BIGINT), '{SYSTEM_NAME}', 'system', '{at}',
               left(string_agg(name || '：' || evidence, '；' ORDER BY rule_code), {OPINION_MAX}), {rules}
        FROM {fresh} GROUP BY application_id, stage, status ORDER BY application_id"""
    insert_from_duckdb(session, ReviewRecord.__tablename__, REVIEW_COLUMNS, con, query)


def set_open_flags(session: Session, application_ids: Sequence[int], open_count: Any) -> None:
    """Set applications.open_flags for `application_ids` to `open_count`: a scalar subquery,
    correlated with applications.id, that counts the application's flags still 待核实 (interception
    knows its flags; workflow writes its applications)."""
    ids = list(application_ids)
    if len(ids) > BULK_IDS:
        _set_open_flags_bulk(session, ids, open_count)
        return
    for start in range(0, len(ids), CHUNK):
        session.execute(update(Application).where(Application.id.in_(ids[start:start + CHUNK]))
                        .values(open_flags=open_count).execution_options(synchronize_session=False))


def _set_open_flags_bulk(session: Session, ids: list[int], open_count: Any) -> None:
    """One UPDATE for a city run's hundreds of thousands of applications, their ids in a temporary
    table, instead of one statement per 900 ids."""
    connection = session.connection()
    connection.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS open_flag_ids (id BIGINT PRIMARY KEY)")
    connection.exec_driver_sql("DELETE FROM open_flag_ids")
    ids_table = table("open_flag_ids", column("id"))
    bulk_insert(session, ids_table, [{"id": i} for i in ids])
    chosen = select(ids_table.c.id)
    # only the counts that change: on PostgreSQL every row updated is a new row version in every index
    session.execute(update(Application).where(Application.id.in_(chosen), Application.open_flags != open_count)
                    .values(open_flags=open_count).execution_options(synchronize_session=False))
    connection.exec_driver_sql("DELETE FROM open_flag_ids")
