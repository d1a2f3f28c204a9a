"""`ykt bank-sim`: play the bank for one exported batch file (see `sim`)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("bank-sim")
    def bank_sim(
        batch_file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                          help="An exported batch file (代发文件): a bank's flat file or an ISO 20022 "
                                               "pain.001.001.09 XML; which one, and which bank, is read from it."),
        out: Path | None = typer.Option(None, "--out", file_okay=False,
                                        help="Folder for the return and the statement (created if missing). "
                                             "Default: the folder of the batch file."),
        failure_rate: float = typer.Option(0.0005, "--failure-rate", min=0.0, max=1.0,
                                           help="Share of records the bank fails, from 0 to 1 (0.0005 = 5 in "
                                                "10,000). Reasons are drawn from the table: frozen or closed "
                                                "account, name mismatch, wrong account number, payee deceased..."),
        seed: int = typer.Option(0, "--seed",
                                 help="Seed of the random draws: the same file, rate and seed always give the "
                                      "same records failed for the same reasons."),
        booked_on: str | None = typer.Option(None, "--booked-on", metavar="YYYY-MM-DD",
                                             help="Day the payments are booked on the statement (failed ones come "
                                                  "back the next day). Default: the day the batch file was made "
                                                  "(Beijing time)."),
    ) -> None:
        """Play the bank (模拟银行): answer an exported batch file with a return and a statement.

        Also writes the treasury's payment detail (国库支付明细) of the same movements, so the
        three-way reconciliation can run on one machine.

        Reads the batch file (代发文件) and writes the bank's return (回盘文件: the same flat template, or
        pain.002.001.12) and the paying account's statement (对账单: the flat template, or camt.053.001.08),
        with realistic failures. Offline and deterministic, for running the payment loop end to end on
        one machine."""
        from yikatong.core.errors import Invalid
        from yikatong.core.money import format_fen
        from yikatong.disbursement.bank.sim import simulate

        day: date | None = None
        if booked_on:
            try:
                day = datetime.strptime(booked_on, "%Y-%m-%d").date()
            except ValueError:
                raise Invalid(f"记账日期 {booked_on!r} 应为 YYYY-MM-DD") from None
        result = simulate(batch_file, out or batch_file.parent, failure_rate, seed, day)
        typer.echo(f"银行 {result.bank_code}：成功 {result.paid:,} 笔，失败 {result.failed:,} 笔")
        typer.echo(f"回盘文件：{result.return_file.path}（{result.return_file.records:,} 笔，"
                   f"{format_fen(result.return_file.total_fen)} 元）")
        typer.echo(f"对账单：{result.statement_file.path}（{result.statement_file.records:,} 条）")
        typer.echo(f"国库支付明细：{result.treasury_file.path}（{result.treasury_file.records:,} 条）")
