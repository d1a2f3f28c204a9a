"""The kept snapshot (常驻快照) of the city run: the platform's rule tables in a DuckDB file under
YKT_DATA_DIR/snapshot/, refreshed by what changed since the last run instead of exported whole.

What changed comes from the change log (core.changelog, migration 0011): database triggers note
(seq, table, row id) for every insert, delete and change of a column the snapshot holds, whoever
writes. A refresh reads the log, reads those rows again by primary key (an application that left
the live states is read as gone), deletes and inserts them in the file, prices their periods, and
only then — after the file's transaction committed — deletes the log rows it applied. The catalogue
(items, standards, exclusions) is a few hundred rows and is compared whole every time; when it
changed, every application's period price is worked out again.

Freshness is a token: `snapshot_state.token` in the database, and in the file the token its last
refresh set (`token`) and the one it started from (`based_on`). A file is fresh when the database
holds one of the two — the second only when a refresh died (or could not get SQLite's write lock)
between committing the file and deleting the log: the log rows are still there and are applied
again, which changes nothing (delete and insert by key). Anything else — no file, another layout of
the tables, another kept snapshot or a bulk load that bypassed the log (they change the token), a
log longer than REFRESH_MAX — rebuilds the file whole (a new file, swapped in by rename). A log of
seq numbers alone would not do on PostgreSQL: a transaction may commit after one with a higher seq,
so rows are deleted by the seq runs actually read, never "everything up to".

One writer at a time, across processes: a lock file (flock), exclusive while the file is written and
shared while a run reads it (the web server's dry runs and `ykt worker`'s city runs are separate
processes). Where no snapshot can be kept — an in-memory database, missing triggers, the lock not
had in time, this thread already reading one — the caller exports the city into memory as before.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from yikatong.core import changelog
from yikatong.core.settings import get_settings
from yikatong.interception.snapshot import (
    _LIVE,
    EXPORTS,
    Progress,
    Snapshot,
    _adbc_connect,
    _arrow,
    _price_periods,
    _quoted,
    cast_columns,
    connect_duckdb,
    count_rows,
)
from yikatong.interception.tables import PLATFORM_TABLES

log = logging.getLogger(__name__)

LAYOUT = 1  # bump when the kept tables change shape in a way EXPORTS and RULE_TABLES do not show
REFRESH_MAX = 300_000  # log rows applied one by one; beyond, a rebuild is cheaper
LOCK_WAIT_SECONDS = 600.0  # a run waits this long for another run's refresh (or reads) to finish
SETTLE_BUSY_MS = 500  # SQLite: how long the log's clean-up waits for the write lock before leaving it
# The key of each logged table in the file: cards and 代管代持 keep their row id beside the rule columns.
KEYS = {"applications": "application_id", "persons": "person_id", "households": "household_id",
        "cards": "row_id", "proxy_holdings": "row_id"}
EXTRA = {"cards": (("row_id", "BIGINT"),), "proxy_holdings": (("row_id", "BIGINT"),)}
CATALOGUE = ("items", "item_standards", "item_exclusions")
assert set(KEYS) == set(changelog.LOGGED_TABLES) and set(KEYS) | set(CATALOGUE) == {t.name for t in PLATFORM_TABLES}

# Test hooks: called with the file's connection just before its transaction commits, and just after
# (before the log is cleaned up). A test makes them raise to play a crash at those moments.
before_commit: Callable[[duckdb.DuckDBPyConnection], None] | None = None
after_commit: Callable[[], None] | None = None


class NotKept(Exception):
    """No snapshot can be kept now; the caller exports the city into memory."""


def kept_path() -> Path:
    return get_settings().data_dir / "snapshot" / "city.duckdb"


def fingerprint() -> str:
    """What the file's tables are made of: a file made by other code is rebuilt, not trusted."""
    content = [LAYOUT, EXPORTS, _LIVE, KEYS, EXTRA, [(t.name, [(c.name, c.type) for c in t.columns])
                                                     for t in PLATFORM_TABLES]]
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:32]


def export_sql(name: str) -> str:
    sql = EXPORTS[name]
    if name in EXTRA:
        sql = "SELECT id AS row_id, " + sql.removeprefix("SELECT ")
    return sql


# ---------------------------------------------------------------- the lock


class _Lock:
    """flock on snapshot/city.lock: exclusive while the file is written, shared while a run reads it.
    flock belongs to an open file, so two threads of one process exclude each other as well."""

    def __init__(self, path: Path):
        self.path = path
        self._file: Any = None

    def take(self, mode: int, wait: float) -> bool:
        self.release()
        self._file = open(self.path, "a+")  # noqa: SIM115 - held until release
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self._file.fileno(), mode | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self.release()
                    return False
                time.sleep(0.05)

    def release(self) -> None:
        if self._file is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            finally:
                self._file.close()
                self._file = None


_reading = threading.local()  # kept snapshots this thread holds open (it must not wait for itself)


def _held() -> int:
    return getattr(_reading, "count", 0)


# ---------------------------------------------------------------- opening


def open_city(engine: Engine, *, threads: int | None = None, progress: Progress | None = None) -> Snapshot | None:
    """The city's platform tables from the kept file, refreshed first if anything changed; None where
    no snapshot can be kept. The snapshot holds the shared lock until it is closed."""
    if not can_keep(engine):
        return None
    file = kept_path()
    file.parent.mkdir(parents=True, exist_ok=True)
    lock = _Lock(file.parent / "city.lock")
    if not lock.take(fcntl.LOCK_SH, LOCK_WAIT_SECONDS):
        log.warning("kept snapshot: lock not had in %s s, exporting the city into memory", LOCK_WAIT_SECONDS)
        return None
    con: duckdb.DuckDBPyConnection | None = None
    try:
        catalogue = _read_catalogue(engine)
        con = connect_duckdb(threads)
        how = "unchanged" if file.exists() and _attach_if_fresh(engine, con, file, catalogue) else ""
        if not how:
            if _held():  # this thread reads the file already: waiting to write it would wait forever
                raise NotKept
            if not lock.take(fcntl.LOCK_EX, LOCK_WAIT_SECONDS):
                raise NotKept
            how = refresh(engine, catalogue=catalogue, threads=threads, progress=progress)
            if not lock.take(fcntl.LOCK_SH, LOCK_WAIT_SECONDS):
                raise NotKept
            con.execute(f"ATTACH '{_quoted(file)}' AS kept (READ_ONLY)").fetchall()
        snap = Snapshot(con, None, kept=how)
        for name, table in ((t.name, t) for t in PLATFORM_TABLES):
            columns = ", ".join(c.name for c in table.columns)
            con.execute(f"CREATE VIEW {name} AS SELECT {columns} FROM kept.{name}").fetchall()
            snap.counts[name] = count_rows(con, name)
    except NotKept:
        lock.release()
        if con is not None:
            con.close()
        return None
    except BaseException:
        lock.release()
        if con is not None:
            con.close()
        raise
    _reading.count = _held() + 1

    def release() -> None:
        _reading.count = max(_held() - 1, 0)
        lock.release()

    snap.release = release
    return snap


def can_keep(engine: Engine) -> bool:
    if not get_settings().kept_snapshot:
        return False
    url = engine.url
    backend = url.get_backend_name()
    if backend == "sqlite" and (not url.database or url.database == ":memory:"):
        return False
    if backend not in ("sqlite", "postgresql"):
        return False
    with engine.connect() as conn:
        if not changelog.healthy(conn):
            log.warning("kept snapshot: the change log's triggers are missing or disabled; exporting the city whole")
            return False
    return True


def _attach_if_fresh(engine: Engine, con: duckdb.DuckDBPyConnection, file: Path,
                     catalogue: dict[str, pa.Table]) -> bool:
    """Attach the file read-only and say whether it is fresh as it is (nothing to write)."""
    try:
        con.execute(f"ATTACH '{_quoted(file)}' AS kept (READ_ONLY)").fetchall()
    except duckdb.Error:
        return False  # unreadable (a file of another DuckDB version, a torn copy): rebuilt
    meta = _meta(con)
    with engine.connect() as conn:
        token = changelog.token(conn)
        pending = conn.execute(text("SELECT 1 FROM snapshot_changes LIMIT 1")).first() is not None
    if _valid(meta, token) and not pending and not _catalogue_differs(con, catalogue):
        return True
    con.execute("DETACH kept").fetchall()
    return False


@dataclass
class _Meta:
    fingerprint: str
    token: str
    based_on: str


def _meta(con: duckdb.DuckDBPyConnection, schema: str = "kept") -> _Meta | None:
    try:
        rows = con.execute(f"SELECT fingerprint, token, based_on FROM {schema}.kept_meta").fetchall()
    except duckdb.Error:
        return None
    return _Meta(*rows[0]) if len(rows) == 1 else None


def _valid(meta: _Meta | None, token: str) -> bool:
    return meta is not None and meta.fingerprint == fingerprint() and token in (meta.token, meta.based_on)


# ---------------------------------------------------------------- refreshing


def refresh(engine: Engine, *, catalogue: dict[str, pa.Table] | None = None, threads: int | None = None,
            progress: Progress | None = None) -> str:
    """Bring the file up to date (the caller holds the exclusive lock): "unchanged", "refreshed" or
    "rebuilt"."""
    file = kept_path()
    catalogue = catalogue if catalogue is not None else _read_catalogue(engine)
    with engine.connect() as conn:
        if not changelog.healthy(conn):
            raise NotKept
        token = changelog.token(conn)
        pending = conn.execute(text("SELECT count(*) FROM snapshot_changes")).scalar_one()
    meta = None
    if file.exists():
        probe = connect_duckdb(1)
        try:
            probe.execute(f"ATTACH '{_quoted(file)}' AS kept (READ_ONLY)").fetchall()
            meta = _meta(probe)
        except duckdb.Error:
            meta = None
        finally:
            probe.close()
    if _valid(meta, token) and pending <= REFRESH_MAX:
        how = _apply_changes(engine, file, token, catalogue, threads)
        if how:
            return how
    return _rebuild(engine, file, catalogue, threads, progress)


def _writer(file: Path, threads: int | None) -> duckdb.DuckDBPyConnection:
    con = connect_duckdb(threads)
    con.execute(f"ATTACH '{_quoted(file)}' AS kept").fetchall()
    con.execute("USE kept").fetchall()
    return con


def _close_writer(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("USE memory").fetchall()
        con.execute("DETACH kept").fetchall()  # checkpoints: the file is whole without its WAL
    finally:
        con.close()


def _apply_changes(engine: Engine, file: Path, token: str, catalogue: dict[str, pa.Table],
                   threads: int | None) -> str:
    """Apply the log to the file; "" when the log was taken by another kept snapshot meanwhile (the
    caller rebuilds)."""
    changes, rows, runs = _read_changes(engine)
    con = _writer(file, threads)
    wrote = False
    try:
        con.execute("BEGIN TRANSACTION").fetchall()
        catalogue_changed = _replace_catalogue_if_changed(con, catalogue)
        if changes.num_rows:
            con.register("log_rows", changes)
            for name, key in KEYS.items():
                raw = rows.get(name)
                con.execute(f"DELETE FROM {name} WHERE {key} IN (SELECT row_id FROM log_rows "
                            f"WHERE table_name = '{name}')").fetchall()
                if raw is not None and raw.num_rows:
                    con.register("raw_rows", raw)
                    con.execute(f"DELETE FROM {name} WHERE {key} IN (SELECT {key} FROM raw_rows)").fetchall()
                    con.execute(f"INSERT INTO {name} SELECT {cast_columns(name, EXTRA.get(name, ()))} "
                                f"FROM raw_rows").fetchall()
                    con.unregister("raw_rows")
            con.unregister("log_rows")
        if catalogue_changed:
            _price_periods(con)
        elif rows.get("applications") is not None and rows["applications"].num_rows:
            con.register("priced", rows["applications"].select(["application_id"]))
            con.execute("CREATE TEMP TABLE priced_ids AS SELECT CAST(application_id AS BIGINT) AS id FROM priced")
            con.unregister("priced")
            _price_periods(con, only="SELECT id FROM priced_ids")
            con.execute("DROP TABLE priced_ids").fetchall()
        wrote = catalogue_changed or changes.num_rows > 0
        new = changelog.new_token() if wrote else token
        if wrote:
            con.execute("UPDATE kept_meta SET token = ?, based_on = ?, refreshed_at = ?, applied = applied + ?",
                        [new, token, _now(), changes.num_rows]).fetchall()
        if before_commit is not None:
            before_commit(con)
        con.execute("COMMIT").fetchall()
    except BaseException:
        try:
            con.execute("ROLLBACK").fetchall()
        except duckdb.Error:
            pass
        raise
    finally:
        _close_writer(con)
    if not wrote:
        return "unchanged"
    if after_commit is not None:
        after_commit()
    if _settle(engine, runs, token, new) is False:
        return ""
    return "refreshed"


def _read_changes(engine: Engine) -> tuple[pa.Table, dict[str, pa.Table], list[tuple[int, int]]]:
    """The log as it is now, the rows it names as they are now (applications: the live ones), and
    the runs of consecutive seq numbers read (what may be deleted once applied). One repeatable-read
    transaction on PostgreSQL, so the rows read are at least as new as the log."""
    options = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    with engine.connect().execution_options(**options) as conn:
        log_rows = conn.execute(text("SELECT seq, table_name, row_id FROM snapshot_changes ORDER BY seq")).all()
        changes = pa.table({"seq": pa.array([r[0] for r in log_rows], pa.int64()),
                            "table_name": pa.array([r[1] for r in log_rows], pa.string()),
                            "row_id": pa.array([r[2] for r in log_rows], pa.int64())})
        rows: dict[str, pa.Table] = {}
        if log_rows:
            last = log_rows[-1][0]
            for name in sorted({r[1] for r in log_rows}):
                if name not in KEYS:
                    continue
                sql = (f"{export_sql(name)} WHERE id IN (SELECT row_id FROM snapshot_changes WHERE table_name = "
                       f"'{name}' AND seq <= {int(last)})" + (f" AND {_LIVE}" if name == "applications" else ""))
                found = [dict(r._mapping) for r in conn.execute(text(sql))]
                if found:
                    rows[name] = _arrow(name, found)
        conn.rollback()
    return changes, rows, _runs([r[0] for r in log_rows])


def _runs(seqs: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for seq in seqs:
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


def _settle(engine: Engine, runs: list[tuple[int, int]], expected: str, new: str) -> bool | None:
    """After the file committed: move the database's token from `expected` to `new` and delete the
    log rows applied, in one transaction. True: done; None: not now (SQLite's write lock is held by
    someone else: the log stays and is applied again next time, harmlessly); False: the token is no
    longer `expected` — another kept snapshot or a bulk load took the log — so the file is stale."""
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as conn:
            if sqlite:
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {SETTLE_BUSY_MS}")
            try:
                moved = conn.execute(text("UPDATE snapshot_state SET token = :new WHERE id = 1 AND token = :old"),
                                     {"new": new, "old": expected}).rowcount
                if moved != 1:
                    conn.rollback()
                    return False
                if runs:
                    conn.execute(text("DELETE FROM snapshot_changes WHERE seq BETWEEN :a AND :b"),
                                 [{"a": a, "b": b} for a, b in runs])
                conn.commit()
                return True
            finally:
                if sqlite:
                    conn.exec_driver_sql("PRAGMA busy_timeout = 10000")
    except OperationalError:
        with engine.connect() as conn:
            return None if changelog.token(conn) == expected else False


def _rebuild(engine: Engine, file: Path, catalogue: dict[str, pa.Table], threads: int | None,
             progress: Progress | None) -> str:
    """Export the logged tables whole into a new file and swap it in. The token and the log's runs are
    read first: whatever the log holds then is in the export, which reads after it."""
    with engine.connect() as conn:
        token = changelog.token(conn)
        runs = [(int(a), int(b)) for a, b in conn.execute(text(
            "SELECT min(seq), max(seq) FROM (SELECT seq, seq - row_number() OVER (ORDER BY seq) AS g "
            "FROM snapshot_changes) x GROUP BY g ORDER BY 1"))]
    new_file = file.with_name(file.name + ".new")
    for leftover in (new_file, Path(f"{new_file}.wal")):
        leftover.unlink(missing_ok=True)
    new = changelog.new_token()
    con = _writer(new_file, threads)
    try:
        steps = len(KEYS) + len(CATALOGUE)
        with _adbc_connect(engine) as adbc_con:
            for done, name in enumerate(KEYS, 1):
                where = f" WHERE {_LIVE}" if name == "applications" else ""
                with adbc_con.cursor() as cursor:
                    cursor.execute(export_sql(name) + where)
                    raw = cursor.fetch_arrow_table()
                con.register("raw_export", raw)
                con.execute(f"CREATE TABLE {name} AS SELECT {cast_columns(name, EXTRA.get(name, ()))} "
                            f"FROM raw_export").fetchall()
                con.unregister("raw_export")
                del raw
                if progress:
                    progress("导出平台数据", done, steps)
        for name in CATALOGUE:
            con.register("raw_export", catalogue[name])
            con.execute(f"CREATE TABLE {name} AS SELECT {cast_columns(name)} FROM raw_export").fetchall()
            con.unregister("raw_export")
        _price_periods(con)
        con.execute("CREATE TABLE kept_meta (fingerprint VARCHAR, token VARCHAR, based_on VARCHAR, "
                    "built_at TIMESTAMP, refreshed_at TIMESTAMP, applied BIGINT)").fetchall()
        con.execute("INSERT INTO kept_meta VALUES (?, ?, ?, ?, ?, 0)",
                    [fingerprint(), new, token, _now(), _now()]).fetchall()
        if progress:
            progress("导出平台数据", steps, steps)
    except BaseException:
        _close_writer(con)
        new_file.unlink(missing_ok=True)
        raise
    _close_writer(con)
    Path(f"{file}.wal").unlink(missing_ok=True)  # never replay an old file's journal onto the new one
    os.replace(new_file, file)
    _settle(engine, runs, token, new)
    return "rebuilt"


def discard() -> None:
    """Remove the kept file (the next run rebuilds it), waiting for the runs that read it."""
    file = kept_path()
    if not file.parent.exists():
        return
    lock = _Lock(file.parent / "city.lock")
    if not lock.take(fcntl.LOCK_EX, LOCK_WAIT_SECONDS):
        raise TimeoutError("kept snapshot in use")
    try:
        for path in (file, Path(f"{file}.wal")):
            path.unlink(missing_ok=True)
    finally:
        lock.release()


# ---------------------------------------------------------------- the catalogue


def _read_catalogue(engine: Engine) -> dict[str, pa.Table]:
    """Items, standards and exclusions as exported (a few hundred rows: read whole every time)."""
    with engine.connect() as conn:
        return {name: _arrow(name, [dict(r._mapping) for r in conn.execute(text(EXPORTS[name]))])
                for name in CATALOGUE}


def _load_catalogue(con: duckdb.DuckDBPyConnection, catalogue: dict[str, pa.Table]) -> None:
    """The catalogue as temporary tables new_<name>, typed as the kept ones."""
    for name in CATALOGUE:
        con.register("raw_catalogue", catalogue[name])
        con.execute(f"CREATE OR REPLACE TEMP TABLE new_{name} AS SELECT {cast_columns(name)} "
                    f"FROM raw_catalogue").fetchall()
        con.unregister("raw_catalogue")
    con.execute("UPDATE new_item_standards SET county_code = NULL WHERE county_code = ''").fetchall()


def _differs(con: duckdb.DuckDBPyConnection, kept_schema: str) -> bool:
    for name in CATALOGUE:
        for a, b in ((f"{kept_schema}{name}", f"new_{name}"), (f"new_{name}", f"{kept_schema}{name}")):
            if con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchall()[0][0]:
                return True
    return False


def _catalogue_differs(con: duckdb.DuckDBPyConnection, catalogue: dict[str, pa.Table]) -> bool:
    _load_catalogue(con, catalogue)
    try:
        return _differs(con, "kept.")
    finally:
        for name in CATALOGUE:
            con.execute(f"DROP TABLE new_{name}").fetchall()


def _replace_catalogue_if_changed(con: duckdb.DuckDBPyConnection, catalogue: dict[str, pa.Table]) -> bool:
    _load_catalogue(con, catalogue)
    changed = _differs(con, "")
    if changed:
        for name in CATALOGUE:
            con.execute(f"DELETE FROM {name}").fetchall()
            con.execute(f"INSERT INTO {name} SELECT * FROM new_{name}").fetchall()
    for name in CATALOGUE:
        con.execute(f"DROP TABLE new_{name}").fetchall()
    return changed


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


__all__ = ["NotKept", "discard", "fingerprint", "kept_path", "open_city", "refresh"]
