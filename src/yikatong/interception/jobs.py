"""Interception's long work as jobs (yikatong.jobs): the city-wide run (全市比对) and a rule's dry run
(试运行). Each handler does its work in one transaction, so a cancelled or failed job writes nothing,
and a job run again after its runner died raises no flag twice (the run skips flags it already has)."""

from __future__ import annotations

import dataclasses
from typing import Any

from yikatong.core.clock import beijing_date, beijing_time
from yikatong.core.db import engine, transaction
from yikatong.core.spreadsheet import write_only_cell
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
        run = run_city(engine(), session, ctx.now, actor=actor, progress=ctx.progress, ip=ctx.params.get("ip", ""))
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
        dry = authoring.dry_run(engine(), session, version, ctx.now, actor=actor, progress=ctx.progress,
                                ip=ctx.params.get("ip", ""))
        ctx.check()
        ctx.log(f"规则 {dry.code} 第{dry.version}版：命中 {dry.hits:,} 笔，用时 {dry.seconds:.1f} 秒")
        return {**dataclasses.asdict(dry), "url": f"/rules/{dry.code}?dry_job={ctx.job_id}"}


FLAGS_EXPORT = "interception.flags_export"
EXPORT_CHUNK = 2000
FLAG_HEADERS = ["编号", "申请编号", "姓名", "身份证号", "补贴项目", "区划代码", "比对规则", "风险", "比对依据",
                "涉及金额（元）", "发现时间（北京时间）", "状态", "核实时间（北京时间）", "核实意见"]


@register(FLAGS_EXPORT, "导出存疑信息")
def flags_export(ctx: JobContext) -> dict[str, Any]:
    """Every flag the starter may read under the page's filters (status, rule, item, region), as an
    Excel workbook to download; the export is on the audit trail with its filter and row count. The
    file appears under its name only when complete (a cancelled export leaves none)."""
    from openpyxl import Workbook
    from sqlalchemy import select

    from yikatong.catalog.models import SubsidyItem
    from yikatong.core.money import format_fen
    from yikatong.interception import service
    from yikatong.interception.models import Flag, Rule
    from yikatong.registry.models import Person
    from yikatong.security import audit
    from yikatong.security.scope import within
    from yikatong.workflow.models import Application

    filters = {k: v for k, v in ctx.params.items() if k in ("status", "rule", "item", "region") and v}
    name = f"存疑信息_{beijing_date(ctx.now):%Y%m%d}_{ctx.job_id}.xlsx"
    partial = ctx.output(name + ".part")
    with transaction() as session:
        user = session.get(User, ctx.user_id)
        query = service.visible_flags(session, user)
        for column, key in ((Flag.status, "status"), (Flag.rule_code, "rule"), (Flag.item_code, "item")):
            if key in filters:
                query = query.where(column == filters[key])
        if "region" in filters:
            query = query.where(within(Flag.region_code, filters["region"]))
        ids = list(session.scalars(query.with_only_columns(Flag.id).order_by(Flag.id)))
        book = Workbook(write_only=True)
        sheet = book.create_sheet("存疑信息")
        sheet.append(FLAG_HEADERS)
        try:
            for start in range(0, len(ids), EXPORT_CHUNK):
                ctx.progress("导出存疑信息", start, len(ids))
                for f, number, person, masked, item_name, rule_name in session.execute(
                        select(Flag, Application.number, Person.name, Person.id_number_masked, SubsidyItem.name,
                               Rule.name)
                        .join(Application, Application.id == Flag.application_id)
                        .join(Person, Person.id == Application.person_id)
                        .join(SubsidyItem, SubsidyItem.code == Flag.item_code)
                        .join(Rule, Rule.code == Flag.rule_code)
                        .where(Flag.id.in_(ids[start:start + EXPORT_CHUNK])).order_by(Flag.id)):
                    sheet.append([write_only_cell(sheet, v) for v in (
                        f.id, number, person, masked, item_name, f.region_code, rule_name, f.severity, f.evidence,
                        format_fen(f.amount_fen).replace(",", ""), f"{beijing_time(f.raised_at):%Y-%m-%d %H:%M}",
                        f.status, f"{beijing_time(f.verified_at):%Y-%m-%d %H:%M}" if f.verified_at else "",
                        f.opinion)])
            ctx.progress("导出存疑信息", len(ids), len(ids))
            book.save(partial)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.rename(ctx.output(name))
        audit.record(session, user, "flag.export", "flag", "", ctx.now, region_code=user.region_code,
                     detail={"filter": filters, "rows": len(ids), "job": ctx.job_id})
        ctx.log(f"导出 {len(ids):,} 条存疑信息")
        return {"file": name, "rows": len(ids)}
