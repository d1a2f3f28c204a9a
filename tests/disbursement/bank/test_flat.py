"""Flat bank files: written as the template says (bytes, widths, encoding, header and trailer), read back
to the same records; files split at the bank's maximum; clear accounts only in the folder given."""

from __future__ import annotations

import hashlib
import stat
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from yikatong.core.errors import Invalid
from yikatong.disbursement.bank.connector import export_recorded
from yikatong.disbursement.bank.files import FileHeader
from yikatong.disbursement.bank.records import PaymentRecord, ReturnStatus, StatementLine

from .conftest import connector, failed, make_batch, paid


def test_fixed_width_gbk_file_byte_by_byte(tmp_path: Path) -> None:
    c = connector("ABC")
    batch = make_batch("ABC", 3)
    [path] = c.export_batch(batch, tmp_path)
    raw = path.read_bytes()
    lines = raw.split(b"\r\n")
    assert lines[-1] == b"" and len(lines) == 6  # header, 3 records, trailer, then the last CRLF
    header, first, trailer = lines[0], lines[1], lines[4]
    assert len(header) == 176 and header.startswith(b"HPAYFF20261205000001    ABC       001001")
    assert header[40:54] == b"20261205093000"  # Beijing time
    assert header.decode("gbk")[88:96] == "内江市财政局国库"  # GBK: two bytes per Chinese character
    assert all(len(line) == 8 + 35 + 32 + 60 + 15 + 60 for line in lines[1:4])
    assert first[:8] == b"00000001" and first[8:43].rstrip() == b"YKT00000001-0000000000"
    assert first[75:135] == "张三".encode("gbk") + b" " * 56
    assert first[135:150] == b"000000000000001"
    total = batch.total_fen
    assert trailer == b"T" + b"%010d" % 3 + b"%018d" % total
    assert header.endswith(b"%010d" % 3 + b"%018d" % total)


def test_delimited_gbk_file_in_the_templates_field_order(tmp_path: Path) -> None:
    c = connector("PSBC")
    [path] = c.export_batch(make_batch("PSBC", 2), tmp_path)
    text = path.read_bytes().decode("gbk").split("\r\n")
    assert text[0] == ("H|PAY|FF20261205000001|PSBC|1|1|20261205093000|2253511000010401|内江市财政局国库存款户|2|"
                       "10004")
    assert text[1] == "1|6228480000000000000|张三|1|YKT00000001-0000000000|2026年11月 农村低保"
    assert text[3] == "T|2|10004"


@pytest.mark.parametrize("code", ["ABC", "PSBC"])
def test_batch_return_and_statement_round_trip(tmp_path: Path, code: str) -> None:
    c = connector(code, max_records_per_file=3)
    batch = make_batch(code, 7)
    written = export_recorded(c, batch, tmp_path)
    assert [(w.records, w.total_fen) for w in written] == [
        (3, sum(r.amount_fen for r in batch.records[:3])), (3, sum(r.amount_fen for r in batch.records[3:6])),
        (1, batch.records[6].amount_fen)]
    for w in written:
        assert w.sha256 == hashlib.sha256(w.path.read_bytes()).hexdigest()
        assert stat.S_IMODE(w.path.stat().st_mode) == 0o600  # clear account numbers: the owner only
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(w.path.name for w in written)  # no leftovers
    header, records = c.read_batch_file(written[1].path)
    assert records == list(batch.records[3:6])
    assert (header.file_no, header.file_count, header.batch_number) == (2, 3, batch.batch_number)

    answers = [(records[0], paid(records[0])), (records[1], failed(records[1], "BE01", "户名不符")),
               (records[2], failed(records[2], "AC04", ""))]
    ret = c.write_return(tmp_path / "r", header, datetime(2026, 12, 5, 10, tzinfo=UTC), answers)
    got = c.read_return(ret.path, batch)
    assert [(r.end_to_end_id, r.amount_fen, r.status, r.reason_code, r.reason) for r in got] == [
        (records[0].end_to_end_id, records[0].amount_fen, ReturnStatus.PAID, "", ""),
        (records[1].end_to_end_id, records[1].amount_fen, ReturnStatus.FAILED, "BE01", "户名不符"),
        (records[2].end_to_end_id, records[2].amount_fen, ReturnStatus.FAILED, "AC04", "账户已销户")]  # from the table

    lines = [StatementLine(r.end_to_end_id, r.amount_fen, date(2026, 12, 5)) for r in records]
    lines.append(StatementLine(records[1].end_to_end_id, -records[1].amount_fen, date(2026, 12, 6)))
    stm = c.write_statement(tmp_path / "s", header, datetime(2026, 12, 6, 10, tzinfo=UTC), lines)
    assert c.read_statement(stm.path) == lines
    assert c.read_statement(stm.path, batch) == lines
    assert stm.total_fen == sum(r.amount_fen for r in records) - records[1].amount_fen


def test_an_empty_batch_is_one_file_with_zero_records(tmp_path: Path) -> None:
    c = connector("PSBC")
    [w] = export_recorded(c, make_batch("PSBC", 0), tmp_path)
    assert (w.records, w.total_fen) == (0, 0)
    assert w.path.read_bytes().decode("gbk").endswith("T|0|0\r\n")


def _one(name: str = "张三", account: str = "6228480000000000001", purpose: str = "低保") -> PaymentRecord:
    return PaymentRecord("YKT1-1", name, account, 100, purpose)


@pytest.mark.parametrize(("code", "record", "fragment"), [
    ("PSBC", _one(name="张|三"), "分隔符"),
    ("PSBC", _one(purpose="低保\n第二行"), "换行"),
    ("PSBC", _one(name="𠮷"), "GBK"),
    ("ABC", _one(name="张" * 31), "超过 60 字节"),  # 62 bytes in GBK
    ("ABC", _one(account="6" * 33), "超过 32 字节"),
])
def test_what_a_bank_file_cannot_carry_is_refused_and_nothing_is_left(tmp_path: Path, code: str,
                                                                       record: PaymentRecord, fragment: str) -> None:
    batch = make_batch(code, 0)
    batch = type(batch)(batch.batch_number, code, batch.created_at, batch.debtor_name, batch.debtor_account,
                        [record])
    with pytest.raises(Invalid, match=fragment):
        connector(code).export_batch(batch, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_header_tells_which_bank_wrote_a_file(tmp_path: Path) -> None:
    [abc] = connector("ABC").export_batch(make_batch("ABC", 1), tmp_path)
    [psbc] = connector("PSBC").export_batch(make_batch("PSBC", 1), tmp_path)
    assert isinstance(connector("ABC").header_of(abc), FileHeader)
    assert connector("ABC").header_of(psbc) is None and connector("PSBC").header_of(abc) is None


def test_the_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="不存在"):
        connector("PSBC").export_batch(make_batch("PSBC", 1), tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_a_file_changed_after_it_was_written_is_refused(tmp_path: Path) -> None:
    from yikatong.disbursement.bank.files import check_sha256

    [w] = export_recorded(connector("PSBC"), make_batch("PSBC", 2), tmp_path)
    check_sha256(w.path, w.sha256)
    check_sha256(w.path, w.sha256.upper())
    w.path.write_bytes(w.path.read_bytes().replace(b"|1|", b"|9|", 1))
    with pytest.raises(Invalid, match="与登记的 .* 不符"):
        check_sha256(w.path, w.sha256)


@pytest.mark.parametrize("code", ["ABC", "PSBC", "SCRCU"])
def test_a_batch_with_a_duplicate_id_or_no_amount_is_not_exported(tmp_path: Path, code: str) -> None:
    batch = make_batch(code, 3)
    r = batch.records
    bad = type(batch)(batch.batch_number, code, batch.created_at, batch.debtor_name, batch.debtor_account,
                      [r[0], r[1], PaymentRecord(r[0].end_to_end_id, "王五", "6228480000000000001", 0, "")])
    with pytest.raises(Invalid) as caught:
        connector(code).export_batch(bad, tmp_path)
    assert "第 3 笔：流水号" in caught.value.message and "重复" in caught.value.message
    assert "第 3 笔：金额 0 分不是正数" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_a_failure_in_a_later_file_removes_the_earlier_ones(tmp_path: Path) -> None:
    batch = make_batch("SCRCU", 4)
    r = list(batch.records)
    r[3] = PaymentRecord(r[3].end_to_end_id, "张三", "6" * 40, 100, "")  # too long for CdtrAcct/Id (34)
    bad = type(batch)(batch.batch_number, "SCRCU", batch.created_at, batch.debtor_name, batch.debtor_account, r)
    with pytest.raises(Invalid, match="账号应为 1 至 34 个字符"):
        connector("SCRCU", max_records_per_file=2).export_batch(bad, tmp_path)
    assert list(tmp_path.iterdir()) == []
