"""The budget file through the import machinery (all or nothing, row/column/reason, re-import changes
nothing) and `ykt pay` from the command line: plain-words help, budget add/list, a batch built by one
user and approved by another."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from yikatong.cli import app
from yikatong.core.db import new_session, transaction
from yikatong.core.errors import Forbidden
from yikatong.disbursement import service
from yikatong.disbursement.models import BatchStatus, BudgetAllocation, BudgetYear, PaymentBatch
from yikatong.imports.service import import_file
from yikatong.security.models import User

from .conftest import NOW, approved, colleague

runner = CliRunner()


def _csv(*rows: str) -> bytes:
    return ("项目代码,年度,资金级次,指标金额（元）,文件依据\n" + "\n".join(rows) + "\n").encode()


def _import(data: bytes, username: str | None = "city_finance"):
    with transaction() as s:
        actor = s.scalar(select(User).where(User.username == username)) if username else None
        return import_file(s, "budget", data, "budget.csv", actor=actor, now=NOW)


def test_a_budget_file_is_all_or_nothing_and_reimporting_changes_nothing(paying):
    good = _csv(f"{paying.item},2026,中央,1000.00,财社〔2026〕1号", f"{paying.item},2026年,市,250.5,")
    report = _import(good)
    assert report.ok and (report.added, report.updated, report.unchanged) == (2, 0, 0)
    assert _import(good).unchanged == 2
    with new_session() as s:
        assert s.get(BudgetYear, (paying.item, 2026)).allocated_fen == 125_050
    bad = _csv(f"{paying.item},2026,中央,2000,", "NOPE,2026,市,1,", f"{paying.item},2026,中央,3,",
               f"{paying.item},1999,乡,-1,")
    report = _import(bad)
    assert not report.ok
    errors = {(e.row, e.column): e.reason for e in report.errors}
    assert errors[(3, "项目代码")] == "补贴项目代码不存在"
    assert errors[(4, "项目代码")] == "同一项目、年度、资金级次与第2行重复"
    assert "年度应为2000至2099" in errors[(5, "年度")] and "应为以下之一" in errors[(5, "资金级次")]
    assert "不能为负数" in errors[(5, "指标金额（元）")]
    with new_session() as s:  # nothing written: the first row's 2000 did not replace 1000
        amount = s.scalar(select(BudgetAllocation.amount_fen).where(BudgetAllocation.item_code == paying.item,
                                                                    BudgetAllocation.funding_level == "中央"))
        assert amount == 100_000
    # an allocation below what approved batches committed is a row error with the figures
    approved(paying.item)
    with transaction() as s:
        batch = service.build_batch(s, s.scalar(select(User).where(User.username == "city_finance")),
                                    item_code=paying.item, period="2026-11", bank_code=paying.bank, now=NOW).batch
        batch_id = batch.id
    with transaction() as s:
        service.approve_batch(s, s.get(User, colleague()), batch_id, NOW)
    report = _import(_csv(f"{paying.item},2026,中央,100,", f"{paying.item},2026,市,0,"))
    assert not report.ok
    reason = f"{paying.item} 2026年度指标调整后为100.00元，低于已审批批次占用的500.00元"
    assert {e.reason for e in report.errors} == {reason}


def test_only_city_finance_imports_a_budget(paying):
    with pytest.raises(Forbidden):
        _import(_csv(f"{paying.item},2026,中央,1,"), "supervisor")


def test_pay_help_is_in_plain_words():
    result = runner.invoke(app, ["pay", "--help"])
    assert result.exit_code == 0 and "budget" in result.output and "batch" in result.output
    for command in ("add", "import", "list"):
        assert command in runner.invoke(app, ["pay", "budget", "--help"]).output
    batch_help = runner.invoke(app, ["pay", "batch", "--help"]).output
    for command in ("build", "approve", "list", "show"):
        assert command in batch_help
    build_help = runner.invoke(app, ["pay", "batch", "build", "--help"]).output
    assert "pre-payment gate" in build_help and "--period" in build_help and "--bank" in build_help


def test_a_batch_from_the_command_line(paying):
    approved(paying.item)
    result = runner.invoke(app, ["pay", "budget", "add", paying.item, "2026", "市", "800", "--note", "内财〔2026〕9号",
                                 "--user", "city_finance"])
    assert result.exit_code == 0, result.output
    assert "剩余800.00元" in result.output
    listing = runner.invoke(app, ["pay", "budget", "list", "--item", paying.item])
    assert listing.exit_code == 0 and "800.00" in listing.output
    built = runner.invoke(app, ["pay", "batch", "build", "--item", paying.item, "--period", "2026-11",
                                "--bank", paying.bank, "--user", "city_finance"])
    assert built.exit_code == 0, built.output
    assert "已生成发放批次FF" in built.output and "1笔，合计500.00元" in built.output
    with new_session() as s:
        number = s.scalar(select(PaymentBatch.number).where(PaymentBatch.item_code == paying.item))
    own = runner.invoke(app, ["pay", "batch", "approve", number, "--user", "city_finance"])
    assert own.exit_code == 1 and "制单人不能审批自己生成的批次" in own.output
    with new_session() as s:
        checker = s.get(User, colleague()).username
    done = runner.invoke(app, ["pay", "batch", "approve", number, "--user", checker])
    assert done.exit_code == 0 and f"批次{number}已审批" in done.output
    shown = runner.invoke(app, ["pay", "batch", "show", number])
    assert shown.exit_code == 0 and "待发送" in shown.output and "YKT" in shown.output
    with new_session() as s:
        assert s.scalar(select(PaymentBatch.status).where(PaymentBatch.number == number)) == BatchStatus.APPROVED
    refused = runner.invoke(app, ["pay", "budget", "add", paying.item, "2026", "市", "100", "--user", "city_finance"])
    assert refused.exit_code == 1 and "已占用500.00元，调整后指标100.00元" in refused.output
    with new_session() as s:
        assert s.get(BudgetYear, (paying.item, 2026)).allocated_fen == 80_000  # unchanged by the refusal
