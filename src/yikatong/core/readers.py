"""Read an uploaded table (CSV, Excel .xlsx or Parquet): one reader stack for every import — the
registry and catalogue files (`imports`) and the shared data sets (`sharing`).

Rows are numbered as the user sees them in Excel or a text editor: the header is row 1, the first
data row is row 2. Blank rows are skipped (but still counted, so numbers stay right). Every cell
comes out as `None` (empty) or a stripped `str`; a cell that Excel stored as a number comes out as
`Num` (a `str` subclass), so a column that must be text can refuse it: an 18-digit ID number
stored as a number has already lost its last digits.

Two ways in: `read_table` gives every row at once (files of up to a million rows); `open_reader`
gives a reader whose `chunks` yield the wanted columns a chunk of rows at a time, as Python lists or
Arrow arrays, so a 3-million-row shared data set stays in compact columnar memory. CSV is parsed by
Arrow where the file allows it and by Python's csv module otherwise (the exact line of each
problem); .xlsx by python-calamine (Rust, a maintained library); Parquet by pyarrow.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from yikatong.core.money import parse_yuan

MAX_FILE_BYTES = 100 * 1024 * 1024  # 100 MB
MAX_DATA_ROWS = 1_000_000
CHUNK = 50_000  # rows a chunked reader yields at a time

ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8", "gb18030": "gb18030",
             "gbk": "gb18030", "gb2312": "gb18030"}
"""Accepted `encoding` names. GBK and GB2312 are subsets of GB 18030, so all three read as gb18030."""

XLSX_MAGIC = b"PK\x03\x04"
XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
PARQUET_MAGIC = b"PAR1"


class Num(str):
    """A cell that Excel stored as a number, rendered as text ('13812345678', '12.5')."""

    __slots__ = ()


class FileError(Exception):
    """The file as a whole cannot be read. `row` is the line/row the problem is on, if known."""

    def __init__(self, reason: str, row: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.row = row


class RowError(BaseModel):
    """One problem of a refused file, as every import reports it."""

    row: int | None = Field(description="Row number as shown in Excel or a text editor (header = 1); "
                                        "null for a problem of the whole file")
    column: str = Field(description="The column header as written in the file (empty for the whole file)")
    value: str = Field(description="The cell as read; ID numbers, names, phones and accounts masked")
    reason: str = Field(description="Why the row is refused, in Chinese")


@dataclass
class Table:
    format: str  # "csv" or "xlsx"
    headers: list[str | None]
    rows: list[tuple[int, list[str | None]]] = field(default_factory=list)  # (row number, cells)


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: how Excel names a column."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


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
    if data.startswith(XLSX_MAGIC):
        return read_xlsx(data)
    if data.startswith(XLS_MAGIC):
        raise FileError("不支持旧版 Excel（.xls）文件，请在 Excel 中另存为 .xlsx 或 CSV（UTF-8）")
    return read_csv(data, encoding)


def open_reader(data: bytes, encoding: str = "utf-8", *, max_rows: int = MAX_DATA_ROWS) -> Reader:
    """A chunked reader for CSV, .xlsx or Parquet bytes, recognised from the content."""
    if not data.strip():
        raise FileError("文件是空的")
    if data.startswith(PARQUET_MAGIC):
        return ParquetReader(data, max_rows)
    if data.startswith(XLSX_MAGIC):
        return XlsxReader(data, max_rows)
    if data.startswith(XLS_MAGIC):
        raise FileError("不支持旧版 Excel（.xls）文件，请在 Excel 中另存为 .xlsx 或 CSV（UTF-8）")
    return CsvReader(data, encoding, max_rows)


def _too_many(max_rows: int) -> FileError:
    return FileError(f"数据行过多：最多 {max_rows:,} 行，请拆分文件")


def _text(value: str) -> str | None:
    value = value.strip()  # str.strip() also removes the full-width space U+3000
    if not value:
        return None
    if "\u3000" in value:
        value = value.replace("\u3000", " ")
    return value


def normalized(array: pa.Array) -> pa.Array:
    """Strings as cells: surrounding spaces (also U+3000) removed, an empty cell null."""
    if pa.types.is_large_string(array.type) or not pa.types.is_string(array.type):
        array = array.cast(pa.string())
    text = pc.utf8_trim_whitespace(array)
    text = pc.replace_substring(text, "\u3000", " ")
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


# ---------------------------------------------------------------- cells every import reads alike


def header_key(header: str) -> str:
    """How headers are compared: no spaces, half-width brackets, lower case, no required-marks."""
    h = re.sub(r"\s+", "", header).replace("（", "(").replace("）", ")").lower()
    return h.strip("*＊")


_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日", "%Y-%m-%d %H:%M:%S")


def day(value: str) -> date:
    """A date cell's text: 2024-03-15, 2024/3/15, 2024.03.15, 20240315, 2024年3月15日."""
    v = value.strip()
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(v, fmt).date()
        except ValueError:
            continue
    raise ValueError("日期格式错误，应为 YYYY-MM-DD，如 2024-03-15")


def yuan(value: str) -> int:
    """An amount cell's text in yuan (¥ and 元 allowed) -> fen, through core.money.parse_yuan."""
    v = value.strip().lstrip("¥￥").removesuffix("元").strip()
    if v.startswith("-"):
        raise ValueError("金额不能为负数")
    try:
        return parse_yuan(v)
    except ValueError:
        raise ValueError("金额格式错误，应为不超过两位小数的非负元金额，如 123.45") from None


def region_code(value: str) -> str:
    """A statistical region code or its 2/4/6/9-digit prefix, padded to 12 digits."""
    value = value.strip()
    if not value.isdigit() or len(value) not in (2, 4, 6, 9, 12):
        raise ValueError("区划代码应为12位统计用区划代码（或2/4/6/9位前缀），只含数字")
    return value.ljust(12, "0")


# ---------------------------------------------------------------- chunked readers


@dataclass
class Chunk:
    rows: list[int]  # row numbers as the user sees them
    cells: dict[str, list[Any] | pa.Array]  # column key -> one cell per row (None / null: empty)
    stray: list[tuple[int, int, str]] = field(default_factory=list)  # (row, column index, value): no header


class Reader:
    format = ""
    headers: list[str | None]
    total = 0  # data rows, or an estimate (CSV: lines)

    def chunks(self, columns: dict[str, int]) -> Iterator[Chunk]:
        """The wanted columns (key -> position), CHUNK rows at a time; cells under no header are stray."""
        raise NotImplementedError


class CsvReader(Reader):
    """CSV in UTF-8 (with or without BOM), GB18030 or UTF-16 (with BOM); comma or tab separated.

    A file without double quotes and without blank lines has one record per line, so its rows are
    numbered by position and it is parsed by Arrow's CSV reader (about twenty times faster than
    Python's). Any other file, or one Arrow refuses (ragged rows, bad bytes), is read by Python's
    csv module, which reports the exact line of each problem."""

    format = "csv"

    def __init__(self, data: bytes, encoding: str = "utf-8", max_rows: int = MAX_DATA_ROWS):
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            self.encoding = "utf-16"  # Excel's "Unicode text", whatever was asked
        else:
            self.encoding = normalize_encoding(encoding)
            if self.encoding == "utf-8":
                self.encoding = "utf-8-sig"  # with or without the byte-order mark
        self.data = data
        self.max_rows = max_rows
        self.total = max(data.count(b"\n") - 1, 1)
        if self.encoding != "utf-16" and b"\x00" in data:  # UTF-8 and GB18030 text never has a zero byte
            line = data[: data.index(b"\x00")].count(b"\n") + 1
            raise FileError(f"第{line}行含有空字符（\\0），不是文本文件", line)
        self.stream = io.TextIOWrapper(io.BytesIO(data), encoding=self.encoding, newline="")
        try:
            first = self.stream.readline()
            self.stream.seek(0)
        except UnicodeDecodeError as e:
            raise self._decode_error(e) from None
        self.delimiter = "\t" if "\t" in first and "," not in first else ","
        self.reader = csv.reader(self.stream, delimiter=self.delimiter, strict=True)
        try:
            header = next(self.reader, None)
        except UnicodeDecodeError as e:
            raise self._decode_error(e) from None
        except csv.Error as e:
            raise FileError(f"第1行CSV格式错误（{e}），请检查引号是否成对", 1) from None
        if not header:
            raise FileError("第1行应为列名（表头），但是空的", 1)
        self.headers = [_text(h) for h in header]
        if not any(self.headers):
            raise FileError("第1行应为列名（表头），但是空的", 1)

    def _decode_error(self, _error: UnicodeDecodeError) -> FileError:
        try:
            self.data.decode(self.encoding)
            line = None
        except UnicodeDecodeError as e:
            line = self.data[: e.start].count(b"\n") + 1
        where = f"第{line}行" if line else "文件中有内容"
        if self.encoding == "utf-8-sig":
            return FileError(f"{where}不是有效的UTF-8编码，请另存为UTF-8（或指定编码 gb18030）", line)
        if self.encoding == "gb18030":
            return FileError(f"{where}不是有效的GB18030编码，请确认文件编码（或指定编码 utf-8）", line)
        return FileError(f"{where}不是有效的UTF-16编码", line)

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """(row number, raw cells) of every non-blank record, through Python's csv module. A quoted
        cell may span lines: a record's number is the line it starts on, as a text editor shows."""
        last_line = self.reader.line_num
        count = 0
        try:
            for record in self.reader:
                row_no = last_line + 1  # a record starts on the line after the previous one ended
                last_line = self.reader.line_num
                if not record or (not record[0].strip() and not "".join(record).strip()):
                    continue  # a blank row
                count += 1
                if count > self.max_rows:
                    raise _too_many(self.max_rows)
                yield row_no, record
        except UnicodeDecodeError as e:
            raise self._decode_error(e) from None
        except csv.Error as e:
            line = self.reader.line_num
            raise FileError(f"第{line}行CSV格式错误（{e}），请检查引号是否成对", line) from None

    def chunks(self, columns: dict[str, int]) -> Iterator[Chunk]:
        table = self._arrow_table()
        if table is not None:
            yield from self._arrow_chunks(table, columns)
        else:
            yield from self._python_chunks(columns)

    def _arrow_table(self) -> pa.Table | None:
        """The whole file through Arrow, or None when it must go through Python's reader."""
        import pyarrow.csv as pa_csv

        if self.encoding == "utf-16" or self.reader.line_num != 1 or b'"' in self.data:
            return None
        body = self.data.rstrip(b"\r\n")
        if b"\n\n" in body or b"\n\r\n" in body or b"\r\r" in body:
            return None  # blank lines: positions would no longer be line numbers
        names = [f"c{i}" for i in range(len(self.headers))]
        try:
            table = pa_csv.read_csv(
                io.BytesIO(self.data),
                read_options=pa_csv.ReadOptions(encoding="utf8" if self.encoding == "utf-8-sig" else self.encoding,
                                                column_names=names, skip_rows=1),
                parse_options=pa_csv.ParseOptions(delimiter=self.delimiter, quote_char=False),
                convert_options=pa_csv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                      strings_can_be_null=False, check_utf8=True))
        except (pa.ArrowException, UnicodeDecodeError, ValueError):
            return None
        if table.num_rows > self.max_rows:
            raise _too_many(self.max_rows)
        return table

    def _arrow_chunks(self, table: pa.Table, columns: dict[str, int]) -> Iterator[Chunk]:
        unnamed = [i for i, h in enumerate(self.headers) if h is None]
        for start in range(0, table.num_rows, CHUNK):
            part = table.slice(start, CHUNK)
            cells = [normalized(part.column(i).combine_chunks()) for i in range(part.num_columns)]
            rows = pa.array(range(start + 2, start + 2 + part.num_rows), pa.int64())
            filled = None
            for column in cells:
                valid = pc.is_valid(column)
                filled = valid if filled is None else pc.or_(filled, valid)
            if filled is not None and pc.sum(filled).as_py() != part.num_rows:  # blank rows (only delimiters)
                cells = [c.filter(filled) for c in cells]
                rows = rows.filter(filled)
            row_list = rows.to_pylist()
            stray = []
            for index in unnamed:
                for i in pc.indices_nonzero(pc.is_valid(cells[index])).to_pylist():
                    stray.append((row_list[i], index, cells[index][i].as_py()))
            yield Chunk(row_list, {key: cells[index] for key, index in columns.items()}, stray)

    def _python_chunks(self, columns: dict[str, int]) -> Iterator[Chunk]:
        width = len(self.headers)
        unnamed = [i for i, h in enumerate(self.headers) if h is None]
        wanted = list(columns.items())
        rows: list[int] = []
        records: list[list[str]] = []
        stray: list[tuple[int, int, str]] = []
        for row_no, record in self.records():
            if len(record) > width or unnamed:
                for index in [*unnamed, *range(width, len(record))]:
                    if index < len(record) and record[index].strip():
                        stray.append((row_no, index, record[index].strip()))
            rows.append(row_no)
            records.append(record)
            if len(rows) == CHUNK:
                yield self._chunk(rows, records, wanted, stray)
                rows, records, stray = [], [], []
        if rows:
            yield self._chunk(rows, records, wanted, stray)

    @staticmethod
    def _chunk(rows, records, wanted, stray) -> Chunk:
        cells: dict[str, list[Any]] = {}
        for key, index in wanted:
            cells[key] = [_text(r[index]) if index < len(r) else None for r in records]
        return Chunk(rows, cells, stray)


class XlsxReader(Reader):
    """The first worksheet of an .xlsx workbook, read whole (read_xlsx), then handed out in chunks."""

    format = "xlsx"

    def __init__(self, data: bytes, max_rows: int = MAX_DATA_ROWS):
        table = read_xlsx(data, max_rows)  # Excel's number cells come out as Num, date cells as dates
        self.headers = [None if h is None else str(h) for h in table.headers]
        self.rows = table.rows
        self.total = len(table.rows)

    def chunks(self, columns: dict[str, int]) -> Iterator[Chunk]:
        width = len(self.headers)
        for start in range(0, len(self.rows), CHUNK):
            part = self.rows[start: start + CHUNK]
            stray = [(number, index, str(cells[index])) for number, cells in part for index in range(len(cells))
                     if cells[index] is not None and (index >= width or self.headers[index] is None)]
            chunk_cells = {key: [cells[index] if index < len(cells) else None for _, cells in part]
                           for key, index in columns.items()}
            yield Chunk([number for number, _ in part], chunk_cells, stray)


class ParquetReader(Reader):
    """A Parquet file: column names are the headers (pandas' index columns ignored); cells keep their
    Arrow types (strings normalised as in CSV), so a caller can refuse a column of the wrong type."""

    format = "parquet"

    def __init__(self, data: bytes, max_rows: int = MAX_DATA_ROWS):
        import pyarrow.parquet as pq

        try:
            self.file = pq.ParquetFile(pa.BufferReader(data))
            schema = self.file.schema_arrow
        except (pa.ArrowException, OSError, ValueError) as e:
            raise FileError(f"不是有效的 Parquet 文件（{type(e).__name__}）") from None
        self.schema = schema
        self.max_rows = max_rows
        self.headers = [None if name.startswith("__index_level_") and name.endswith("__") else name
                        for name in schema.names]
        self.total = self.file.metadata.num_rows

    def chunks(self, columns: dict[str, int]) -> Iterator[Chunk]:
        names = [self.schema.names[index] for index in columns.values()]
        first = 2  # the column names count as row 1, as in a CSV file
        try:
            for batch in self.file.iter_batches(batch_size=CHUNK, columns=names, use_pandas_metadata=False):
                n = batch.num_rows
                if first - 2 + n > self.max_rows:
                    raise _too_many(self.max_rows)
                cells: dict[str, list[Any]] = {}
                for key, index in columns.items():
                    array = batch.column(self.schema.names[index])
                    if pa.types.is_dictionary(array.type):
                        array = array.cast(array.type.value_type)
                    if type_class(array.type) == "string":
                        array = normalized(array)
                    cells[key] = array
                yield Chunk(list(range(first, first + n)), cells)
                first += n
        except (pa.ArrowException, OSError) as e:
            raise FileError(f"Parquet 文件读取失败（{type(e).__name__}）") from None


def type_class(t: pa.DataType) -> str:
    """An Arrow type as the kind of cell it holds: string, int, float, decimal, date, timestamp, null."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", bool)(t):
        return "string"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_null(t):
        return "null"
    return "other"


# ---------------------------------------------------------------- whole tables


def read_csv(data: bytes, encoding: str = "utf-8") -> Table:
    reader = CsvReader(data, encoding)
    table = Table(format="csv", headers=reader.headers)
    table.rows = [(row_no, [_text(c) for c in record]) for row_no, record in reader.records()]
    return table


def read_xlsx(data: bytes, max_rows: int = MAX_DATA_ROWS) -> Table:
    """The first worksheet of an .xlsx workbook, read by python-calamine. Number cells come out as
    `Num`, date cells as ISO dates; a formula Excel never calculated is an empty cell."""
    from python_calamine import CalamineError, CalamineWorkbook, SheetTypeEnum

    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except (CalamineError, ValueError, OSError) as e:
        raise FileError(f"不是有效的 .xlsx 文件（{type(e).__name__}），请用 Excel 重新另存为 .xlsx") from None
    with workbook:
        if not workbook.sheets_metadata:
            raise FileError("Excel 文件中没有工作表")
        if workbook.sheets_metadata[0].typ != SheetTypeEnum.WorkSheet:
            raise FileError("第一个工作表不是普通表格（可能是图表），请把数据放在第一个工作表")
        try:
            rows = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
        except (CalamineError, ValueError, OSError) as e:
            raise FileError(f"不是有效的 .xlsx 文件（{type(e).__name__}），请用 Excel 重新另存为 .xlsx") from None
    table = Table(format="xlsx", headers=[])
    for row_no, values in enumerate(rows, start=1):  # skip_empty_area=False: the list starts at A1
        cells = [_text(v) if v.__class__ is str else _cell(v) for v in values]  # most cells are text
        while cells and cells[-1] is None:
            cells.pop()
        if row_no == 1:
            if not cells:
                raise FileError("第1行应为列名（表头），但是空的", 1)
            table.headers = cells
            continue
        if not cells:
            continue
        if len(table.rows) >= max_rows:
            raise _too_many(max_rows)
        table.rows.append((row_no, cells))
    if not table.headers:
        raise FileError("第1行应为列名（表头），但是空的", 1)
    return table


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
    if isinstance(value, timedelta):  # a duration cell ([h]:mm): as Excel shows it
        seconds = int(value.total_seconds())
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return _text(str(value))
