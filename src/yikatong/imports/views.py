"""Import routes: the JSON API (upload a file, get the report; download a template) and the upload page."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from yikatong.core import readers
from yikatong.core.clock import Clock
from yikatong.core.errors import DomainError, Forbidden, Invalid
from yikatong.core.settings import get_settings
from yikatong.imports.jobs import IMPORT
from yikatong.imports.kinds import KINDS, Kind
from yikatong.imports.schemas import ImportReport, RequestProblem
from yikatong.imports.service import import_file, kind_or_404, may_import
from yikatong.imports.template import FORMATS, MEDIA_TYPES, template_bytes, template_filename
from yikatong.jobs import service as jobs
from yikatong.jobs.runner import store_upload
from yikatong.security.models import User
from yikatong.web.deps import DbSession, client_ip, current_user, get_clock
from yikatong.web.templating import templates

api = APIRouter(prefix="/api/v1/imports", tags=["imports"])
pages = APIRouter()

ENCODINGS = {"utf-8": "UTF-8（默认，含或不含BOM）", "gb18030": "GB18030 / GBK（旧版Excel另存的CSV）"}


def _read_upload(file: UploadFile) -> bytes:
    """The uploaded bytes; one byte past the limit is enough for the reader to refuse the size."""
    return file.file.read(readers.MAX_FILE_BYTES + 1)


def _run(db: Session, user: User, kind: str, file: UploadFile, encoding: str, dry_run: bool, request: Request,
         clock: Clock) -> ImportReport:
    spec = kind_or_404(kind)
    if not may_import(user, spec):  # refuse before reading a possibly large body
        raise Forbidden(f"当前角色无权导入{spec.label}")
    return import_file(db, spec.name, _read_upload(file), file.filename or "upload", actor=user, now=clock.now(),
                       encoding=encoding, ip=client_ip(request), dry_run=dry_run)


REFUSED = ("Some rows are wrong: nothing was written; the report lists row, column, value and reason "
           "(or the request itself is malformed: detail and errors)")


@api.post(
    "/{kind}",
    response_model=ImportReport,
    summary="Import a CSV or .xlsx file (all or nothing)",
    responses={422: {"model": ImportReport | RequestProblem, "description": REFUSED}},
)
def upload(
    kind: str,
    request: Request,
    file: UploadFile = File(..., description="CSV (UTF-8 or GB18030) or .xlsx; header in row 1"),
    encoding: str = Form("utf-8", description="Encoding of a CSV file: utf-8 or gb18030"),
    dry_run: bool = Query(False, description="Validate only; write nothing"),
    user: User = Depends(current_user),
    db: Session = DbSession,
    clock: Clock = Depends(get_clock),
) -> Response:
    """Kinds: regions, departments, banks, catalogue, households, persons, cards, applications (a department's
    list of claims) (docs/data-formats.md).
    200 with the report when every row is valid (and written unless dry_run); 422 with the report when not."""
    report = _run(db, user, kind, file, encoding, dry_run, request, clock)
    return JSONResponse(report.model_dump(mode="json"), status_code=200 if report.ok else 422)


@api.get("/{kind}/template", summary="An empty import file with the right headers",
         responses={200: {"content": {MEDIA_TYPES["csv"]: {}, MEDIA_TYPES["xlsx"]: {}}}})
def template(kind: str, format: str = Query("csv", description="csv or xlsx"),
             user: User = Depends(current_user)) -> Response:
    spec = kind_or_404(kind)
    if format not in FORMATS:
        raise Invalid("模板格式只能是 csv 或 xlsx")
    return Response(template_bytes(spec, format), media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'attachment; filename="{template_filename(spec, format)}"'})


# ---------------------------------------------------------------- pages


def _allowed(user: User) -> list[Kind]:
    kinds = [k for k in KINDS.values() if may_import(user, k)]
    if not kinds:
        raise Forbidden("当前角色无权导入数据")
    return kinds


def _page(request: Request, user: User, context: dict, status_code: int = 200) -> Response:
    partial = request.headers.get("hx-request") == "true"
    base = {"user": user, "kinds": _allowed(user), "encodings": ENCODINGS, "selected": None, "report": None,
            "message": None}
    base.update(context)
    name = "imports/_result.html" if partial else "imports/upload.html"
    return templates.TemplateResponse(request, name, base, status_code=status_code)


@pages.get("/imports", include_in_schema=False)
def upload_page(request: Request, job: int | None = None, db: Session = DbSession,
                user: User = Depends(current_user)) -> Response:
    """The form; `?job=` shows the report of an import that ran as a job."""
    if job is not None:
        found = jobs.get_job(db, user, job)  # 403 for someone else's
        result = jobs.result_of(found) if found.kind == IMPORT and found.result else {}
        if "report" in result:
            report = ImportReport.model_validate(result["report"])
            return _page(request, user, {"report": report, "selected": report.kind})
    return _page(request, user, {})


def _start_job(db: Session, user: User, kind: str, file: UploadFile, encoding: str, dry_run: bool,
               request: Request, clock: Clock) -> Response | None:
    """A file larger than YKT_IMPORT_JOB_BYTES is imported by a job: store it and answer with the job's
    page (htmx follows HX-Redirect). None for a smaller file, imported in the request."""
    spec = kind_or_404(kind)
    if not may_import(user, spec):
        raise Forbidden(f"当前角色无权导入{spec.label}")
    data = _read_upload(file)
    file.file.seek(0)
    if len(data) <= get_settings().import_job_bytes or len(data) > readers.MAX_FILE_BYTES:
        return None  # small (or too large: the import refuses it with its own message)
    job = jobs.start(db, IMPORT, {"kind": spec.name, "filename": file.filename or "upload", "encoding": encoding,
                                  "dry_run": dry_run, "ip": client_ip(request)}, user, clock.now(),
                     title=f"数据导入：{spec.label}（{file.filename or 'upload'}）")
    store_upload(job.id, data)
    if request.headers.get("hx-request") == "true":
        return Response(status_code=200, headers={"HX-Redirect": f"/jobs/{job.id}"})
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@pages.post("/imports", include_in_schema=False)
def upload_submit(
    request: Request,
    kind: str = Form(...),
    file: UploadFile = File(...),
    encoding: str = Form("utf-8"),
    dry_run: str | None = Form(None),
    user: User = Depends(current_user),
    db: Session = DbSession,
    clock: Clock = Depends(get_clock),
) -> Response:
    _allowed(user)
    try:
        started = _start_job(db, user, kind, file, encoding, bool(dry_run), request, clock)
        if started is not None:
            return started
        report = _run(db, user, kind, file, encoding, bool(dry_run), request, clock)
    except DomainError as e:
        return _page(request, user, {"message": e.message, "selected": kind}, status_code=e.status_code)
    return _page(request, user, {"report": report, "selected": report.kind},
                 status_code=200 if report.ok else 422)
