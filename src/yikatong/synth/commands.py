"""`ykt synth` and `ykt demo`: build the synthetic city (and serve it)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

DEMO_DB_NAME = "demo.db"


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    return Path(path) if path and path != ":memory:" else None


def empty_database(url: str) -> None:
    """Remove everything the application created in the database at url.

    SQLite: delete the file. Other databases: run every migration's downgrade (which also removes
    triggers and functions), then drop any table the models still know about."""
    from sqlalchemy import text

    from yikatong import models
    from yikatong.core.db import make_engine, reset_engine

    reset_engine()  # close pooled connections to the file we may delete
    path = _sqlite_path(url)
    if path is not None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    from alembic import command

    from yikatong.core.migrate import alembic_config

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            has_version = conn.execute(text(
                "SELECT 1 FROM information_schema.tables WHERE table_name = 'alembic_version'")).first()
        if has_version:
            command.downgrade(alembic_config(url), "base")
        models.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()


def build_with_progress(scale: float, seed: int, *, claims: bool = True, shared_data: bool = True,
                        anomalies: bool = True):
    """Migrate YKT_DATABASE_URL, build the city with a Rich progress bar, return the report."""
    from yikatong.core.db import engine
    from yikatong.core.errors import Conflict
    from yikatong.core.migrate import upgrade
    from yikatong.core.progress import progress_bar
    from yikatong.synth.city import OCCUPIED, build_city, database_is_empty

    upgrade()
    if not database_is_empty(engine()):  # the command line never mixes the city with other data
        raise Conflict(OCCUPIED)
    with progress_bar(stderr=False) as on_progress:
        return build_city(engine(), scale=scale, seed=seed, on_progress=on_progress, claims=claims,
                          shared_data=shared_data, anomalies=anomalies)


def pay_demo(seed: int) -> None:
    """Run the payment loop over the demo city (synth.payments) and say what it did."""
    from rich.console import Console

    from yikatong.core.clock import system_clock
    from yikatong.core.db import new_session
    from yikatong.synth.payments import run_demo_payments

    console = Console()
    with console.status("演示发放：生成批次、银行回盘、对账…"):
        paid = run_demo_payments(new_session, system_clock.now(), seed)
    if paid.skipped:
        console.print(f"演示发放未进行：{paid.skipped}")
        return
    console.print(f"演示发放：{paid.item_code}（{paid.period}）{len(paid.batches)}个批次，成功{paid.paid:,}笔，"
                  f"失败{paid.failed:,}笔（其中{paid.repaid}笔已重发成功），到账短信{paid.sms:,}条，"
                  f"{paid.balanced}个批次对账平")


def print_report(report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    rate = report.beneficiaries_with_card / report.beneficiaries if report.beneficiaries else 0.0
    summary = Table(title=f"合成城市（规模 {report.scale:g}，种子 {report.seed}）", show_header=False)
    summary.add_column("项目")
    summary.add_column("数量", justify="right")
    for label, value in (
        ("行政区划", f"{report.regions:,}"),
        ("家庭户", f"{report.households:,}"),
        ("人口", f"{report.persons:,}"),
        ("享受补贴人员", f"{report.beneficiaries:,}"),
        ("其中持社保卡", f"{report.beneficiaries_with_card:,}（持卡率 {rate:.2%}）"),
        ("社保卡（含挂失、冻结、注销）", f"{report.cards:,}"),
        ("代管代持案件", f"{report.proxy_cases:,}"),
        ("演示申请（各环节、各状态）", f"{report.applications:,}（日期按 {report.demo_day} 倒推）"),
        *([("批量申请（办理中、已通过）", f"{report.claims:,}")] if report.claims else []),
        *([("共享数据（11个数据集）", f"{sum(report.shared_rows.values()):,} 条")] if report.shared_rows else []),
        *([("植入的存疑样本", f"{sum(report.planted.values()):,} 个，应拦截 {report.expected_flags:,} 条"
            f"（清单：数据目录 synth/planted.csv）")] if report.planted else []),
        *([("全市比对拦截存疑信息", f"{report.flagged:,} 条")] if report.shared_rows is not None else []),
        ("经办部门", f"{report.departments:,}"),
        ("补贴类别 / 项目", f"{report.categories} / {report.items}"),
        ("代发银行", f"{report.banks}"),
        ("用时", f"{report.seconds:.1f} 秒"),
    ):
        summary.add_row(label, value)
    console.print(summary)
    print_logins(report.demo_logins, console)


def print_logins(logins, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="演示账号")
    for header in ("用户名", "密码", "角色", "区划"):
        table.add_column(header)
    for login in logins:
        table.add_row(login.username, login.password, login.role_label, f"{login.region_name}（{login.region_code}）")
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command()
    def synth(
        scale: float = typer.Option(0.01, min=0.0001, help="Size of the city: 1 = Neijiang's about 3.1 million "
                                    "residents; 0.01 = about 31,000"),
        seed: int = typer.Option(1, help="Random seed: the same scale and seed always give the same city"),
        replace: bool = typer.Option(False, "--replace", help="Empty the database first (deletes ALL its data)"),
        no_claims: bool = typer.Option(False, "--no-claims", help="Without the bulk claims (about 1.9 per "
                                       "resident; the demo stories are always there)"),
        no_shared_data: bool = typer.Option(False, "--no-shared-data", help="Without the 11 shared data sets, "
                                            "the planted anomalies and the city run of the rules"),
        no_anomalies: bool = typer.Option(False, "--no-anomalies", help="Shared data without planted anomalies "
                                          "(clean: the city run flags nothing)"),
    ) -> None:
        """Build a synthetic Neijiang-like city (regions, catalogue, people, cards, demo users and their
        applications, bulk claims, shared data sets with planted anomalies, then a city run of the
        interception rules) into the database of YKT_DATABASE_URL. The database must be empty unless
        --replace is given. The planted anomalies are listed in YKT_DATA_DIR/synth/planted.csv."""
        from yikatong.core.errors import Conflict
        from yikatong.core.settings import get_settings, reset_settings

        url = get_settings().database_url
        if replace:
            empty_database(url)
            reset_settings()
        try:
            report = build_with_progress(scale, seed, claims=not no_claims, shared_data=not no_shared_data,
                                         anomalies=not no_anomalies)
        except Conflict as exc:
            typer.echo(exc.message, err=True)
            raise typer.Exit(1) from None
        print_report(report)

    @app.command()
    def demo(
        scale: float = typer.Option(0.01, min=0.0001, help="Size of the demo city (0.01 = about 31,000 residents)"),
        seed: int = typer.Option(1, help="Random seed of the demo city"),
        host: str = typer.Option("127.0.0.1", help="Address the web server listens on"),
        port: int = typer.Option(8000, help="Port the web server listens on"),
        no_serve: bool = typer.Option(False, "--no-serve", help="Only build the demo database, do not serve it"),
        no_shared_data: bool = typer.Option(False, "--no-shared-data", help="Without bulk claims, shared data, "
                                            "planted anomalies and the city run (a quicker, smaller demo)"),
    ) -> None:
        """Build a fresh demo city (SQLite file data/demo.db, replaced on every run) and serve it.

        Always its own SQLite file under YKT_DATA_DIR: YKT_DATABASE_URL is ignored on purpose, so
        the demo can never empty a real database."""
        from yikatong.core.settings import get_settings, reset_settings

        data_dir = Path(os.environ.get("YKT_DATA_DIR", "data")).resolve()
        os.environ["YKT_DATABASE_URL"] = f"sqlite:///{data_dir / DEMO_DB_NAME}"
        reset_settings()
        empty_database(get_settings().database_url)
        reset_settings()
        report = build_with_progress(scale, seed, claims=not no_shared_data, shared_data=not no_shared_data)
        print_report(report)
        if not no_shared_data:
            pay_demo(seed)
        if no_serve:
            return
        import uvicorn

        from yikatong.jobs.runner import run_in_background

        run_in_background()  # the city run, dry runs, large imports and exports started on the pages
        typer.echo(f"打开 http://{host}:{port}")
        uvicorn.run("yikatong.web.app:create_app", factory=True, host=host, port=port)
