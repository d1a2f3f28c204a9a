"""The payment loop's JSON API: batches with their files, export and reconciliation started as jobs (202
with the job's id), a return, statement or treasury detail uploaded (multipart, 202 with the job's id), a
batch's or a day's reconciliation with its differences, failures and their release, success rates, and a
batch file for the bank. The same services as the pages (disbursement.loop, .exchange, .rework)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from yikatong.core.clock import Clock
from yikatong.core.errors import NotFound
from yikatong.disbursement import exchange, loop, rework, service
from yikatong.disbursement.jobs import RETURN, STATEMENT, TREASURY
from yikatong.disbursement.models import PaymentBatch, Rework
from yikatong.disbursement.schemas import (
    BatchDetailOut,
    BatchOut,
    DifferenceOut,
    FailureOut,
    FileOut,
    JobStartedOut,
    RateOut,
    ReconciliationOut,
    ReleaseIn,
    ReleaseOut,
)
from yikatong.jobs.models import Job
from yikatong.security.models import User
from yikatong.security.roles import Perm
from yikatong.web.deps import DbSession, RowId, client_ip, current_user, get_clock, require

api = APIRouter(prefix="/api/v1", tags=["payment-loop"])
pages = APIRouter(include_in_schema=False)  # the loop's pages are in loop_views

UPLOAD = File(..., description="银行或国库的原始文件（回盘、对账单为银行模板格式或 ISO 20022；国库支付明细为 CSV）")


def _started(job: Job) -> JobStartedOut:
    return JobStartedOut(job_id=job.id, status=job.status, url=f"/api/v1/jobs/{job.id}")


def _batch(b: PaymentBatch) -> dict:
    return dict(id=b.id, number=b.number, item_code=b.item_code, period=b.period, year=b.year, bank_code=b.bank_code,
                region_code=b.region_code, status=b.status, order_count=b.order_count, total_fen=b.total_fen,
                made_by_name=b.made_by_name, approved_by_name=b.approved_by_name or None)


def _run_out(view: loop.RunView) -> ReconciliationOut:
    r = view.run
    return ReconciliationOut(
        id=r.id, batch_id=r.batch_id, day=r.day, orders=r.orders, orders_fen=r.orders_fen, paid_fen=r.paid_fen,
        failed_fen=r.failed_fen, bank_out_fen=r.bank_out_fen, bank_back_fen=r.bank_back_fen,
        treasury_out_fen=r.treasury_out_fen, treasury_back_fen=r.treasury_back_fen, balanced=r.balanced,
        differences=r.differences, summary=view.summary, by_name=r.by_name, at=r.at,
        difference_rows=[DifferenceOut(order_id=d.order_id, end_to_end_id=d.end_to_end_id, kind=d.kind,
                                       order_fen=d.order_fen, bank_fen=d.bank_fen, treasury_fen=d.treasury_fen)
                         for d in view.differences])


@api.get("/batches", response_model=list[BatchOut])
def api_batches(db: Session = DbSession, user: User = Depends(current_user)) -> list[BatchOut]:
    """Payment batches: those of your region (finance, supervisors), or your bank's own (the bank)."""
    return [BatchOut(**_batch(b)) for b in loop.batches_for(db, user)]


@api.get("/batches/{batch_id}", response_model=BatchDetailOut)
def api_batch(batch_id: RowId, db: Session = DbSession, user: User = Depends(current_user)) -> BatchDetailOut:
    """One batch with its order counts by status and its files (name, records, total, SHA-256, state)."""
    b = loop.batch_for(db, user, batch_id)
    return BatchDetailOut(**_batch(b), order_counts=service.order_counts(db, b),
                          files=[FileOut.model_validate(f, from_attributes=True) for f in exchange.files_of(db, b)])


@api.get("/payment-files/{file_id}/content", response_class=FileResponse,
         responses={200: {"content": {"application/octet-stream": {}}}})
def api_file(request: Request, file_id: RowId, db: Session = DbSession, clock: Clock = Depends(get_clock),
             user: User = Depends(current_user)):
    """A batch file's bytes (finance of its region or the paying bank), checked against its SHA-256;
    audited. 422 once the bank's return for it was taken in (the file is deleted then)."""
    path = exchange.open_batch_file(db, user, file_id, clock.now(), ip=client_ip(request))
    return FileResponse(path, media_type="application/octet-stream", filename=path.name)


@api.post("/batches/{batch_id}/export", response_model=JobStartedOut, status_code=202)
def api_export(request: Request, batch_id: RowId, db: Session = DbSession, clock: Clock = Depends(get_clock),
               user: User = Depends(require(Perm.PAYMENT_MANAGE))) -> JobStartedOut:
    """生成代发文件 for an approved batch, as a job; follow it at the returned url."""
    return _started(loop.start_export(db, user, batch_id, clock.now(), ip=client_ip(request)))


@api.post("/batches/{batch_id}/returns", response_model=JobStartedOut, status_code=202)
def api_return(request: Request, batch_id: RowId, file: UploadFile = UPLOAD, db: Session = DbSession,
               clock: Clock = Depends(get_clock), user: User = Depends(current_user)) -> JobStartedOut:
    """The bank's return (回盘文件) for one of the batch's files, taken in whole or not at all by a job."""
    return _started(loop.start_upload(db, user, RETURN, file.file, file.filename,
                                      clock.now(), batch_id=batch_id, ip=client_ip(request)))


@api.post("/batches/{batch_id}/statements", response_model=JobStartedOut, status_code=202)
def api_statement(request: Request, batch_id: RowId, file: UploadFile = UPLOAD, db: Session = DbSession,
                  clock: Clock = Depends(get_clock), user: User = Depends(current_user)) -> JobStartedOut:
    """The bank's statement (银行对账单) of the paying account for the batch, booked by a job."""
    return _started(loop.start_upload(db, user, STATEMENT, file.file,
                                      file.filename, clock.now(), batch_id=batch_id, ip=client_ip(request)))


@api.post("/treasury-files", response_model=JobStartedOut, status_code=202)
def api_treasury(request: Request, file: UploadFile = UPLOAD, db: Session = DbSession,
                 clock: Clock = Depends(get_clock),
                 user: User = Depends(require(Perm.PAYMENT_MANAGE))) -> JobStartedOut:
    """The treasury's payment detail (国库支付明细), booked by a job."""
    return _started(loop.start_upload(db, user, TREASURY, file.file, file.filename,
                                      clock.now(), ip=client_ip(request)))


@api.post("/batches/{batch_id}/reconcile", response_model=JobStartedOut, status_code=202)
def api_reconcile_batch(request: Request, batch_id: RowId, db: Session = DbSession,
                        clock: Clock = Depends(get_clock),
                        user: User = Depends(require(Perm.PAYMENT_MANAGE))) -> JobStartedOut:
    """对账 of one batch, as a job."""
    return _started(loop.start_reconcile(db, user, clock.now(), batch_id=batch_id, ip=client_ip(request)))


@api.post("/reconciliations/days/{day}", response_model=JobStartedOut, status_code=202)
def api_reconcile_day(request: Request, day: date, db: Session = DbSession, clock: Clock = Depends(get_clock),
                      user: User = Depends(require(Perm.PAYMENT_MANAGE))) -> JobStartedOut:
    """日终对账 of a Beijing booking day across every batch, as a job."""
    return _started(loop.start_reconcile(db, user, clock.now(), day=day, ip=client_ip(request)))


@api.get("/batches/{batch_id}/reconciliation", response_model=ReconciliationOut)
def api_batch_reconciliation(batch_id: RowId, db: Session = DbSession,
                             user: User = Depends(require(Perm.PAYMENT_READ))) -> ReconciliationOut:
    """The batch's latest reconciliation with its differences record by record; 404 before the first."""
    view = loop.batch_run(db, user, batch_id)
    if view is None:
        raise NotFound("该批次尚未对账")
    return _run_out(view)


@api.get("/reconciliations/days/{day}", response_model=ReconciliationOut)
def api_day_reconciliation(day: date, db: Session = DbSession,
                           user: User = Depends(require(Perm.PAYMENT_READ))) -> ReconciliationOut:
    """The day's latest reconciliation with its differences; 404 before the first."""
    view = loop.latest_run(db, user, day=day)
    if view is None:
        raise NotFound("该日尚未对账")
    return _run_out(view)


@api.get("/payment-failures", response_model=list[FailureOut])
def api_failures(state: Rework = Query(Rework.OPEN, description="待处理、可重发 或 已重发"),
                 limit: int = Query(500, ge=1, le=1000), offset: int = Query(0, ge=0, le=10_000_000),
                 db: Session = DbSession, user: User = Depends(require(Perm.PAYMENT_REWORK))) -> list[FailureOut]:
    """Failed payments of your region (a department: its own items) with the bank's reason; names and
    accounts masked."""
    return [FailureOut(**f.__dict__) for f in rework.failures(db, user, state=state.value, limit=limit,
                                                              offset=offset)]


@api.post("/payment-failures/release", response_model=ReleaseOut)
def api_release(request: Request, body: ReleaseIn, db: Session = DbSession, clock: Clock = Depends(get_clock),
                user: User = Depends(require(Perm.PAYMENT_REWORK))) -> ReleaseOut:
    """Release failed payments to be paid again (可重发) with your note; 409 if one was handled meanwhile."""
    return ReleaseOut(released=rework.release(db, user, body.order_ids, body.note, clock.now(),
                                              ip=client_ip(request)))


@api.get("/payment-rates", response_model=list[RateOut])
def api_rates(by: str = Query("batch", pattern="^(batch|item|bank|region)$",
                              description="batch、item、bank 或 region（按县）"),
              year: int | None = Query(None, ge=2000, le=2100), item_code: str | None = Query(None, max_length=20),
              db: Session = DbSession, user: User = Depends(require(Perm.PAYMENT_READ))) -> list[RateOut]:
    """First-attempt and final success rates."""
    rates = rework.success_rates(db, user, by, item_code=item_code, year=year)
    labels = loop.rate_labels(db, by, [r.key for r in rates])
    return [RateOut(key=r.key, label=labels.get(r.key, r.key), answered=r.answered, first_paid=r.first_paid,
                    first_rate=r.first_rate, applications=r.applications, finally_paid=r.finally_paid,
                    final_rate=r.final_rate) for r in rates]

