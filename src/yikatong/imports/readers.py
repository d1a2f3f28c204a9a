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
import xml.etree.ElementTree as ET
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
    """The first worksheet of an .xlsx workbook.

    Read by streaming the sheet's XML (about ten times faster than openpyxl's read-only mode,
    which matters at 100,000 rows); a workbook this reader does not understand (strict OOXML,
    unusual packaging) falls back to openpyxl."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise FileError("不是有效的 .xlsx 文件，请用 Excel 重新另存为 .xlsx") from None
    try:
        with archive:
            rows = _fast_rows(archive)
            return _table(rows)
    except _Unsupported:
        return _table(_openpyxl_rows(data))
    except (zipfile.BadZipFile, KeyError, IndexError, ET.ParseError, ValueError, ArithmeticError, OSError,
            EOFError) as e:
        raise FileError(f"不是有效的 .xlsx 文件（{type(e).__name__}），请用 Excel 重新另存为 .xlsx") from None


def _table(rows: Iterator[tuple[int, list[str | None]]]) -> Table:
    table = Table(format="xlsx", headers=[])
    for row_no, cells in rows:
        if not table.headers and not table.rows:
            if row_no != 1 or not any(c is not None for c in cells):
                raise FileError("第1行应为列名（表头），但是空的", 1)
            table.headers = cells
            continue
        if not any(c is not None for c in cells):
            continue
        if len(table.rows) >= MAX_DATA_ROWS:
            raise FileError(f"数据行过多：最多 {MAX_DATA_ROWS:,} 行，请拆分文件")
        table.rows.append((row_no, cells))
    if not table.headers:
        raise FileError("第1行应为列名（表头），但是空的", 1)
    return table


class _Unsupported(Exception):
    """The workbook uses a layout the streaming reader leaves to openpyxl."""


_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_R_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
# Date formats Excel numbers without writing them out: the standard ones and the CJK-locale ones
# (27-36, 50-58) that Chinese Excel uses for 2024年3月15日 and the like.
_DATE_FORMAT_IDS = set(range(14, 18)) | {22} | set(range(27, 37)) | set(range(50, 59))


def _part_path(base: str, target: str) -> str:
    if target.startswith("/"):
        return target[1:]
    parts = [p for p in base.split("/")[:-1] if p]
    for piece in target.split("/"):
        if piece == "..":
            parts.pop()
        elif piece and piece != ".":
            parts.append(piece)
    return "/".join(parts)


def _rels(archive: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """Relationship id -> (type, part path) for one package part."""
    folder, _, name = part.rpartition("/")
    rels_path = f"{folder}/_rels/{name}.rels" if folder else f"_rels/{name}.rels"
    if rels_path not in archive.namelist():
        return {}
    root = ET.fromstring(archive.read(rels_path))
    return {r.get("Id"): (r.get("Type", ""), _part_path(part, r.get("Target", "")))
            for r in root.iter(f"{_REL_NS}Relationship") if r.get("TargetMode") != "External"}


def _fast_rows(archive: zipfile.ZipFile) -> Iterator[tuple[int, list[str | None]]]:
    from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format
    from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900

    package = _rels(archive, "")
    workbook_part = next((p for t, p in package.values() if t.endswith("/officeDocument")), None)
    if workbook_part is None:
        raise _Unsupported
    workbook = ET.fromstring(archive.read(workbook_part))
    if workbook.tag != f"{_NS}workbook":
        raise _Unsupported  # strict OOXML or something else: openpyxl decides
    sheet = workbook.find(f"{_NS}sheets/{_NS}sheet")
    if sheet is None:
        raise FileError("Excel 文件中没有工作表")
    rels = _rels(archive, workbook_part)
    sheet_type, sheet_part = rels[sheet.get(_R_ID)]
    if not sheet_type.endswith("/worksheet"):
        raise FileError("第一个工作表不是普通表格（可能是图表），请把数据放在第一个工作表")
    pr = workbook.find(f"{_NS}workbookPr")
    epoch = CALENDAR_MAC_1904 if pr is not None and pr.get("date1904") in ("1", "true") else CALENDAR_WINDOWS_1900

    shared: list[str] = []
    styles_part = None
    for rel_type, part in rels.values():
        if rel_type.endswith("/sharedStrings"):
            for _, si in ET.iterparse(archive.open(part)):
                if si.tag == f"{_NS}si":
                    shared.append(_rich_text(si))
                    si.clear()
        elif rel_type.endswith("/styles"):
            styles_part = part
    date_styles: set[int] = set()
    if styles_part:
        styles = ET.fromstring(archive.read(styles_part))
        custom = {int(f.get("numFmtId", -1)): f.get("formatCode", "")
                  for f in styles.iterfind(f"{_NS}numFmts/{_NS}numFmt")}
        for index, xf in enumerate(styles.iterfind(f"{_NS}cellXfs/{_NS}xf")):
            fmt_id = int(xf.get("numFmtId", 0))
            fmt = custom.get(fmt_id) or BUILTIN_FORMATS.get(fmt_id)
            if fmt_id in _DATE_FORMAT_IDS or (fmt and is_date_format(fmt)):
                date_styles.add(index)
    return _sheet_xml_rows(archive.open(sheet_part), shared, date_styles, epoch)


def _rich_text(si: ET.Element) -> str:
    """Text of a shared string or inline string, without phonetic (rPh) runs."""
    t = si.find(f"{_NS}t")
    if t is not None:
        return t.text or ""
    return "".join(r.findtext(f"{_NS}t") or "" for r in si.iterfind(f"{_NS}r"))


def _column_index(ref: str) -> int:
    index = 0
    for ch in ref:
        if "A" <= ch <= "Z":
            index = index * 26 + ord(ch) - 64
        else:
            break
    return index - 1


def _sheet_xml_rows(stream, shared: list[str], date_styles: set[int], epoch) -> Iterator[tuple[int, list]]:
    from openpyxl.utils.datetime import from_excel

    row_tag, cell_tag, v_tag, is_tag = f"{_NS}row", f"{_NS}c", f"{_NS}v", f"{_NS}is"
    expected = 1
    parent = None
    for event, elem in ET.iterparse(stream, events=("start", "end")):
        if event == "start":
            if elem.tag == f"{_NS}sheetData":
                parent = elem
            continue
        if elem.tag != row_tag:
            continue
        row_no = int(elem.get("r") or expected)
        expected = row_no + 1
        cells: list = []
        col = -1
        for c in elem.iterfind(cell_tag):
            ref = c.get("r")
            col = _column_index(ref) if ref else col + 1
            if not 0 <= col < 16384:  # Excel's last column is XFD
                raise FileError(f"第{row_no}行的单元格位置无效", row_no)
            kind = c.get("t", "n")
            if kind == "inlineStr":
                node = c.find(is_tag)
                value: object = _rich_text(node) if node is not None else None
            else:
                text_value = c.findtext(v_tag)
                if not text_value:  # no value, or a formula never calculated
                    continue
                if kind == "s":
                    value = shared[int(text_value)]
                elif kind in ("str", "e"):
                    value = text_value
                elif kind == "b":
                    value = text_value.strip() in ("1", "true")
                elif kind == "d":
                    value = _text(text_value.replace("T", " ").removesuffix(" 00:00:00"))
                elif int(c.get("s", 0)) in date_styles:
                    value = from_excel(float(text_value), epoch)
                else:
                    value = _number(text_value)
            if value is None:
                continue
            if col >= len(cells):
                cells.extend([None] * (col + 1 - len(cells)))
            cells[col] = value if isinstance(value, Num) else _cell(value)
        elem.clear()
        if parent is not None:
            parent.remove(elem)
        yield row_no, cells


def _number(text_value: str) -> Num:
    """A number cell as Excel wrote it ('12.35', '5.11025199001011E+17'), as in `_cell`."""
    number = Decimal(text_value.strip())
    if number == number.to_integral_value() and abs(number) < Decimal("1e15"):
        return Num(str(int(number)))
    return Num(format(number.normalize(), "f"))


def _openpyxl_rows(data: bytes) -> Iterator[tuple[int, list[str | None]]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as e:
        raise FileError(f"不是有效的 .xlsx 文件（{type(e).__name__}），请用 Excel 重新另存为 .xlsx") from None
    try:
        if not workbook.worksheets:
            raise FileError("Excel 文件中没有工作表")
        for row_no, values in _sheet_rows(workbook.worksheets[0]):
            yield row_no, [_cell(v) for v in values]
    finally:
        workbook.close()


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
