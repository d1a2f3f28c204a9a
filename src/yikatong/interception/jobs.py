"""Interception's long work as jobs (yikatong.jobs): the city-wide run (全市比对) and a rule's dry run
(试运行). Each handler does its work in one transaction, so a cancelled or failed job writes nothing,
and a job run again after its runner died raises no flag twice (the run skips flags it already has)."""

from __future__ import annotations

import dataclasses
from typing import Any

from yikatong.core.db import engine, transaction
from yikatong.jobs.runner import JobContext
from yikatong.jobs.service import register
from yikatong.security.models import User

CITY_RUN = "interception.city_run"
DRY_RUN = "interception.dry_run"


@register(CITY_RUN, "全市比对")
def city_run(ctx: JobContext) -> dict[str, Any]:
    from yikatong.interception.screening import run_city

    with transaction() as session:
        actor = session.get(User, ctx.user_id) if ctx.user_id else None
        run = run_city(engine(), session, ctx.now, actor=actor, progress=ctx.progress)
        ctx.check()  # the last chance to cancel before the flags commit
        ctx.log(f"比对 {run.applications:,} 笔申请，命中 {run.hits:,} 笔，新增存疑信息 {run.new_flags:,} 条")
        return {"run_id": run.id, "applications": run.applications, "hits": run.hits, "new_flags": run.new_flags,
                "url": f"/rules?run={run.id}"}


@register(DRY_RUN, "规则试运行")
def dry_run(ctx: JobContext) -> dict[str, Any]:
    from yikatong.interception import authoring

    with transaction() as session:
        actor = session.get(User, ctx.user_id) if ctx.user_id else None
        version = authoring.get_version(session, ctx.params["code"], int(ctx.params["version"]))
        dry = authoring.dry_run(engine(), session, version, ctx.now, actor=actor, progress=ctx.progress)
        ctx.check()
        ctx.log(f"规则 {dry.code} 第{dry.version}版：命中 {dry.hits:,} 笔，用时 {dry.seconds:.1f} 秒")
        return {**dataclasses.asdict(dry), "url": f"/rules/{dry.code}?dry_job={ctx.job_id}"}
