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
        help="Paying subsidies onto the card: budget allocations (指标) per item, year and funding level, and "
             "payment batches (发放批次) built from applications that finished the review road, checked by the "
             "pre-payment gate, kept within the budget, made by one user and approved by another.",
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

    pay_app.add_typer(budget_app, name="budget")
    pay_app.add_typer(batch_app, name="batch")
    app.add_typer(pay_app, name="pay")
