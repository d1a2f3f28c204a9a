"""Batches and connectors for the bank file tests: plain records, no database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from yikatong.disbursement.bank.connector import Connector, connector_of
from yikatong.disbursement.bank.records import BatchFile, PaymentRecord, ReturnRecord, ReturnStatus
from yikatong.disbursement.bank.template import shipped_templates

NAMES = ("张三", "李秀英", "欧阳明华", "王五", "赵六", "Tashi & <Dorje>", "陈静")


def make_records(n: int, start: int = 0) -> list[PaymentRecord]:
    return [PaymentRecord(f"YKT00000001-{i:010d}", NAMES[i % len(NAMES)], f"622848{i:012d}{i % 10}",
                          (i % 7) * 10_001 + 1 + i, "2026年11月 农村低保") for i in range(start, start + n)]


def make_batch(code: str, n: int = 5, number: str = "FF20261205000001") -> BatchFile:
    return BatchFile(number, code, datetime(2026, 12, 5, 1, 30, tzinfo=UTC), "内江市财政局国库存款户",
                     "2253511000010401", make_records(n))


def connector(code: str, **changes: object) -> Connector:
    """The shipped bank's connector, with template settings changed (e.g. max_records_per_file=2)."""
    return connector_of(dataclasses.replace(shipped_templates()[code], **changes))


def paid(r: PaymentRecord) -> ReturnRecord:
    return ReturnRecord(r.end_to_end_id, r.amount_fen, ReturnStatus.PAID, "", "")


def failed(r: PaymentRecord, code: str = "AC06", reason: str = "账户已冻结") -> ReturnRecord:
    return ReturnRecord(r.end_to_end_id, r.amount_fen, ReturnStatus.FAILED, code, reason)
