"""Read an uploaded table (CSV or .xlsx) into header names and rows of text cells.

Rows are numbered as the user sees them in Excel or a text editor: the header is row 1, the first
data row is row 2. Blank rows are skipped (but still counted, so numbers stay right). Every cell
comes out as `None` (empty) or a stripped `str`; a cell that Excel stored as a number comes out as
`Num` (a `str` subclass), so a column that must be text can refuse it: an 18-digit ID number
stored as a number has already lost its last digits.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal

MAX_FILE_BYTES = 100 * 1024 * 1024  # 100 MB
MAX_DATA_ROWS = 1_000_000

ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8", "gb18030": "gb18030",
             "gbk": "gb18030", "gb2312": "gb18030"}
"""Accepted `encoding` names. GBK and GB2312 are subsets of GB 18030, so all three read as gb18030."""

_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class Num(str):
    """A cell that Excel stored as a number, rendered as text ('13812345678', '12.5')."""

    __slots__ = ()


class FileError(Exception):
    """The file as a whole cannot be read. `row` is the line/row the problem is on, if known."""

    def __init__(self, reason: str, row: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.row = row


@dataclass
class Table:
    format: str  # "csv" or "xlsx"
    headers: list[str | None]
    rows: list[tuple[int, list[str | None]]] = field(default_factory=list)  # (row number, cells)


def normalize_encoding(encoding: str | None) -> str:
    name = (encoding or "utf-8").strip().lower().replace("_", "-")
    if name not in ENCODINGS:
        raise FileError(f"不支持的编码：{encoding}，只能是 utf-8 或 gb18030")
    return ENCODINGS[name]


def read_table(data: bytes, encoding: str = "utf-8") -> Table:
    """Read CSV or .xlsx bytes. The format is recognised from the content, not the file name."""
    if len(data) > MAX_FILE_BYTES:
        raise FileError(f"文件过大：{len(data) / 1024 / 1024:.1f} MB，最大 {MAX_FILE_BYTES // 1024 // 1024} MB")
    if not data.strip():
        raise FileError("文件是空的")
    if data.startswith(_XLSX_MAGIC):
        return read_xlsx(data)
    if data.startswith(_XLS_MAGIC):
        raise FileError("不支持旧版 Excel（.xls）文件，请在 Excel 中另存为 .xlsx 或 CSV（UTF-8）")
    return read_csv(data, encoding)


# ---------------------------------------------------------------- CSV


def _decode(data: bytes, encoding: str) -> str:
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
        # Excel's "Unicode text" export: UTF-16 with a byte-order mark, whatever was asked for.
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise FileError("文件以UTF-16标记开头，但内容不是有效的UTF-16编码") from None
    enc = normalize_encoding(encoding)
    if enc == "utf-8" and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode(enc)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        if enc == "utf-8":
            raise FileError(f"第{line}行不是有效的UTF-8编码，请另存为UTF-8（或指定编码 gb18030）", line) from None
        raise FileError(f"第{line}行不是有效的GB18030编码，请确认文件编码（或指定编码 utf-8）", line) from None


def read_csv(data: bytes, encoding: str = "utf-8") -> Table:
    text = _decode(data, encoding)
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise FileError(f"第{line}行含有空字符（\\0），不是文本文件", line)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    table = Table(format="csv", headers=[])
    try:
        for record in reader:
            # line_num is the physical line where this record ended; a quoted cell may span lines,
            # so the record's first line is what a text editor shows as its row.
            row_no = reader.line_num - sum(cell.count("\n") for cell in record)
            cells = [_text(c) for c in record]
            if not table.headers and not table.rows and row_no == 1:
                table.headers = cells
                continue
            if not any(cells):
                continue
            if len(table.rows) >= MAX_DATA_ROWS:
                raise FileError(f"数据行过多：最多 {MAX_DATA_ROWS:,} 行，请拆分文件")
            table.rows.append((row_no, cells))
    except csv.Error as e:
        raise FileError(f"第{reader.line_num}行CSV格式错误（{e}），请检查引号是否成对", reader.line_num) from None
    if not table.headers or not any(table.headers):
        raise FileError("第1行应为列名（表头），但是空的", 1)
    return table


def _text(value: str) -> str | None:
    value = value.strip().replace("\u3000", " ").strip()  # also the full-width space
    return value or None


# ---------------------------------------------------------------- XLSX


def read_xlsx(data: bytes) -> Table:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as e:
        raise FileError(f"不是有效的 .xlsx 文件（{type(e).__name__}），请用 Excel 重新另存为 .xlsx") from None
    try:
        if not workbook.worksheets:
            raise FileError("Excel 文件中没有工作表")
        sheet = workbook.worksheets[0]
        table = Table(format="xlsx", headers=[])
        for row_no, values in _sheet_rows(sheet):
            cells = [_cell(v) for v in values]
            if not table.headers and not table.rows:
                if row_no != 1:
                    raise FileError("第1行应为列名（表头），但是空的", 1)
                table.headers = cells
                continue
            if not any(c is not None for c in cells):
                continue
            if len(table.rows) >= MAX_DATA_ROWS:
                raise FileError(f"数据行过多：最多 {MAX_DATA_ROWS:,} 行，请拆分文件")
            table.rows.append((row_no, cells))
    finally:
        workbook.close()
    if not table.headers or not any(table.headers):
        raise FileError("第1行应为列名（表头），但是空的", 1)
    return table


def _sheet_rows(sheet) -> Iterator[tuple[int, tuple]]:
    """(row number, values). Read-only worksheets skip rows absent from the file, so the
    number comes from the cells themselves when they carry one."""
    expected = 1
    for row in sheet.iter_rows():
        row_no = expected
        for cell in row:
            number = getattr(cell, "row", None)
            if isinstance(number, int):
                row_no = number
                break
        expected = row_no + 1
        yield row_no, tuple(getattr(c, "value", None) for c in row)


def _cell(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return Num(str(value))
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return Num(str(int(value)))
        # repr() is the shortest text that reads back as the same double: 12.35 -> '12.35'.
        text = repr(value)
        if "e" in text or "E" in text:
            text = format(Decimal(text), "f")
        return Num(text)
    if isinstance(value, Decimal):
        return Num(format(value, "f"))
    if isinstance(value, time):
        return value.isoformat()
    return _text(str(value))
