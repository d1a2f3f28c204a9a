"""One import in progress: the parsed rows, the errors found so far, and bulk look-up helpers."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yikatong.imports.kinds import Column, Kind
from yikatong.security.models import User
from yikatong.security.scope import in_subtree

CHUNK = 900  # keys per IN (...) query: below SQLite's oldest 999-parameter limit
WRITE_CHUNK = 5000  # rows per bulk INSERT/UPDATE statement
MAX_LISTED_ERRORS = 1000
MAX_KEPT_ERRORS = 200_000  # errors kept for sorting before the list is cut to MAX_LISTED_ERRORS

Progress = Callable[[str, int, int], None]

LEVEL_ZH = {"province": "省", "city": "市", "county": "县（区）", "township": "乡镇（街道）", "village": "村（社区）"}


@dataclass
class Row:
    number: int  # as the user sees it: header = 1
    cells: dict[str, str | None]  # column key -> cell text
    values: dict[str, Any] = field(default_factory=dict)  # column key -> parsed value (non-empty, valid)
    bad: bool = False  # any error on this row

    def has(self, key: str) -> bool:
        return key in self.values


@dataclass
class Plan:
    """What a valid file would change; `write` carries it out in the caller's transaction."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    extra: dict[str, int] = field(default_factory=dict)
    write: Callable[[Progress], None] = lambda progress: None


@dataclass
class Error:
    row: int | None
    order: int  # column position, for sorting
    column: str
    value: str
    reason: str


class Batch:
    def __init__(self, session: Session, kind: Kind, actor: User | None, now: datetime,
                 headers: dict[str, str], rows: list[Row], progress: Progress, sha256: str = ""):
        self.session = session
        self.sha256 = sha256  # of the whole file: names the source of what it enters (department lists)
        self.kind = kind
        self.actor = actor
        self.now = now
        self.headers = headers  # column key -> header as written in the file
        self.present = set(headers)
        self.rows = rows
        self.progress = progress
        self.errors: list[Error] = []
        self.error_count = 0
        self._order = {c.key: i for i, c in enumerate(kind.columns)}

    # ------------------------------------------------------------ errors

    def error(self, row: Row | int | None, key: str, reason: str, *, value: str | None = None) -> None:
        """Record a problem with one cell. `key` is a column key of the kind, or a literal header."""
        self.error_count += 1
        number = row.number if isinstance(row, Row) else row
        if isinstance(row, Row):
            row.bad = True
        column = self._column(key)
        if value is None:
            cell = row.cells.get(key) if isinstance(row, Row) else None
            value = column.shown(cell) if column else (cell or "")
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(Error(number, self._order.get(key, len(self._order)),
                                     self.headers.get(key) or (column.header if column else key), value, reason))

    def _column(self, key: str) -> Column | None:
        return next((c for c in self.kind.columns if c.key == key), None)

    def sorted_errors(self) -> list[Error]:
        return sorted(self.errors, key=lambda e: (e.row or 0, e.order))[:MAX_LISTED_ERRORS]

    # ------------------------------------------------------------ scope

    def in_scope(self, region_code: str) -> bool:
        return self.actor is None or in_subtree(self.actor.region_code, region_code)

    def scope_reason(self) -> str:
        scope = self.actor.region_code if self.actor else ""
        return f"超出本辖区：只能导入本辖区（{scope}）及下级区划的数据"

    # ------------------------------------------------------------ checks across rows

    def unique(self, key: str, value_of: Callable[[Row], Hashable | None] | None = None,
               what: str | None = None) -> None:
        """Each value of column `key` may appear in one row only; later rows get an error."""
        seen: dict[Hashable, int] = {}
        what = what or self.headers.get(key, key)
        for row in self.rows:
            if key not in row.values:
                continue
            value = value_of(row) if value_of else row.values[key]
            if value is None:
                continue
            first = seen.setdefault(value, row.number)
            if first != row.number:
                self.error(row, key, f"{what}与第{first}行重复")

    # ------------------------------------------------------------ bulk look-ups

    def fetch(self, columns: Sequence[Any], key_column: Any, keys: Iterable[Any]) -> list[Any]:
        """SELECT columns WHERE key_column IN keys, CHUNK keys per query."""
        keys = list(dict.fromkeys(k for k in keys if k is not None))
        out: list[Any] = []
        for start in range(0, len(keys), CHUNK):
            out.extend(self.session.execute(select(*columns).where(key_column.in_(keys[start:start + CHUNK]))).all())
        return out

    def values(self, key: str) -> list[Any]:
        return [row.values[key] for row in self.rows if key in row.values]


def write_in_chunks(session: Session, statement: Any, rows: list[dict[str, Any]], progress: Progress,
                    done: list[int], total: int) -> None:
    for start in range(0, len(rows), WRITE_CHUNK):
        part = rows[start:start + WRITE_CHUNK]
        session.execute(statement, part)
        done[0] += len(part)
        progress("写入", done[0], total)
