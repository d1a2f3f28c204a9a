"""The treasury's payment detail (国库支付明细): what the treasury's own system says it debited from a
paying account and got back, per payment order, for three-way reconciliation. A CSV file, UTF-8:

    流水号,金额（分）,方向,记账日期
    YKT000012-0000000345,50000,支出,2026-12-03
    YKT000012-0000000346,50000,退回,2026-12-04
    合计,2,0,

`方向` is 支出 (out of the account) or 退回 (back into it); the trailer gives the line count and the net
total in fen (支出 minus 退回). A file is read whole or refused whole."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path

from yikatong.disbursement.bank.checks import Declared, Problems, StatementRow, check_statement
from yikatong.disbursement.bank.files import HashedFile, WrittenFile, bulk
from yikatong.disbursement.bank.records import StatementLine

HEADER = ["流水号", "金额（分）", "方向", "记账日期"]
OUT, BACK = "支出", "退回"


def write_treasury(path: Path, lines: Sequence[StatementLine]) -> WrittenFile:
    """The treasury's file for `lines` (signed: positive out, negative back), as the simulator writes it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for line in lines:
        writer.writerow([line.end_to_end_id, abs(line.amount_fen), OUT if line.amount_fen > 0 else BACK,
                         line.booked_on.isoformat()])
    net = sum(line.amount_fen for line in lines)
    writer.writerow(["合计", len(lines), net, ""])
    with HashedFile(path) as f:
        f.write(buffer.getvalue().encode("utf-8"))
    return WrittenFile(path, f.sha256, len(lines), net)


@bulk
def read_treasury(path: Path, amounts: Mapping[str, int] | None = None) -> list[StatementLine]:
    """The file's lines, checked: columns, amounts, directions, dates, at most one 支出 and one 退回 per
    流水号, against `amounts` (流水号 -> fen of the platform's orders) when given, and the trailer."""
    problems = Problems(f"国库支付明细 {path.name} 有误")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.add(None, "文件不是 UTF-8 编码")
        problems.raise_if_any()
    rows: list[StatementRow] = []
    declared: list[Declared] = []
    days: dict[str, date | None] = {}
    reader = csv.reader(io.StringIO(text))
    first = next(reader, None)
    if first != HEADER:
        problems.add(1, f"表头应为 {','.join(HEADER)}")
        problems.raise_if_any()
    for n, fields in enumerate(reader, 2):
        if not fields:
            continue
        if fields[0] == "合计":
            if declared:
                problems.add(n, "合计行出现多次")
            count = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
            net = fields[2] if len(fields) > 2 else ""
            total = int(net) if net.lstrip("-").isdigit() else None
            if count is None or total is None:
                problems.add(n, "合计行应为：合计,笔数,净额（分）")
            declared.append(Declared("合计行", n, count, total))
            continue
        if declared:
            problems.add(n, "合计行之后还有明细")
        if len(fields) != 4:
            problems.add(n, f"应有 4 列，实有 {len(fields)} 列")
            continue
        e2e, amount_text, direction, day_text = fields
        if not amount_text.isdigit():
            problems.add(n, f"金额（分）{amount_text!r} 不是正整数")
            continue
        day = days[day_text] if day_text in days else _day(day_text)
        days[day_text] = day
        if day is None:
            problems.add(n, f"记账日期 {day_text!r} 应为 YYYY-MM-DD")
        elif direction == OUT:
            rows.append(StatementRow(n, e2e, int(amount_text), day))
        elif direction == BACK:
            rows.append(StatementRow(n, e2e, -int(amount_text), day))
        else:
            problems.add(n, f"方向应为 {OUT} 或 {BACK}，文件为 {direction!r}")
    if not declared:
        problems.add(None, "缺少合计行")
    return check_statement(rows, amounts, declared, problems)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
