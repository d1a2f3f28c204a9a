"""Shared data sets on the web (信息归集): the list of data sets, each one's columns, deliveries in
force and delivery history with provenance, the upload form, template downloads, and the JSON API.

Views are thin: checking and storing a delivery is sharing.importer; what is in force is
sharing.service."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from yikatong.core.clock import Clock
from yikatong.core.errors import DomainError, Invalid
from yikatong.core.settings import get_settings
from yikatong.imports.schemas import RequestProblem
from yikatong.jobs import service as jobs
from yikatong.jobs.runner import store_upload
from yikatong.security.models import User
from yikatong.security.roles import Perm
from yikatong.sharing import service
from yikatong.sharing.importer import MAX_FILE_BYTES, dataset_or_404, import_dataset, snapshot_out
from yikatong.sharing.jobs import SHARED_IMPORT
from yikatong.sharing.schemas import DatasetOut, ImportOutcome, SnapshotOut
from yikatong.web.deps import DbSession, client_ip, get_clock, require
from yikatong.web.templating import templates

api = APIRouter(prefix="/api/v1/sharing", tags=["sharing"])
pages = APIRouter(include_in_schema=False)

ENCODINGS = {"utf-8": "UTF-8（默认，含或不含BOM）", "gb18030": "GB18030 / GBK（旧版Excel另存的CSV）"}
FORMAT_LABELS = {"csv": "CSV", "xlsx": "Excel", "parquet": "Parquet", "synth": "模拟数据"}


def _read_upload(file: UploadFile) -> bytes:
    data = file.file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise Invalid(f"文件过大：最大 {MAX_FILE_BYTES // 1024 // 1024} MB，请拆分文件")
    return data


def _as_of(text: str) -> date:
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError:
        raise Invalid("数据截止日期格式应为 YYYY-MM-DD，如 2026-11-30") from None


def _run(db: Session, user: User, dataset: str, file: UploadFile, agency: str, as_of: str, encoding: str,
         request: Request, clock: Clock) -> ImportOutcome:
    spec = dataset_or_404(dataset)
    day = _as_of(as_of)
    return import_dataset(db, spec.code, _read_upload(file), filename=file.filename or "upload", agency=agency,
                          as_of=day, actor=user, now=clock.now(), encoding=encoding, ip=client_ip(request))


# ---------------------------------------------------------------- API


@api.get("/datasets", response_model=list[DatasetOut], summary="The shared data sets and what is in force")
def datasets(user: User = Depends(require(Perm.SHARED_READ)), db: Session = DbSession) -> list[DatasetOut]:
    """Every data set: its columns, the deliveries in force (the latest of each agency) and their rows."""
    return [service.dataset_out(view) for view in service.overview(db, user)]


@api.get("/{dataset}/snapshots", response_model=list[SnapshotOut], summary="A data set's delivery history")
def snapshots(dataset: str, user: User = Depends(require(Perm.SHARED_READ)),
              db: Session = DbSession) -> list[SnapshotOut]:
    """Every delivery of the data set, newest first, with its provenance and whether it is in force."""
    view = service.dataset_view(db, user, dataset)
    return [snapshot_out(s, view.in_force(s)) for s in view.history]


REFUSED = ("Some rows are wrong: nothing was stored; `errors` lists row, column, value and reason "
           "(or the request itself is malformed: detail and errors)")


@api.post("/{dataset}/imports", status_code=201, response_model=ImportOutcome,
          summary="Import one delivery of a shared data set (all or nothing)",
          responses={422: {"model": ImportOutcome | RequestProblem, "description": REFUSED}})
def upload(
    dataset: str,
    request: Request,
    file: UploadFile = File(..., description="CSV (UTF-8 or GB18030), .xlsx or Parquet; column names in row 1"),
    agency: str = Form(..., description="提供单位, e.g. 市公安局"),
    as_of: str = Form(..., description="数据截止日期 YYYY-MM-DD, not in the future"),
    encoding: str = Form("utf-8", description="Encoding of a CSV file: utf-8 or gb18030"),
    user: User = Depends(require(Perm.SHARED_IMPORT)),
    db: Session = DbSession,
    clock: Clock = Depends(get_clock),
) -> Response:
    """Data sets: hukou, deaths, payroll, retirees, vehicles, businesses, real_estate, prisoners,
    village_cadres, card_registry, other_payments (docs/data-formats.md). 201 with the stored snapshot;
    422 with every error when any row is wrong (nothing stored)."""
    outcome = _run(db, user, dataset, file, agency, as_of, encoding, request, clock)
    return JSONResponse(outcome.model_dump(mode="json"), status_code=201 if outcome.ok else 422)


# ---------------------------------------------------------------- pages


@pages.get("/sharing")
def list_page(request: Request, user: User = Depends(require(Perm.SHARED_READ)),
              db: Session = DbSession) -> Response:
    views = service.overview(db, user)
    return templates.TemplateResponse(request, "sharing.html", {
        "user": user, "views": views, "total_rows": sum(v.rows_in_force for v in views),
        "delivered": sum(1 for v in views if v.current), "formats": FORMAT_LABELS})


def _dataset_page(request: Request, user: User, db: Session, dataset: str, context: dict,
                  status_code: int = 200) -> Response:
    view = service.dataset_view(db, user, dataset)
    base = {"user": user, "view": view, "dataset": view.dataset, "may_import": service.may_import(user),
            "encodings": ENCODINGS, "formats": FORMAT_LABELS, "format_zh": service.format_zh,
            "outcome": None, "message": None, "form": {}}
    base.update(context)
    partial = request.headers.get("hx-request") == "true"
    name = "sharing_result.html" if partial else "sharing_dataset.html"
    return templates.TemplateResponse(request, name, base, status_code=status_code)


@pages.get("/sharing/{dataset}/template.{fmt}")
def template_download(dataset: str, fmt: str, user: User = Depends(require(Perm.SHARED_READ))) -> Response:
    spec = dataset_or_404(dataset)
    if fmt not in service.FORMATS:
        raise Invalid("模板格式只能是 csv 或 xlsx")
    return Response(service.template_bytes(spec.code, fmt), media_type=service.MEDIA_TYPES[fmt],
                    headers={"Content-Disposition":
                             f'attachment; filename="{service.template_filename(spec, fmt)}"'})


@pages.get("/sharing/{dataset}")
def dataset_page(dataset: str, request: Request, job: int | None = None,
                 user: User = Depends(require(Perm.SHARED_READ)), db: Session = DbSession) -> Response:
    """The data set; `?job=` shows the outcome of a delivery imported by a job."""
    if job is not None:
        found = jobs.get_job(db, user, job)  # 403 for someone else's
        result = jobs.result_of(found) if found.kind == SHARED_IMPORT and found.result else {}
        if "outcome" in result:
            return _dataset_page(request, user, db, dataset, {"outcome": ImportOutcome.model_validate(
                result["outcome"])})
    return _dataset_page(request, user, db, dataset, {})


def _start_job(db: Session, user: User, dataset: str, file: UploadFile, agency: str, as_of: str, encoding: str,
               request: Request, clock: Clock) -> Response | None:
    """A delivery larger than YKT_IMPORT_JOB_BYTES is imported by a job: store it and answer with the
    job's page (htmx follows HX-Redirect). None for a smaller one, imported in the request."""
    spec = dataset_or_404(dataset)
    day = _as_of(as_of)
    if not agency.strip():
        raise Invalid("请填写提供数据的单位")
    data = _read_upload(file)
    file.file.seek(0)
    if len(data) <= get_settings().import_job_bytes:
        return None
    job = jobs.start(db, SHARED_IMPORT, {"dataset": spec.code, "filename": file.filename or "upload",
                                         "agency": agency, "as_of": day.isoformat(), "encoding": encoding,
                                         "ip": client_ip(request)}, user, clock.now(),
                     title=f"信息归集导入：{spec.label}（{file.filename or 'upload'}）")
    store_upload(job.id, data)
    if request.headers.get("hx-request") == "true":
        return Response(status_code=200, headers={"HX-Redirect": f"/jobs/{job.id}"})
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@pages.post("/sharing/{dataset}")
def upload_submit(
    dataset: str,
    request: Request,
    file: UploadFile = File(...),
    agency: str = Form(""),
    as_of: str = Form(""),
    encoding: str = Form("utf-8"),
    user: User = Depends(require(Perm.SHARED_IMPORT)),
    db: Session = DbSession,
    clock: Clock = Depends(get_clock),
) -> Response:
    form = {"agency": agency, "as_of": as_of, "encoding": encoding}
    dataset_or_404(dataset)
    try:
        started = _start_job(db, user, dataset, file, agency, as_of, encoding, request, clock)
        if started is not None:
            return started
        outcome = _run(db, user, dataset, file, agency, as_of, encoding, request, clock)
    except DomainError as e:
        return _dataset_page(request, user, db, dataset, {"message": e.message, "form": form},
                             status_code=e.status_code)
    return _dataset_page(request, user, db, dataset, {"outcome": outcome, "form": form},
                         status_code=200 if outcome.ok else 422)
