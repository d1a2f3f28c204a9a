"""What passes between the payment core and a bank connector: plain records, no ORM objects, so a new
bank is a new connector (or a template), never a change to the core.

Amounts are integer fen. `end_to_end_id` identifies one payment order across every file it appears
in (the bank echoes it in its return and statement); it is unique platform-wide and at most 35
characters (ISO 20022 EndToEndId)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class PaymentRecord:
    """One payment order, as fixed when its batch was approved."""

    end_to_end_id: str  # e.g. "YKT000123-0000004567" (batch and order), at most 35 characters
    payee_name: str  # the card holder's name (the proxy holder's when paid to a proxy's card)
    account: str  # the card's bank account in clear: only ever written into the bank's file
    amount_fen: int
    purpose: str  # Chinese, e.g. "2026年11月 农村低保" (remittance information)


@dataclass(frozen=True)
class BatchFile:
    """A batch as its bank sees it: the paying treasury account and the orders for this bank."""

    batch_number: str  # e.g. "FF20261205000001" (发放批次号), unique
    bank_code: str  # catalog banks.code
    created_at: datetime  # aware (UTC); shown to the bank in Beijing time
    debtor_name: str  # the treasury or special-fund account's name
    debtor_account: str  # its account number
    records: Sequence[PaymentRecord]

    @property
    def total_fen(self) -> int:
        return sum(r.amount_fen for r in self.records)


class ReturnStatus(StrEnum):
    PAID = "成功"
    FAILED = "失败"


@dataclass(frozen=True)
class ReturnRecord:
    """The bank's answer for one order."""

    end_to_end_id: str
    amount_fen: int
    status: ReturnStatus
    reason_code: str  # the bank's code, "" when paid (e.g. AC04 account closed, AC06 blocked)
    reason: str  # Chinese, "" when paid (e.g. 卡已冻结, 账户已销户, 户名不符)


@dataclass(frozen=True)
class StatementLine:
    """One booked movement on the debtor account's statement (对账单)."""

    end_to_end_id: str
    amount_fen: int  # positive: money out of the treasury account; negative: a payment returned to it
    booked_on: date


class BankConnector(Protocol):
    """Everything the core asks of a bank. Readers check a file against its batch and refuse it whole
    (core.errors.Invalid with a Chinese report: unknown record, wrong amount, duplicate line, wrong
    count or total) before returning anything."""

    bank_code: str

    def export_batch(self, batch: BatchFile, folder: Path) -> list[Path]:
        """Write the batch's file(s) into `folder` (split at the bank's maximum records per file)."""

    def read_return(self, path: Path, batch: BatchFile) -> list[ReturnRecord]:
        """The bank's per-record answer to `batch`."""

    def read_statement(self, path: Path) -> list[StatementLine]:
        """The debtor account's booked lines."""
