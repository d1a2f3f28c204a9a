"""The exchange with the bank (社银平台): an approved batch's files exported for its bank, the bank's
return (回盘) taken in whole, the bank's statement and the treasury's payment detail booked for
reconciliation.

Why nothing is paid twice or lost, whatever crashes when:
- Export writes each file under a temporary name and renames it (bank.files.HashedFile), then records
  the files and their SHA-256 in one transaction. The files are the same bytes each time (everything in
  them was fixed at approval), so exporting again after a crash rewrites the same files.
- A return is read and checked whole before anything changes; then one transaction records the file
  (its SHA-256 is unique among files taken in: the same return twice is refused), answers each order by a
  conditional UPDATE (`status = '待发送'`: an order answered already matches nothing, and a count that
  falls short rolls the whole file back), queues the arrival SMS of the paid orders, gives failed money
  back to the budget and marks the batch file it answers for removal. The file itself is deleted after
  the commit; a crash in between leaves it to the next sweep (`sweep_removed`).
- Statement and treasury lines are unique per 流水号, source and amount in the database: a file booked
  twice, or two files carrying the same line, are refused whole."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yikatong.core.clock import beijing_date, format_beijing
from yikatong.core.db import bulk_insert, naive_utc, savepoint, scratch_table
from yikatong.core.errors import Conflict, Forbidden, Invalid, NotFound
from yikatong.core.money import format_fen
from yikatong.core.settings import get_settings
from yikatong.disbursement import arrival, budget
from yikatong.disbursement.bank.connector import Connector, connector_for
from yikatong.disbursement.bank.files import check_sha256, chunks, file_sha256
from yikatong.disbursement.bank.records import ReturnStatus, StatementLine
from yikatong.disbursement.bank.treasury import read_treasury
from yikatong.disbursement.models import (
    FROZEN_BATCH,
    BankFile,
    BatchStatus,
    FileKind,
    FileState,
    OrderStatus,
    PaymentBatch,
    PaymentOrder,
    Rework,
)
from yikatong.disbursement.service import batch_file, get_batch
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, has_perm
from yikatong.security.scope import in_subtree

BANK_SOURCE, TREASURY_SOURCE = "B", "T"


def bank_dir() -> Path:
    """The restricted folder for files with clear account numbers: YKT_BANK_DIR, else YKT_DATA_DIR/bank,
    made readable by the platform's own user only."""
    folder = Path(os.environ.get("YKT_BANK_DIR") or get_settings().data_dir / "bank")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def batch_folder(batch: PaymentBatch) -> Path:
    folder = bank_dir() / batch.number
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


# ---------------------------------------------------------------- who may touch a batch's files


def exchange_batch(session: Session, user: User | None, batch_id: int | str) -> PaymentBatch:
    """The batch if `user` may exchange its files: finance (payment.manage) in its region, or the bank
    that pays it (bank.exchange, the user's bank). Anyone else: not found."""
    if user is None or has_perm(user.role, Perm.PAYMENT_MANAGE):
        return get_batch(session, user, batch_id)
    if not has_perm(user.role, Perm.BANK_EXCHANGE) or not user.bank_code:
        raise Forbidden("无权处理银行文件")
    batch = get_batch(session, None, batch_id)
    if batch.bank_code != user.bank_code or batch.status not in FROZEN_BATCH[1:] or \
            not in_subtree(user.region_code, batch.region_code):
        raise NotFound("发放批次不存在或无权查看")
    return batch


def bank_batches(session: Session, user: User, *, limit: int = 200) -> list[PaymentBatch]:
    """A bank's own batches that have files for it (exported and after)."""
    if not has_perm(user.role, Perm.BANK_EXCHANGE) or not user.bank_code:
        raise Forbidden("无权处理银行文件")
    return list(session.scalars(select(PaymentBatch).where(
        PaymentBatch.bank_code == user.bank_code, PaymentBatch.status.in_(FROZEN_BATCH[1:]))
        .order_by(PaymentBatch.id.desc()).limit(limit)))


def files_of(session: Session, batch: PaymentBatch) -> list[BankFile]:
    return list(session.scalars(select(BankFile).where(BankFile.batch_id == batch.id)
                                .order_by(BankFile.kind, BankFile.file_no, BankFile.id)))


# ---------------------------------------------------------------- export


def export_batch(session: Session, user: User | None, batch_id: int | str, now: datetime, *,
                 ip: str = "") -> list[BankFile]:
    """Write an approved batch's files for its bank into the restricted folder and record them. Again
    later (a lost file, a crash): the same bytes, the same records; refused once its returns came in."""
    batch = exchange_batch(session, user, batch_id)
    if user is not None and not has_perm(user.role, Perm.PAYMENT_MANAGE):
        raise Forbidden("代发文件由财政部门生成")
    if batch.status not in (BatchStatus.APPROVED.value, BatchStatus.SENT.value):
        raise Invalid(f"批次{batch.number}状态为“{batch.status}”，不能生成代发文件"
                      + ("（须先审批）" if batch.status == BatchStatus.DRAFT.value else ""))
    sweep_removed(session, batch)
    old = {f.file_no: f for f in files_of(session, batch) if f.kind == FileKind.BATCH.value}
    if any(f.state == FileState.REMOVED.value for f in old.values()):
        raise Invalid(f"批次{batch.number}已有回盘导入，代发文件已删除，不能再生成")
    written = connector_for(batch.bank_code).export_files(batch_file(session, batch), batch_folder(batch))
    name = user.display_name if user else "系统"
    for no, w in enumerate(written, 1):
        row = old.get(no)
        if row is None:
            session.add(BankFile(batch_id=batch.id, kind=FileKind.BATCH.value, file_no=no, file_count=len(written),
                                 name=w.path.name, sha256=w.sha256, records=w.records, total_fen=w.total_fen,
                                 state=FileState.WRITTEN.value, by_name=name, at=now))
        elif row.sha256 != w.sha256:  # never expected: everything in the file was fixed at approval
            raise Conflict(f"代发文件{w.path.name}与此前生成的不一致，请联系管理员")
    session.execute(update(PaymentBatch).where(PaymentBatch.id == batch.id,
                                               PaymentBatch.status == BatchStatus.APPROVED.value)
                    .values(status=BatchStatus.SENT.value, version=PaymentBatch.version + 1)
                    .execution_options(synchronize_session=False))
    audit.record(session, user, "payment.batch_export", "payment_batch", batch.number, now,
                 region_code=batch.region_code, ip=ip,
                 detail={"files": [w.path.name for w in written], "sha256": [w.sha256 for w in written],
                         "orders": batch.order_count, "total_fen": batch.total_fen, "again": bool(old)})
    session.flush()
    session.refresh(batch)
    return [f for f in files_of(session, batch) if f.kind == FileKind.BATCH.value]


def open_batch_file(session: Session, user: User | None, file_id: int, now: datetime, *, ip: str = "") -> Path:
    """A batch file to hand to the bank (download): only while it exists and its bytes are the ones
    recorded; every hand-over is on the audit trail."""
    row = session.get(BankFile, file_id)
    if row is None or row.kind != FileKind.BATCH.value or row.batch_id is None:
        raise NotFound("文件不存在")
    batch = exchange_batch(session, user, row.batch_id)
    if row.state != FileState.WRITTEN.value:
        raise Invalid(f"{row.name}已在回盘导入后删除")
    path = batch_folder(batch) / row.name
    if not path.exists():
        raise Invalid(f"{row.name}不在受限目录中，请重新生成代发文件")
    check_sha256(path, row.sha256)
    audit.record(session, user, "payment.file_download", "payment_file", row.name, now,
                 region_code=batch.region_code, ip=ip, detail={"batch": batch.number, "sha256": row.sha256})
    return path


def sweep_removed(session: Session, batch: PaymentBatch) -> int:
    """Delete the batch files whose returns were accepted but which are still on disk (the process
    stopped between the commit and the deletion). Returns how many were deleted."""
    removed = 0
    for row in files_of(session, batch):
        if row.kind == FileKind.BATCH.value and row.state == FileState.REMOVED.value:
            path = bank_dir() / batch.number / row.name
            if path.exists():
                path.unlink()
                removed += 1
    return removed


# ---------------------------------------------------------------- the bank's return


@dataclass
class ReturnResult:
    batch: PaymentBatch
    file: BankFile
    paid: int
    paid_fen: int
    failed: int
    failed_fen: int
    sms_queued: int
    to_remove: list[Path]  # delete after the commit (remove_files)

    def message(self) -> str:
        return (f"回盘文件{self.file.name}已导入：成功{self.paid:,}笔{format_fen(self.paid_fen)}元，"
                f"失败{self.failed:,}笔{format_fen(self.failed_fen)}元；到账短信{self.sms_queued:,}条待发送")


def _taken(session: Session, kind: FileKind, sha256: str) -> None:
    earlier = session.scalar(select(BankFile).where(BankFile.kind == kind.value, BankFile.sha256 == sha256))
    if earlier is not None:
        raise Conflict(f"该{kind.value}已于{format_beijing(earlier.at)}由{earlier.by_name}导入（{earlier.name}），"
                       "不能重复导入")


def _hash_of(path: Path, declared: str | None) -> str:
    """The file's SHA-256; refused when the sender declared another (the file changed on the way)."""
    if declared and declared.strip():
        check_sha256(path, declared.strip())
    return file_sha256(path)


def _answered_on(connector: Connector, path: Path, now: datetime) -> date:
    """The Beijing day the bank processed the file (its header's creation time), else today."""
    header = connector.header_of(path) if hasattr(connector, "header_of") else None
    if header is not None:
        return beijing_date(header.created)
    with path.open("rb") as f:
        found = re.search(rb"<CreDtTm>([^<]+)</CreDtTm>", f.read(8192))
    if found:
        try:
            return beijing_date(datetime.fromisoformat(found.group(1).decode()))
        except ValueError:
            pass
    return beijing_date(now)


def import_return(session: Session, user: User | None, batch_id: int | str, path: Path, now: datetime, *,
                  name: str | None = None, sha256: str | None = None, ip: str = "") -> ReturnResult:
    """Take in the bank's return for one of the batch's files, whole or not at all. `sha256`: the hash the
    bank sent with the file; a file whose bytes do not match it is refused."""
    batch = exchange_batch(session, user, batch_id)
    name = name or path.name
    if batch.status not in (BatchStatus.SENT.value, BatchStatus.ANSWERED.value, BatchStatus.RECONCILED.value):
        raise Invalid(f"批次{batch.number}状态为“{batch.status}”，尚未生成代发文件，不能导入回盘")
    sweep_removed(session, batch)  # before any change of ours: only what earlier commits removed
    sha = _hash_of(path, sha256)
    _taken(session, FileKind.RETURN, sha)
    connector = connector_for(batch.bank_code)
    expected = batch_file(session, batch, accounts=False)
    answers = connector.read_return(path, expected)  # checked whole: raises Invalid with every problem
    if not answers:
        raise Invalid(f"回盘文件{name}没有任何记录")
    parts = chunks(expected.records, connector.template.max_records_per_file)
    first = answers[0].end_to_end_id
    file_no = next(n for n, part in enumerate(parts, 1) if any(r.end_to_end_id == first for r in part))
    paid_on = _answered_on(connector, path, now)
    paid = [a for a in answers if a.status is ReturnStatus.PAID]
    failed = [a for a in answers if a.status is ReturnStatus.FAILED]
    with savepoint(session):
        row = BankFile(batch_id=batch.id, kind=FileKind.RETURN.value, file_no=file_no, file_count=len(parts), name=name,
                       sha256=sha, records=len(answers), total_fen=sum(a.amount_fen for a in answers),
                       state=FileState.ACCEPTED.value, by_name=user.display_name if user else "系统", at=now)
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"该回盘文件已导入（{name}），不能重复导入") from None
        paid_ids = _answer_orders(session, batch, answers, paid_on, now)
        if failed:
            budget.release(session, batch.item_code, batch.year, sum(a.amount_fen for a in failed))
        sms = arrival.queue_arrivals(session, paid_ids, now)
        session.execute(update(BankFile).where(BankFile.batch_id == batch.id, BankFile.kind == FileKind.BATCH.value,
                                               BankFile.file_no == file_no, BankFile.state == FileState.WRITTEN.value)
                        .values(state=FileState.REMOVED.value, removed_at=now)
                        .execution_options(synchronize_session=False))
        pending = session.scalar(select(func.count()).select_from(PaymentOrder).where(
            PaymentOrder.batch_id == batch.id, PaymentOrder.status == OrderStatus.APPROVED.value))
        if not pending:
            session.execute(update(PaymentBatch).where(PaymentBatch.id == batch.id,
                                                       PaymentBatch.status == BatchStatus.SENT.value)
                            .values(status=BatchStatus.ANSWERED.value, version=PaymentBatch.version + 1)
                            .execution_options(synchronize_session=False))
    result = ReturnResult(batch, row, len(paid), sum(a.amount_fen for a in paid), len(failed),
                          sum(a.amount_fen for a in failed), sms.queued, [])
    batch_row = session.scalar(select(BankFile).where(BankFile.batch_id == batch.id, BankFile.file_no == file_no,
                                                      BankFile.kind == FileKind.BATCH.value))
    if batch_row is not None:
        result.to_remove.append(bank_dir() / batch.number / batch_row.name)
    audit.record(session, user, "payment.return_import", "payment_batch", batch.number, now,
                 region_code=batch.region_code, ip=ip,
                 detail={"file": name, "sha256": sha, "file_no": file_no, "paid": result.paid,
                         "paid_fen": result.paid_fen, "failed": result.failed, "failed_fen": result.failed_fen})
    session.flush()
    session.refresh(batch)
    return result


def _answer_orders(session: Session, batch: PaymentBatch, answers, paid_on: date, now: datetime) -> list[int]:
    """Each order its answer, by one conditional UPDATE from a scratch table; every order must still be
    waiting for its answer, or nothing changes. Returns the ids of the paid orders."""
    with scratch_table(session, "return_answers", "e2e VARCHAR(35), paid INTEGER, code VARCHAR(8), "
                                                  "reason VARCHAR(100)") as answers_table:
        bulk_insert(session, answers_table, [
            {"e2e": a.end_to_end_id, "paid": 1 if a.status is ReturnStatus.PAID else 0, "code": a.reason_code[:8],
             "reason": a.reason[:100]} for a in answers])
        session.execute(text("CREATE INDEX ix_return_answers ON return_answers (e2e)"))
        moved = session.execute(text(f"""
            UPDATE payment_orders SET
              status = CASE WHEN a.paid = 1 THEN '{OrderStatus.PAID.value}' ELSE '{OrderStatus.FAILED.value}' END,
              paid_on = CASE WHEN a.paid = 1 THEN :paid_on END,
              answered_at = :now, fail_code = a.code, fail_reason = a.reason,
              rework = CASE WHEN a.paid = 1 THEN '' ELSE '{Rework.OPEN.value}' END
            FROM return_answers a
            WHERE payment_orders.end_to_end_id = a.e2e AND payment_orders.batch_id = :batch
              AND payment_orders.status = '{OrderStatus.APPROVED.value}'"""),
            {"paid_on": paid_on, "now": naive_utc(now), "batch": batch.id}).rowcount
        if moved != len(answers):
            raise Conflict(f"回盘中有{len(answers) - moved:,}笔支付指令已有银行答复（回盘可能已导入），整个文件未导入")
        paid_ids = list(session.scalars(text(
            "SELECT o.id FROM payment_orders o JOIN return_answers a ON a.e2e = o.end_to_end_id "
            "WHERE o.batch_id = :batch AND a.paid = 1 ORDER BY o.id"), {"batch": batch.id}))
        # a re-payment answered: its earlier failed attempt is done with (the newest attempt carries on)
        session.execute(text(
            f"UPDATE payment_orders SET rework = '{Rework.REPAID.value}' WHERE id IN ("
            f"SELECT o.retry_of FROM payment_orders o JOIN return_answers a ON a.e2e = o.end_to_end_id "
            f"WHERE o.batch_id = :batch AND o.retry_of IS NOT NULL)"), {"batch": batch.id})
    return paid_ids


def remove_files(paths: list[Path]) -> None:
    """Delete batch files after the transaction that accepted their returns committed."""
    for path in paths:
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------- statements: the bank's and the treasury's


@dataclass
class BookingResult:
    file: BankFile
    lines: int
    out_fen: int
    back_fen: int

    def message(self) -> str:
        return (f"{self.file.kind}{self.file.name}已导入：{self.lines:,}笔，支出{format_fen(self.out_fen)}元，"
                f"退回{format_fen(self.back_fen)}元")


def import_statement(session: Session, user: User | None, batch_id: int | str, path: Path, now: datetime, *,
                     name: str | None = None, sha256: str | None = None, ip: str = "") -> BookingResult:
    """Book the bank's statement (对账单) of the paying account for one batch."""
    batch = exchange_batch(session, user, batch_id)
    if batch.status not in FROZEN_BATCH[1:]:
        raise Invalid(f"批次{batch.number}尚未生成代发文件，不能导入对账单")
    sha = _hash_of(path, sha256)
    _taken(session, FileKind.STATEMENT, sha)
    lines = connector_for(batch.bank_code).read_statement(path, batch_file(session, batch, accounts=False))
    result = _book(session, user, FileKind.STATEMENT, BANK_SOURCE, path, name or path.name, sha, lines, now,
                   batch=batch)
    audit.record(session, user, "payment.statement_import", "payment_batch", batch.number, now,
                 region_code=batch.region_code, ip=ip,
                 detail={"file": result.file.name, "sha256": sha, "lines": result.lines, "out_fen": result.out_fen,
                         "back_fen": result.back_fen})
    return result


def import_treasury(session: Session, user: User | None, path: Path, now: datetime, *, name: str | None = None,
                    sha256: str | None = None, ip: str = "") -> BookingResult:
    """Book the treasury's payment detail (国库支付明细): every line must be one of the platform's
    approved orders with its amount, or the file is refused whole."""
    if user is not None and not has_perm(user.role, Perm.PAYMENT_MANAGE):
        raise Forbidden("国库支付明细由财政部门导入")
    sha = _hash_of(path, sha256)
    _taken(session, FileKind.TREASURY, sha)
    lines = read_treasury(path)
    result = _book(session, user, FileKind.TREASURY, TREASURY_SOURCE, path, name or path.name, sha, lines, now)
    audit.record(session, user, "payment.treasury_import", "payment_file", result.file.name, now,
                 region_code=user.region_code if user else None, ip=ip,
                 detail={"sha256": sha, "lines": result.lines, "out_fen": result.out_fen, "back_fen": result.back_fen})
    return result


def _book(session: Session, user: User | None, kind: FileKind, source: str, path: Path, name: str, sha: str,
          lines: list[StatementLine], now: datetime, *, batch: PaymentBatch | None = None) -> BookingResult:
    out_fen = sum(line.amount_fen for line in lines if line.amount_fen > 0)
    back_fen = -sum(line.amount_fen for line in lines if line.amount_fen < 0)
    with savepoint(session):
        row = BankFile(batch_id=batch.id if batch else None, kind=kind.value, file_no=1, file_count=1, name=name,
                       sha256=sha, records=len(lines), total_fen=out_fen - back_fen, state=FileState.ACCEPTED.value,
                       by_name=user.display_name if user else "系统", at=now)
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"该{kind.value}已导入（{name}），不能重复导入") from None
        with scratch_table(session, "booked_lines", "e2e VARCHAR(35), amount BIGINT, booked_on DATE") as booked:
            bulk_insert(session, booked, [{"e2e": line.end_to_end_id, "amount": line.amount_fen,
                                           "booked_on": line.booked_on} for line in lines])
            session.execute(text("CREATE INDEX ix_booked_lines ON booked_lines (e2e)"))
            wrong = session.execute(text(f"""
                SELECT b.e2e, b.amount, o.amount_fen, o.status FROM booked_lines b
                LEFT JOIN payment_orders o ON o.end_to_end_id = b.e2e
                WHERE o.id IS NULL OR o.amount_fen <> abs(b.amount)
                   OR o.status IN ('{OrderStatus.DRAFT.value}', '{OrderStatus.CANCELLED.value}')
                ORDER BY b.e2e LIMIT 21""")).all()
            if wrong:
                shown = [f"流水号{w.e2e}：" + ("平台没有这笔支付指令" if w.amount_fen is None else
                                             f"金额{format_fen(abs(w.amount))}元，支付指令为{format_fen(w.amount_fen)}元"
                                             if w.amount_fen != abs(w.amount) else f"支付指令状态为“{w.status}”")
                         for w in wrong[:20]]
                raise Invalid(f"{kind.value}{name}与平台的支付指令不符，整个文件未导入：\n" + "\n".join(shown)
                              + ("\n……" if len(wrong) > 20 else ""))
            try:
                with savepoint(session):
                    session.execute(text(f"""
                        INSERT INTO payment_money_lines (source, file_id, batch_id, order_id, end_to_end_id,
                                                         amount_fen, booked_on)
                        SELECT '{source}', :file, o.batch_id, o.id, b.e2e, b.amount, b.booked_on
                        FROM booked_lines b JOIN payment_orders o ON o.end_to_end_id = b.e2e"""), {"file": row.id})
            except IntegrityError:
                twice = session.execute(text(
                    "SELECT b.e2e FROM booked_lines b JOIN payment_money_lines m ON m.source = :source "
                    "AND m.end_to_end_id = b.e2e AND m.amount_fen = b.amount LIMIT 10"), {"source": source}).scalars()
                raise Conflict(f"{kind.value}{name}中有已经导入过的流水（" + "、".join(twice)
                               + "），整个文件未导入") from None
    session.flush()
    return BookingResult(row, len(lines), out_fen, back_fen)
