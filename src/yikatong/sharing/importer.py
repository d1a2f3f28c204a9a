"""Import one delivery of a shared data set (信息归集): CSV, Excel .xlsx or Parquet, all or nothing.

Every row is read and checked before anything is written, and every problem is collected with its
row (as the user sees it: the header is row 1), column, masked value and a Chinese reason. A file with
any problem writes nothing. A clean file becomes one immutable Parquet snapshot (`store.save_snapshot`)
and a provenance row, plus an audit event, in the caller's transaction (the caller commits).

Files are read by the same reader stack as every other import (`core.readers`), a chunk of rows at
a time. ID numbers never leave this module in clear: each becomes the same keyed hash as
`persons.id_number_hash` and a mask. The work is done a chunk of rows at a time, column by column,
and each chunk becomes an Arrow record batch at once, so a 3-million-row file stays in compact
columnar memory and imports in about a minute (docs/data-formats.md).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session

from yikatong.core import crypto
from yikatong.core.clock import beijing_date, system_clock
from yikatong.core.errors import Invalid, NotFound
from yikatong.core.idnumber import normalize, parse_id_number
from yikatong.core.masking import mask_id_number, mask_name
from yikatong.core.readers import (
    Chunk,
    FileError,
    Num,
    ParquetReader,
    Reader,
    RowError,
    column_letter,
    day,
    header_key,
    open_reader,
    region_code,
    type_class,
    yuan,
)
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, require_perm
from yikatong.sharing import store
from yikatong.sharing.datasets import BY_CODE, Dataset, Field, Kind
from yikatong.sharing.models import SharedSnapshot
from yikatong.sharing.schemas import ImportOutcome, SnapshotOut

MAX_FILE_BYTES = 1024 * 1024 * 1024  # 1 GB: a city's household register as CSV is about 300 MB
MAX_ROWS = 20_000_000
MAX_LISTED_ERRORS = 1000

Progress = Callable[[str, int, int], None]

NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "hukou": ("id",),  # one row per person
    "deaths": ("id",),
    "card_registry": ("card_number", "changed_on"),  # one status change per card and day
}
"""Data sets whose rows have a natural key: a key repeated in one file is an error. In the others
(several vehicles, houses, jobs per person are normal) rows identical in every column are merged."""

PERIODS: dict[str, tuple[str, str]] = {
    "payroll": ("start_on", "end_on"),
    "prisoners": ("custody_from", "custody_to"),
    "other_payments": ("period_start", "period_end"),
}
"""(start, end) date columns: the end, when given, may not be before the start."""

MOVED_OUT_STATUSES = ("迁出", "注销")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_IGNORED = {header_key(h) for h in ("序号", "备注", "no", "no.", "remark", "remarks")}
_LIMIT = Decimal(10) ** 12  # yuan and quantities: at most 12 integer digits, as core.money


def dataset_or_404(code: str) -> Dataset:
    dataset = BY_CODE.get((code or "").strip().lower())
    if dataset is None:
        known = "、".join(f"{d.code}（{d.label}）" for d in BY_CODE.values())
        raise NotFound(f"没有这个共享数据集：{code}。可用：{known}")
    return dataset


def import_dataset(
    session: Session,
    dataset_code: str,
    source: bytes | str | Path,
    *,
    filename: str,
    agency: str,
    as_of: date,
    actor: User | None,
    now: datetime,
    on_progress: Progress | None = None,
    encoding: str = "utf-8",
    ip: str = "",
) -> ImportOutcome:
    """Check a whole delivery and, when every row is valid, store it as a snapshot.

    `actor` None is the system (command line); a user needs Perm.SHARED_IMPORT (else Forbidden).
    Returns the outcome: `ok` with the snapshot, or the errors (nothing written). Raises Invalid for
    a request that cannot be taken at all (no agency, as_of in the future, file too large)."""
    dataset = dataset_or_404(dataset_code)
    if actor is not None:
        require_perm(actor, Perm.SHARED_IMPORT)
    agency = (agency or "").strip()
    if not agency:
        raise Invalid("请填写提供数据的单位")
    if len(agency) > 60:
        raise Invalid("提供单位名称不能超过60个字符")
    if as_of > beijing_date(now):
        raise Invalid(f"数据截止日期（{as_of:%Y-%m-%d}）不能晚于今天")
    progress: Progress = on_progress or (lambda stage, done, total: None)
    data = _load(source)
    outcome = ImportOutcome(dataset=dataset.code, dataset_label=dataset.label, filename=filename,
                            sha256=hashlib.sha256(data).hexdigest(), agency=agency, as_of=as_of, ok=False)

    progress("读取", 0, 1)
    try:
        reader = open_reader(data, encoding, max_rows=MAX_ROWS)
    except FileError as e:
        return _failed(outcome, [RowError(row=e.row, column="", value="", reason=e.reason)], 1)
    outcome.file_format = reader.format
    progress("读取", 1, 1)

    columns, errors = _match_headers(dataset, reader)
    if errors:
        return _failed(outcome, errors, len(errors))

    check = _Checker(dataset, columns, reader.headers)
    try:
        for chunk in reader.chunks(columns):
            check.chunk(chunk)
            progress("校验", check.total, max(reader.total, check.total))
    except FileError as e:
        check.errors.add(e.row, -1, "", "", e.reason)
    progress("校验", check.total, check.total)
    outcome.total_rows = check.total
    if check.total == 0 and not check.errors.count:
        return _failed(outcome, [RowError(row=None, column="", value="", reason="文件中没有数据行")], 1)

    table = check.table()
    _check_keys(dataset, table, check)
    if check.errors.count:
        return _failed(outcome, check.errors.listed(), check.errors.count)

    table, merged = _merge_identical(dataset, table)
    progress("写入", 0, 1)
    snapshot = store.save_snapshot(session, dataset.code, table.drop_columns(["_row"]), agency=agency, as_of=as_of,
                                   filename=filename, file_sha256=outcome.sha256, file_format=reader.format,
                                   actor=actor, now=now)
    audit.record(session, actor, "shared.import", "shared_snapshot", snapshot.id, now,
                 region_code=actor.region_code if actor else None, ip=ip,
                 detail={"dataset": dataset.code, "agency": agency, "as_of": as_of.isoformat(),
                         "filename": filename, "sha256": outcome.sha256, "format": reader.format,
                         "rows": snapshot.rows, "duplicates_merged": merged})
    session.flush()
    progress("写入", 1, 1)
    outcome.ok = True
    outcome.rows = snapshot.rows
    outcome.duplicates_merged = merged
    newer = session.scalar(select(SharedSnapshot.id).where(
        SharedSnapshot.dataset == dataset.code, SharedSnapshot.agency == snapshot.agency,
        SharedSnapshot.as_of > as_of).limit(1))
    outcome.snapshot = snapshot_out(snapshot, in_force=newer is None)  # an older extract imported late is not
    return outcome


def snapshot_out(snapshot: SharedSnapshot, in_force: bool) -> SnapshotOut:
    return SnapshotOut(id=snapshot.id, dataset=snapshot.dataset, agency=snapshot.agency, as_of=snapshot.as_of,
                       filename=snapshot.filename, file_sha256=snapshot.file_sha256,
                       file_format=snapshot.file_format, rows=snapshot.rows, imported_at=snapshot.imported_at,
                       importer_name=snapshot.importer_name, in_force=in_force)


def _load(source: bytes | str | Path) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise Invalid(f"文件不存在：{path}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise Invalid(f"文件过大：最大 {MAX_FILE_BYTES // 1024 // 1024} MB，请拆分文件")
        data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise Invalid(f"文件过大：最大 {MAX_FILE_BYTES // 1024 // 1024} MB，请拆分文件")
    return data


def _failed(outcome: ImportOutcome, errors: list[RowError], count: int) -> ImportOutcome:
    outcome.ok = False
    outcome.errors = errors
    outcome.error_count = count
    return outcome


# Which Parquet (Arrow) column types each kind of field accepts.
_ACCEPTED_TYPES: dict[Kind, tuple[str, ...]] = {
    Kind.ID_NUMBER: ("string",),
    Kind.TEXT: ("string", "int"),
    Kind.CHOICE: ("string",),
    Kind.REGION: ("string", "int"),
    Kind.DATE: ("string", "date", "timestamp"),
    Kind.YUAN: ("string", "int", "float", "decimal"),
    Kind.DECIMAL2: ("string", "int", "float", "decimal"),
    Kind.INT: ("string", "int"),
}
_TYPE_ZH = {"string": "字符串（string）", "int": "整数（int）", "float": "浮点数（double）",
            "decimal": "定点小数（decimal）", "date": "日期（date32）", "timestamp": "时间戳（timestamp）"}


def _column_error(reader: Reader, field_: Field, index: int) -> str | None:
    """Why a Parquet column cannot hold this field at all (its Arrow type), or None."""
    if not isinstance(reader, ParquetReader):
        return None
    arrow_type = reader.schema.field(index).type
    kind = type_class(arrow_type)
    if kind == "null" or kind in _ACCEPTED_TYPES[field_.kind]:
        return None
    name = reader.schema.names[index]
    if field_.kind is Kind.ID_NUMBER and kind in ("int", "float", "decimal"):
        return (f"“{name}”列在Parquet文件中是数值类型（{arrow_type}），身份证号码必须存为字符串（string）："
                "数值无法保存末位的X，也可能丢失位数")
    accepted = "、".join(_TYPE_ZH[k] for k in _ACCEPTED_TYPES[field_.kind])
    return f"“{name}”列在Parquet文件中的类型为 {arrow_type}，{field_.header}应为{accepted}"


# ---------------------------------------------------------------- headers


def _match_headers(dataset: Dataset, reader: Reader) -> tuple[dict[str, int], list[RowError]]:
    """field key -> column position. Unknown, repeated and missing required columns are errors."""
    lookup: dict[str, Field] = {}
    for f in dataset.fields:
        lookup[header_key(f.header)] = f
        lookup[header_key(f.alias)] = f
    found: dict[str, int] = {}
    errors: list[RowError] = []
    for index, header in enumerate(reader.headers):
        if header is None:
            continue
        key = header_key(str(header))
        f = lookup.get(key)
        if f is None:
            if key in _IGNORED:
                continue
            known = "、".join(x.header for x in dataset.fields)
            errors.append(RowError(row=1, column=str(header), value=str(header)[:60],
                                   reason=f"未知的列名（第{column_letter(index)}列）。{dataset.label}文件可用的列：{known}"))
        elif f.key in found:
            errors.append(RowError(row=1, column=str(header), value=str(header)[:60],
                                   reason=f"列重复：第{column_letter(found[f.key])}列和第{column_letter(index)}列"
                                          f"都是“{f.header}”"))
        else:
            found[f.key] = index
            problem = _column_error(reader, f, index)
            if problem:
                errors.append(RowError(row=1, column=str(header), value="", reason=problem))
    for f in dataset.fields:
        if f.required and f.key not in found:
            hint = "；若表头显示为乱码，请确认文件编码" if not found else ""
            errors.append(RowError(row=1, column=f.header, value="",
                                   reason=f"缺少必填列“{f.header}”（也可写作 {f.alias}）{hint}"))
    return found, errors


# ---------------------------------------------------------------- cells


def _num_refused(header: str) -> ValueError:
    return ValueError(f"{header}被Excel存为数字，请将该列设置为文本格式后重新填写")


def _id_parser(f: Field) -> Callable[[Any], str]:
    def parse(cell: Any) -> str:
        if isinstance(cell, Num):
            raise _num_refused(f.header)
        if not isinstance(cell, str):
            raise ValueError(f"{f.header}应为文本")
        return parse_id_number(cell).number

    return parse


def _text_parser(f: Field) -> Callable[[Any], str]:
    max_len = f.max_len

    def parse(cell: Any) -> str:
        if isinstance(cell, Num):
            if cell.isdigit() and len(cell) > 15:
                raise ValueError(f"{f.header}被Excel存为数字，可能已丢失位数，请将该列设置为文本格式后重新填写")
            cell = str(cell)
        elif isinstance(cell, bool) or not isinstance(cell, str | int):
            raise ValueError(f"{f.header}应为文本")
        elif isinstance(cell, int):
            cell = str(cell)
        if _CONTROL.search(cell):
            raise ValueError("含有换行或控制字符")
        if len(cell) > max_len:
            raise ValueError(f"长度不能超过{max_len}个字符，实际{len(cell)}个")
        return cell

    return parse


def _choice_parser(f: Field) -> Callable[[Any], str]:
    allowed = frozenset(f.choices)
    reason = "应为以下之一：" + "、".join(f.choices)

    def parse(cell: Any) -> str:
        if cell in allowed and isinstance(cell, str):
            return str(cell)
        raise ValueError(reason)

    return parse


def _region(cell: Any) -> str:
    if isinstance(cell, int) and not isinstance(cell, bool):
        cell = str(cell)
    if not isinstance(cell, str):
        raise ValueError("区划代码应为12位统计用区划代码（或2/4/6/9位前缀），只含数字")
    return region_code(str(cell))


def _date(cell: Any) -> date:
    if isinstance(cell, str):
        if len(cell) == 10 and cell[4] == "-" and cell[7] == "-":
            try:
                return date.fromisoformat(cell)
            except ValueError:
                pass
        return day(str(cell))
    if isinstance(cell, datetime):
        return cell.date()
    if isinstance(cell, date):
        return cell
    raise ValueError("日期格式错误，应为 YYYY-MM-DD，如 2024-03-15")


def _decimal_of(cell: Any, what: str) -> Decimal:
    """A number cell (Parquet int, float or decimal) as an exact decimal."""
    if isinstance(cell, bool):
        raise ValueError(f"{what}应为数字")
    if isinstance(cell, int):
        return Decimal(cell)
    if isinstance(cell, float):
        if not math.isfinite(cell):
            raise ValueError(f"{what}应为数字")
        return Decimal(repr(cell))  # the shortest text that reads back as this double: 12.35, not 12.3499...
    if isinstance(cell, Decimal):
        return cell
    raise ValueError(f"{what}应为数字")


def _hundredths(number: Decimal, negative: str, format_reason: str) -> int:
    if not number.is_finite():
        raise ValueError(format_reason)
    if number < 0:
        raise ValueError(negative)
    scaled = number * 100
    if scaled != scaled.to_integral_value() or number >= _LIMIT:
        raise ValueError(format_reason)
    return int(scaled)


_YUAN_FORMAT = "金额格式错误，应为不超过两位小数的非负元金额，如 123.45"
_CENTI_FORMAT = "应为不超过两位小数的非负数，如 89.50"


def _yuan(cell: Any) -> int:
    if isinstance(cell, str):
        return yuan(str(cell))
    return _hundredths(_decimal_of(cell, "金额"), "金额不能为负数", _YUAN_FORMAT)


def _centi(cell: Any) -> int:
    if isinstance(cell, str):
        try:
            number = Decimal(cell.strip().replace(",", ""))
        except InvalidOperation:
            raise ValueError(_CENTI_FORMAT) from None
    else:
        number = _decimal_of(cell, "数值")
    return _hundredths(number, "不能为负数", _CENTI_FORMAT)


def _int(cell: Any) -> int:
    if isinstance(cell, int) and not isinstance(cell, bool):
        return cell
    if isinstance(cell, str) and re.fullmatch(r"-?\d{1,18}", cell.strip()):
        return int(cell)
    raise ValueError("应为整数")


def _parser(f: Field) -> Callable[[Any], Any]:
    if f.kind is Kind.ID_NUMBER:
        return _id_parser(f)
    if f.kind is Kind.TEXT:
        return _text_parser(f)
    if f.kind is Kind.CHOICE:
        return _choice_parser(f)
    return {Kind.REGION: _region, Kind.DATE: _date, Kind.YUAN: _yuan, Kind.DECIMAL2: _centi, Kind.INT: _int}[f.kind]


def _shown(f: Field, cell: Any) -> str:
    """The cell as shown in an error: ID numbers and names masked, long text cut."""
    if cell is None:
        return ""
    if isinstance(cell, date | datetime):
        text = cell.isoformat()
    else:
        text = str(cell)
    if f.kind is Kind.ID_NUMBER:
        text = mask_id_number(normalize(text))
    elif f.key == "name":
        text = mask_name(text)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- checking, chunk by chunk


class _Errors:
    """Every error is counted; the first MAX_LISTED_ERRORS (by row, then column) are listed."""

    def __init__(self) -> None:
        self.count = 0
        self.kept: list[tuple[int, int, str, str, str]] = []
        self.pending: list[tuple[int, int, str, str, str]] = []

    def add(self, row: int | None, order: int, column: str, value: str, reason: str) -> None:
        self.count += 1
        if len(self.kept) < MAX_LISTED_ERRORS:
            self.pending.append((row or 0, order, column, value, reason))

    def flush(self) -> None:
        """End of a chunk: chunks come in row order, so sorting within one is enough."""
        if self.pending:
            self.pending.sort(key=lambda e: (e[0], e[1]))
            self.kept.extend(self.pending[: MAX_LISTED_ERRORS - len(self.kept)])
            self.pending = []

    def listed(self) -> list[RowError]:
        self.flush()
        return [RowError(row=row or None, column=column, value=value, reason=reason)
                for row, _order, column, value, reason in sorted(self.kept, key=lambda e: (e[0], e[1]))]


_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))  # GB 11643 weights of the first 17 digits
_NULL = pa.scalar(None, pa.string())


def _true(condition: pa.Array) -> pa.Array:
    return pc.fill_null(condition, False)


def _fast_id(f: Field, a: pa.Array) -> tuple[pa.Array, pa.Array]:
    """The well-formed numbers: 18 characters, check character right, birth date real and past.
    The rest (lower-case x, spaces, wrong numbers) go through parse_id_number for the value or reason."""
    shape = _true(pc.match_substring_regex(a, r"^\d{17}[\dX]$"))
    safe = pc.if_else(shape, a, "0" * 18)
    body = pc.cast(pc.utf8_slice_codeunits(safe, 0, 17), pa.int64())  # 17 digits fit in int64
    total = None
    for weight in reversed(_ID_WEIGHTS):  # the last digit first
        rest = pc.divide(body, 10)  # integer division
        term = pc.multiply(pc.subtract(body, pc.multiply(rest, 10)), weight)
        total = term if total is None else pc.add(total, term)
        body = rest
    check = pc.subtract(12, pc.subtract(total, pc.multiply(pc.divide(total, 11), 11)))  # (12 - S mod 11) mod 11
    check = pc.if_else(pc.greater_equal(check, 11), pc.subtract(check, 11), check)
    expected = pc.if_else(pc.equal(check, 10), "X", pc.cast(check, pa.string()))
    ok = pc.and_(shape, pc.equal(pc.utf8_slice_codeunits(safe, 17, 18), expected))
    birth = pc.utf8_slice_codeunits(safe, 6, 14)
    born = pc.cast(pc.strptime(birth, format="%Y%m%d", unit="s", error_is_null=True), pa.date32())
    # strptime rolls 19900230 over to 1990-03-02: only a date that reads back the same is a day
    ok = pc.and_(ok, _true(pc.equal(pc.replace_substring(pc.cast(born, pa.string()), "-", ""), birth)))
    ok = pc.and_(ok, _true(pc.less_equal(born, pa.scalar(beijing_date(system_clock.now()), pa.date32()))))
    return pc.if_else(ok, a, _NULL), ok


def _fast_text(f: Field, a: pa.Array) -> tuple[pa.Array, pa.Array]:
    ok = pc.and_(_true(pc.less_equal(pc.utf8_length(a), f.max_len)),
                 pc.invert(pc.fill_null(pc.match_substring_regex(a, _CONTROL.pattern), True)))
    return pc.if_else(ok, a, _NULL), ok


def _fast_choice(f: Field, a: pa.Array) -> tuple[pa.Array, pa.Array]:
    ok = _true(pc.is_in(a, value_set=pa.array(f.choices, pa.string())))
    return pc.if_else(ok, a, _NULL), ok


def _fast_region(f: Field, a: pa.Array) -> tuple[pa.Array, pa.Array]:
    ok = _true(pc.match_substring_regex(a, r"^(?:\d{2}|\d{4}|\d{6}|\d{9}|\d{12})$"))
    return pc.if_else(ok, pc.utf8_rpad(a, width=12, padding="0"), _NULL), ok


def _fast_date(f: Field, a: pa.Array) -> tuple[pa.Array, pa.Array]:
    shape = _true(pc.match_substring_regex(a, r"^\d{4}-\d{2}-\d{2}$"))
    safe = pc.if_else(shape, a, "2000-01-01")
    day = pc.cast(pc.strptime(safe, format="%Y-%m-%d", unit="s", error_is_null=True), pa.date32())
    ok = pc.and_(shape, _true(pc.equal(pc.cast(day, pa.string()), safe)))  # 2024-02-30 does not read back
    return pc.if_else(ok, day, pa.scalar(None, pa.date32())), ok


_HUNDREDTHS = r"^(?P<units>0|[1-9]\d{0,11})(?:\.(?P<cents>\d{1,2}))?$"


def _fast_hundredths(f: Field, a: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Plain non-negative numbers with at most 2 decimals (123, 123.4, 0.05) -> integer hundredths."""
    ok = _true(pc.match_substring_regex(a, _HUNDREDTHS))
    parts = pc.extract_regex(pc.if_else(ok, a, "0"), _HUNDREDTHS)
    units = pc.cast(pc.struct_field(parts, "units"), pa.int64())
    cents = pc.cast(pc.utf8_rpad(pc.struct_field(parts, "cents"), width=2, padding="0"), pa.int64())
    return pc.if_else(ok, pc.add(pc.multiply(units, 100), cents), pa.scalar(None, pa.int64())), ok


_FAST = {Kind.ID_NUMBER: _fast_id, Kind.TEXT: _fast_text, Kind.CHOICE: _fast_choice, Kind.REGION: _fast_region,
         Kind.DATE: _fast_date, Kind.YUAN: _fast_hundredths, Kind.DECIMAL2: _fast_hundredths}
"""Vectorised checks for the common, well-formed cells of each kind. Each accepts only cells the
Python parser accepts too, with the same value; every other cell goes through the parser, which
gives the value or the Chinese reason. So the two paths cannot disagree on a result."""


class _Checker:
    def __init__(self, dataset: Dataset, columns: dict[str, int], headers: list[str | None]):
        self.dataset = dataset
        self.columns = columns
        self.names = {f.key: str(headers[columns[f.key]]) if f.key in columns else f.header for f in dataset.fields}
        self.order = {f.key: i for i, f in enumerate(dataset.fields)}
        self.parsers = {f.key: _parser(f) for f in dataset.fields}
        self.schema = store.arrow_schema(dataset).append(pa.field("_row", pa.int64()))
        self.types = {f.key: pa.string() if f.kind is Kind.ID_NUMBER else self.schema.field(f.key).type
                      for f in dataset.fields}
        self.cipher = crypto.cipher()
        self.errors = _Errors()
        self.batches: list[pa.RecordBatch] = []
        self.total = 0

    def chunk(self, chunk: Chunk) -> None:
        n = len(chunk.rows)
        self.total += n
        rows = chunk.rows
        for row, index, value in chunk.stray:
            letter = column_letter(index)
            self.errors.add(row, 1000 + index, f"第{letter}列", str(value)[:60], f"第{letter}列没有列名，但本行有数据")
        values: dict[str, pa.Array] = {}
        for f in self.dataset.fields:
            cells = chunk.cells.get(f.key)
            if cells is None:
                values[f.key] = pa.nulls(n, self.types[f.key])
            else:
                values[f.key] = self._column(f, cells, rows)
        self._cross_checks(values, chunk, rows)
        arrays: list[pa.Array] = []
        for f in self.dataset.fields:
            column = values[f.key]
            if f.kind is Kind.ID_NUMBER:
                search_hash = self.cipher.search_hash
                hashes = [None if v is None else search_hash(crypto.ID_NUMBER, v) for v in column.to_pylist()]
                arrays.append(pa.array(hashes, pa.string()))
                arrays.append(pc.binary_join_element_wise(pc.utf8_slice_codeunits(column, 0, 6), "*" * 8,
                                                          pc.utf8_slice_codeunits(column, 14, 18), ""))
            else:
                arrays.append(column)
        arrays.append(pa.array(rows, pa.int64()))
        self.batches.append(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self.errors.flush()

    def _column(self, f: Field, cells: list[Any] | pa.Array, rows: list[int]) -> pa.Array:
        """One column of a chunk checked: the stored values (ID numbers still in clear), null where
        the cell is empty or wrong; every wrong or missing cell is an error."""
        if isinstance(cells, list):
            if any(c is not None and type(c) is not str for c in cells):
                return self._python_column(f, cells, rows)  # Excel number cells (Num) and the like
            cells = pa.array(cells, pa.string())
        kind = type_class(cells.type)
        if kind == "null":
            return self._python_column(f, [None] * len(cells), rows)
        if kind == "string" and f.kind in _FAST:
            return self._arrow_column(f, cells, rows)
        if kind == "date" and f.kind is Kind.DATE:
            return self._arrow_column(f, cells, rows, fast=lambda _f, a: (a.cast(pa.date32()), pc.is_valid(a)))
        return self._python_column(f, cells.to_pylist(), rows)

    def _python_column(self, f: Field, cells: list[Any], rows: list[int]) -> pa.Array:
        parse = self.parsers[f.key]
        out: list[Any] = [None] * len(cells)
        errors, order, name = self.errors, self.order[f.key], self.names[f.key]
        for i, cell in enumerate(cells):
            if cell is None:
                if f.required:
                    errors.add(rows[i], order, name, "", "必填项为空")
                continue
            try:
                out[i] = parse(cell)
            except ValueError as e:
                errors.add(rows[i], order, name, _shown(f, cell), str(e))
        return pa.array(out, self.types[f.key])

    def _arrow_column(self, f: Field, cells: pa.Array, rows: list[int], fast=None) -> pa.Array:
        values, ok = (fast or _FAST[f.kind])(f, cells)
        order, name = self.order[f.key], self.names[f.key]
        if f.required and cells.null_count:
            for i in pc.indices_nonzero(pc.is_null(cells)).to_pylist():
                self.errors.add(rows[i], order, name, "", "必填项为空")
        rest = pc.indices_nonzero(pc.and_(pc.is_valid(cells), pc.invert(ok))).to_pylist()
        if not rest:
            return values
        parse = self.parsers[f.key]
        patched: dict[int, Any] = {}
        for i in rest:
            cell = cells[i].as_py()
            try:
                patched[i] = parse(cell)
            except ValueError as e:
                self.errors.add(rows[i], order, name, _shown(f, cell), str(e))
        if not patched:
            return values
        out = values.to_pylist()
        for i, value in patched.items():
            out[i] = value
        return pa.array(out, self.types[f.key])

    def _cross_checks(self, values: dict[str, pa.Array], chunk: Chunk, rows: list[int]) -> None:
        dataset = self.dataset
        if dataset.code in PERIODS:
            start_key, end_key = PERIODS[dataset.code]
            start, end = values[start_key], values[end_key]
            start_label, end_label = dataset.field(start_key).header, dataset.field(end_key).header
            for i in pc.indices_nonzero(_true(pc.less(end, start))).to_pylist():
                self.errors.add(rows[i], self.order[end_key], self.names[end_key], end[i].as_py().isoformat(),
                                f"{end_label}早于{start_label}（{start[i].as_py():%Y-%m-%d}）")
        if dataset.code == "hukou":
            status, moved_out = values["status"], values["moved_out_on"]
            raw = chunk.cells.get("moved_out_on")
            if raw is None:
                blank = pa.array([True] * len(rows), pa.bool_())
            elif isinstance(raw, list):
                blank = pa.array([c is None for c in raw], pa.bool_())
            else:
                blank = pc.is_null(raw)
            missing = pc.and_(pc.and_(_true(pc.is_in(status, value_set=pa.array(MOVED_OUT_STATUSES))),
                                      pc.is_null(moved_out)), blank)
            for i in pc.indices_nonzero(missing).to_pylist():
                state = status[i].as_py()
                self.errors.add(rows[i], self.order["moved_out_on"], self.names["moved_out_on"], "",
                                f"户籍状态为{state}时须填写迁出日期")

    def table(self) -> pa.Table:
        if not self.batches:
            return self.schema.empty_table()
        return pa.Table.from_batches(self.batches, schema=self.schema)


def _check_keys(dataset: Dataset, table: pa.Table, check: _Checker) -> None:
    """A natural key repeated in one file: every later row is an error naming the first one."""
    keys = NATURAL_KEYS.get(dataset.code)
    if not keys or table.num_rows < 2:
        return
    stored = [dataset.field(k).stored[0] for k in keys]
    present = table.select([*stored, "_row"])
    mask = None
    for name in stored:
        valid = pc.is_valid(present[name])
        mask = valid if mask is None else pc.and_(mask, valid)
    present = present.filter(mask)
    groups = present.group_by(stored).aggregate([("_row", "count"), ("_row", "min")])
    repeated = groups.filter(pc.greater(groups["_row_count"], 1))
    if repeated.num_rows == 0:
        return
    first = repeated.select([*stored, "_row_min"])
    later = present.join(first, stored).filter(pc.not_equal(pc.field("_row"), pc.field("_row_min")))
    later = later.sort_by("_row")
    key_field = dataset.field(keys[0])
    labels = "、".join(dataset.field(k).header for k in keys)
    column = check.names[keys[0]]
    masked = f"{key_field.key}_masked"
    shown = table.select(["_row", masked]) if key_field.kind is Kind.ID_NUMBER else None
    masks: dict[int, str] = {}
    if shown is not None:
        rows_wanted = pa.array(later["_row"].to_pylist(), pa.int64())
        picked = shown.filter(pc.is_in(shown["_row"], value_set=rows_wanted))
        masks = dict(zip(picked["_row"].to_pylist(), picked[masked].to_pylist(), strict=True))
    first_values = later[stored[0]].to_pylist()
    for row, first_row, value in zip(later["_row"].to_pylist(), later["_row_min"].to_pylist(), first_values,
                                     strict=True):
        if shown is not None:
            value = masks.get(row, "")
        elif isinstance(value, date):
            value = value.isoformat()
        check.errors.add(row, check.order[keys[0]], column, str(value)[:60],
                         f"与第{first_row}行重复：{dataset.label}中同一{labels}只能有一行")
    check.errors.flush()


def _merge_identical(dataset: Dataset, table: pa.Table) -> tuple[pa.Table, int]:
    """Rows identical in every column are one record delivered twice: keep the first of each."""
    if dataset.code in NATURAL_KEYS or table.num_rows < 2:
        return table, 0
    columns = [c for c in table.column_names if c != "_row"]
    unique = table.group_by(columns, use_threads=False).aggregate([("_row", "min")])
    merged = table.num_rows - unique.num_rows
    if merged == 0:
        return table, 0
    unique = unique.select([*columns, "_row_min"]).rename_columns([*columns, "_row"]).sort_by("_row")
    return unique.select(table.column_names).cast(table.schema), merged
