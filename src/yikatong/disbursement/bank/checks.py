"""A return or statement is checked against its batch before anything of it is used: every problem is
collected, and if there is one the file is refused whole (core.errors.Invalid) with a Chinese report
naming each problem, with its line number where it has one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from yikatong.core.errors import Invalid
from yikatong.core.money import format_fen
from yikatong.disbursement.bank.records import PaymentRecord, ReturnRecord, ReturnStatus, StatementLine

SHOWN = 100  # problems listed in full; the rest are counted


class Problems:
    def __init__(self, title: str):
        self.title = title
        self.items: list[str] = []
        self.count = 0

    def add(self, line: int | None, text: str) -> None:
        self.count += 1
        if len(self.items) < SHOWN:
            self.items.append(f"第 {line} 行：{text}" if line else text)

    def __bool__(self) -> bool:
        return self.count > 0

    def raise_if_any(self) -> None:
        if not self.count:
            return
        more = f"\n……另有 {self.count - len(self.items)} 处问题未列出" if self.count > len(self.items) else ""
        raise Invalid(f"{self.title}，共 {self.count} 处问题，整个文件未导入：\n" + "\n".join(self.items) + more)


@dataclass(frozen=True)
class Declared:
    """A count and total a file states about itself (trailer, header, NbOfTxs/CtrlSum...)."""

    where: str  # e.g. "尾行", "GrpHdr"
    line: int | None
    count: int | None
    total_fen: int | None


class ReturnRow(NamedTuple):  # tuples: a million of them are made per return
    line: int | None
    end_to_end_id: str
    amount_fen: int
    paid: bool
    reason_code: str
    reason: str


class StatementRow(NamedTuple):
    line: int | None
    end_to_end_id: str
    amount_fen: int  # signed: positive out of the treasury account, negative returned to it
    booked_on: date


def yuan(fen: int) -> str:
    return f"{format_fen(fen)} 元"


def check_declared(declared: Iterable[Declared], count: int, total_fen: int, problems: Problems) -> None:
    for d in declared:
        if d.count is not None and d.count != count:
            problems.add(d.line, f"{d.where}记载笔数 {d.count:,}，文件实有 {count:,} 笔")
        if d.total_fen is not None and d.total_fen != total_fen:
            problems.add(d.line, f"{d.where}记载金额 {yuan(d.total_fen)}，文件实有 {yuan(total_fen)}")


def check_return(rows: Sequence[ReturnRow], expected: Sequence[PaymentRecord], declared: Iterable[Declared],
                 problems: Problems) -> list[ReturnRecord]:
    """The bank's answers against the records of the file they answer: each record answered exactly
    once, with its amount; then the file's own counts. Raises Invalid with every problem found."""
    amounts = {r.end_to_end_id: r.amount_fen for r in expected}
    seen: dict[str, int | None] = {}
    total = matched = 0
    for row in rows:
        total += row.amount_fen
        e2e = row.end_to_end_id
        if e2e in seen:
            first = seen[e2e]
            problems.add(row.line, f"流水号 {e2e} 重复" + (f"（首次出现在第 {first} 行）" if first else ""))
            continue
        seen[e2e] = row.line
        wanted = amounts.get(e2e)
        if wanted is None:
            problems.add(row.line, f"流水号 {e2e} 不属于本批次文件")
            continue
        matched += 1
        if wanted != row.amount_fen:
            problems.add(row.line, f"流水号 {e2e} 金额为 {yuan(row.amount_fen)}，批次中为 {yuan(wanted)}")
        if not row.paid and not row.reason_code and not row.reason:
            problems.add(row.line, f"流水号 {e2e} 失败但没有原因")
    if matched < len(amounts):
        missing = [e2e for e2e in amounts if e2e not in seen]
        problems.add(None, f"缺少 {len(missing):,} 笔批次记录的回盘：{'、'.join(missing[:10])}"
                           + ("等" if len(missing) > 10 else ""))
    check_declared(declared, len(rows), total, problems)
    problems.raise_if_any()
    paid, failed = ReturnStatus.PAID, ReturnStatus.FAILED
    return [ReturnRecord(r.end_to_end_id, r.amount_fen, paid if r.paid else failed,
                         "" if r.paid else r.reason_code, "" if r.paid else r.reason) for r in rows]


def check_statement(rows: Sequence[StatementRow], amounts: Mapping[str, int] | None,
                    declared: Iterable[Declared], problems: Problems) -> list[StatementLine]:
    """A statement's booked lines: at most one payment out and one return per record, a return only after
    a payment of the same amount; against the batch's amounts (流水号 -> fen) when given (every line one
    of its records, with its amount — records not yet booked may be absent); then the file's own counts."""
    out: dict[str, StatementRow] = {}  # the payment out of each record
    back: set[str] = set()
    total = 0
    for row in rows:
        e2e, signed = row.end_to_end_id, row.amount_fen
        total += signed
        amount = signed if signed > 0 else -signed
        if signed == 0:
            problems.add(row.line, f"流水号 {e2e} 金额为零")
            continue
        if amounts is not None:
            wanted = amounts.get(e2e)
            if wanted is None:
                problems.add(row.line, f"流水号 {e2e} 不属于本批次")
                continue
            if wanted != amount:
                problems.add(row.line, f"流水号 {e2e} 金额为 {yuan(amount)}，批次中为 {yuan(wanted)}")
        if signed > 0:
            if e2e in out:
                first = out[e2e].line
                problems.add(row.line, f"流水号 {e2e} 重复支出" + (f"（首次出现在第 {first} 行）" if first else ""))
            out[e2e] = row
        else:
            if e2e in back:
                problems.add(row.line, f"流水号 {e2e} 重复退回")
            elif e2e not in out:
                problems.add(row.line, f"流水号 {e2e} 退回，但此前没有支出")
            elif out[e2e].amount_fen != amount:
                problems.add(row.line, f"流水号 {e2e} 退回 {yuan(amount)}，支出为 {yuan(out[e2e].amount_fen)}")
            back.add(e2e)
    check_declared(declared, len(rows), total, problems)
    problems.raise_if_any()
    return [StatementLine(r.end_to_end_id, r.amount_fen, r.booked_on) for r in rows]
