"""A large import file as a job (yikatong.jobs): the page stores the upload beside the job and the
worker imports it — all or nothing, in one transaction, so a cancelled or failed import writes
nothing, and one run again after its runner died upserts the same rows (a re-import changes
nothing). The upload is deleted once the job has ended: it holds personal data."""

from __future__ import annotations

from typing import Any

from yikatong.core.db import transaction
from yikatong.jobs.runner import JobContext, upload_path
from yikatong.jobs.service import register
from yikatong.security.models import User

IMPORT = "imports.file"


@register(IMPORT, "数据导入")
def import_job(ctx: JobContext) -> dict[str, Any]:
    from yikatong.imports.service import import_file

    path = upload_path(ctx.job_id)
    p = ctx.params
    try:
        with transaction() as session:
            actor = session.get(User, ctx.user_id) if ctx.user_id else None
            report = import_file(session, p["kind"], path, p["filename"], actor=actor, now=ctx.now,
                                 encoding=p.get("encoding", "utf-8"), ip=p.get("ip", ""), on_progress=ctx.progress,
                                 dry_run=bool(p.get("dry_run")))
            ctx.check()  # the last chance to cancel before the rows commit
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    path.unlink(missing_ok=True)
    summary = (f"{report.kind_label}：{report.total_rows:,} 行，新增 {report.added:,}，更新 {report.updated:,}"
               if report.ok else f"{report.kind_label}：发现 {report.error_count:,} 处错误，未写入任何数据")
    ctx.log(summary)
    return {"ok": report.ok, "summary": summary, "report": report.model_dump(mode="json"),
            "url": f"/imports?job={ctx.job_id}"}
