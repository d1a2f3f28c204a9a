"""Import a CSV or .xlsx file: all or nothing, with a report naming row, column and reason in Chinese.

Two phases. First every row is read, parsed and checked against the file and the database, and
*every* problem is collected. Only when there is none are the rows written, in the caller's
transaction (the caller commits; if anything raises, the caller rolls back and nothing is written).
Records are matched by their natural key and upserted: new rows added, changed rows updated,
identical rows untouched, so importing the same file again changes nothing but the audit trail.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from yikatong.core import readers
from yikatong.core.errors import Forbidden, Invalid, NotFound
from yikatong.core.readers import column_letter, header_key
from yikatong.imports.batch import Batch, Progress, Row
from yikatong.imports.kinds import IGNORED_HEADERS, KINDS, Kind, get_kind
from yikatong.imports.schemas import ImportReport, RowError
from yikatong.imports.upserts import PLANNERS
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import has_perm


def kind_or_404(name: str) -> Kind:
    kind = get_kind(name)
    if kind is None:
        raise NotFound(f"未知的导入类型：{name}。可用：" + "、".join(f"{k.name}（{k.label}）" for k in KINDS.values()))
    return kind


def may_import(user: User | None, kind: Kind) -> bool:
    return user is None or has_perm(user.role, kind.perm)


def require_import(user: User | None, kind: Kind) -> None:
    if not may_import(user, kind):
        raise Forbidden(f"当前角色无权导入{kind.label}")


def import_file(
    session: Session,
    kind: str,
    source: bytes | str | Path,
    filename: str,
    *,
    actor: User | None,
    now: datetime,
    encoding: str = "utf-8",
    ip: str = "",
    on_progress: Callable[[str, int, int], None] | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Validate a whole file and, when every row is valid and not `dry_run`, upsert it.

    `actor` None is the system (command line) with full rights; a user needs the kind's permission
    (else Forbidden) and may only touch rows inside their region subtree (else row errors).
    `on_progress(stage, done, total)` is called as reading, checking and writing advance."""
    spec = kind_or_404(kind)
    require_import(actor, spec)
    progress: Progress = on_progress or (lambda stage, done, total: None)
    data = _load(source)
    report = ImportReport(kind=spec.name, kind_label=spec.label, filename=filename,
                          sha256=hashlib.sha256(data).hexdigest(), ok=False, dry_run=dry_run)

    progress("读取", 0, 1)
    try:
        table = readers.read_table(data, encoding)
    except readers.FileError as e:
        return _failed(report, [RowError(row=e.row, column="", value="", reason=e.reason)], 1)
    report.total_rows = len(table.rows)
    progress("读取", 1, 1)

    columns, header_errors = match_headers(spec, table.headers)
    if header_errors:
        return _failed(report, header_errors, len(header_errors))

    headers = {key: str(table.headers[index]) for key, index in columns.items()}
    batch = Batch(session, spec, actor, now, headers, [], progress, sha256=report.sha256)
    _parse_rows(batch, spec, table, columns)
    if not batch.rows:
        return _failed(report, [RowError(row=None, column="", value="", reason="文件中没有数据行")], 1)
    plan = PLANNERS[spec.name](batch)
    if batch.error_count:
        errors = [RowError(row=e.row, column=e.column, value=e.value, reason=e.reason)
                  for e in batch.sorted_errors()]
        return _failed(report, errors, batch.error_count)

    report.ok = True
    report.added, report.updated, report.unchanged = plan.added, plan.updated, plan.unchanged
    report.extra = dict(plan.extra)
    if dry_run:
        return report
    plan.write(progress)
    audit.record(session, actor, f"import.{spec.name}", "import_file", report.sha256[:16], now,
                 region_code=actor.region_code if actor else None, ip=ip,
                 detail={"filename": filename, "sha256": report.sha256, "rows": report.total_rows,
                         "added": report.added, "updated": report.updated, "unchanged": report.unchanged,
                         **report.extra})
    session.flush()
    return report


def _load(source: bytes | str | Path) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    path = Path(source)
    if not path.is_file():
        raise Invalid(f"文件不存在：{path}")
    if path.stat().st_size > readers.MAX_FILE_BYTES:
        raise Invalid(f"文件过大：最大 {readers.MAX_FILE_BYTES // 1024 // 1024} MB，请拆分文件")
    return path.read_bytes()


def _failed(report: ImportReport, errors: list[RowError], count: int) -> ImportReport:
    report.ok = False
    report.errors = errors
    report.error_count = count
    return report


def match_headers(kind: Kind, headers: list[str | None]) -> tuple[dict[str, int], list[RowError]]:
    """Map column keys to positions. Unknown, repeated and missing required columns are errors."""
    lookup: dict[str, str] = {}
    for column in kind.columns:
        for name in (column.header, *column.aliases):
            lookup[header_key(name)] = column.key
    ignored = {header_key(h) for h in IGNORED_HEADERS}
    found: dict[str, int] = {}
    errors: list[RowError] = []
    for index, header in enumerate(headers):
        if header is None:
            continue
        key = lookup.get(header_key(header))
        if key is None:
            if header_key(header) in ignored:
                continue
            known = "、".join(c.header for c in kind.columns)
            errors.append(RowError(row=1, column=header, value=header,
                                   reason=f"未知的列名（第{column_letter(index)}列）。{kind.label}文件可用的列：{known}"))
        elif key in found:
            errors.append(RowError(row=1, column=header, value=header,
                                   reason=f"列重复：第{column_letter(found[key])}列和第{column_letter(index)}列"
                                          f"都是“{kind.column(key).header}”"))
        else:
            found[key] = index
    for column in kind.columns:
        if column.required and column.key not in found:
            hint = "；若表头显示为乱码，请确认文件编码" if not found else ""
            errors.append(RowError(row=1, column=column.header, value="",
                                   reason=f"缺少必填列“{column.header}”（也可写作 {column.alias}）{hint}"))
    return found, errors


def _parse_rows(batch: Batch, kind: Kind, table: readers.Table, columns: dict[str, int]) -> None:
    total = len(table.rows)
    width = len(table.headers)
    specs = [(kind.column(key), index) for key, index in columns.items()]
    for n, (number, cells) in enumerate(table.rows):
        if n % 5000 == 0:
            batch.progress("校验", n, total)
        row = Row(number=number, cells={column.key: cells[index] if index < len(cells) else None
                                        for column, index in specs})
        batch.rows.append(row)
        for index in range(len(cells)):
            if cells[index] is not None and (index >= width or table.headers[index] is None):
                letter = column_letter(index)
                batch.error(row, f"第{letter}列", f"第{letter}列没有列名，但本行有数据", value=str(cells[index])[:60])
        for column, _ in specs:
            cell = row.cells[column.key]
            if cell is None:
                if column.required:
                    batch.error(row, column.key, "必填项为空")
                continue
            try:
                row.values[column.key] = column.read(cell)
            except ValueError as e:
                batch.error(row, column.key, str(e))
    batch.progress("校验", total, total)
