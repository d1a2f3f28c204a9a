"""The payment loop as pages and the API start it: who may start what, the uploaded bank files kept in the
restricted folder until their job has run, and what a batch's or a day's reconciliation shows.

The work itself (export, returns, statements, the treasury's detail, reconciliation) runs as jobs
(disbursement.jobs), never inside a request: a return of a million records takes minutes. A request
checks what it can at once (the batch exists and is the user's, its state allows the step, the user holds
the duty), so a refusal is shown on the spot; the job checks again, and finally, in its transaction."""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from yikatong.catalog.models import Bank, SubsidyItem
from yikatong.core.errors import Invalid
from yikatong.disbursement import exchange, reconcile
from yikatong.disbursement.jobs import EXPORT, RECONCILE, RETURN, STATEMENT, TREASURY
from yikatong.disbursement.models import BatchStatus, Difference, FileKind, PaymentBatch, Reconciliation
from yikatong.disbursement.service import get_batch, list_batches
from yikatong.jobs import service as jobs
from yikatong.jobs.models import Job, JobStatus
from yikatong.registry.service import region_names
from yikatong.security.models import User
from yikatong.security.roles import Perm, has_perm, require_perm

MAX_UPLOAD_BYTES = 200 * 1024 * 1024  # a return of a million records is about 150 MB as ISO 20022
CHUNK = 1024 * 1024
UPLOAD_KINDS = {RETURN: FileKind.RETURN, STATEMENT: FileKind.STATEMENT, TREASURY: FileKind.TREASURY}
_UPLOAD_NAME = re.compile(r"[0-9a-f]{32}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# ---------------------------------------------------------------- uploads in the restricted folder


def uploads_dir() -> Path:
    folder = exchange.bank_dir() / "uploads"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def save_upload(stream: BinaryIO) -> tuple[str, int]:
    """Copy an uploaded bank file, a chunk at a time, to where only the platform's own user may read it
    (mode 0600: a return carries account numbers) under a random name: (that name for the job, its size).
    Refused (and nothing kept) past MAX_UPLOAD_BYTES."""
    name, size = secrets.token_hex(16), 0
    path = uploads_dir() / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise Invalid(f"上传的文件超过 {MAX_UPLOAD_BYTES // 1024 // 1024} MB")
                f.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return name, size


def sweep_uploads(session: Session) -> int:
    """Delete uploads no waiting or running job will take (a job cancelled while queued never ran to delete
    its file). A file younger than a minute is left alone: its job may not be committed yet."""
    live = {jobs.params_of(j).get("upload") for j in session.scalars(select(Job).where(
        Job.kind.in_(list(UPLOAD_KINDS)), Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value])))}
    removed = 0
    for path in uploads_dir().iterdir():
        if path.name not in live and time.time() - path.stat().st_mtime > 60:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def upload_path(name: str) -> Path:
    """The path of an upload by the name save_upload gave (nothing else: a job's parameters are not a path)."""
    if not _UPLOAD_NAME.fullmatch(name or ""):
        raise Invalid("上传文件的登记有误")
    return uploads_dir() / name


def shown_name(filename: str | None) -> str:
    """The uploaded file's own name as the records show it: its last part, at most 200 characters."""
    name = _CONTROL.sub("", re.split(r"[\\/]", filename or "")[-1]).strip()
    return (name or "upload")[-120:]


# ---------------------------------------------------------------- starting the jobs


def _start(session: Session, kind: str, params: dict, user: User, now: datetime, title: str) -> Job:
    return jobs.start(session, kind, params, user, now, title=title[:200])


def start_export(session: Session, user: User, batch_id: int, now: datetime, *, ip: str = "") -> Job:
    """生成代发文件 as a job: finance only, for an approved (or already sent) batch."""
    require_perm(user, Perm.PAYMENT_MANAGE)
    batch = get_batch(session, user, batch_id)
    if batch.status not in (BatchStatus.APPROVED.value, BatchStatus.SENT.value):
        raise Invalid(f"批次{batch.number}状态为“{batch.status}”，不能生成代发文件"
                      + ("（须先审批）" if batch.status == BatchStatus.DRAFT.value else ""))
    return _start(session, EXPORT, {"batch_id": batch.id, "ip": ip, "back": f"/batches/{batch.id}"}, user, now,
                  f"生成代发文件：{batch.number}")


def start_upload(session: Session, user: User, kind: str, stream: BinaryIO, filename: str | None, now: datetime, *,
                 batch_id: int | None = None, ip: str = "", back: str = "") -> Job:
    """Take an uploaded return (回盘文件), statement (银行对账单) or treasury detail (国库支付明细): the
    duty is checked first, then the file is kept in the restricted folder and a job takes it in."""
    if kind not in UPLOAD_KINDS:
        raise Invalid("未知的文件类型")
    what = UPLOAD_KINDS[kind].value
    if kind == TREASURY:
        require_perm(user, Perm.PAYMENT_MANAGE)
        params: dict = {}
        title = f"导入{what}：{shown_name(filename)}"
        back = back or "/reconciliation"
    else:
        if batch_id is None:
            raise Invalid(f"请指定{what}所属的发放批次")
        batch = exchange.exchange_batch(session, user, batch_id)
        if batch.status not in (BatchStatus.SENT.value, BatchStatus.ANSWERED.value, BatchStatus.RECONCILED.value):
            raise Invalid(f"批次{batch.number}状态为“{batch.status}”，尚未生成代发文件，不能导入{what}")
        params = {"batch_id": batch.id}
        back = back or f"/batches/{batch.id}"
        title = f"导入{what}：{batch.number}（{shown_name(filename)}）"
    sweep_uploads(session)
    stored, size = save_upload(stream)
    if not size:
        upload_path(stored).unlink(missing_ok=True)
        raise Invalid(f"上传的{what}是空文件")
    try:
        return _start(session, kind, {**params, "upload": stored, "filename": shown_name(filename), "ip": ip,
                                      "back": back}, user, now, title)
    except BaseException:
        upload_path(stored).unlink(missing_ok=True)
        raise


def start_reconcile(session: Session, user: User, now: datetime, *, batch_id: int | None = None,
                    day: date | None = None, ip: str = "") -> Job:
    """对账 of a batch or of a Beijing booking day, as a job."""
    require_perm(user, Perm.PAYMENT_MANAGE)
    if batch_id is not None:
        batch = get_batch(session, user, batch_id)
        if batch.status not in (BatchStatus.SENT.value, BatchStatus.ANSWERED.value, BatchStatus.RECONCILED.value):
            raise Invalid(f"批次{batch.number}状态为“{batch.status}”，尚未发送银行，不能对账")
        return _start(session, RECONCILE, {"batch_id": batch.id, "ip": ip, "back": f"/batches/{batch.id}"}, user,
                      now, f"批次对账：{batch.number}")
    if day is None:
        raise Invalid("请指定对账的批次或日期")
    return _start(session, RECONCILE, {"day": day.isoformat(), "ip": ip, "back": f"/reconciliation?day={day}"},
                  user, now, f"日终对账：{day:%Y-%m-%d}")


# ---------------------------------------------------------------- what the pages show


def may_manage(user: User) -> bool:
    """Finance may export, take files in and reconcile (a supervisor reads only)."""
    return has_perm(user.role, Perm.PAYMENT_MANAGE)


def batches_for(session: Session, user: User) -> list[PaymentBatch]:
    """The batches a user may see: the bank its own (exported and after), everyone else those of their region."""
    if has_perm(user.role, Perm.BANK_EXCHANGE):
        return exchange.bank_batches(session, user)
    return list_batches(session, user)


def batch_for(session: Session, user: User, batch_id: int) -> PaymentBatch:
    if has_perm(user.role, Perm.BANK_EXCHANGE):
        return exchange.exchange_batch(session, user, batch_id)
    return get_batch(session, user, batch_id)


def bank_view(session: Session, user: User) -> list[tuple[PaymentBatch, list]]:
    """The bank's own batches, each with its files (names, counts, totals: nothing personal)."""
    return [(b, exchange.files_of(session, b)) for b in exchange.bank_batches(session, user)]


def bank_waiting(session: Session, user: User) -> dict[str, list[PaymentBatch]]:
    """The bank's batches by what they wait for: its download (approved or sent) or nothing (answered)."""
    waiting: dict[str, list[PaymentBatch]] = {"待下载或回盘": [], "已回盘": []}
    for batch in exchange.bank_batches(session, user, limit=50):
        answered = batch.status in (BatchStatus.ANSWERED.value, BatchStatus.RECONCILED.value)
        waiting["已回盘" if answered else "待下载或回盘"].append(batch)
    return waiting


@dataclass(frozen=True)
class RunView:
    run: Reconciliation
    differences: list[Difference]
    summary: str


def latest_run(session: Session, user: User, *, batch: PaymentBatch | None = None, day: date | None = None,
               limit: int | None = 1000) -> RunView | None:
    """The latest reconciliation of a batch (checked against the user's scope by the caller's get_batch) or
    of a day, with its differences record by record."""
    require_perm(user, Perm.PAYMENT_READ)
    query = select(Reconciliation)
    if batch is not None:
        query = query.where(Reconciliation.batch_id == batch.id)
    elif day is not None:
        query = query.where(Reconciliation.day == day, Reconciliation.batch_id.is_(None))
    else:
        raise Invalid("请指定对账的批次或日期")
    run = session.scalar(query.order_by(Reconciliation.id.desc()).limit(1))
    if run is None:
        return None
    return RunView(run, reconcile.differences(session, run, limit=limit), reconcile.summary(run))


def batch_run(session: Session, user: User, batch_id: int, *, limit: int | None = 1000) -> RunView | None:
    return latest_run(session, user, batch=get_batch(session, user, batch_id), limit=limit)


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError:
        raise Invalid("对账日期格式应为 2026-12-03") from None


def rate_labels(session: Session, by: str, keys: list[str]) -> dict[str, str]:
    """What a success-rate row is called on a page: the batch number, the item's, bank's or county's name."""
    if by == "batch":
        ids = [int(k) for k in keys if k.isdigit()]
        return {str(i): n for i, n in session.execute(select(PaymentBatch.id, PaymentBatch.number)
                                                        .where(PaymentBatch.id.in_(ids)))} if ids else {}
    if by == "item":
        return dict(session.execute(select(SubsidyItem.code, SubsidyItem.name).where(SubsidyItem.code.in_(keys))).all())
    if by == "bank":
        return dict(session.execute(select(Bank.code, Bank.name).where(Bank.code.in_(keys))).all())
    return region_names(session, set(keys))

