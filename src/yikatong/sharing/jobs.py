"""A large shared-data delivery as a job (yikatong.jobs): the page stores the upload beside the job
and the worker checks and stores it — all or nothing, so a cancelled or failed import stores no
snapshot. Run again after its runner died, it finds the delivery it already stored (same data set,
agency, date and file) and stores it not twice. The upload is deleted once the job has ended."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from yikatong.core.db import transaction
from yikatong.jobs.runner import JobContext, upload_path
from yikatong.jobs.service import register
from yikatong.security.models import User

SHARED_IMPORT = "sharing.import"


@register(SHARED_IMPORT, "信息归集导入")
def shared_import(ctx: JobContext) -> dict[str, Any]:
    import hashlib

    from yikatong.sharing.importer import import_dataset
    from yikatong.sharing.models import SharedSnapshot

    path = upload_path(ctx.job_id)
    p = ctx.params
    as_of = date.fromisoformat(p["as_of"])
    try:
        with transaction() as session:
            if ctx.attempt > 1 and path.exists():
                stored = session.scalar(select(SharedSnapshot.id).where(
                    SharedSnapshot.dataset == p["dataset"], SharedSnapshot.agency == p["agency"].strip(),
                    SharedSnapshot.as_of == as_of,
                    SharedSnapshot.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()))
                if stored is not None:
                    ctx.log(f"该文件已在上次运行中导入（快照 {stored}），不重复导入")
                    path.unlink(missing_ok=True)
                    return {"ok": True, "summary": "该文件已在上次运行中导入", "url": f"/sharing/{p['dataset']}"}
            actor = session.get(User, ctx.user_id) if ctx.user_id else None
            outcome = import_dataset(session, p["dataset"], path, filename=p["filename"], agency=p["agency"],
                                     as_of=as_of, actor=actor, now=ctx.now, on_progress=ctx.progress,
                                     encoding=p.get("encoding", "utf-8"), ip=p.get("ip", ""))
            ctx.check()  # the last chance to cancel before the snapshot commits
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    path.unlink(missing_ok=True)
    summary = (f"{outcome.dataset_label}：{outcome.total_rows:,} 行，已保存 {outcome.rows:,} 行" if outcome.ok
               else f"{outcome.dataset_label}：发现 {outcome.error_count:,} 处错误，未保存")
    ctx.log(summary)
    return {"ok": outcome.ok, "summary": summary, "outcome": outcome.model_dump(mode="json"),
            "url": f"/sharing/{p['dataset']}?job={ctx.job_id}"}
