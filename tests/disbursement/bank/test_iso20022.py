"""ISO 20022: generated pain.001 files validate against the official schema (vendored XSD), amounts are
exact from fen, files split at the bank's maximum; a bank's pain.002 and camt.053 samples are read."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from yikatong.disbursement.bank.connector import export_recorded
from yikatong.disbursement.bank.iso20022 import CAMT053, PAIN001, PAIN002, fen_of, ns, schema_errors, yuan_text
from yikatong.disbursement.bank.records import PaymentRecord, ReturnStatus, StatementLine

from .conftest import connector, failed, make_batch, paid

SAMPLES = Path(__file__).with_name("samples")


@pytest.mark.parametrize("fen", [0, 1, 9, 10, 99, 100, 101, 12_345, 99_999_999_999_99, 10**15 + 7])
def test_amounts_are_exact_from_fen_and_back(fen: int) -> None:
    text = yuan_text(fen)
    assert Decimal(text) * 100 == fen and text.count(".") == 1 and len(text.split(".")[1]) == 2
    assert fen_of(text) == fen


@pytest.mark.parametrize("text", ["1.005", "-1.00", "1,00", "", "1e3", "١.٠٠", "12."])
def test_an_amount_that_is_not_whole_fen_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        fen_of(text)
    assert fen_of("12.340") == 1234 and fen_of("7") == 700 and fen_of("0.5") == 50


def test_pain001_validates_against_the_official_schema_and_splits(tmp_path: Path) -> None:
    c = connector("SCRCU", max_records_per_file=4)
    batch = make_batch("SCRCU", 10)
    written = export_recorded(c, batch, tmp_path)
    assert [w.records for w in written] == [4, 4, 2]
    t = f"{{{ns(PAIN001)}}}"
    for no, w in enumerate(written, 1):
        assert schema_errors(w.path, PAIN001) == []
        doc = etree.parse(str(w.path))
        part = batch.records[(no - 1) * 4:no * 4]
        assert doc.findtext(f"{t}CstmrCdtTrfInitn/{t}GrpHdr/{t}MsgId") == f"FF20261205000001-{no:03d}of003"
        assert doc.findtext(f"{t}CstmrCdtTrfInitn/{t}GrpHdr/{t}NbOfTxs") == str(len(part))
        ctrl = doc.findtext(f"{t}CstmrCdtTrfInitn/{t}GrpHdr/{t}CtrlSum")
        assert Decimal(ctrl) * 100 == sum(r.amount_fen for r in part) == w.total_fen
        info = doc.find(f"{t}CstmrCdtTrfInitn/{t}PmtInf")
        assert info.findtext(f"{t}DbtrAcct/{t}Id/{t}Othr/{t}Id") == batch.debtor_account
        assert info.findtext(f"{t}Dbtr/{t}Nm") == batch.debtor_name
        txs = info.findall(f"{t}CdtTrfTxInf")
        assert [(x.findtext(f"{t}PmtId/{t}EndToEndId"), x.findtext(f"{t}Amt/{t}InstdAmt"),
                 x.find(f"{t}Amt/{t}InstdAmt").get("Ccy"), x.findtext(f"{t}Cdtr/{t}Nm"),
                 x.findtext(f"{t}CdtrAcct/{t}Id/{t}Othr/{t}Id")) for x in txs] == [
            (r.end_to_end_id, f"{r.amount_fen // 100}.{r.amount_fen % 100:02d}", "CNY", r.payee_name, r.account)
            for r in part]
    header, records = c.read_batch_file(written[2].path)
    assert records == list(batch.records[8:]) and (header.file_no, header.file_count) == (3, 3)


def test_the_schema_check_catches_a_broken_file(tmp_path: Path) -> None:
    [w] = export_recorded(connector("SCRCU"), make_batch("SCRCU", 2), tmp_path)
    w.path.write_text(w.path.read_text(encoding="utf-8").replace("<PmtMtd>TRF</PmtMtd>", "<PmtMtd>CASH</PmtMtd>"),
                      encoding="utf-8")
    assert any("PmtMtd" in e for e in schema_errors(w.path, PAIN001))


def test_a_banks_pain002_sample_is_read() -> None:
    sample = SAMPLES / "pain.002.001.12-sample.xml"
    assert schema_errors(sample, PAIN002) == []
    batch = make_batch("SCRCU", 3, number="FF20261201000007")
    got = connector("SCRCU").read_return(sample, batch)
    assert [(r.end_to_end_id, r.amount_fen, r.status, r.reason_code, r.reason) for r in got] == [
        ("YKT00000001-0000000000", 1, ReturnStatus.PAID, "", ""),
        ("YKT00000001-0000000001", 10_003, ReturnStatus.FAILED, "AC06", "账户已冻结"),
        ("YKT00000001-0000000002", 20_005, ReturnStatus.PAID, "", "")]


def test_a_banks_camt053_sample_is_read() -> None:
    sample = SAMPLES / "camt.053.001.08-sample.xml"
    assert schema_errors(sample, CAMT053) == []
    batch = make_batch("SCRCU", 3, number="FF20261201000007")
    expected = [StatementLine("YKT00000001-0000000000", 1, date(2026, 12, 1)),
                StatementLine("YKT00000001-0000000002", 20_005, date(2026, 12, 1)),
                StatementLine("YKT00000001-0000000001", 10_003, date(2026, 12, 1)),
                StatementLine("YKT00000001-0000000001", -10_003, date(2026, 12, 2))]  # the pending entry is left out
    assert connector("SCRCU").read_statement(sample) == expected
    assert connector("SCRCU").read_statement(sample, batch) == expected


def test_our_return_and_statement_validate_and_read_back(tmp_path: Path) -> None:
    c = connector("SCRCU")
    batch = make_batch("SCRCU", 3)
    [w] = c.export_batch(batch, tmp_path)
    header, records = c.read_batch_file(w)
    answers = [(records[0], paid(records[0])), (records[1], failed(records[1], "BE01", "户名不符")),
               (records[2], paid(records[2]))]
    ret = c.write_return(tmp_path / "r.xml", header, datetime(2026, 12, 5, 10, tzinfo=UTC), answers)
    assert schema_errors(ret.path, PAIN002) == []
    assert [(r.status, r.reason_code, r.reason) for r in c.read_return(ret.path, batch)] == [
        (ReturnStatus.PAID, "", ""), (ReturnStatus.FAILED, "BE01", "户名不符"), (ReturnStatus.PAID, "", "")]
    lines = [StatementLine(r.end_to_end_id, r.amount_fen, date(2026, 12, 5)) for r in records]
    lines.append(StatementLine(records[1].end_to_end_id, -records[1].amount_fen, date(2026, 12, 6)))
    stm = c.write_statement(tmp_path / "s.xml", header, datetime(2026, 12, 6, 10, tzinfo=UTC), lines)
    assert schema_errors(stm.path, CAMT053) == []
    assert c.read_statement(stm.path, batch) == lines


def test_xml_special_characters_are_escaped(tmp_path: Path) -> None:
    c = connector("SCRCU")
    batch = make_batch("SCRCU", 0)
    record = PaymentRecord("YKT1-1", "A&B <C> \"D\"", "6228480000000000001", 250, "补贴 & 奖励 <2026>")
    batch = type(batch)(batch.batch_number, "SCRCU", batch.created_at, "财政局 & 国库", batch.debtor_account, [record])
    [w] = c.export_batch(batch, tmp_path)
    assert schema_errors(w, PAIN001) == []
    assert c.read_batch_file(w)[1] == [record]
