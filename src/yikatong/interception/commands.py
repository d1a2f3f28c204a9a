"""`ykt rules ...` (the checks, 比对规则: list, read, check and add a rule file, dry-run, switch on and
off) and `ykt intercept ...` (run every active rule over the city; the pre-payment gate for a set of
applications). Writes go through interception.authoring and interception.service, the same
functions as the pages; they are audited under the user given with --user."""

from __future__ import annotations

from pathlib import Path

import typer

from yikatong.core.clock import format_beijing

SNAPSHOT_STAGES = ("导出平台数据", "挂载共享数据")


def _user(session, username: str | None, *, required: bool = True):
    """The user named by --user (must exist and be active), or None when not required and not given."""
    from sqlalchemy import select

    from yikatong.core.errors import Invalid
    from yikatong.security.models import User

    if not username:
        if required:
            raise Invalid("请用 --user 指定操作人（监督人员的登录名）")
        return None
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.active:
        raise Invalid(f"用户不存在或已停用：{username}")
    return user


def _console(stderr: bool = False):
    """A Rich console that does not break long Chinese lines (messages are copied and searched)."""
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True, highlight=False)


def _fail(message: str, code: int = 1) -> typer.Exit:
    _console(stderr=True).print(f"[red]{message}[/red]")
    return typer.Exit(code)


def _bar_of(stage: str) -> str:
    """The snapshot counts its two stages (platform tables, shared data) as one sequence of steps,
    and the rules share one bar."""
    return "规则" if stage.startswith("规则 ") else "快照" if stage in SNAPSHOT_STAGES else stage


def _flag_counts(session) -> dict[str, dict[str, int]]:
    from sqlalchemy import func, select

    from yikatong.interception.models import Flag

    counts: dict[str, dict[str, int]] = {}
    for code, status, n in session.execute(select(Flag.rule_code, Flag.status, func.count())
                                           .group_by(Flag.rule_code, Flag.status)):
        counts.setdefault(code, {})[status] = n
    return counts


def _print_dry_run(out, dry) -> None:
    from rich.table import Table

    from yikatong.core.money import format_fen

    out.print(f"试运行 {dry.code} 第{dry.version}版：在 {dry.applications:,} 笔在办和已通过的申请中，"
              f"命中 [bold]{dry.hits:,}[/bold] 笔，涉及金额 [bold]{format_fen(dry.amount_fen)}[/bold] 元，"
              f"用时 {dry.seconds:.2f} 秒（未生成存疑信息）")
    if not dry.sample:
        return
    table = Table(title=f"命中样例（金额最大的前{len(dry.sample)}笔）")
    for header in ("申请编号", "补贴项目", "所在村", "疑点", "金额（元）"):
        table.add_column(header, justify="right" if header.startswith("金额") else "left")
    for r in dry.sample:
        table.add_row(r["number"], r["item_name"], r["region_name"], r["evidence"], format_fen(r["amount_fen"]))
    out.print(table)


def register(app: typer.Typer) -> None:
    rules_app = typer.Typer(
        help="The checks (比对规则) that compare claims with the registry and the shared data of other "
             "agencies. Built-in rules ship with the platform; supervisors add their own as a rule file: a "
             "header of '-- key: value' lines (code, name, severity 高/中/低, items, datasets, explanation, "
             "param) and one SELECT that returns application_id and evidence. A new rule is off until a "
             "version has been dry-run on the whole city and switched on.",
        no_args_is_help=True)

    @rules_app.command("list")
    def list_rules() -> None:
        """List every rule with the version that runs and its flags so far.

        Columns: code, name, built-in or written by supervisors, severity, the running version (or
        off), the latest version, and flags open / confirmed / cleared."""
        from rich.table import Table
        from sqlalchemy import select

        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.interception import service
        from yikatong.interception.models import FlagStatus, Rule, RuleVersion

        with transaction() as session:
            service.sync_builtin_rules(session, system_clock.now())
            rules = session.scalars(select(Rule).order_by(Rule.origin, Rule.code)).all()
            severities = {(v.rule_code, v.version): v.severity for v in session.scalars(select(RuleVersion))}
            counts = _flag_counts(session)
            table = Table(title=f"比对规则（共{len(rules)}条）")
            counted = tuple(s.value for s in FlagStatus)
            for header in ("代码", "名称", "来源", "严重程度", "运行版本", "最新版本", *counted):
                table.add_column(header, justify="right" if header in counted else "left", no_wrap=header == "代码")
            for r in rules:
                c = counts.get(r.code, {})
                running = f"第{r.active_version}版" if r.active and r.active_version else "[yellow]停用[/yellow]"
                severity = severities.get((r.code, r.active_version or r.latest_version), "")
                table.add_row(r.code, r.name, r.origin, severity, running, f"第{r.latest_version}版",
                              *(f"{c.get(s.value, 0):,}" for s in FlagStatus))
            _console().print(table)

    @rules_app.command("show")
    def show(code: str = typer.Argument(..., help="Rule code, e.g. DECEASED"),
             version: int | None = typer.Option(None, "--version", help="Which version (default: the latest)")) -> None:
        """Show one rule: header, explanation, SQL, dry-run figures and its versions.

        Also lists every version: who wrote it, when, its dry-run hits, and which one runs."""
        from rich.syntax import Syntax
        from rich.table import Table

        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.core.errors import DomainError
        from yikatong.core.money import format_fen
        from yikatong.interception import authoring, service
        from yikatong.interception.rulefile import ItemScope

        out = _console()
        try:
            with transaction() as session:
                service.sync_builtin_rules(session, system_clock.now())
                rule = authoring.get_rule(session, code)
                v = authoring.get_version(session, rule.code, version)
                running = rule.active and rule.active_version == v.version
                out.print(f"[bold]{rule.code} {v.name}[/bold]（第{v.version}版，{rule.origin}规则，"
                          f"{'正在运行' if running else '未运行'}）")
                out.print(f"严重程度：{v.severity}    适用项目：{ItemScope.parse(v.items).label()}    "
                          f"读取数据：{v.datasets or '仅平台数据'}")
                out.print(f"作者：{v.author_name}    保存时间：{format_beijing(v.created_at)}")
                if v.reason:
                    out.print(f"调整原因：{v.reason}")
                out.print(f"说明：{v.explanation}")
                params = authoring.params_of(v)
                if params:
                    out.print("参数：" + "，".join(f"${k} = {val}" for k, val in params.items()))
                if v.dry_run_at:
                    out.print(f"试运行：{format_beijing(v.dry_run_at)}，命中 {v.dry_run_hits:,} 笔，"
                              f"涉及金额 {format_fen(v.dry_run_amount_fen or 0)} 元")
                else:
                    out.print("试运行：尚未试运行")
                out.print(Syntax(v.sql, "sql", word_wrap=True, background_color="default"))
                table = Table(title="各版本")
                for header in ("版本", "作者", "保存时间", "调整原因", "试运行命中", "启用时间", ""):
                    table.add_column(header)
                for x in rule.versions:
                    table.add_row(f"第{x.version}版", x.author_name, format_beijing(x.created_at), x.reason or "",
                                  "" if x.dry_run_hits is None else f"{x.dry_run_hits:,}",
                                  format_beijing(x.activated_at),
                                  "运行中" if rule.active and rule.active_version == x.version else "")
                out.print(table)
        except DomainError as e:
            raise _fail(e.message, 2) from None

    @rules_app.command("check")
    def check(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                          help="A rule file (.sql with the '-- key: value' header)")) -> None:
        """Check a rule file without saving it, and print the verdict.

        Checks the header, and that the SQL is one read-only query over the tables rules may read,
        with known columns and functions, returning application_id and evidence. Prints the tables it
        reads and the SQL as it would be stored. Exit code 1 if refused."""
        from rich.syntax import Syntax

        from yikatong.core.errors import DomainError
        from yikatong.interception import authoring

        out = _console()
        try:
            checked = authoring.check_rule_text(file.read_text(encoding="utf-8-sig"), file.name)
        except DomainError as e:
            raise _fail(f"校验未通过：{e.message}") from None
        c = checked.checked
        out.print(f"[green]校验通过[/green]：{checked.spec.code} {checked.spec.name}")
        out.print(f"读取的数据表：{'、'.join(c.tables) or '无'}；共享数据：{'、'.join(c.datasets) or '无'}；"
                  f"结果列：{'、'.join(c.columns)}")
        for warning in checked.warnings:
            out.print(f"[yellow]提示：{warning}[/yellow]")
        out.print(Syntax(c.sql, "sql", word_wrap=True, background_color="default"))

    @rules_app.command("add")
    def add(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                        help="A rule file (.sql with the '-- key: value' header)"),
            user: str = typer.Option(..., "--user", help="Login name of the supervisor who writes the rule "
                                                         "(named in the rule's history and the audit trail)")) -> None:
        """Save a supervisor's rule from a rule file (off until dry-run and enabled).

        A new code makes a new rule, switched off; an existing code of a supervisor's rule adds a new
        version (old versions are kept as they were). Built-in rules cannot be changed this way.
        Next: `ykt rules dry-run CODE`, then `ykt rules enable CODE --user NAME`."""

        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.core.errors import DomainError
        from yikatong.interception import authoring
        from yikatong.interception.rulefile import parse_rule_text

        out = _console()
        try:
            text = file.read_text(encoding="utf-8-sig")
            checked = authoring.check_rule_text(text, file.name)
            spec = parse_rule_text(text, file.name)
            with transaction() as session:
                author = _user(session, user)
                version = authoring.save_rule(session, author, code=spec.code, name=spec.name,
                                              explanation=spec.explanation, severity=spec.severity,
                                              items=str(spec.items), sql=spec.sql, params=spec.params,
                                              now=system_clock.now())
                number, code = version.version, version.rule_code
        except DomainError as e:
            raise _fail(e.message) from None
        for warning in checked.warnings:
            out.print(f"[yellow]提示：{warning}[/yellow]")
        out.print(f"已保存规则 {code} 第{number}版（未启用）。请先试运行：ykt rules dry-run {code} --version {number}",
                  highlight=False)

    @rules_app.command("dry-run")
    def dry_run(code: str = typer.Argument(..., help="Rule code"),
                version: int | None = typer.Option(None, "--version", help="Which version (default: the latest)"),
                user: str | None = typer.Option(None, "--user", help="Login name of who runs it (audit trail); "
                                                                     "default: the system")) -> None:
        """Dry-run one version over the whole city (试运行), without raising any flag.

        Shows how many live applications it would flag, the money at stake and a sample. The figures
        are kept with the version; a version can be switched on only after a dry run."""

        from yikatong.core.clock import system_clock
        from yikatong.core.db import engine, transaction
        from yikatong.core.errors import DomainError
        from yikatong.core.progress import progress_bar
        from yikatong.interception import authoring

        out = _console()
        try:
            with transaction() as session:
                actor = _user(session, user, required=False)
                v = authoring.get_version(session, code.strip(), version)
                with progress_bar(group=_bar_of) as on_progress:
                    result = authoring.dry_run(engine(), session, v, system_clock.now(), actor=actor,
                                               progress=on_progress)
        except DomainError as e:
            raise _fail(e.message) from None
        _print_dry_run(out, result)

    @rules_app.command("enable")
    def enable(code: str = typer.Argument(..., help="Rule code"),
               version: int | None = typer.Option(None, "--version", help="Which version (default: the latest)"),
               user: str = typer.Option(..., "--user", help="Login name of the supervisor who switches it on")) -> None:
        """Switch a rule on at a version (启用); the version must have been dry-run.

        From then on that version checks every claim: at submission, in the city-wide run and before
        payment."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.core.errors import DomainError
        from yikatong.interception import authoring

        try:
            with transaction() as session:
                actor = _user(session, user)
                v = authoring.get_version(session, code.strip(), version)
                authoring.activate(session, actor, v, system_clock.now())
                message = f"已启用规则 {v.rule_code} 第{v.version}版"
        except DomainError as e:
            raise _fail(e.message) from None
        typer.echo(message)

    @rules_app.command("disable")
    def disable(code: str = typer.Argument(..., help="Rule code"),
                user: str = typer.Option(..., "--user",
                                         help="Login name of the supervisor who switches it off")) -> None:
        """Switch a rule off (停用). Flags it raised stay as they are; it no longer runs."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.core.errors import DomainError
        from yikatong.interception import authoring

        try:
            with transaction() as session:
                actor = _user(session, user)
                rule = authoring.get_rule(session, code)
                authoring.deactivate(session, actor, rule, system_clock.now())
                message = f"已停用规则 {rule.code}"
        except DomainError as e:
            raise _fail(e.message) from None
        typer.echo(message)

    @rules_app.command("set-param")
    def set_param(code: str = typer.Argument(..., help="Rule code, e.g. VEHICLE_MEANS_TESTED"),
                  name: str = typer.Argument(..., help="Parameter name as declared in the rule, e.g. "
                                                       "vehicle_value_limit_fen"),
                  value: int = typer.Argument(..., help="New integer value (amounts in fen)"),
                  reason: str = typer.Option(..., "--reason", help="Why (recorded with the new version)"),
                  user: str = typer.Option(..., "--user", help="Login name of the supervisor who changes it")) -> None:
        """Change a parameter of a rule (调整规则参数): a new version with the same SQL and the new
        value, recorded with who, when and why. A running rule runs the new version from the next
        check on; a built-in rule keeps the value when the rule file is updated."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.core.errors import DomainError
        from yikatong.interception import authoring

        try:
            with transaction() as session:
                actor = _user(session, user)
                v = authoring.set_param(session, actor, code.strip(), name, value, reason, system_clock.now())
                running = authoring.get_rule(session, v.rule_code).active_version == v.version
                param = name.strip().lstrip("$")
                message = (f"已调整规则 {v.rule_code} 的参数 {param} = {value}，保存为第{v.version}版"
                           + ("，此后的比对按新值运行" if running else "（规则未按最新版运行：试运行后启用才生效）"))
        except DomainError as e:
            raise _fail(e.message) from None
        typer.echo(message)

    app.add_typer(rules_app, name="rules")

    intercept_app = typer.Typer(
        help="Interception (存疑信息拦截): run the active rules and turn their hits into flags that the "
             "item's department must verify before the claim can pass or be paid.",
        no_args_is_help=True)

    @intercept_app.command("run")
    def run(user: str | None = typer.Option(None, "--user", help="Login name of who starts the run (recorded "
                                                                 "with it); default: the system"),
            threads: int | None = typer.Option(None, "--threads", min=1, help="DuckDB threads (default: all cores)"),
            job: bool = typer.Option(False, "--job", help="Queue the run as a background job for `ykt worker` "
                                                          "(as the page's button does) instead of running it here"),
            wait: bool = typer.Option(False, "--wait", help="With --job: show the job's progress until it ends"),
            ) -> None:
        """Run every active rule over all live claims of the city (全市比对) and raise flags.

        Set-based over a columnar snapshot of the committed data and the current shared data. New hits
        become flags (a hit seen before, even if cleared, is not raised again). Prints the new flags
        per rule and the time each rule took. Exit code 1 if a rule failed. With --job the run is a
        background job (see `ykt jobs`); each rule query stops after YKT_RULE_TIMEOUT_SECONDS."""
        import json
        import time

        if job:
            from yikatong.core.clock import system_clock
            from yikatong.core.db import transaction
            from yikatong.interception.jobs import CITY_RUN
            from yikatong.jobs import service as jobs
            from yikatong.jobs.follow import wait_for

            with transaction() as session:
                queued = jobs.start(session, CITY_RUN, {}, _user(session, user, required=False), system_clock.now())
                job_id = queued.id
            _console().print(f"已排队：后台任务 #{job_id}（由 ykt worker 运行；ykt jobs show {job_id} 查看进度）")
            if wait and wait_for(job_id) != "已完成":
                raise typer.Exit(1)
            return

        from rich.table import Table
        from sqlalchemy import func, select

        from yikatong.core.clock import system_clock
        from yikatong.core.db import engine, transaction
        from yikatong.core.errors import DomainError
        from yikatong.core.progress import progress_bar
        from yikatong.interception import service
        from yikatong.interception.models import Flag, Rule

        out = _console()
        started = time.perf_counter()
        try:
            with transaction() as session:
                actor = _user(session, user, required=False)
                with progress_bar(group=_bar_of) as on_progress:
                    result = service.run_city(engine(), session, system_clock.now(), actor=actor,
                                              progress=on_progress, threads=threads)
                session.flush()
                new = dict(session.execute(select(Flag.rule_code, func.count()).where(Flag.run_id == result.id)
                                           .group_by(Flag.rule_code)).all())
                names = dict(session.execute(select(Rule.code, Rule.name)).all())
                timings = json.loads(result.timings or "{}")
                summary = (result.id, result.applications, result.hits, result.new_flags)
        except DomainError as e:
            raise _fail(e.message) from None
        run_id, applications, hits, new_flags = summary
        table = Table(title=f"比对完成（第{run_id}次）：{applications:,} 笔申请，命中 {hits:,} 笔，"
                            f"新增存疑信息 {new_flags:,} 条")
        for header in ("规则", "名称", "新增存疑", "用时（秒）", "错误"):
            table.add_column(header, justify="right" if header in ("新增存疑", "用时（秒）") else "left",
                             no_wrap=header == "规则")
        rule_times = timings.get("rules", {})
        errors = timings.get("errors", {})
        for code in sorted(set(rule_times) | set(new)):
            table.add_row(code, names.get(code, ""), f"{new.get(code, 0):,}", f"{rule_times.get(code, 0):.2f}",
                          errors.get(code, ""))
        out.print(table)
        out.print(f"总用时 {time.perf_counter() - started:.1f} 秒")
        if errors:
            raise typer.Exit(1)

    @intercept_app.command("gate")
    def gate(ids_file: Path = typer.Option(..., "--application-ids-file", exists=True, dir_okay=False,
                                           readable=True, help="A text file with one application ID per line"),
             user: str | None = typer.Option(None, "--user", help="Login name of who asks (recorded with the "
                                                                  "check); default: the system")) -> None:
        """The pre-payment gate (发放前比对): may this set of applications be paid?

        Runs every active rule on them; those with no open flag move from 已通过 to 待支付 (ready for
        payment). Exit code 1 when any is blocked by an open flag or was not 已通过. Flags found by
        the check are kept either way."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.core.errors import DomainError
        from yikatong.interception import service

        ids: list[int] = []
        for number, line in enumerate(ids_file.read_text(encoding="utf-8-sig").splitlines(), 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if not text.isdigit():
                raise _fail(f"第{number}行不是申请ID：{text}", 2)
            ids.append(int(text))
        if not ids:
            raise _fail("文件中没有申请ID", 2)
        try:
            with transaction() as session:  # the flags found and the moves to 待支付 are committed together
                actor = _user(session, user, required=False)
                result = service.gate(session, ids, system_clock.now(), actor=actor)
        except DomainError as e:
            raise _fail(e.message) from None
        typer.echo(result.message())
        if result.blocked:
            shown = "、".join(str(i) for i in result.blocked_ids[:20]) + ("……" if len(result.blocked) > 20 else "")
            typer.echo(f"有存疑信息的申请ID：{shown}")
        if result.not_payable:
            listed = list(result.not_payable.items())
            shown = "、".join(f"{i}（{status}）" for i, status in listed[:20]) + ("……" if len(listed) > 20 else "")
            typer.echo(f"未转入待支付的申请ID：{shown}")
        if not result.passed:
            raise typer.Exit(1)

    @intercept_app.command("tallies")
    def check_tallies(rebuild: bool = typer.Option(False, "--rebuild", help="Count them again from the flags "
                                                                           "(in one transaction)")) -> None:
        """Check the flag tallies behind the statistics and the flags list against a count over the
        flags (exit code 1 when they differ); with --rebuild, count them again from the flags.

        They are kept exact by every write that raises or verifies a flag; a difference means flags
        were written by hand (SQL) around the platform."""
        from yikatong.core.db import transaction
        from yikatong.interception import tallies

        with transaction() as session:
            if rebuild:
                rows = tallies.rebuild(session)
                typer.echo(f"已按存疑信息重新统计：{rows:,} 行")
                return
            differences = tallies.differences(session)
        if differences:
            raise _fail(f"统计表与存疑信息不一致：{len(differences):,} 行（可用 --rebuild 重新统计）")
        typer.echo("统计表与存疑信息一致")

    app.add_typer(intercept_app, name="intercept")
