"""The payment loop's work as jobs (yikatong.jobs): export a batch's files, take in a return, a statement or
the treasury's detail, reconcile a batch or a day. Each handler is one transaction of the services in
disbursement.exchange and disbursement.reconcile, so a failed or cancelled job changes nothing; run again
after its runner died, export writes the same files and a file taken in already is refused by its SHA-256.

Batch files whose return was accepted are deleted after the commit; an uploaded file is deleted when its
job ends, whatever the end (it may carry account numbers)."""

from __future__ import annotations

from datetime import date
from typing import Any

from yikatong.core.db import transaction
from yikatong.core.errors import Invalid
from yikatong.core.money import format_fen
from yikatong.jobs.runner import JobContext
from yikatong.jobs.service import register
from yikatong.security.models import User

EXPORT, RETURN, STATEMENT, TREASURY, RECONCILE = ("payment.export", "payment.return", "payment.statement",
                                                  "payment.treasury", "payment.reconcile")


def _actor(session, ctx: JobContext) -> User | None:
    return session.get(User, ctx.user_id) if ctx.user_id else None


def _batch_url(ctx: JobContext, batch_id: int) -> str:
    return ctx.params.get("back") or f"/batches/{batch_id}"


@register(EXPORT, "生成代发文件")
def export_job(ctx: JobContext) -> dict[str, Any]:
    from yikatong.disbursement import exchange

    batch_id = int(ctx.params["batch_id"])
    ctx.progress("生成代发文件", 0, 1)
    with transaction() as session:
        files = exchange.export_batch(session, _actor(session, ctx), batch_id, ctx.now, ip=ctx.params.get("ip", ""))
        ctx.check()
        summary = (f"已生成代发文件{len(files)}个，共{sum(f.records for f in files):,}笔"
                   f"{format_fen(sum(f.total_fen for f in files))}元：" + "、".join(f.name for f in files))
    ctx.progress("生成代发文件", 1, 1)
    ctx.log(summary)
    return {"ok": True, "summary": summary, "files": len(files), "url": _batch_url(ctx, batch_id)}


def _take(ctx: JobContext, take) -> dict[str, Any]:
    """Run `take(session, actor, path, name)` over the job's upload in one transaction; the upload is
    deleted whatever happens."""
    from yikatong.disbursement.loop import upload_path

    path = upload_path(ctx.params["upload"])
    if not path.exists():
        raise Invalid("上传的文件已不在受限目录中（任务可能已运行过），请重新上传")
    try:
        ctx.progress("导入", 0, 1)
        with transaction() as session:
            result = take(session, _actor(session, ctx), path, ctx.params.get("filename") or path.name)
            ctx.check()  # the last chance to cancel before the file commits
    finally:
        path.unlink(missing_ok=True)
    ctx.progress("导入", 1, 1)
    return result


@register(RETURN, "导入回盘文件")
def return_job(ctx: JobContext) -> dict[str, Any]:
    from yikatong.disbursement import exchange

    batch_id = int(ctx.params["batch_id"])
    result = _take(ctx, lambda s, user, path, name: exchange.import_return(
        s, user, batch_id, path, ctx.now, name=name, ip=ctx.params.get("ip", "")))
    exchange.remove_files(result.to_remove)  # committed: the clear accounts leave the restricted folder
    ctx.log(result.message())
    return {"ok": True, "summary": result.message(), "paid": result.paid, "paid_fen": result.paid_fen,
            "failed": result.failed, "failed_fen": result.failed_fen, "url": _batch_url(ctx, batch_id)}


@register(STATEMENT, "导入银行对账单")
def statement_job(ctx: JobContext) -> dict[str, Any]:
    from yikatong.disbursement import exchange

    batch_id = int(ctx.params["batch_id"])
    result = _take(ctx, lambda s, user, path, name: exchange.import_statement(
        s, user, batch_id, path, ctx.now, name=name, ip=ctx.params.get("ip", "")))
    ctx.log(result.message())
    return {"ok": True, "summary": result.message(), "lines": result.lines, "out_fen": result.out_fen,
            "back_fen": result.back_fen, "url": _batch_url(ctx, batch_id)}


@register(TREASURY, "导入国库支付明细")
def treasury_job(ctx: JobContext) -> dict[str, Any]:
    from yikatong.disbursement import exchange

    result = _take(ctx, lambda s, user, path, name: exchange.import_treasury(
        s, user, path, ctx.now, name=name, ip=ctx.params.get("ip", "")))
    ctx.log(result.message())
    return {"ok": True, "summary": result.message(), "lines": result.lines, "out_fen": result.out_fen,
            "back_fen": result.back_fen, "url": ctx.params.get("back") or "/reconciliation"}


@register(RECONCILE, "对账")
def reconcile_job(ctx: JobContext) -> dict[str, Any]:
    from yikatong.disbursement import reconcile

    ip = ctx.params.get("ip", "")
    ctx.progress("对账", 0, 1)
    with transaction() as session:
        actor = _actor(session, ctx)
        if ctx.params.get("batch_id"):
            batch_id = int(ctx.params["batch_id"])
            run = reconcile.reconcile_batch(session, actor, batch_id, ctx.now, ip=ip)
            url = f"/reconciliation?batch={batch_id}"
        else:
            day = date.fromisoformat(ctx.params["day"])
            run = reconcile.reconcile_day(session, actor, day, ctx.now, ip=ip)
            url = f"/reconciliation?day={day.isoformat()}"
        ctx.check()
        summary = reconcile.summary(run)
        result = {"ok": run.balanced, "summary": summary, "run_id": run.id, "balanced": run.balanced,
                  "differences": run.differences, "url": url}
    ctx.progress("对账", 1, 1)
    ctx.log(summary)
    return result
