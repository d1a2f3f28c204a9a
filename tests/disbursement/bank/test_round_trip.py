"""Whatever the records (names in Chinese, ASCII or both, amounts from 1 fen up), every bank's batch file
reads back to exactly the records written, and every answer to exactly the answers written."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from yikatong.disbursement.bank.records import BatchFile, PaymentRecord, ReturnRecord, ReturnStatus, StatementLine
from yikatong.disbursement.bank.sim import answer, statement_lines

from .conftest import connector

NAME_CHARS = "张王李赵欧阳明华秀英龙飞·ABCabc &'<>\""
names = st.text(NAME_CHARS, min_size=1, max_size=20).map(str.strip).filter(bool)
amounts = st.integers(min_value=1, max_value=10**12)


@st.composite
def batches(draw: st.DrawFn) -> list[PaymentRecord]:
    n = draw(st.integers(min_value=0, max_value=12))
    return [PaymentRecord(f"YKT{draw(st.integers(0, 99)):02d}-{i:08d}", draw(names),
                          draw(st.from_regex(r"[0-9]{16,19}", fullmatch=True)), draw(amounts),
                          draw(st.text("补贴低保月年 0123456789", max_size=20)).strip())
            for i in range(n)]


@settings(max_examples=25, deadline=None)
@given(records=batches(), rate=st.sampled_from([0.0, 0.3, 1.0]), seed=st.integers(0, 5))
def test_every_bank_reads_back_what_it_wrote(records: list[PaymentRecord], rate: float, seed: int) -> None:
    for code in ("ABC", "PSBC", "SCRCU"):
        c = connector(code, max_records_per_file=5)
        batch = BatchFile("FF20261205000009", code, datetime(2026, 12, 5, tzinfo=UTC), "国库 & 专户",
                          "2253511000010401", records)
        with tempfile.TemporaryDirectory() as folder:
            got: list[PaymentRecord] = []
            answers: list[ReturnRecord] = []
            lines: list[StatementLine] = []
            for path in c.export_batch(batch, Path(folder)):
                header, part = c.read_batch_file(path)
                got += part
                said = answer(part, rate, seed, path.name)
                ret = c.write_return(Path(folder) / "r", header, batch.created_at, list(zip(part, said, strict=True)))
                assert c.read_return(ret.path, batch) == said
                answers += said
                booked = statement_lines(said, date(2026, 12, 5))
                stm = c.write_statement(Path(folder) / "s", header, batch.created_at, booked)
                assert c.read_statement(stm.path, batch) == booked
                lines += booked
            assert got == records
            assert [a.end_to_end_id for a in answers] == [r.end_to_end_id for r in records]
            paid = sum(a.amount_fen for a in answers if a.status is ReturnStatus.PAID)
            assert sum(x.amount_fen for x in lines) == paid  # drawn minus returned = paid, to the fen
