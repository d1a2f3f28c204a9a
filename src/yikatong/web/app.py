"""The FastAPI application: pages in Chinese, JSON API under /api/v1, static assets served locally."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, unquote_plus, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from yikatong import __version__
from yikatong.core.clock import Clock
from yikatong.core.errors import RACED, AuthRequired, Busy, Conflict, DomainError
from yikatong.core.settings import get_settings
from yikatong.web.deps import is_https
from yikatong.web.templating import templates

STATIC = Path(__file__).resolve().parent / "static"

# Pages and API answers may carry personal data: never cached, never framed, scripts only from us.
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'",
}


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CROSS_SITE = "请求不是从本站页面发出的，已拒绝。请从本站页面重新操作"
HSTS = "max-age=31536000; includeSubDomains"


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


BUSY = "系统繁忙，请稍后重试"
# What the engines say when a lock could not be had in time (SQLite's busy_timeout ran out, or
# PostgreSQL broke a deadlock): the request changed nothing and may simply be sent again.
_BUSY_SIGNS = ("database is locked", "database is busy", "deadlock detected")


# An integer literal in a path segment or a query value; beyond 64 bits no column can hold it.
INTEGER = re.compile(r"^[+-]?[0-9]+$")
OUT_OF_RANGE = "数值超出允许范围"


def _huge_number_in_url(request: Request) -> bool:
    for value in (*request.url.path.split("/"), *request.query_params.values()):
        if len(value) > 18 and INTEGER.match(value.strip()):
            digits = value.strip().lstrip("+-").lstrip("0") or "0"
            if len(digits) > 19 or int(digits) > 2**63 - 1:  # (never int() of thousands of digits)
                return True
    return False


# Pydantic's error types in the user's language (the field name stays as sent).
ERROR_WORDS = {
    "missing": "必填", "int_parsing": "应为整数", "int_from_float": "应为整数", "float_parsing": "应为数字",
    "bool_parsing": "应为是或否", "date_parsing": "日期格式应为 2026-12-31", "date_from_datetime_parsing":
    "日期格式应为 2026-12-31", "string_pattern_mismatch": "格式不正确", "string_too_long": "过长",
    "string_too_short": "过短", "greater_than_equal": "不能小于{ge}", "less_than_equal": "不能大于{le}",
    "greater_than": "应大于{gt}", "less_than": "应小于{lt}", "enum": "取值不在允许范围内", "literal_error":
    "取值不在允许范围内", "json_invalid": "不是有效的JSON", "model_attributes_type": "格式不正确",
    "dict_type": "应为对象", "list_type": "应为列表", "string_type": "应为文本", "int_type": "应为整数",
    "too_long": "条目过多", "value_error": "取值无效", "uuid_parsing": "格式不正确",
}


def _problem(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"] if p not in ("body", "query", "path", "form", "header"))
    words = ERROR_WORDS.get(error["type"], "取值无效")
    try:
        words = words.format(**error.get("ctx", {}))
    except (KeyError, IndexError):
        pass
    return f"{where or '请求'}：{words}"


# An ID number's shape: 17 digits and a digit or X, not part of a longer number.
ID_IN_URL = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
ID_IN_URL_REFUSED = "身份证号不能放在网址中（会留在访问日志和浏览器历史里）：请在页面的查询框中提交，或用 POST 接口"


def _id_number_in_url(request: Request) -> bool:
    return bool(request.url.query) and ID_IN_URL.search(unquote_plus(request.url.query)) is not None


def _from_elsewhere(request: Request) -> bool:
    """A state-changing browser request whose Origin (or, without one, Referer) is not this site.

    The session cookie is SameSite=Strict, but another port of the same host is the same site, so the
    browser would still send it: the origin check is what stops a page elsewhere from posting a form with
    the clerk's session. API calls with a Bearer token are not at risk (a browser never adds that header
    for another site) and are let through; a request with neither header does not come from a browser
    page we need to fear (browsers send Origin on every POST)."""
    if request.method not in UNSAFE_METHODS or request.headers.get("authorization", "").lower().startswith("bearer "):
        return False
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return False
    netloc = urlsplit(source).netloc.lower()
    allowed = {request.headers.get("host", "").lower()}
    if get_settings().public_url:
        allowed.add(urlsplit(get_settings().public_url).netloc.lower())
    return netloc not in allowed


def create_app(clock: Clock | None = None) -> FastAPI:
    from yikatong.catalog import views as catalog_views
    from yikatong.disbursement import api_views as payment_api_views
    from yikatong.disbursement import loop_views as payment_loop_views
    from yikatong.disbursement import passbook_views
    from yikatong.disbursement import views as disbursement_views
    from yikatong.imports import views as import_views
    from yikatong.interception import rule_views
    from yikatong.interception import views as interception_views
    from yikatong.jobs import views as jobs_views
    from yikatong.registry import views as registry_views
    from yikatong.security import views as security_views
    from yikatong.sharing import views as sharing_views
    from yikatong.workflow import eye_views, road_views, submission_views
    from yikatong.workflow import views as workflow_views

    app = FastAPI(
        title="一卡通 Yikatong API",
        version=__version__,
        description="惠民惠农财政补贴资金“一卡通”发放监管平台 JSON API。登录：POST /api/v1/auth/login 取得 token，"
        "之后以 `Authorization: Bearer <token>` 调用。",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    if clock is not None:
        app.state.clock = clock
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (security_views, registry_views, catalog_views, import_views, submission_views, workflow_views,
                   eye_views, road_views, sharing_views, interception_views, rule_views, jobs_views,
                   disbursement_views, payment_loop_views, payment_api_views):
        app.include_router(module.api)
        app.include_router(module.pages)
    app.include_router(passbook_views.pages)

    def refuse(request: Request, message: str, status: int) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": message}, status_code=status)
        return templates.TemplateResponse(request, "error.html", {"message": message, "status": status,
                                                                  "user": None}, status_code=status)

    @app.middleware("http")
    async def guard(request: Request, call_next) -> Response:
        if _from_elsewhere(request):
            return refuse(request, CROSS_SITE, 403)
        if _id_number_in_url(request):
            return refuse(request, ID_IN_URL_REFUSED, 422)
        if _huge_number_in_url(request):
            return refuse(request, OUT_OF_RANGE, 422)
        return await call_next(request)

    @app.middleware("http")
    async def security_headers(request: Request, call_next) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if is_https(request):
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": exc.message}, status_code=exc.status_code)
        if isinstance(exc, AuthRequired) and request.method == "GET":
            # The query string is already percent-encoded: keep its escapes, encode only its separators.
            target = quote(request.url.path, safe="/")
            if request.url.query:
                target += quote("?" + request.url.query, safe="%")
            return RedirectResponse(f"/login?next={target}", status_code=303)
        return templates.TemplateResponse(
            request, "error.html", {"message": exc.message, "status": exc.status_code,
                                    "user": getattr(request.state, "viewer", None)},
            status_code=exc.status_code,
        )

    @app.exception_handler(StaleDataError)
    async def raced(request: Request, exc: StaleDataError) -> Response:
        # A conditional write found the record moved by someone else (services answer this themselves;
        # this catches a write flushed only at commit).
        return await domain_error(request, Conflict(RACED))

    @app.exception_handler(OperationalError)
    async def busy(request: Request, exc: OperationalError) -> Response:
        if not any(sign in str(exc.orig) for sign in _BUSY_SIGNS):
            raise exc
        response = await domain_error(request, Busy(BUSY))
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def out_of_range(request: Request, exc: Exception) -> Response:
        """The last net under the stated limits: a number no column can hold (SQLite raises OverflowError,
        PostgreSQL SQLSTATE 22003) is the request's fault, not the server's."""
        if isinstance(exc, DataError) and getattr(exc.orig, "sqlstate", None) != "22003":
            raise exc
        if _is_api(request):
            return JSONResponse({"detail": OUT_OF_RANGE}, status_code=422)
        return templates.TemplateResponse(request, "error.html", {"message": OUT_OF_RANGE, "status": 422,
                                                                  "user": getattr(request.state, "viewer", None)},
                                          status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = [_problem(e) for e in exc.errors()]
        if _is_api(request):
            return JSONResponse({"detail": "请求参数有误：" + "；".join(problems), "errors": problems},
                                status_code=422)
        return templates.TemplateResponse(
            request, "error.html", {"message": "请求参数有误：" + "；".join(problems), "status": 422,
                                    "user": getattr(request.state, "viewer", None)}, status_code=422)

    return app
