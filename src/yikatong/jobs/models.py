"""A job (后台任务): long work — a city-wide rule run, a dry run, a large import or export — as a row
the worker claims and runs, with its progress, its result and its log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yikatong.core.db import Base


class JobStatus(StrEnum):
    QUEUED = "排队中"
    RUNNING = "运行中"
    DONE = "已完成"
    FAILED = "失败"
    CANCELLED = "已取消"


FINISHED = (JobStatus.DONE.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # a registered kind, e.g. interception.city_run
    title: Mapped[str] = mapped_column(String(200))  # what the pages call it, e.g. 全市比对
    params: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    started_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(4), default=JobStatus.QUEUED)
    stage: Mapped[str] = mapped_column(String(100), default="")  # the progress label, e.g. 规则 DECEASED
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[str | None] = mapped_column(Text)  # JSON, when finished
    error: Mapped[str] = mapped_column(Text, default="")  # the Chinese message of a failure
    log: Mapped[str] = mapped_column(Text, default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Which runner holds it and on which attempt: a runner whose job was taken over after its
    # heartbeat went stale can no longer write it (every write checks both).
    worker: Mapped[str] = mapped_column(String(100), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_jobs_status_id", "status", "id"),)
