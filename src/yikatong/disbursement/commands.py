"""`ykt pay ...`: budget allocations (指标) and payment batches (发放批次) from the command line, through the
same services as the pages (disbursement.budget, disbursement.service); writes are audited under --user."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import typer

USER_HELP = ("Act as this user (their login name): their role and region decide what is allowed, the audit "
             "trail names them.")


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True, highlight=False)


def _user(session, username: str | None, *, required: bool):
    from sqlalchemy import select

    from yikatong.core.errors import Invalid
    from yikatong.security.models import User

    if not username:
        if required:
            raise Invalid("请用 --user 指定操作人（市财政用户的登录名）")
        return None
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.active:
        raise Invalid(f"用户不存在或已停用：{username}")
    return user


def _fail(message: str, code: int = 1) -> typer.Exit:
    _console(stderr=True).print(f"[red]{message}[/red]")
    return typer.Exit(code)


@contextmanager
def _refusals():
    """A domain refusal ends the command with its Chinese message and exit code 1, not a traceback."""
    from yikatong.core.errors import DomainError

    try:
        yield
    except DomainError as e:
        raise _fail(e.message) from None


def _declared(hashes: list[str], path: Path, files: list[Path]) -> str | None:
    """The --sha256 given for `path` (by position), if any."""
    if not hashes:
        return None
    if len(hashes) != len(files):
        raise _fail("--sha256 的个数应与文件个数相同", 2)
    return hashes[files.index(path)]


def _batch_table(batches):
    from rich.table import Table

    from yikatong.core.clock import format_beijing
    from yikatong.core.money import format_fen

    table = Table(title=f"发放批次（{len(batches)}个）")
    for header in ("批次号", "项目", "期次", "银行", "状态", "笔数", "金额（元）", "未纳入", "制单", "审批"):
        table.add_column(header, justify="right" if header in ("笔数", "金额（元）", "未纳入") else "left")
    for b in batches:
        table.add_row(b.number, b.item_code, b.period, b.bank_code, b.status, f"{b.order_count:,}",
                      format_fen(b.total_fen), f"{b.blocked_count:,}", f"{b.made_by_name} {format_beijing(b.made_at)}",
                      f"{b.approved_by_name} {format_beijing(b.approved_at)}" if b.approved_at else "")
    return table


def register(app: typer.Typer) -> None:
    pay_app = typer.Typer(
        help="Paying subsidies onto the card: budget allocations (指标) per item, year and funding level; "
             "payment batches (发放批次) built from applications that finished the review road, checked by the "
             "pre-payment gate, kept within the budget, made by one user and approved by another; the bank's "
             "files (export, return, statement), the treasury's detail, three-way reconciliation, failed "
             "payments and their re-payment, success rates.",
        no_args_is_help=True)
    budget_app = typer.Typer(
        help="Budget allocations (指标): how much each item may pay in a year, by funding level "
             "(中央/省/市/县). A batch that would exceed what remains is refused.",
        no_args_is_help=True)
    batch_app = typer.Typer(
        help="Payment batches (发放批次): one item, one period, one bank. Build one, let another user approve "
             "it (the maker may not), list them, show one with its orders.",
        no_args_is_help=True)

    @budget_app.command("add")
    def budget_add(
        item: str = typer.Argument(..., help="Item code, e.g. ZS007."),
        year: int = typer.Argument(..., help="Budget year, e.g. 2026."),
        level: str = typer.Argument(..., help="Funding level: 中央, 省, 市 or 县."),
        amount: str = typer.Argument(..., help="The allocation in yuan, e.g. 1250000.00. It replaces the amount "
                                               "stored for the same item, year and level."),
        note: str = typer.Option("", "--note", help="The allocation's document number or a remark."),
        user: str | None = typer.Option(None, "--user", help=USER_HELP + " Default: the system."),
    ) -> None:
        """Set one allocation of an item for a year and funding level (added, or its amount changed).

        An item's year may not fall below what approved batches already committed."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.core.money import format_fen, parse_yuan
        from yikatong.disbursement import budget

        try:
            fen = parse_yuan(amount)
        except ValueError as e:
            raise _fail(str(e), 2) from None
        with _refusals(), transaction() as session:
            actor = _user(session, user, required=False)
            added, updated, _ = budget.set_allocations(
                session, actor, [budget.AllocationInput(item.strip(), year, level.strip(), fen, note.strip())],
                system_clock.now(), source="cli")
            allocated, committed = budget.figures(session, item.strip(), year)
        what = "已新增" if added else "已更新" if updated else "未变化"
        _console().print(f"{what}：{item} {year}年度 {level} 指标{format_fen(fen)}元；该项目本年度合计指标"
                         f"{format_fen(allocated)}元，已占用{format_fen(committed)}元，"
                         f"剩余{format_fen(allocated - committed)}元")

    @budget_app.command("import")
    def budget_import(
        file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                    help="CSV or Excel .xlsx with the columns 项目代码, 年度, 资金级次, "
                                         "指标金额（元）, 文件依据 (docs/data-formats.md, budget)."),
        user: str | None = typer.Option(None, "--user", help=USER_HELP + " Default: the system."),
        encoding: str = typer.Option("utf-8", "--encoding", help="utf-8 or gb18030 (CSV only)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Check every row and report, but write nothing."),
    ) -> None:
        """Load allocations from a file (the same as `ykt import budget FILE`).

        All or nothing: if any row is wrong nothing is written and every problem is listed with its row,
        column and reason. Loading the same file again changes nothing."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.core.progress import print_errors
        from yikatong.imports.service import import_file

        out = _console()
        with _refusals(), transaction() as session:
            actor = _user(session, user, required=False)
            report = import_file(session, "budget", file, file.name, actor=actor, now=system_clock.now(),
                                 encoding=encoding, dry_run=dry_run)
            if dry_run:
                session.rollback()
        if not report.ok:
            print_errors(out, f"{report.kind_label}导入失败：{report.filename}", report.errors, report.error_count)
            raise typer.Exit(1)
        done = "校验通过（未写入）" if dry_run else "完成"
        out.print(f"{report.kind_label}导入{done}：{report.total_rows:,}行，新增{report.added:,}，更新{report.updated:,}，"
                  f"未变{report.unchanged:,}")

    @budget_app.command("list")
    def budget_list(
        year: int | None = typer.Option(None, "--year", help="Only this budget year."),
        item: str | None = typer.Option(None, "--item", help="Only this item code."),
    ) -> None:
        """Allocated, committed (approved batches) and spent (orders the bank paid) per item and year."""
        from rich.table import Table

        from yikatong.core.db import new_session
        from yikatong.core.money import format_fen
        from yikatong.disbursement import budget

        with _refusals(), new_session() as session:
            lines = budget.overview(session, None, year=year, item_code=item)
        table = Table(title=f"补贴资金指标（{len(lines)}项）")
        for header in ("项目", "名称", "年度", "指标", "已占用", "已支付", "剩余", "分级次"):
            table.add_column(header, justify="right" if header in ("指标", "已占用", "已支付", "剩余") else "left")
        for x in lines:
            table.add_row(x.item_code, x.item_name, str(x.year), format_fen(x.allocated_fen),
                          format_fen(x.committed_fen), format_fen(x.spent_fen), format_fen(x.remaining_fen),
                          "，".join(f"{k}{format_fen(v)}" for k, v in x.levels.items()))
        _console().print(table)

    @batch_app.command("build")
    def batch_build(
        item: str = typer.Option(..., "--item", help="Item code, e.g. ZS007."),
        period: str = typer.Option(..., "--period", help="The period paid, by the item's frequency: 2026-11, "
                                                         "2026Q4, 2026H2 or 2026."),
        bank: str = typer.Option(..., "--bank", help="Paying bank code: the batch takes the applications whose "
                                                     "payee's card is at this bank."),
        user: str = typer.Option(..., "--user", help=USER_HELP + " The maker: another user approves."),
        treasury: str | None = typer.Option(None, "--treasury", help="Treasury or special account code to pay "
                                                                      "from. Default: the 专户 of the user's region."),
    ) -> None:
        """Build a payment batch from the applications of the item and period that finished the road.

        The pre-payment gate runs first: applications with open flags, or without a card to pay into,
        stay out and are listed with their reasons. A batch that would exceed what remains of the
        item's budget for the year is refused whole, with the figures."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.disbursement import service

        with _refusals(), transaction() as session:
            actor = _user(session, user, required=True)
            result = service.build_batch(session, actor, item_code=item, period=period, bank_code=bank,
                                         now=system_clock.now(), treasury_code=treasury)
        out = _console()
        out.print(result.message())
        for e in result.excluded[:50]:
            out.print(f"  未纳入 申请{e.application_id}：{e.reason}")
        if len(result.excluded) > 50:
            out.print(f"  ……另有{len(result.excluded) - 50:,}笔未纳入，见批次页面")
        if result.batch is None:
            raise typer.Exit(1)

    @batch_app.command("approve")
    def batch_approve(
        batch: str = typer.Argument(..., help="Batch number (FF...) or id."),
        user: str = typer.Option(..., "--user", help=USER_HELP + " Must not be the batch's maker."),
    ) -> None:
        """Approve a batch made by another user: payee, card account, amount, bank and treasury account
        are fixed on every order and the batch is frozen; its total is committed against the budget."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.core.money import format_fen
        from yikatong.disbursement import service

        with _refusals(), transaction() as session:
            actor = _user(session, user, required=True)
            b = service.approve_batch(session, actor, batch, system_clock.now())
        _console().print(f"批次{b.number}已审批：{b.order_count:,}笔，合计{format_fen(b.total_fen)}元，待发送银行")

    @batch_app.command("list")
    def batch_list(
        user: str | None = typer.Option(None, "--user", help=USER_HELP + " Default: every batch."),
        limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="How many, newest first."),
    ) -> None:
        """List payment batches, newest first."""
        from yikatong.core.db import new_session
        from yikatong.disbursement import service

        with _refusals(), new_session() as session:
            actor = _user(session, user, required=False)
            batches = service.list_batches(session, actor, limit=limit)
        _console().print(_batch_table(batches))

    @batch_app.command("show")
    def batch_show(
        batch: str = typer.Argument(..., help="Batch number (FF...) or id."),
        user: str | None = typer.Option(None, "--user", help=USER_HELP + " Default: the system."),
        limit: int = typer.Option(20, "--limit", min=0, max=100_000, help="How many orders to list."),
    ) -> None:
        """One batch: its figures, its orders (card accounts masked) and the applications left out."""
        from rich.table import Table

        from yikatong.core.db import new_session
        from yikatong.core.money import format_fen
        from yikatong.disbursement import service

        out = _console()
        with _refusals(), new_session() as session:
            actor = _user(session, user, required=False)
            b = service.get_batch(session, actor, batch)
            out.print(_batch_table([b]))
            out.print(f"付款账户：{b.treasury_code}")
            table = Table(title="支付指令")
            for header in ("指令", "申请编号", "补贴对象", "收款人", "卡号", "金额（元）", "状态", "端到端标识"):
                table.add_column(header)
            for o in service.batch_orders(session, b, limit=limit):
                table.add_row(str(o["id"]), o["application_number"], o["beneficiary"],
                              o["payee"] + ("（代管）" if o["by_proxy"] else ""), o["account"],
                              format_fen(o["amount_fen"]), o["status"], o["end_to_end_id"])
            out.print(table)
            for e in b.exclusions[:limit]:
                out.print(f"  未纳入 申请{e.application_id}：{e.reason}")

    @pay_app.command("export")
    def pay_export(
        batch: str = typer.Argument(..., help="Batch number (FF...) or id of an approved batch."),
        user: str | None = typer.Option(None, "--user", help=USER_HELP + " Default: the system."),
    ) -> None:
        """Write an approved batch's file(s) for its bank into the restricted folder (YKT_BANK_DIR, default
        YKT_DATA_DIR/bank/<batch>): the bank's flat template or ISO 20022 pain.001, split at the bank's
        maximum records per file, each file's SHA-256 recorded. Running it again writes the same files."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.core.money import format_fen
        from yikatong.disbursement import exchange

        out = _console()
        with out.status("正在生成代发文件…"), _refusals(), transaction() as session:
            actor = _user(session, user, required=False)
            files = exchange.export_batch(session, actor, batch, system_clock.now())
            folder = exchange.batch_folder(exchange.exchange_batch(session, actor, batch))
        for f in files:
            out.print(f"{folder / f.name}  {f.records:,}笔  {format_fen(f.total_fen)}元  SHA-256 {f.sha256}")

    @pay_app.command("return")
    def pay_return(
        batch: str = typer.Argument(..., help="Batch number (FF...) or id."),
        files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                           help="The bank's return file(s) (回盘文件), one per batch file: the "
                                                "bank's flat template or pain.002.001.12."),
        user: str | None = typer.Option(None, "--user", help=USER_HELP + " Default: the system."),
        sha256: list[str] = typer.Option([], "--sha256", help="The SHA-256 the sender gave for each file, in "
                                                              "the files' order: a file whose bytes differ is "
                                                              "refused."),
    ) -> None:
        """Take in the bank's return: each order paid (成功) or failed (失败) with the bank's reason.

        Each file is checked whole against its batch file first (unknown record, wrong amount, duplicate
        line, wrong count or total): one problem and nothing of that file is taken. A file taken once is
        refused the second time. Paid orders queue their arrival SMS; failed ones go to their department
        (`ykt pay failures`); the batch file answered is deleted from the restricted folder."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.disbursement import exchange

        out = _console()
        for path in files:
            with out.status(f"正在导入{path.name}…"), _refusals(), transaction() as session:
                actor = _user(session, user, required=False)
                result = exchange.import_return(session, actor, batch, path, system_clock.now(),
                                                sha256=_declared(sha256, path, files))
            exchange.remove_files(result.to_remove)
            out.print(result.message())

    @pay_app.command("statement")
    def pay_statement(
        batch: str = typer.Argument(..., help="Batch number (FF...) or id."),
        files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                           help="The bank's statement(s) of the paying account (对账单): the "
                                                "bank's flat template or camt.053.001.08."),
        user: str | None = typer.Option(None, "--user", help=USER_HELP + " Default: the system."),
        sha256: list[str] = typer.Option([], "--sha256", help="The SHA-256 the sender gave for each file, in "
                                                              "the files' order: a file whose bytes differ is "
                                                              "refused."),
    ) -> None:
        """Book the bank's statement of the paying account for a batch (for reconciliation). Every line
        must be one of the batch's orders with its amount, each booked once, or the file is refused whole."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.disbursement import exchange

        out = _console()
        for path in files:
            with out.status(f"正在导入{path.name}…"), _refusals(), transaction() as session:
                actor = _user(session, user, required=False)
                result = exchange.import_statement(session, actor, batch, path, system_clock.now(),
                                                   sha256=_declared(sha256, path, files))
            out.print(result.message())

    @pay_app.command("treasury")
    def pay_treasury(
        files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                           help="The treasury's payment detail (国库支付明细), CSV: 流水号, "
                                                "金额（分）, 方向 (支出/退回), 记账日期, then 合计 "
                                                "(docs/data-formats.md)."),
        user: str | None = typer.Option(None, "--user", help=USER_HELP + " Default: the system."),
        sha256: list[str] = typer.Option([], "--sha256", help="The SHA-256 the sender gave for each file, in "
                                                              "the files' order: a file whose bytes differ is "
                                                              "refused."),
    ) -> None:
        """Book the treasury's debits and refunds of paying accounts (for the three-way reconciliation).
        Every line must be one of the platform's approved orders with its amount, or the file is refused."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.disbursement import exchange

        out = _console()
        for path in files:
            with out.status(f"正在导入{path.name}…"), _refusals(), transaction() as session:
                actor = _user(session, user, required=False)
                result = exchange.import_treasury(session, actor, path, system_clock.now(),
                                                  sha256=_declared(sha256, path, files))
            out.print(result.message())

    @pay_app.command("reconcile")
    def pay_reconcile(
        batch: str | None = typer.Argument(None, help="Batch number (FF...) or id. Omit it and give --day to "
                                                       "reconcile a booking day across batches."),
        day: str | None = typer.Option(None, "--day", metavar="YYYY-MM-DD", help="A Beijing booking day."),
        user: str | None = typer.Option(None, "--user", help=USER_HELP + " Default: the system."),
        show: int = typer.Option(20, "--show", min=0, help="How many differences to list."),
    ) -> None:
        """Three-way reconciliation (对账), to the fen: the platform's orders, the bank's returns and
        statement, the treasury's debits. Paid + failed-and-returned must equal drawn; every record that
        does not agree is listed with its kind. A balanced batch becomes 已对账."""
        from datetime import date as date_type

        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.core.money import format_fen
        from yikatong.disbursement import reconcile

        if (batch is None) == (day is None):
            raise _fail("请给出批次号，或用 --day 给出记账日期（二者选一）", 2)
        out = _console()
        with out.status("正在对账…"), _refusals(), transaction() as session:
            actor = _user(session, user, required=False)
            if batch is not None:
                run = reconcile.reconcile_batch(session, actor, batch, system_clock.now())
            else:
                try:
                    when = date_type.fromisoformat(day or "")
                except ValueError:
                    raise _fail(f"记账日期 {day!r} 应为 YYYY-MM-DD", 2) from None
                run = reconcile.reconcile_day(session, actor, when, system_clock.now())
            differences = reconcile.differences(session, run, limit=show)
            out.print(reconcile.summary(run))
            for d in differences:
                out.print(f"  {d.end_to_end_id}  {d.kind}  指令{format_fen(d.order_fen or 0)}元  "
                          f"银行净额{format_fen(d.bank_fen or 0)}元  国库净额{format_fen(d.treasury_fen or 0)}元")
        if not run.balanced:
            raise typer.Exit(1)

    @pay_app.command("failures")
    def pay_failures(
        user: str | None = typer.Option(None, "--user", help=USER_HELP + " Default: every failure."),
        all_states: bool = typer.Option(False, "--all", help="Also those released for re-payment (可重发)."),
        limit: int = typer.Option(100, "--limit", min=1, max=100_000, help="How many to list."),
    ) -> None:
        """Failed payments waiting for their department, with the bank's reason (退回重发). A failure is paid
        again in a later batch once the card changed or the department released it (`ykt pay release`)."""
        from rich.table import Table

        from yikatong.core.db import new_session
        from yikatong.core.money import format_fen
        from yikatong.disbursement import rework

        with _refusals(), new_session() as session:
            actor = _user(session, user, required=False)
            rows = rework.failures(session, actor, state=None if all_states else rework.Rework.OPEN.value,
                                   limit=limit)
        table = Table(title=f"发放失败（{len(rows)}笔）")
        for header in ("指令", "申请编号", "补贴对象", "项目", "期次", "金额（元）", "银行", "卡号", "失败原因", "次数",
                       "状态"):
            table.add_column(header)
        for f in rows:
            table.add_row(str(f.order_id), f.application_number, f.beneficiary, f.item_name, f.period,
                          format_fen(f.amount_fen), f.bank_name, f.account, f.reason, str(f.attempt), f.rework)
        _console().print(table)

    @pay_app.command("release")
    def pay_release(
        orders: list[int] = typer.Argument(..., help="Failed order id(s) (see `ykt pay failures`)."),
        note: str = typer.Option(..., "--note", help="The department's opinion, e.g. 已核实户名，银行已更正."),
        user: str = typer.Option(..., "--user", help=USER_HELP),
    ) -> None:
        """Release failed payments to be paid again in the next batch (可重发) when the card stays the same
        (e.g. the bank corrected the name); a changed card is paid again without this."""
        from yikatong.core.clock import system_clock
        from yikatong.core.db import transaction
        from yikatong.disbursement import rework

        with _refusals(), transaction() as session:
            actor = _user(session, user, required=True)
            n = rework.release(session, actor, orders, note, system_clock.now())
        _console().print(f"已将{n}笔失败记录设为可重发，下一批次将重新发放")

    @pay_app.command("rates")
    def pay_rates(
        by: str = typer.Option("batch", "--by", help="Group by batch, item, bank or region (county)."),
        year: int | None = typer.Option(None, "--year", help="Only this year."),
        item: str | None = typer.Option(None, "--item", help="Only this item code."),
    ) -> None:
        """First-attempt and final success rates of payments."""
        from rich.table import Table

        from yikatong.core.db import new_session
        from yikatong.disbursement import rework

        with _refusals(), new_session() as session:
            rates = rework.success_rates(session, None, by, item_code=item, year=year)
        table = Table(title="发放成功率")
        for header in ("分组", "首次发放笔数", "首次成功", "首次成功率", "最终成功", "最终成功率"):
            table.add_column(header)
        for r in rates:
            table.add_row(r.key, f"{r.answered:,}", f"{r.first_paid:,}", f"{r.first_rate:.2%}",
                          f"{r.finally_paid:,}", f"{r.final_rate:.2%}")
        _console().print(table)

    pay_app.add_typer(budget_app, name="budget")
    pay_app.add_typer(batch_app, name="batch")
    app.add_typer(pay_app, name="pay")
