"""Payment pages: 预算指标 (the budget per item and year, an allocation form, a file upload through the
import machinery) and 发放批次 (build a batch, the batch with its orders masked and the applications
left out, approval by another user). City finance acts; supervisors read. Views are thin: who may
do what, and what it does, are in disbursement.budget and disbursement.service."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from yikatong.catalog.models import Bank, FundingLevel, SubsidyItem, TreasuryAccount
from yikatong.core.clock import Clock, beijing_date
from yikatong.core.errors import DomainError, Invalid
from yikatong.core.money import parse_yuan
from yikatong.disbursement import budget, exchange, loop, service
from yikatong.disbursement.models import BatchStatus
from yikatong.security.models import User
from yikatong.security.roles import Perm, has_perm
from yikatong.web.deps import DbSession, RowId, client_ip, get_clock, require
from yikatong.web.templating import templates

api = APIRouter(prefix="/api/v1", tags=["disbursement"])
pages = APIRouter(include_in_schema=False)

ORDERS_SHOWN = 500
TAKES_FILES = (BatchStatus.SENT.value, BatchStatus.ANSWERED.value, BatchStatus.RECONCILED.value)
APPROVED = "批次已审批：支付指令已固定，等待发送银行"
CANCELLED = "批次已撤销：其中的申请可以纳入新的批次"


def _items(db: Session) -> list[tuple[str, str]]:
    return [(c, n) for c, n in db.execute(select(SubsidyItem.code, SubsidyItem.name).order_by(SubsidyItem.code))]


def _budget_page(request: Request, db: Session, user: User, clock: Clock, *, year: int | None,
                 message: str = "", error: str = "", status_code: int = 200) -> Response:
    year = year or beijing_date(clock.now()).year
    return templates.TemplateResponse(request, "disbursement/budget.html", {
        "user": user, "year": year, "lines": budget.overview(db, user, year=year), "items": _items(db),
        "levels": [f.value for f in FundingLevel], "may_manage": has_perm(user.role, Perm.BUDGET_MANAGE),
        "message": message, "error": error}, status_code=status_code)


@pages.get("/budget", response_class=HTMLResponse)
def budget_page(request: Request, year: int | None = None, msg: str = "", db: Session = DbSession,
                clock: Clock = Depends(get_clock), user: User = Depends(require(Perm.PAYMENT_READ))) -> Response:
    return _budget_page(request, db, user, clock, year=year, message=msg)


@pages.post("/budget", response_class=HTMLResponse)
def budget_add(request: Request, item_code: str = Form(..., max_length=20), year: int = Form(...),
               funding_level: str = Form(..., max_length=4), amount: str = Form(..., max_length=20),
               note: str = Form("", max_length=200), db: Session = DbSession, clock: Clock = Depends(get_clock),
               user: User = Depends(require(Perm.BUDGET_MANAGE))) -> Response:
    try:
        try:
            fen = parse_yuan(amount)
        except ValueError as e:
            raise Invalid(str(e)) from None
        budget.set_allocations(db, user, [budget.AllocationInput(item_code.strip(), year, funding_level, fen,
                                                                 note.strip())], clock.now(), ip=client_ip(request))
    except DomainError as e:
        db.rollback()
        return _budget_page(request, db, user, clock, year=year, error=e.message, status_code=e.status_code)
    msg = quote(f"已保存：{item_code} {year}年度 {funding_level}级指标")
    return RedirectResponse(f"/budget?year={year}&msg={msg}", status_code=303)


def _batches_page(request: Request, db: Session, user: User, *, result: service.BuildResult | None = None,
                  form: dict | None = None, error: str = "", status_code: int = 200) -> Response:
    return templates.TemplateResponse(request, "disbursement/batches.html", {
        "user": user, "batches": service.list_batches(db, user), "items": _items(db),
        "banks": db.execute(select(Bank.code, Bank.name).order_by(Bank.code)).all(),
        "treasuries": db.execute(select(TreasuryAccount.code, TreasuryAccount.name)
                                 .order_by(TreasuryAccount.code)).all(),
        "may_build": has_perm(user.role, Perm.PAYMENT_MANAGE), "result": result, "form": form or {},
        "error": error}, status_code=status_code)


@pages.get("/batches", response_class=HTMLResponse)
def batches_page(request: Request, db: Session = DbSession,
                 user: User = Depends(require(Perm.PAYMENT_READ))) -> Response:
    return _batches_page(request, db, user)


@pages.post("/batches", response_class=HTMLResponse)
def batch_build(request: Request, item_code: str = Form(..., max_length=20), period: str = Form(..., max_length=20),
                bank_code: str = Form(..., max_length=10), treasury_code: str = Form("", max_length=20),
                db: Session = DbSession, clock: Clock = Depends(get_clock),
                user: User = Depends(require(Perm.PAYMENT_MANAGE))) -> Response:
    """The result is committed with the request, refused or not: the gate's flags and moves are kept."""
    form = {"item_code": item_code, "period": period, "bank_code": bank_code, "treasury_code": treasury_code}
    try:
        result = service.build_batch(db, user, item_code=item_code, period=period, bank_code=bank_code,
                                     now=clock.now(), treasury_code=treasury_code or None, ip=client_ip(request))
    except DomainError as e:
        db.rollback()
        return _batches_page(request, db, user, form=form, error=e.message, status_code=e.status_code)
    return _batches_page(request, db, user, result=result, form=form, status_code=409 if result.refused else 200)


def _batch_page(request: Request, db: Session, user: User, batch_id: int, *, message: str = "", error: str = "",
                status_code: int = 200) -> Response:
    batch = service.get_batch(db, user, batch_id)
    manage = loop.may_manage(user)
    return templates.TemplateResponse(request, "disbursement/batch.html", {
        "files": exchange.files_of(db, batch), "may_manage": manage,
        "may_export": manage and batch.status in (BatchStatus.APPROVED.value, BatchStatus.SENT.value),
        "may_take": manage and batch.status in TAKES_FILES, "run": loop.latest_run(db, user, batch=batch, limit=20),
        "user": user, "batch": batch, "orders": service.batch_orders(db, batch, limit=ORDERS_SHOWN),
        "counts": service.order_counts(db, batch), "item": db.get(SubsidyItem, batch.item_code),
        "treasury": db.get(TreasuryAccount, batch.treasury_code), "may_approve": service.may_approve(user, batch),
        "may_cancel": batch.status == "待审批" and has_perm(user.role, Perm.PAYMENT_MANAGE),
        "shown": ORDERS_SHOWN, "message": message, "error": error}, status_code=status_code)


@pages.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_page(request: Request, batch_id: RowId, msg: str = "", db: Session = DbSession,
               user: User = Depends(require(Perm.PAYMENT_READ))) -> Response:
    return _batch_page(request, db, user, batch_id, message=msg)


@pages.post("/batches/{batch_id}/approve", response_class=HTMLResponse)
def batch_approve(request: Request, batch_id: RowId, version: int | None = Form(None),
                  db: Session = DbSession, clock: Clock = Depends(get_clock),
                  user: User = Depends(require(Perm.PAYMENT_MANAGE))) -> Response:
    try:
        service.approve_batch(db, user, batch_id, clock.now(), seen_version=version, ip=client_ip(request))
    except DomainError as e:
        db.rollback()
        return _batch_page(request, db, user, batch_id, error=e.message, status_code=e.status_code)
    return RedirectResponse(f"/batches/{batch_id}?msg={quote(APPROVED)}", status_code=303)


@pages.post("/batches/{batch_id}/cancel", response_class=HTMLResponse)
def batch_cancel(request: Request, batch_id: RowId, db: Session = DbSession, clock: Clock = Depends(get_clock),
                 user: User = Depends(require(Perm.PAYMENT_MANAGE))) -> Response:
    try:
        service.cancel_batch(db, user, batch_id, clock.now(), ip=client_ip(request))
    except DomainError as e:
        db.rollback()
        return _batch_page(request, db, user, batch_id, error=e.message, status_code=e.status_code)
    return RedirectResponse(f"/batches/{batch_id}?msg={quote(CANCELLED)}", status_code=303)


# ---------------------------------------------------------------- the bank loop from the batch page (jobs)


@pages.post("/batches/{batch_id}/export", response_class=HTMLResponse)
def batch_export(request: Request, batch_id: RowId, db: Session = DbSession, clock: Clock = Depends(get_clock),
                 user: User = Depends(require(Perm.PAYMENT_MANAGE))) -> Response:
    """生成代发文件 as a job: the page answers at once with the job's page."""
    try:
        job = loop.start_export(db, user, batch_id, clock.now(), ip=client_ip(request))
    except DomainError as e:
        db.rollback()
        return _batch_page(request, db, user, batch_id, error=e.message, status_code=e.status_code)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@pages.post("/batches/{batch_id}/upload", response_class=HTMLResponse)
def batch_upload(request: Request, batch_id: RowId, kind: str = Form(..., max_length=20),
                 file: UploadFile = File(...), db: Session = DbSession, clock: Clock = Depends(get_clock),
                 user: User = Depends(require(Perm.PAYMENT_MANAGE))) -> Response:
    """A return or statement for the batch: kept in the restricted folder and taken in by a job."""
    try:
        job = loop.start_upload(db, user, kind, file.file, file.filename,
                                clock.now(), batch_id=batch_id, ip=client_ip(request))
    except DomainError as e:
        db.rollback()
        return _batch_page(request, db, user, batch_id, error=e.message, status_code=e.status_code)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@pages.post("/batches/{batch_id}/reconcile", response_class=HTMLResponse)
def batch_reconcile(request: Request, batch_id: RowId, db: Session = DbSession, clock: Clock = Depends(get_clock),
                    user: User = Depends(require(Perm.PAYMENT_MANAGE))) -> Response:
    try:
        job = loop.start_reconcile(db, user, clock.now(), batch_id=batch_id, ip=client_ip(request))
    except DomainError as e:
        db.rollback()
        return _batch_page(request, db, user, batch_id, error=e.message, status_code=e.status_code)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)
