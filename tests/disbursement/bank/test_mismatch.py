"""A return or statement that does not match its batch is refused whole, with a Chinese report naming
each problem and its line: unknown record, wrong amount, duplicate line, missing records, wrong count or
total in the trailer (flat) or in NbOfTxs/CtrlSum (XML)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from yikatong.core.errors import Invalid
from yikatong.disbursement.bank.connector import Connector
from yikatong.disbursement.bank.records import BatchFile, PaymentRecord, ReturnRecord, StatementLine

from .conftest import connector, failed, make_batch, paid

CODES = ["ABC", "PSBC", "SCRCU"]
WHEN = datetime(2026, 12, 5, 10, tzinfo=UTC)


def _setup(code: str, tmp_path: Path) -> tuple[Connector, BatchFile, object, list[PaymentRecord]]:
    c = connector(code)
    batch = make_batch(code, 4)
    [path] = c.export_batch(batch, tmp_path)
    header, records = c.read_batch_file(path)
    return c, batch, header, records


def _return(c: Connector, header: object, tmp_path: Path,
            answers: list[tuple[PaymentRecord, ReturnRecord]]) -> Path:
    return c.write_return(tmp_path / "return", header, WHEN, answers).path


def _refused(c: Connector, path: Path, batch: BatchFile) -> str:
    with pytest.raises(Invalid) as caught:
        c.read_return(path, batch)
    message = caught.value.message
    assert "整个文件未导入" in message
    return message


def _good(records: list[PaymentRecord]) -> list[tuple[PaymentRecord, ReturnRecord]]:
    return [(r, paid(r)) for r in records[:-1]] + [(records[-1], failed(records[-1]))]


@pytest.mark.parametrize("code", CODES)
def test_a_matching_return_is_read(code: str, tmp_path: Path) -> None:
    c, batch, header, records = _setup(code, tmp_path)
    assert len(c.read_return(_return(c, header, tmp_path, _good(records)), batch)) == 4


@pytest.mark.parametrize("code", CODES)
def test_an_unknown_record_is_refused(code: str, tmp_path: Path) -> None:
    c, batch, header, records = _setup(code, tmp_path)
    stranger = PaymentRecord("YKT99999999-0000000042", "张三", "6228480000000000009", records[1].amount_fen, "")
    answers = _good(records)
    answers[1] = (stranger, paid(stranger))
    message = _refused(c, _return(c, header, tmp_path, answers), batch)
    assert re.search(r"第 \d+ 行：流水号 YKT99999999-0000000042 不属于本批次文件", message)
    assert f"缺少 1 笔批次记录的回盘：{records[1].end_to_end_id}" in message


@pytest.mark.parametrize("code", CODES)
def test_a_wrong_amount_is_refused(code: str, tmp_path: Path) -> None:
    c, batch, header, records = _setup(code, tmp_path)
    answers = _good(records)
    r = records[2]
    answers[2] = (r, ReturnRecord(r.end_to_end_id, r.amount_fen + 1, paid(r).status, "", ""))
    message = _refused(c, _return(c, header, tmp_path, answers), batch)
    assert re.search(rf"第 \d+ 行：流水号 {r.end_to_end_id} 金额为 [\d,.]+ 元，批次中为 [\d,.]+ 元", message)


@pytest.mark.parametrize("code", CODES)
def test_a_duplicate_line_is_refused(code: str, tmp_path: Path) -> None:
    c, batch, header, records = _setup(code, tmp_path)
    answers = _good(records) + [(records[0], paid(records[0]))]
    message = _refused(c, _return(c, header, tmp_path, answers), batch)
    assert re.search(rf"第 \d+ 行：流水号 {records[0].end_to_end_id} 重复（首次出现在第 \d+ 行）", message)
    if code != "SCRCU":
        assert "第 6 行：流水号" in message and "首次出现在第 2 行" in message  # header is line 1


@pytest.mark.parametrize("code", CODES)
def test_missing_records_are_refused(code: str, tmp_path: Path) -> None:
    c, batch, header, records = _setup(code, tmp_path)
    message = _refused(c, _return(c, header, tmp_path, _good(records)[:2]), batch)
    assert f"缺少 2 笔批次记录的回盘：{records[2].end_to_end_id}、{records[3].end_to_end_id}" in message


def _edit_trailer(c: Connector, path: Path, count_delta: int, total_delta: int) -> int:
    """Change the count or total the file states about itself; returns the line number changed (XML: 0)."""
    if c.template.is_xml:
        text = path.read_text(encoding="utf-8")
        n = int(re.search(r"<OrgnlNbOfTxs>(\d+)<", text).group(1))
        ctrl = re.search(r"<OrgnlCtrlSum>([\d.]+)<", text).group(1)
        fen = int(ctrl.replace(".", "")) + total_delta
        text = text.replace(f"<OrgnlNbOfTxs>{n}<", f"<OrgnlNbOfTxs>{n + count_delta}<")
        text = text.replace(f"<OrgnlCtrlSum>{ctrl}<", f"<OrgnlCtrlSum>{fen // 100}.{fen % 100:02d}<")
        path.write_text(text, encoding="utf-8")
        return 0
    lines = path.read_bytes().split(b"\r\n")
    d = c.template.delimiter.encode()
    if c.template.format == "fixed":
        count, total = int(lines[-2][1:11]), int(lines[-2][11:29])
        lines[-2] = b"T%010d%018d" % (count + count_delta, total + total_delta)
    else:
        _, count, total = lines[-2].split(d)
        lines[-2] = b"T" + d + b"%d" % (int(count) + count_delta) + d + b"%d" % (int(total) + total_delta)
    path.write_bytes(b"\r\n".join(lines))
    return len(lines) - 1


@pytest.mark.parametrize("code", CODES)
def test_a_wrong_count_in_the_trailer_or_nboftxs_is_refused(code: str, tmp_path: Path) -> None:
    c, batch, header, records = _setup(code, tmp_path)
    path = _return(c, header, tmp_path, _good(records))
    line = _edit_trailer(c, path, 1, 0)
    message = _refused(c, path, batch)
    assert "记载笔数 5，文件实有 4 笔" in message
    if line:
        assert f"第 {line} 行：尾行记载笔数 5" in message
    else:
        assert "OrgnlNbOfTxs/OrgnlCtrlSum 记载笔数 5" in message


@pytest.mark.parametrize("code", CODES)
def test_a_wrong_total_in_the_trailer_or_ctrlsum_is_refused(code: str, tmp_path: Path) -> None:
    c, batch, header, records = _setup(code, tmp_path)
    path = _return(c, header, tmp_path, _good(records))
    _edit_trailer(c, path, 0, 100)
    message = _refused(c, path, batch)
    assert re.search(r"记载金额 [\d,.]+ 元，文件实有 [\d,.]+ 元", message)


@pytest.mark.parametrize("code", ["ABC", "PSBC"])
def test_a_flat_file_without_trailer_or_with_a_broken_line_is_refused(code: str, tmp_path: Path) -> None:
    c, batch, header, records = _setup(code, tmp_path)
    path = _return(c, header, tmp_path, _good(records))
    lines = path.read_bytes().split(b"\r\n")
    path.write_bytes(b"\r\n".join(lines[:2] + [lines[2][:-3]] + lines[3:-2]))
    message = _refused(c, path, batch)
    assert "缺少尾行" in message and "第 3 行：" in message


def test_a_return_of_another_batch_or_file_is_refused(tmp_path: Path) -> None:
    c = connector("PSBC", max_records_per_file=2)
    batch = make_batch("PSBC", 4)
    paths = c.export_batch(batch, tmp_path)
    header, records = c.read_batch_file(paths[1])
    path = _return(c, header, tmp_path, [(r, paid(r)) for r in records])
    assert len(c.read_return(path, batch)) == 2  # file 2 of 2 answers records 3 and 4
    other = make_batch("PSBC", 4, number="FF20261205000002")
    with pytest.raises(Invalid, match="批次号为 FF20261205000001，应为 FF20261205000002"):
        c.read_return(path, other)
    with pytest.raises(Invalid, match="文件类型为 PAY"):
        c.read_return(paths[0], batch)
    with pytest.raises(Invalid, match="文件应为 ISO 20022 pain.002.001.12"):
        connector("SCRCU").read_return(path, batch)


@pytest.mark.parametrize("code", ["SCRCU"])
def test_xml_status_counts_and_states_are_checked(code: str, tmp_path: Path) -> None:
    c, batch, header, records = _setup(code, tmp_path)
    path = _return(c, header, tmp_path, _good(records))
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("<DtldNbOfTxs>3</DtldNbOfTxs><DtldSts>ACSC</DtldSts>",
                                 "<DtldNbOfTxs>4</DtldNbOfTxs><DtldSts>ACSC</DtldSts>")
                    .replace("<TxSts>ACSC</TxSts>", "<TxSts>PDNG</TxSts>", 1), encoding="utf-8")
    message = _refused(c, path, batch)
    assert "NbOfTxsPerSts 记载 ACSC 4 笔，文件实有 2 笔" in message
    assert "状态 PDNG 不是终态" in message


# --- statements ------------------------------------------------------------------------------------

def _statement(c: Connector, header: object, tmp_path: Path, lines: list[StatementLine]) -> Path:
    return c.write_statement(tmp_path / "statement", header, WHEN, lines).path


def _lines(records: list[PaymentRecord]) -> list[StatementLine]:
    day = date(2026, 12, 5)
    return [StatementLine(r.end_to_end_id, r.amount_fen, day) for r in records] + [
        StatementLine(records[-1].end_to_end_id, -records[-1].amount_fen, date(2026, 12, 6))]


@pytest.mark.parametrize("code", CODES)
def test_a_statement_that_does_not_match_is_refused(code: str, tmp_path: Path) -> None:
    c, batch, header, records = _setup(code, tmp_path)
    day = date(2026, 12, 5)
    lines = _lines(records)
    assert c.read_statement(_statement(c, header, tmp_path, lines), batch) == lines
    bad = lines + [StatementLine("YKT99999999-0000000001", 500, day),  # not in the batch
                   StatementLine(records[0].end_to_end_id, records[0].amount_fen, day),  # paid out twice
                   StatementLine(records[1].end_to_end_id, -records[1].amount_fen + 1, day),  # returned, other amount
                   StatementLine(records[2].end_to_end_id, records[2].amount_fen + 7, day)]  # wrong amount
    path = _statement(c, header, tmp_path, bad)
    with pytest.raises(Invalid) as caught:
        c.read_statement(path, batch)
    message = caught.value.message
    assert "流水号 YKT99999999-0000000001 不属于本批次" in message
    assert f"流水号 {records[0].end_to_end_id} 重复支出" in message
    assert re.search(rf"流水号 {records[2].end_to_end_id} 金额为 [\d,.]+ 元，批次中为", message)
    assert f"流水号 {records[1].end_to_end_id} 金额为" in message
    assert f"流水号 {records[1].end_to_end_id} 退回" in message
    assert len(re.findall(r"第 \d+ 行：", message)) == 6  # lines 16 and 17 have two problems each
    with pytest.raises(Invalid, match="重复支出"):  # without the batch, what the statement says of itself
        c.read_statement(path)


@pytest.mark.parametrize("code", CODES)
def test_a_return_without_its_payment_or_a_wrong_count_in_a_statement_is_refused(code: str, tmp_path: Path) -> None:
    c, batch, header, records = _setup(code, tmp_path)
    lines = [StatementLine(records[0].end_to_end_id, -records[0].amount_fen, date(2026, 12, 5))]
    with pytest.raises(Invalid, match="退回，但此前没有支出"):
        c.read_statement(_statement(c, header, tmp_path, lines))
    path = _statement(c, header, tmp_path, _lines(records))
    if c.template.is_xml:
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("<NbOfNtries>5</NbOfNtries>", "<NbOfNtries>6</NbOfNtries>"), encoding="utf-8")
        match = "TxsSummry 记载 6 个条目，文件实有 5 个"
    else:
        _edit_trailer(c, path, 1, 0)
        match = "尾行记载笔数 6，文件实有 5 笔"
    with pytest.raises(Invalid, match=match):
        c.read_statement(path, batch)


def test_each_batch_is_checked_with_its_own_amounts(tmp_path: Path) -> None:
    c, batch, header, records = _setup("PSBC", tmp_path)
    path = _statement(c, header, tmp_path, _lines(records))
    assert len(c.read_statement(path, batch)) == 5
    other = BatchFile(batch.batch_number, "PSBC", batch.created_at, batch.debtor_name, batch.debtor_account,
                      [PaymentRecord(r.end_to_end_id, r.payee_name, r.account, r.amount_fen + 1, r.purpose)
                       for r in records])
    with pytest.raises(Invalid, match="批次中为"):
        c.read_statement(path, other)
    assert len(c.read_statement(path, batch)) == 5
