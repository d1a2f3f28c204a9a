"""Bulk writing of the synthetic city: large transactions of SQLAlchemy Core executemany, and
PostgreSQL's COPY for the three big tables (persons, households, cards).

Rows carry explicit ids (the generator links persons to households and cards to persons without a
round trip), so on PostgreSQL the id sequences are moved past them at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Engine,
    ForeignKeyConstraint,
    Table,
    UniqueConstraint,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.schema import AddConstraint, DropConstraint

from yikatong import models
from yikatong.core import changelog
from yikatong.core.db import UTCDateTime, naive_utc

COPY_TABLES = {"persons", "households", "cards"}
SERIAL_TABLES = ("households", "persons", "cards")  # the tables written with explicit ids


class Loader:
    """One connection for the whole build; `commit()` ends a transaction (a township or several)."""

    def __init__(self, engine: Engine, stamp: datetime):
        self.engine = engine
        self.stamp = naive_utc(stamp)  # created_at / updated_at of every generated row, as stored
        self.postgres = engine.dialect.name == "postgresql"
        self._stamp_text = self.stamp.strftime("%Y-%m-%d %H:%M:%S.%f")
        self._dropped: list = []
        self._log_paused: list | None = None
        self.conn: Connection = engine.connect()
        if engine.dialect.name == "sqlite":
            # A generated database can be rebuilt from its seed, so durability during the build is
            # not worth the fsyncs; a large page cache keeps the index inserts off the disk.
            for pragma in ("synchronous=OFF", "cache_size=-400000", "temp_store=MEMORY"):
                self.conn.exec_driver_sql(f"PRAGMA {pragma}")

    def pause_change_log(self) -> None:
        """No change log for the bulk load (millions of rows): the kept snapshot of the city run is
        rebuilt whole afterwards instead (core.changelog; `resume_change_log` makes it stale)."""
        self._log_paused = changelog.pause(self.conn)
        self.conn.commit()

    def resume_change_log(self) -> None:
        if self._log_paused is not None:
            changelog.resume(self.conn, self._log_paused)
            self.conn.commit()
            self._log_paused = None

    def drop_indexes(self, names: Sequence[str]) -> None:
        """Drop the secondary indexes of these tables for the bulk load: building an index once from
        sorted data is much cheaper than updating it row by row. On PostgreSQL the unique and foreign
        key constraints go too (checking them row by row is most of the server's work during COPY);
        they are checked in one pass each when added back. SQLite cannot drop a table's constraints.
        Only what exists in the database is dropped, and exactly that is put back."""
        inspector = inspect(self.conn)
        for name in names:
            table = self.table(name)
            existing = {i["name"] for i in inspector.get_indexes(name)}
            for index in sorted(table.indexes, key=lambda i: i.name or ""):
                if not index.unique and index.name in existing:
                    index.drop(self.conn)
                    self._dropped.append(index)
            if self.postgres:
                existing = ({c["name"] for c in inspector.get_unique_constraints(name)}
                            | {c["name"] for c in inspector.get_foreign_keys(name)})
                for constraint in sorted(table.constraints, key=lambda c: str(c.name)):
                    if isinstance(constraint, UniqueConstraint | ForeignKeyConstraint) and constraint.name in existing:
                        self.conn.execute(DropConstraint(constraint))
                        self._dropped.append(constraint)
        self.conn.commit()

    def create_indexes(self, on_index=None) -> None:
        """Recreate what drop_indexes removed, with the definitions of the models (= migrations)."""
        for n, item in enumerate(self._dropped):
            if isinstance(item, UniqueConstraint | ForeignKeyConstraint):
                self.conn.execute(AddConstraint(item))
            else:
                item.create(self.conn)
            self.conn.commit()
            if on_index:
                on_index(n + 1, len(self._dropped))
        self._dropped = []

    def rollback_and_restore_indexes(self) -> None:
        """After a failed build: indexes back, and the change log on (until then no kept snapshot)."""
        try:
            self.conn.rollback()
            self.create_indexes()
            self.resume_change_log()
        except Exception:  # noqa: BLE001 - keep the original error; this is best effort
            pass

    def table(self, name: str) -> Table:
        return models.metadata.tables[name]

    def insert_dicts(self, name: str, rows: Sequence[dict]) -> None:
        if rows:
            self.conn.execute(insert(self.table(name)), list(rows))

    def insert_rows(self, name: str, columns: Sequence[str], rows: Sequence[tuple], stamped: bool = True,
                    dates_ready: bool = False) -> None:
        """Insert tuples in `columns` order; created_at/updated_at are added when `stamped`.

        dates_ready: on SQLite the rows already carry dates as ISO text (see TownshipJob)."""
        if not rows:
            return
        cols = list(columns) + (["created_at", "updated_at"] if stamped else [])
        if self.postgres and name in COPY_TABLES:
            extra = (self.stamp, self.stamp) if stamped else ()
            if not self.conn.in_transaction():
                self.conn.begin()  # so that commit() below ends the COPYs' transaction too
            cursor = self.conn.connection.dbapi_connection.cursor()
            with cursor.copy(f"COPY {name} ({', '.join(cols)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row + extra)
            cursor.close()
            return
        if self.postgres:
            extra = (self.stamp, self.stamp) if stamped else ()
            self.conn.execute(insert(self.table(name)), [dict(zip(cols, r + extra, strict=True)) for r in rows])
            return
        # SQLite: the Core INSERT, compiled once, run as one executemany of plain tuples. SQLAlchemy's
        # per-value type processing would double the cost, so dates are written here in the same
        # text form SQLAlchemy uses for SQLite (ISO date; "YYYY-MM-DD HH:MM:SS.ffffff").
        table = self.table(name)
        sql = str(insert(table).compile(dialect=self.engine.dialect, column_keys=cols))
        dated = [] if dates_ready else [i for i, c in enumerate(columns)
                                        if isinstance(table.c[c].type, (Date, DateTime, UTCDateTime))]
        extra = (self._stamp_text, self._stamp_text) if stamped else ()
        if dated:
            rows = [_with_iso_dates(r, dated) + extra for r in rows]
        elif extra:
            rows = [r + extra for r in rows]
        self.conn.exec_driver_sql(sql, list(rows))

    def commit(self) -> None:
        self.conn.commit()

    def finish(self) -> None:
        """Move id sequences past the explicit ids (PostgreSQL), refresh planner statistics."""
        if self.postgres:
            for name in SERIAL_TABLES:
                self.conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
                )
            self.conn.commit()
            self.conn.exec_driver_sql("ANALYZE")
        else:
            self.conn.exec_driver_sql("PRAGMA analysis_limit=1000")
            self.conn.exec_driver_sql("ANALYZE")
            self.conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    def max_id(self, name: str) -> int:
        table = self.table(name)
        return int(self.conn.execute(select(func.max(table.c.id))).scalar() or 0)


def _with_iso_dates(row: tuple, positions: list[int]) -> tuple:
    values = list(row)
    for i in positions:
        if values[i] is not None:
            v = values[i]
            values[i] = (naive_utc(v).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime)
                         else v.isoformat())
    return tuple(values)

