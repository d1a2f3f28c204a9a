"""Pages of the payment loop: 资金对账 (a batch's or a Beijing day's reconciliation, the treasury's detail,
the daily report in Excel), 退回重发 (failures back to the department), 发放成功率 (success rates), the
bank's own page (its batches' files to download, its returns and statements to upload) and the batch
file download. Thin: who may do what and the work itself are in disbursement.loop, .exchange,
.reconcile, .rework and .report; the long work runs as jobs."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from yikatong.core.clock import Clock, beijing_date
from yikatong.core.errors import DomainError
from yikatong.disbursement import exchange, loop, report, rework
from yikatong.disbursement.jobs import TREASURY
from yikatong.disbursement.models import Rework
from yikatong.disbursement.service import get_batch
from yikatong.security.models import User
from yikatong.security.roles import Perm
from yikatong.web.deps import DbSession, RowId, client_ip, current_user, get_clock, require
from yikatong.web.templating import templates

api = APIRouter(prefix="/api/v1", tags=["payment-loop"])  # the loop's API is in api_views
pages = APIRouter(include_in_schema=False)

RELEASED = "已标记为可重发：将纳入下一个发放批次"
RATE_VIEWS = {"batch": "按批次", "item": "按补贴项目", "bank": "按代发银行", "region": "按县（市、区）"}


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}


# ---------------------------------------------------------------- 资金对账


def _reconciliation_page(request: Request, db: Session, user: User, clock: Clock, *, batch: int | None,
                         day: str, error: str = "", status_code: int = 200) -> Response:
    the_batch = get_batch(db, user, batch) if batch else None
    the_day = loop.parse_day(day) if day and not the_batch else (None if the_batch else beijing_date(clock.now()))
    view = loop.latest_run(db, user, batch=the_batch, day=the_day)
    return templates.TemplateResponse(request, "disbursement/reconciliation.html", {
        "user": user, "batch": the_batch, "day": the_day, "view": view, "may_manage": loop.may_manage(user),
        "error": error}, status_code=status_code)


@pages.get("/reconciliation", response_class=HTMLResponse)
def reconciliation_page(request: Request, batch: RowId | None = None, day: str = "", db: Session = DbSession,
                        clock: Clock = Depends(get_clock),
                        user: User = Depends(require(Perm.PAYMENT_READ))) -> Response:
    """A batch's (`?batch=`) or a Beijing booking day's (`?day=2026-12-03`, default today) latest
    reconciliation with its differences."""
    try:
        return _reconciliation_page(request, db, user, clock, batch=batch, day=day)
    except DomainError as e:
        if e.status_code != 422:
            raise
        return _reconciliation_page(request, db, user, clock, batch=None, day="", error=e.message,
                                    status_code=e.status_code)


@pages.post("/reconciliation/reconcile", response_class=HTMLResponse)
def reconcile_day_submit(request: Request, day: str = Form(..., max_length=10), db: Session = DbSession,
                         clock: Clock = Depends(get_clock),
                         user: User = Depends(require(Perm.PAYMENT_MANAGE))) -> Response:
    try:
        job = loop.start_reconcile(db, user, clock.now(), day=loop.parse_day(day), ip=client_ip(request))
    except DomainError as e:
        db.rollback()
        return _reconciliation_page(request, db, user, clock, batch=None, day="", error=e.message,
                                    status_code=e.status_code)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@pages.post("/reconciliation/treasury", response_class=HTMLResponse)
def treasury_upload(request: Request, file: UploadFile = File(...), db: Session = DbSession,
                    clock: Clock = Depends(get_clock),
                    user: User = Depends(require(Perm.PAYMENT_MANAGE))) -> Response:
    """国库支付明细: kept in the restricted folder and booked by a job."""
    try:
        job = loop.start_upload(db, user, TREASURY, file.file, file.filename,
                                clock.now(), ip=client_ip(request))
    except DomainError as e:
        db.rollback()
        return _reconciliation_page(request, db, user, clock, batch=None, day="", error=e.message,
                                    status_code=e.status_code)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@pages.get("/reconciliation/{day}.xlsx")
def reconciliation_report(request: Request, day: date, db: Session = DbSession, clock: Clock = Depends(get_clock),
                          user: User = Depends(require(Perm.PAYMENT_READ))) -> Response:
    """日终对账报表 in Excel (audited as an export)."""
    name, data = report.day_report(db, user, day, clock.now(), ip=client_ip(request))
    return Response(data, media_type=report.XLSX_TYPE, headers=_attachment(name))


# ---------------------------------------------------------------- 退回重发


def _failures_page(request: Request, db: Session, user: User, state: str, *, message: str = "", error: str = "",
                   status_code: int = 200) -> Response:
    states = [r.value for r in Rework]
    state = state if state in states else Rework.OPEN.value
    return templates.TemplateResponse(request, "disbursement/failures.html", {
        "user": user, "rows": rework.failures(db, user, state=state), "state": state, "states": states,
        "message": message, "error": error}, status_code=status_code)


@pages.get("/payment-failures", response_class=HTMLResponse)
def failures_page(request: Request, state: str = Rework.OPEN.value, msg: str = "", db: Session = DbSession,
                  user: User = Depends(require(Perm.PAYMENT_REWORK))) -> Response:
    return _failures_page(request, db, user, state, message=msg)


@pages.post("/payment-failures/release", response_class=HTMLResponse)
def failures_release(request: Request, order_ids: list[int] = Form(default_factory=list),
                     note: str = Form("", max_length=200), db: Session = DbSession,
                     clock: Clock = Depends(get_clock),
                     user: User = Depends(require(Perm.PAYMENT_REWORK))) -> Response:
    try:
        n = rework.release(db, user, order_ids, note, clock.now(), ip=client_ip(request))
    except DomainError as e:
        db.rollback()
        return _failures_page(request, db, user, Rework.OPEN.value, error=e.message, status_code=e.status_code)
    return RedirectResponse(f"/payment-failures?msg={quote(f'{n}笔' + RELEASED)}", status_code=303)


# ---------------------------------------------------------------- 发放成功率


@pages.get("/payment-rates", response_class=HTMLResponse)
def rates_page(request: Request, by: str = "batch", db: Session = DbSession,
               user: User = Depends(require(Perm.PAYMENT_READ))) -> Response:
    by = by if by in RATE_VIEWS else "batch"
    rates = rework.success_rates(db, user, by)
    return templates.TemplateResponse(request, "disbursement/rates.html", {
        "user": user, "by": by, "views": RATE_VIEWS, "rates": rates,
        "labels": loop.rate_labels(db, by, [r.key for r in rates])})


# ---------------------------------------------------------------- the bank's page and the batch file


def _bank_page(request: Request, db: Session, user: User, *, error: str = "", status_code: int = 200) -> Response:
    return templates.TemplateResponse(request, "disbursement/bank.html", {
        "user": user, "batches": loop.bank_view(db, user), "error": error}, status_code=status_code)


@pages.get("/bank", response_class=HTMLResponse)
def bank_page(request: Request, db: Session = DbSession,
              user: User = Depends(require(Perm.BANK_EXCHANGE))) -> Response:
    """The bank's own batches: files to download, returns and statements to upload."""
    return _bank_page(request, db, user)


@pages.get("/bank/home-box", response_class=HTMLResponse)
def bank_home_box(request: Request, db: Session = DbSession,
                  user: User = Depends(require(Perm.BANK_EXCHANGE))) -> Response:
    """htmx fragment for the bank's home page: its batches waiting for a file or an answer."""
    return templates.TemplateResponse(request, "disbursement/_bank_home_box.html", {
        "user": user, "waiting": loop.bank_waiting(db, user)})


@pages.post("/bank/batches/{batch_id}/upload", response_class=HTMLResponse)
def bank_upload(request: Request, batch_id: RowId, kind: str = Form(..., max_length=20),
                file: UploadFile = File(...), db: Session = DbSession, clock: Clock = Depends(get_clock),
                user: User = Depends(require(Perm.BANK_EXCHANGE))) -> Response:
    try:
        job = loop.start_upload(db, user, kind, file.file, file.filename,
                                clock.now(), batch_id=batch_id, ip=client_ip(request), back="/bank")
    except DomainError as e:
        db.rollback()
        if e.status_code in (403, 404):
            raise
        return _bank_page(request, db, user, error=e.message, status_code=e.status_code)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@pages.get("/payment-files/{file_id}/download")
def file_download(request: Request, file_id: RowId, db: Session = DbSession, clock: Clock = Depends(get_clock),
                  user: User = Depends(current_user)) -> Response:
    """A batch file for the bank: finance of the batch's region or the paying bank; on the audit trail."""
    path = exchange.open_batch_file(db, user, file_id, clock.now(), ip=client_ip(request))
    return FileResponse(path, media_type="application/octet-stream", headers=_attachment(path.name))

