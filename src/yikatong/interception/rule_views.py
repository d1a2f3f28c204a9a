"""The checks on the web (比对规则): the list of rules with their flags, one rule with every version,
the form where a supervisor writes a rule in SQL, the dry run, switching on and off, and the
"run now" button; and the JSON API for the same. Thin: the checks are in interception.authoring,
the runs in interception.service."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yikatong.core.clock import Clock
from yikatong.core.errors import DomainError, Forbidden, Invalid
from yikatong.interception import authoring, service
from yikatong.interception.jobs import CITY_RUN, DRY_RUN
from yikatong.interception.models import Flag, FlagStatus, Rule, RuleOrigin, RuleRun, RuleVersion, Severity
from yikatong.interception.rulefile import ItemScope
from yikatong.interception.tables import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, RULE_TABLES
from yikatong.jobs import service as jobs
from yikatong.security.models import User
from yikatong.security.roles import Perm, has_perm, require_perm
from yikatong.web.deps import DbSession, RowId, client_ip, current_user, get_clock, require
from yikatong.web.templating import templates

api = APIRouter(prefix="/api/v1", tags=["interception"])
pages = APIRouter(include_in_schema=False)
manager = require(Perm.RULE_MANAGE)
RECENT_RUNS = 5


def rule_viewer(user: User = Depends(current_user)) -> User:
    """Whoever writes rules (supervisors) or starts runs (city finance) sees the list."""
    if not (has_perm(user.role, Perm.RULE_MANAGE) or has_perm(user.role, Perm.RULE_RUN)):
        raise Forbidden("当前角色无此权限")
    return user


# ---------------------------------------------------------------- figures the pages and the API share


def flag_counts(session: Session) -> dict[str, dict[str, int]]:
    """rule code -> {status: flags}."""
    counts: dict[str, dict[str, int]] = {}
    for code, status, n in session.execute(select(Flag.rule_code, Flag.status, func.count())
                                           .group_by(Flag.rule_code, Flag.status)):
        counts.setdefault(code, {})[status] = n
    return counts


def _versions(session: Session, rule: Rule) -> list[RuleVersion]:
    return list(session.scalars(select(RuleVersion).where(RuleVersion.rule_code == rule.code)
                                .order_by(RuleVersion.version.desc())))


def _running(rule: Rule, version: RuleVersion) -> bool:
    return bool(rule.active and rule.active_version == version.version)


# ---------------------------------------------------------------- JSON


class RuleCheckIn(BaseModel):
    sql: str = Field(description="规则SQL：一条只读查询，结果含 application_id、evidence（可选 amount_fen）")
    params: dict[str, int] = Field(default_factory=dict, description="命名参数（SQL中以 $名称 引用）")


class RuleCheckOut(BaseModel):
    ok: bool
    message: str = Field("", description="未通过时的原因（中文）")
    sql: str | None = Field(None, description="通过时：规范化后的SQL（保存和运行的就是它）")
    tables: list[str] = []
    datasets: list[str] = Field(default_factory=list, description="读取的共享数据集")
    columns: list[str] = Field(default_factory=list, description="结果列")


class RuleIn(BaseModel):
    code: str = Field(description="规则代码：大写字母开头，3至40位大写字母、数字、下划线")
    name: str
    explanation: str = Field(description="规则说明：查什么、为什么可疑、如何核实")
    severity: Severity
    items: str = Field("all", description="all、means_tested、basis:人,户 或以逗号分隔的补贴项目代码")
    sql: str
    params: dict[str, int] = Field(default_factory=dict)


class FlagCountsOut(BaseModel):
    open: int = Field(0, description="待核实")
    confirmed: int = Field(0, description="核实属实")
    cleared: int = Field(0, description="核实排除")


class RuleOut(BaseModel):
    code: str
    name: str
    origin: str = Field(description="内置 或 监督人员")
    active: bool
    active_version: int | None
    latest_version: int
    flags: FlagCountsOut


class RuleVersionOut(BaseModel):
    code: str
    version: int
    name: str
    severity: str
    items: str
    datasets: list[str]
    explanation: str
    sql: str
    params: dict[str, int]
    author_name: str
    created_at: datetime
    dry_run_at: datetime | None
    dry_run_hits: int | None
    dry_run_amount_fen: int | None = Field(description="试运行涉及金额（分）")
    activated_at: datetime | None
    running: bool = Field(description="这一版正在运行")
    reason: str = Field("", description="这一版的调整原因（调整参数时填写）")


class ParamIn(BaseModel):
    name: str = Field(min_length=1, max_length=60, description="参数名，如 vehicle_value_limit_fen")
    value: int = Field(ge=-10**15, le=10**15, description="新值（整数；金额为分）")
    reason: str = Field(min_length=1, max_length=1000, description="调整原因")


def _counts_out(counts: dict[str, int]) -> FlagCountsOut:
    return FlagCountsOut(open=counts.get(FlagStatus.OPEN.value, 0), confirmed=counts.get(FlagStatus.CONFIRMED.value, 0),
                         cleared=counts.get(FlagStatus.CLEARED.value, 0))


def rule_out(rule: Rule, counts: dict[str, int]) -> RuleOut:
    return RuleOut(code=rule.code, name=rule.name, origin=rule.origin, active=rule.active,
                   active_version=rule.active_version, latest_version=rule.latest_version, flags=_counts_out(counts))


def version_out(rule: Rule, v: RuleVersion) -> RuleVersionOut:
    return RuleVersionOut(code=v.rule_code, version=v.version, name=v.name, severity=v.severity, items=v.items,
                          datasets=[d for d in v.datasets.split(",") if d], explanation=v.explanation, sql=v.sql,
                          params=authoring.params_of(v), author_name=v.author_name, created_at=v.created_at,
                          dry_run_at=v.dry_run_at, dry_run_hits=v.dry_run_hits,
                          dry_run_amount_fen=v.dry_run_amount_fen, activated_at=v.activated_at,
                          running=_running(rule, v), reason=v.reason or "")


@api.get("/rules", response_model=list[RuleOut])
def api_rules(db: Session = DbSession, user: User = Depends(rule_viewer),
              clock: Clock = Depends(get_clock)) -> list[RuleOut]:
    """Every rule (比对规则) with the version that runs and its flags so far."""
    service.sync_builtin_rules(db, clock.now())
    counts = flag_counts(db)
    return [rule_out(r, counts.get(r.code, {})) for r in db.scalars(select(Rule).order_by(Rule.code))]


@api.post("/rules/check", response_model=RuleCheckOut)
def api_check(body: RuleCheckIn, user: User = Depends(manager)) -> RuleCheckOut:
    """Check a rule's SQL without saving it: one read-only query over the rule tables, known columns
    and functions, returning application_id and evidence. `ok` false carries the reason in Chinese."""
    try:
        c = authoring.validate_sql(body.sql, body.params)
    except Invalid as e:
        return RuleCheckOut(ok=False, message=e.message)
    return RuleCheckOut(ok=True, sql=c.sql, tables=list(c.tables), datasets=list(c.datasets), columns=list(c.columns))


@api.post("/rules", response_model=RuleVersionOut, status_code=201)
def api_save(body: RuleIn, request: Request, db: Session = DbSession, user: User = Depends(manager),
             clock: Clock = Depends(get_clock)) -> RuleVersionOut:
    """Save a supervisor's rule: a new code is a new rule (off), an existing one gets a new version."""
    version = authoring.save_rule(db, user, code=body.code, name=body.name, explanation=body.explanation,
                                  severity=body.severity.value, items=body.items, sql=body.sql, params=body.params,
                                  now=clock.now(), ip=client_ip(request))
    return version_out(authoring.get_rule(db, version.rule_code), version)


@api.get("/rules/{code}/versions/{number}", response_model=RuleVersionOut)
def api_version(code: str, number: RowId, db: Session = DbSession, user: User = Depends(rule_viewer)) -> RuleVersionOut:
    version = authoring.get_version(db, code, number)
    return version_out(authoring.get_rule(db, code), version)


class DryRunJobOut(BaseModel):
    job_id: int
    status: str = Field(description="任务状态：排队中")
    url: str = Field(description="查询进度和结果：GET 此地址，完成后 result 含命中笔数、涉及金额（分）和样例")


@api.post("/rules/{code}/versions/{number}/dry-run", response_model=DryRunJobOut, status_code=202)
def api_dry_run(code: str, number: RowId, request: Request, db: Session = DbSession, user: User = Depends(manager),
                clock: Clock = Depends(get_clock)) -> DryRunJobOut:
    """试运行: what this version would flag on the whole city now (no flag is written). A rule over the
    whole city may take minutes, so this queues a background job and answers at once (202); follow it
    at `GET /api/v1/jobs/{job_id}`."""
    version = authoring.get_version(db, code, number)
    job = jobs.start(db, DRY_RUN, {"code": version.rule_code, "version": version.version, "ip": client_ip(request)},
                     user, clock.now(), title=f"规则试运行：{version.rule_code} 第{version.version}版")
    return DryRunJobOut(job_id=job.id, status=job.status, url=f"/api/v1/jobs/{job.id}")


@api.post("/rules/{code}/versions/{number}/activate", response_model=RuleOut)
def api_activate(code: str, number: RowId, request: Request, db: Session = DbSession, user: User = Depends(manager),
                 clock: Clock = Depends(get_clock)) -> RuleOut:
    """启用: this version runs from now on (it must have been dry-run)."""
    rule = authoring.activate(db, user, authoring.get_version(db, code, number), clock.now(), ip=client_ip(request))
    return rule_out(rule, flag_counts(db).get(rule.code, {}))


@api.post("/rules/{code}/params", response_model=RuleVersionOut, status_code=201)
def api_set_param(code: str, body: ParamIn, request: Request, db: Session = DbSession, user: User = Depends(manager),
                  clock: Clock = Depends(get_clock)) -> RuleVersionOut:
    """调整规则参数: a new version with one parameter changed (same SQL), with the reason. A rule
    running its latest version runs the new one at once."""
    version = authoring.set_param(db, user, code, body.name, body.value, body.reason, clock.now(),
                                  ip=client_ip(request))
    return version_out(authoring.get_rule(db, version.rule_code), version)


@api.post("/rules/{code}/deactivate", response_model=RuleOut)
def api_deactivate(code: str, request: Request, db: Session = DbSession, user: User = Depends(manager),
                   clock: Clock = Depends(get_clock)) -> RuleOut:
    """停用: the rule no longer runs; its flags stay."""
    rule = authoring.deactivate(db, user, authoring.get_rule(db, code), clock.now(), ip=client_ip(request))
    return rule_out(rule, flag_counts(db).get(rule.code, {}))


# ---------------------------------------------------------------- pages


def _recent_runs(db: Session) -> list[dict]:
    runs = db.scalars(select(RuleRun).where(RuleRun.scope == "city").order_by(RuleRun.id.desc())
                      .limit(RECENT_RUNS)).all()
    out = []
    for r in runs:
        timings = json.loads(r.timings or "{}")
        out.append(dict(id=r.id, started_at=r.started_at, applications=r.applications, hits=r.hits,
                        new_flags=r.new_flags, seconds=timings.get("total"), errors=timings.get("errors", {})))
    return out


@pages.get("/rules", response_class=HTMLResponse)
def rules_page(request: Request, run: int | None = None, db: Session = DbSession, user: User = Depends(rule_viewer),
               clock: Clock = Depends(get_clock)):
    service.sync_builtin_rules(db, clock.now())
    rules = db.scalars(select(Rule).order_by(Rule.origin, Rule.code)).all()
    severities = dict(db.execute(select(RuleVersion.rule_code, RuleVersion.severity).join(
        Rule, (Rule.code == RuleVersion.rule_code) & (Rule.latest_version == RuleVersion.version))).all())
    runs = _recent_runs(db)
    just_ran = next((r for r in runs if r["id"] == run), None) if run else None
    return templates.TemplateResponse(request, "interception/rules.html", {
        "user": user, "rules": rules, "counts": flag_counts(db), "severities": severities, "runs": runs,
        "just_ran": just_ran, "statuses": FlagStatus, "can_manage": has_perm(user.role, Perm.RULE_MANAGE),
        "can_run": has_perm(user.role, Perm.RULE_RUN)})


@pages.post("/rules/run")
def run_now(request: Request, db: Session = DbSession, user: User = Depends(require(Perm.RULE_RUN)),
            clock: Clock = Depends(get_clock)):
    """立即比对: every active rule over the whole city, as a job the worker runs; the page answers at
    once with the job's page, which shows its progress."""
    job = jobs.start(db, CITY_RUN, {"ip": client_ip(request)}, user, clock.now())
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


class RuleForm(BaseModel):
    code: str = ""
    name: str = ""
    explanation: str = ""
    severity: str = Severity.MEDIUM.value
    items: str = "all"
    sql: str = ""
    params: str = ""
    action: str = "save"  # save / check


def _form_page(request: Request, user: User, form: RuleForm, *, error: str = "", checked=None, note: str = "",
               status_code: int = 200):
    return templates.TemplateResponse(request, "interception/rules_new.html", {
        "user": user, "form": form, "error": error, "checked": checked, "note": note, "severities": list(Severity),
        "tables": RULE_TABLES, "required": REQUIRED_COLUMNS, "optional": OPTIONAL_COLUMNS,
    }, status_code=status_code)


@pages.get("/rules/new", response_class=HTMLResponse)
def new_rule_page(request: Request, code: str | None = None, db: Session = DbSession,
                  user: User = Depends(manager)):
    """The form. `?code=X` starts from the latest version of rule X: a supervisor's rule gets a new
    version; a built-in rule is copied as a draft of a new rule (built-in rules cannot be changed)."""
    form, note = RuleForm(), ""
    if code:
        rule = authoring.get_rule(db, code)
        latest = authoring.get_version(db, rule.code)
        form = RuleForm(code=rule.code, name=latest.name, explanation=latest.explanation, severity=latest.severity,
                        items=latest.items, sql=latest.sql, params=authoring.params_text(latest))
        if rule.origin != RuleOrigin.SUPERVISOR.value:
            form.code = ""
            note = f"内置规则 {rule.code} 不能修改，已复制为新规则的草稿：请填写新的规则代码。"
        else:
            note = f"保存后成为规则 {rule.code} 的第{rule.latest_version + 1}版，原有版本保持不变。"
    return _form_page(request, user, form, note=note)


@pages.post("/rules/new", response_class=HTMLResponse)
def new_rule_submit(request: Request, form: Annotated[RuleForm, Form()], db: Session = DbSession,
                    user: User = Depends(manager), clock: Clock = Depends(get_clock)):
    try:
        params, notes = authoring.parse_params_text(form.params)
        if form.action == "check":
            checked = authoring.check_rule(code=form.code, name=form.name, explanation=form.explanation,
                                           severity=form.severity, items=form.items, sql=form.sql, params=params,
                                           param_notes=notes)
            return _form_page(request, user, form, checked=checked.checked)
        version = authoring.save_rule(db, user, code=form.code, name=form.name, explanation=form.explanation,
                                      severity=form.severity, items=form.items, sql=form.sql, params=params,
                                      now=clock.now(), ip=client_ip(request))
    except (Invalid, Forbidden) as e:
        return _form_page(request, user, form, error=e.message, status_code=422 if isinstance(e, Invalid) else 403)
    return RedirectResponse(f"/rules/{version.rule_code}?saved={version.version}", status_code=303)


def _detail_page(request: Request, db: Session, user: User, code: str, *, saved: int | None = None,
                 dry=None, message: str = "", error: str = "", status_code: int = 200):
    rule = authoring.get_rule(db, code)
    versions = _versions(db, rule)
    return templates.TemplateResponse(request, "interception/rules_detail.html", {
        "user": user, "rule": rule, "versions": versions, "counts": flag_counts(db).get(rule.code, {}),
        "statuses": FlagStatus, "saved": saved, "dry": dry, "message": message, "error": error,
        "can_manage": has_perm(user.role, Perm.RULE_MANAGE), "running": lambda v: _running(rule, v),
        "scope_label": lambda items: ItemScope.parse(items).label(), "params_of": authoring.params_of,
        "supervisor_rule": rule.origin == RuleOrigin.SUPERVISOR.value,
    }, status_code=status_code)


@pages.get("/rules/{code}", response_class=HTMLResponse)
def rule_page(request: Request, code: str, saved: int | None = None, activated: int | None = None,
              deactivated: bool = False, param_set: int | None = None, dry_job: int | None = None,
              db: Session = DbSession, user: User = Depends(rule_viewer)):
    if dry_job is not None:
        return _detail_page(request, db, user, code, dry=_dry_of(db, user, dry_job, code))
    message = ""
    if param_set:
        running = authoring.get_rule(db, code).active_version == param_set
        message = f"已调整参数，保存为第{param_set}版" + (
            "：此后的比对按新值运行。" if running else "。这条规则未按最新版运行，试运行后启用才生效。")
    elif saved:
        message = f"已保存第{saved}版（未启用）。请先试运行，看清命中多少笔、涉及多少金额，再决定是否启用。"
    elif activated:
        message = f"已启用第{activated}版：此后的比对（受理时、每日全市比对、发放前）都按这一版运行。"
    elif deactivated:
        message = "已停用：此规则不再运行，已产生的存疑信息保持不变。"
    return _detail_page(request, db, user, code, saved=saved, message=message)


@pages.post("/rules/{code}/versions/{number}/dry-run", response_class=HTMLResponse)
def dry_run_submit(request: Request, code: str, number: RowId, db: Session = DbSession, user: User = Depends(manager),
                   clock: Clock = Depends(get_clock)):
    """试运行 as a job (a rule over the whole city may take minutes): the page answers at once with the
    job's page; when it is done, its result link shows the figures here (`?dry_job=`)."""
    version = authoring.get_version(db, code, number)
    job = jobs.start(db, DRY_RUN, {"code": version.rule_code, "version": version.version, "ip": client_ip(request)},
                     user, clock.now(),
                     title=f"规则试运行：{version.rule_code} 第{version.version}版")
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


def _dry_of(db: Session, user: User, job_id: int, code: str) -> authoring.DryRun | None:
    """The figures of a finished dry-run job of this rule that `user` started."""
    job = jobs.get_job(db, user, job_id)
    result = jobs.result_of(job) if job.kind == DRY_RUN and job.result else {}
    if result.get("code") != code:
        return None
    return authoring.DryRun(**{f.name: result[f.name] for f in dataclasses.fields(authoring.DryRun)})


@pages.post("/rules/{code}/versions/{number}/activate")
def activate_submit(request: Request, code: str, number: RowId, db: Session = DbSession, user: User = Depends(manager),
                    clock: Clock = Depends(get_clock)):
    version = authoring.get_version(db, code, number)
    try:
        authoring.activate(db, user, version, clock.now(), ip=client_ip(request))
    except DomainError as e:
        return _detail_page(request, db, user, code, error=e.message, status_code=e.status_code)
    return RedirectResponse(f"/rules/{version.rule_code}?activated={version.version}", status_code=303)


@pages.post("/rules/{code}/params")
def set_param_submit(request: Request, code: str, name: Annotated[str, Form()] = "",
                     value: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
                     db: Session = DbSession, user: User = Depends(manager), clock: Clock = Depends(get_clock)):
    try:
        try:
            number = int(value.strip())
        except ValueError:
            raise Invalid("参数值应为整数（金额以分计）") from None
        version = authoring.set_param(db, user, code, name, number, reason, clock.now(), ip=client_ip(request))
    except DomainError as e:
        return _detail_page(request, db, user, code, error=e.message, status_code=e.status_code)
    return RedirectResponse(f"/rules/{version.rule_code}?param_set={version.version}", status_code=303)


@pages.post("/rules/{code}/deactivate")
def deactivate_submit(request: Request, code: str, db: Session = DbSession, user: User = Depends(manager),
                      clock: Clock = Depends(get_clock)):
    rule = authoring.get_rule(db, code)
    require_perm(user, Perm.RULE_MANAGE)
    authoring.deactivate(db, user, rule, clock.now(), ip=client_ip(request))
    return RedirectResponse(f"/rules/{rule.code}?deactivated=1", status_code=303)
