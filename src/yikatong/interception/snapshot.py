"""The columnar snapshot rules run against: the platform's tables exported to Arrow and the current
shared data snapshots (Parquet), opened together in one in-memory DuckDB database.

Two ways to fill it:
- the whole city (`focus=None`): every live application and the registry behind it, read straight
  into Arrow through ADBC (SQLite or PostgreSQL; millions of rows in seconds, never a Python loop);
- a focus set of applications (a submission, a payment batch): read through the caller's session,
  so claims not yet committed are seen, and widened to every row a rule may compare them with —
  the claimant's other claims, the household's claims, the cards and the people sharing a bank
  account. Shared data is cut to the people concerned.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from yikatong.catalog.service import standard_book
from yikatong.core.db import KEYS_FROM
from yikatong.core.settings import get_settings
from yikatong.interception.tables import PLATFORM_TABLES, RULE_TABLES
from yikatong.sharing import lookup
from yikatong.sharing.datasets import BY_CODE
from yikatong.sharing.models import SharedSnapshot
from yikatong.sharing.store import snapshot_path

CHUNK = 900
# A focus with more people and cards than this (a department list) reads the shared data sets in one
# set-based pass over their Parquet files instead of looking each key up.
LOOKUP_MAX = 20_000
Progress = Callable[[str, int, int], None]

# How each platform table is read. Text and date columns that may be NULL are read as text with ''
# for NULL: ADBC's SQLite driver guesses a column's type from its first rows, and a NULL there would
# make it expect integers. The DuckDB side turns '' back into NULL and casts every column.
LIVE = ("办理中", "已通过", "待支付")
_LIVE = f"status IN {LIVE}"
EXPORTS: dict[str, str] = {
    "applications": (
        "SELECT id AS application_id, number, item_code, person_id, household_id, region_code, period, "
        "CAST(period_start AS VARCHAR) AS period_start, CAST(period_end AS VARCHAR) AS period_end, basis, "
        # period_standard_fen is filled in DuckDB from item_standards (see _price_periods)
        "quantity_centi, standard_fen, standard_fen AS period_standard_fen, amount_fen, status, "
        "COALESCE(stage, '') AS stage, "
        "CAST(created_at AS VARCHAR) AS created_at FROM applications"),
    "persons": (
        "SELECT id AS person_id, id_number_hash AS id_hash, id_number_masked AS id_masked, name, gender, "
        "CAST(birth_date AS VARCHAR) AS birth_date, region_code, household_id FROM persons"),
    "households": "SELECT id AS household_id, code, region_code FROM households",
    "cards": (
        "SELECT card_number, person_id, bank_code, bank_account_hash AS account_hash, "
        "bank_account_masked AS account_masked, status, CAST(issued_on AS VARCHAR) AS issued_on FROM cards"),
    "proxy_holdings": (
        "SELECT person_id, holder_id_number_hash AS holder_id_hash, holder_relation, "
        "CAST(valid_from AS VARCHAR) AS valid_from, COALESCE(CAST(valid_until AS VARCHAR), '') AS valid_until "
        "FROM proxy_holdings"),
    "items": (
        "SELECT code AS item_code, name, basis, standard_fen, frequency, "
        "CASE WHEN means_tested THEN 1 ELSE 0 END AS means_tested, min_age, max_age FROM subsidy_items"),
    "item_standards": (
        "SELECT id AS standard_id, item_code, COALESCE(county_code, '') AS county_code, "
        "CAST(valid_from AS VARCHAR) AS valid_from, standard_fen FROM item_standards"),
    "item_exclusions": "SELECT item_code, other_code FROM item_exclusions",
}
_WHERE = {"applications": _LIVE}


def _cast(table: str, column: str, type_: str) -> str:
    if type_ == "VARCHAR":
        return f"CAST({column} AS VARCHAR) AS {column}"
    if type_ in ("DATE", "TIMESTAMP"):
        return f"TRY_CAST(NULLIF(CAST({column} AS VARCHAR), '') AS {type_}) AS {column}"
    if type_ == "BOOLEAN":
        return f"CAST(CAST({column} AS INTEGER) <> 0 AS BOOLEAN) AS {column}"
    return f"CAST({column} AS {type_}) AS {column}"


@dataclass
class Snapshot:
    """An open DuckDB connection holding the rule tables."""

    con: duckdb.DuckDBPyConnection
    focus: tuple[int, ...] | None  # None: the whole city
    shared: dict[str, list[int]] = field(default_factory=dict)  # data set -> snapshot ids in use
    counts: dict[str, int] = field(default_factory=dict)  # table -> rows
    kept: str = ""  # how a city snapshot was had: "unchanged", "refreshed", "rebuilt" (kept file), "" (exported)
    release: Callable[[], None] | None = None  # lets go of the kept file (interception.kept)
    reused: bool = False  # a focus on this thread's reused connection (see _kept_focus_connection): not closed

    def close(self) -> None:
        try:
            if not self.reused:
                self.con.close()
        finally:
            if self.release is not None:
                self.release()
                self.release = None


def connect_duckdb(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a memory ceiling (YKT_DUCKDB_MEMORY, default 4GB; DuckDB's own default
    is 80 % of the machine, too much beside the web server and the database), spilling to
    YKT_DATA_DIR/duckdb-tmp beyond it, at most YKT_DUCKDB_TEMP_MAX (default 20GB) of disk."""
    settings = get_settings()
    spill = settings.data_dir / "duckdb-tmp"
    spill.mkdir(parents=True, exist_ok=True)
    # No replacement scans: a name in a rule's FROM must be a table of the snapshot, never a Python
    # variable that happens to have that name (the rule validator refuses such names too).
    config: dict[str, Any] = {"memory_limit": settings.duckdb_memory, "temp_directory": str(spill),
                              "max_temp_directory_size": settings.duckdb_temp_max,
                              "python_enable_replacements": False}
    if threads:
        config["threads"] = threads
    return duckdb.connect(":memory:", config=config)


@contextmanager
def time_limit(con: duckdb.DuckDBPyConnection, seconds: float) -> Iterator[None]:
    """Interrupt whatever `con` runs after `seconds` (DuckDB has no statement timeout of its own): the
    query then raises duckdb.InterruptException (see `limit_message`)."""
    timer = threading.Timer(seconds, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def limit_message(error: Exception, seconds: float) -> str | None:
    """The Chinese message for a rule stopped by a limit (time, memory, temporary disk), else None."""
    if isinstance(error, duckdb.InterruptException):
        return f"规则运行超过{seconds:g}秒，已停止：请缩小范围或改写规则"
    if isinstance(error, duckdb.OutOfMemoryException):
        settings = get_settings()
        if "max_temp_directory_size" in str(error):
            return (f"规则运行所需的临时磁盘超过上限（{settings.duckdb_temp_max}），已停止：请缩小范围或改写规则")
        return f"规则运行所需内存超过上限（{settings.duckdb_memory}），已停止：请缩小范围或改写规则"
    return None


def cast_columns(name: str, extra: Sequence[tuple[str, str]] = ()) -> str:
    """The SELECT list that turns an export of `name` (text and numbers) into the rule table's types;
    `extra` (column, type) are kept columns beyond the rule table's (interception.kept)."""
    return ", ".join([_cast(name, c.name, c.type) for c in RULE_TABLES[name].columns]
                     + [_cast(name, column, type_) for column, type_ in extra])


def _load_platform_table(con: duckdb.DuckDBPyConnection, name: str, raw: pa.Table) -> int:
    con.register("raw_export", raw)
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT {cast_columns(name)} FROM raw_export").fetchall()
    con.unregister("raw_export")
    return count_rows(con, name)


def _price_periods(con: duckdb.DuckDBPyConnection, only: str = "") -> None:
    """Each application's period_standard_fen: the standard in force on its period's first day —
    the county's own standard where it has one in force, else the city-wide one (the item's current
    standard for an item with no dated standard), as workflow prices a claim. Worked out once per
    item, county and period (a few thousand), then written only where it differs from the price the
    claim was stored with (normally nowhere), so a city of millions is not copied. `only`: a SELECT of
    the application ids to price (the kept snapshot prices only the rows it has just written)."""
    con.execute("UPDATE item_standards SET county_code = NULL WHERE county_code = ''").fetchall()
    apps = f"(SELECT * FROM applications WHERE application_id IN ({only}))" if only else "applications"
    con.execute(f"""
        CREATE TEMP TABLE period_prices AS
        WITH s AS (
          SELECT * FROM item_standards
          QUALIFY row_number() OVER (PARTITION BY item_code, county_code, valid_from ORDER BY standard_id DESC) = 1
        ), k AS (
          SELECT DISTINCT item_code, left(region_code, 6) AS county, period_start FROM {apps}
        )
        SELECT k.item_code, k.county, k.period_start,
               COALESCE(c.standard_fen, w.standard_fen, i.standard_fen) AS standard_fen
        FROM k
        ASOF LEFT JOIN (SELECT * FROM s WHERE county_code IS NOT NULL) c
          ON c.item_code = k.item_code AND c.county_code = k.county AND k.period_start >= c.valid_from
        ASOF LEFT JOIN (SELECT * FROM s WHERE county_code IS NULL) w
          ON w.item_code = k.item_code AND k.period_start >= w.valid_from
        LEFT JOIN items i ON i.item_code = k.item_code""").fetchall()
    restrict = f" AND a.application_id IN ({only})" if only else ""
    con.execute(f"""
        UPDATE applications a SET period_standard_fen = p.standard_fen
        FROM period_prices p
        WHERE p.item_code = a.item_code AND p.county = left(a.region_code, 6) AND p.period_start = a.period_start
          AND a.period_standard_fen IS DISTINCT FROM p.standard_fen{restrict}""").fetchall()
    con.execute("DROP TABLE period_prices").fetchall()


def count_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    # fetchall, not fetchone: DuckDB refuses new work while a result is only partly read
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def _empty_arrow(name: str) -> pa.Table:
    return pa.table({c.name: pa.array([], pa.string()) for c in RULE_TABLES[name].columns})


def _adbc_connect(engine: Engine):
    url = engine.url
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            import adbc_driver_sqlite.dbapi as adbc

            return adbc.connect(":memory:")
        return _SQLiteInChild(url.database)
    import adbc_driver_postgresql.dbapi as adbc

    plain = url.set(drivername="postgresql")
    return adbc.connect(plain.render_as_string(hide_password=False))


# ADBC's SQLite driver links its own copy of SQLite. Two copies in one process do not see each
# other's POSIX locks: a connection of the driver's copy takes itself for the first one, rebuilds
# the WAL index under this process's open connections (their uncommitted pages are lost; SIGBUS
# when the index had grown) and, closing, checkpoints and deletes the WAL. So a SQLite file is read
# through ADBC in a child process (a separate process is an ordinary concurrent reader), which
# hands each result back as an Arrow IPC file.


def _sqlite_reader(path: str, pipe) -> None:
    """Child process: run the parent's queries read-only, write each result to the file it names."""
    from pathlib import Path

    import adbc_driver_sqlite.dbapi as adbc

    with adbc.connect(Path(path).resolve().as_uri() + "?mode=ro") as con:
        while (request := pipe.recv()) is not None:
            sql, target = request
            try:
                with con.cursor() as cursor:
                    cursor.execute(sql)
                    table = cursor.fetch_arrow_table()
                with pa.OSFile(target, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                    writer.write_table(table)
                pipe.send(None)
            except Exception as e:  # noqa: BLE001 - reported to the parent, which raises it
                pipe.send(f"{type(e).__name__}: {e}")


class _SQLiteInChild:
    """An ADBC-like connection (cursor, execute, fetch_arrow_table, fetchall) to a SQLite file,
    served by a child process."""

    def __init__(self, path: str):
        import multiprocessing
        import tempfile

        context = multiprocessing.get_context("spawn")  # never fork a process with open connections
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_sqlite_reader, args=(path, child), daemon=True)
        self._process.start()
        child.close()
        # results travel through memory-backed files where the system has them (/dev/shm): a city's
        # applications are about a gigabyte, which a disk would write and read back for nothing
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self._dir = tempfile.mkdtemp(prefix="ykt-adbc-", dir=shm)
        self._count = 0

    def __enter__(self) -> _SQLiteInChild:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        import shutil

        if self._process.is_alive():
            self._pipe.send(None)
            self._process.join(60)
        self._pipe.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def commit(self) -> None:  # read-only: nothing to commit
        pass

    def cursor(self) -> _ChildCursor:
        return _ChildCursor(self)

    def query(self, sql: str) -> pa.Table:
        self._count += 1
        target = os.path.join(self._dir, f"{self._count}.arrow")
        self._pipe.send((sql, target))
        error = self._pipe.recv()
        if error:
            raise RuntimeError(error)
        # mapped, not copied; the map lives as long as the table's buffers (the name goes at once)
        table = pa.ipc.open_file(pa.memory_map(target, "r")).read_all()
        os.remove(target)
        return table


class _ChildCursor:
    def __init__(self, connection: _SQLiteInChild):
        self._connection = connection
        self._table: pa.Table | None = None

    def __enter__(self) -> _ChildCursor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._table = None

    def execute(self, sql: str) -> None:
        self._table = self._connection.query(sql)

    def fetch_arrow_table(self) -> pa.Table:
        return self._table

    def fetchall(self) -> list[tuple]:
        columns = [c.to_pylist() for c in self._table.columns]
        return list(zip(*columns, strict=True)) if columns else []


def city_snapshot(engine: Engine, shared: dict[str, list[SharedSnapshot]], *, threads: int | None = None,
                  progress: Progress | None = None) -> Snapshot:
    """Every live application and the whole registry and catalogue (committed data), with the current
    shared data: the kept snapshot under YKT_DATA_DIR refreshed by what changed since the last run
    (interception.kept), or, where none can be kept, a whole export into memory."""
    from yikatong.interception import kept

    snap = kept.open_city(engine, threads=threads, progress=progress)
    if snap is None:
        return export_city(engine, shared, threads=threads, progress=progress)
    try:
        _attach_shared(snap, shared, progress=progress, step0=len(EXPORTS),
                       steps=len(EXPORTS) + len(shared_tables()))
    except BaseException:
        snap.close()
        raise
    return snap


def shared_tables() -> list[str]:
    return [name for name, table in RULE_TABLES.items() if table.shared]


def export_city(engine: Engine, shared: dict[str, list[SharedSnapshot]], *, threads: int | None = None,
                progress: Progress | None = None) -> Snapshot:
    """Export every live application and the whole registry and catalogue (committed data) into an
    in-memory DuckDB database."""
    con = connect_duckdb(threads)
    snap = Snapshot(con, None)
    steps = len(EXPORTS) + len(RULE_TABLES) - len(PLATFORM_TABLES)
    with _adbc_connect(engine) as adbc_con:
        for done, (name, sql) in enumerate(EXPORTS.items(), 1):
            where = f" WHERE {_WHERE[name]}" if name in _WHERE else ""
            with adbc_con.cursor() as cursor:
                cursor.execute(sql + where)
                raw = cursor.fetch_arrow_table()
            snap.counts[name] = _load_platform_table(con, name, raw)
            del raw
            if progress:
                progress("导出平台数据", done, steps)
    _price_periods(con)
    _attach_shared(snap, shared, progress=progress, step0=len(EXPORTS), steps=steps)
    return snap


def _rows_in(session: Session, sql: str, column: str, keys: Iterable[Any]) -> list[dict[str, Any]]:
    """Rows of `sql` (one table, no WHERE) whose `column` is one of `keys`: one IN (...) per chunk, on
    the column alone, so the planner can only take that column's index — with a second condition
    (say on status) SQLite may prefer that condition's index and walk every live claim per chunk. Many
    keys (a batch at the pre-payment gate: a million) go in one statement with one parameter (as
    core.db.in_keys): a thousand statements would cost more than the rows."""
    keys = sorted({k for k in keys if k is not None})
    rows: list[dict[str, Any]] = []
    if len(keys) > KEYS_FROM:
        if session.get_bind().dialect.name == "postgresql":
            result = session.execute(text(f"{sql} WHERE {column} = ANY(:keys)"), {"keys": keys})
        else:
            result = session.execute(text(f"{sql} WHERE {column} IN (SELECT value FROM json_each(:keys))"),
                                     {"keys": json.dumps(keys)})
        names = list(result.keys())
        return [dict(zip(names, r, strict=True)) for r in result]
    for start in range(0, len(keys), CHUNK):
        part = keys[start:start + CHUNK]
        marks = ", ".join(f":k{i}" for i in range(len(part)))
        result = session.execute(text(f"{sql} WHERE {column} IN ({marks})"), {f"k{i}": k for i, k in enumerate(part)})
        names = list(result.keys())
        rows.extend(dict(zip(names, r, strict=True)) for r in result)
    return rows


def _live_rows(session: Session, column: str, keys: Iterable[Any]) -> list[dict[str, Any]]:
    """Live applications by an indexed column (id, person_id or household_id); the status is checked
    here, not in SQL (see _rows_in)."""
    return [r for r in _rows_in(session, EXPORTS["applications"], column, keys) if r["status"] in LIVE]


def _arrow(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    if not rows:
        return _empty_arrow(name)
    columns = {}
    for name in rows[0]:  # column by column: a focus of a million claims has millions of values
        values = [row[name] for row in rows]
        if not all(v is None or isinstance(v, int) for v in values):  # bool is an int
            values = [None if v is None else v if isinstance(v, int) else str(v) for v in values]
        columns[name] = values
    return pa.table(columns)


def focus_rows(session: Session, focus: Sequence[int]) -> dict[str, list[dict[str, Any]]]:
    """The platform rows of a focus set, read through `session` by primary or indexed keys only: the
    applications themselves; every live claim of their claimants and of their households (and of the
    other households those claims name), so a rule comparing claims sees both sides and a claim this
    one conflicts with is judged on all of its own; the people on those claims and in those
    households, their cards and every card sharing an account with the claimants'; proxies; the
    catalogue."""
    targets = _live_rows(session, "id", focus)
    persons0 = {r["person_id"] for r in targets}
    person_rows0 = _rows_in(session, EXPORTS["persons"], "id", persons0)
    households = {r["household_id"] for r in targets} | {r["household_id"] for r in person_rows0}
    apps = {r["application_id"]: r for r in targets}
    for r in _live_rows(session, "person_id", persons0) + _live_rows(session, "household_id", households):
        apps[r["application_id"]] = r
    more = {r["household_id"] for r in apps.values()} - households
    if more:  # a claimant's claim filed under another household: that household's claims too
        households |= more
        for r in _live_rows(session, "household_id", more):
            apps[r["application_id"]] = r
    cards0 = _rows_in(session, EXPORTS["cards"], "person_id", persons0)
    cards = {r["card_number"]: r for r in cards0}
    for r in _rows_in(session, EXPORTS["cards"], "bank_account_hash", {c["account_hash"] for c in cards0}):
        cards[r["card_number"]] = r
    person_ids = persons0 | {r["person_id"] for r in apps.values()} | {r["person_id"] for r in cards.values()}
    persons = {r["person_id"]: r for r in person_rows0}
    for r in _rows_in(session, EXPORTS["persons"], "household_id", households) + _rows_in(
            session, EXPORTS["persons"], "id", person_ids - set(persons)):
        persons[r["person_id"]] = r
    households |= {r["household_id"] for r in persons.values()}
    for r in _rows_in(session, EXPORTS["cards"], "person_id", set(persons) - persons0):
        cards[r["card_number"]] = r
    return {
        "applications": list(apps.values()),
        "persons": list(persons.values()),
        "households": _rows_in(session, EXPORTS["households"], "id", households),
        "cards": list(cards.values()),
        "proxy_holdings": _rows_in(session, EXPORTS["proxy_holdings"], "person_id", set(persons)),
        "items": [dict(r._mapping) for r in session.execute(text(EXPORTS["items"]))],
        "item_standards": [dict(r._mapping) for r in session.execute(text(EXPORTS["item_standards"]))],
        "item_exclusions": [dict(r._mapping) for r in session.execute(text(EXPORTS["item_exclusions"]))],
    }


def focus_snapshot(session: Session, application_ids: Sequence[int],
                   shared: dict[str, list[SharedSnapshot]], *, threads: int | None = None) -> Snapshot:
    """The applications in `application_ids` and everything a rule may compare them with, read
    through `session` (so uncommitted claims count). A claim or a few (the counter, an API
    submission, a batch at the gate) are looked up by key and screened on this thread's kept DuckDB;
    a department list of thousands reads the shared data sets in one pass on a DuckDB of its own."""
    focus = tuple(sorted(set(application_ids)))
    tables = focus_rows(session, focus)
    _price_in_python(session, tables)
    keys = {"id_hash": {r["id_hash"] for r in tables["persons"]}
            | {r["holder_id_hash"] for r in tables["proxy_holdings"]},
            "card_number": {r["card_number"] for r in tables["cards"]}}
    small = sum(len(v) for v in keys.values()) <= LOOKUP_MAX and threads is None
    snap = Snapshot(_kept_focus_connection() if small else connect_duckdb(threads), focus, reused=small)
    for name, rows in tables.items():
        _put(snap, name, _arrow(name, rows))
    _put(snap, "focus", pa.table({"application_id": pa.array(focus, pa.int64())}))
    if small:
        _look_up_shared(snap, shared, keys)
    else:
        _attach_shared(snap, shared, cut=True)
    return snap


def _price_in_python(session: Session, tables: dict[str, list[dict[str, Any]]]) -> None:
    """Each focus application's period_standard_fen, priced as workflow prices a claim (the standard
    in force on the period's first day, the county's own first; see _price_periods for a city)."""
    book = standard_book(session, {r["item_code"] for r in tables["applications"]})
    current = {r["item_code"]: r["standard_fen"] for r in tables["items"]}
    for row in tables["applications"]:
        start = date.fromisoformat(str(row["period_start"])[:10])
        found = book.standard(row["item_code"], row["region_code"], start)
        row["period_standard_fen"] = found if found is not None else current.get(row["item_code"])


def _put(snap: Snapshot, name: str, raw: pa.Table) -> None:
    """A focus table: refilled in place on the kept connection, or created on a fresh one."""
    if snap.reused:
        _refill(snap.con, name, raw)
        snap.counts[name] = raw.num_rows
    elif name == "focus":
        snap.con.execute("CREATE TABLE focus AS SELECT UNNEST(?::BIGINT[]) AS application_id",
                         [raw.column("application_id").to_pylist()]).fetchall()
    else:
        snap.counts[name] = _load_platform_table(snap.con, name, raw)


_focus_local = threading.local()
_every_kept: set[duckdb.DuckDBPyConnection] = set()  # of all threads, closed at exit (below)
_every_kept_lock = threading.Lock()


@atexit.register
def _close_kept() -> None:
    """Close every thread's kept DuckDB before the interpreter goes down: one left to be destroyed
    with a worker thread's locals during shutdown aborts the process ("terminate called...")."""
    with _every_kept_lock:
        for con in _every_kept:
            con.close()
        _every_kept.clear()


@dataclass
class _KeptFocus:
    """This thread's DuckDB for screening a few claims, kept between claims with its tables: a new
    DuckDB and its twenty tables cost more than the rules themselves. Each table remembers what it
    holds, so a claim rewrites only the tables whose rows differ (most shared data sets are empty for
    most claims, and the catalogue changes seldom)."""

    key: tuple
    con: duckdb.DuckDBPyConnection
    holds: dict[str, pa.Table | None] = field(default_factory=dict)  # table -> the rows it holds


def _kept_focus_connection() -> duckdb.DuckDBPyConnection:
    settings = get_settings()
    key = (str(settings.data_dir), settings.duckdb_memory, settings.duckdb_temp_max)
    kept: _KeptFocus | None = getattr(_focus_local, "kept", None)
    if kept is not None and kept.key == key:
        return kept.con
    con = connect_duckdb(1)
    for name, table in RULE_TABLES.items():
        con.execute(f"CREATE TABLE {name} ({', '.join(f'{c.name} {c.type}' for c in table.columns)})").fetchall()
    con.execute("CREATE TABLE focus (application_id BIGINT)").fetchall()
    with _every_kept_lock:
        if kept is not None:
            kept.con.close()
            _every_kept.discard(kept.con)
        _every_kept.add(con)
    _focus_local.kept = _KeptFocus(key, con, dict.fromkeys((*RULE_TABLES, "focus")))  # all empty
    return con


def _refill(con: duckdb.DuckDBPyConnection, name: str, raw: pa.Table) -> None:
    kept: _KeptFocus = _focus_local.kept
    held = kept.holds.get(name)
    if (held is None and name in kept.holds and not raw.num_rows) or (held is not None and held.equals(raw)):
        return
    kept.holds.pop(name, None)  # unknown until the refill succeeds
    con.execute(f"DELETE FROM {name}").fetchall()
    if raw.num_rows:
        con.register("raw_rows", raw)
        columns = ("application_id" if name == "focus"
                   else ", ".join(_cast(name, c.name, c.type) for c in RULE_TABLES[name].columns))
        con.execute(f"INSERT INTO {name} SELECT {columns} FROM raw_rows").fetchall()
        con.unregister("raw_rows")
    kept.holds[name] = raw if raw.num_rows else None


def _look_up_shared(snap: Snapshot, shared: dict[str, list[SharedSnapshot]], keys: dict[str, set[str]]) -> None:
    """One table per shared data set holding only the rows of the snapshot's people and cards (and
    the coverage rows), found through each delivery's indexed look-up file."""
    for table in RULE_TABLES.values():
        if not table.shared:
            continue
        dataset = BY_CODE[table.name]
        snaps = shared.get(table.name, [])
        snap.shared[table.name] = [s.id for s in snaps]
        wanted = {c: keys["card_number"] if c == "card_number" else keys["id_hash"] for c in dataset.lookup_keys}
        stored = dataset.stored_columns
        rows = [(*row, s.id) for s in snaps for row in lookup.find_rows(dataset, snapshot_path(s), wanted)]
        raw = (pa.table({c: pa.array([r[i] for r in rows]) for i, c in enumerate((*stored, "snapshot_id"))})
               if rows else _empty_arrow(table.name))
        _put(snap, table.name, raw)


def _attach_shared(snap: Snapshot, shared: dict[str, list[SharedSnapshot]], *, cut: bool = False,
                   progress: Progress | None = None, step0: int = 0, steps: int = 0) -> None:
    """One table or view per shared data set (an empty one if nothing was delivered yet). For a
    focus set the rows are cut to the people in the snapshot: every `*_hash` column is matched
    against persons and proxy holders, the card registry also by card number."""
    con = snap.con
    done = step0
    for table in RULE_TABLES.values():
        if not table.shared:
            continue
        snaps = shared.get(table.name, [])
        snap.shared[table.name] = [s.id for s in snaps]
        columns = ", ".join(c.name for c in table.columns if c.name != "snapshot_id")
        if snaps:
            source = " UNION ALL ".join(
                f"SELECT {columns}, {s.id}::BIGINT AS snapshot_id FROM read_parquet('{_quoted(snapshot_path(s))}')"
                for s in snaps)
        else:
            source = "SELECT " + ", ".join(f"CAST(NULL AS {c.type}) AS {c.name}" for c in table.columns) + " LIMIT 0"
        if cut:
            hashes = [c.name for c in table.columns if c.name.endswith("_hash")]
            keys = ("SELECT id_hash FROM persons UNION SELECT holder_id_hash FROM proxy_holdings")
            conditions = [f"{h} IN ({keys})" for h in hashes]
            if "card_number" in table.column_names:
                conditions.append("card_number IN (SELECT card_number FROM cards)")
            cut_sql = f"SELECT * FROM ({source}) s WHERE {' OR '.join(conditions)}"
            dataset = BY_CODE[table.name]
            if dataset.coverage:
                # plus one row per area (county), so a rule still sees which areas the delivery covers
                area = f"left({dataset.coverage[0]}, {dataset.coverage[1]})"
                cut_sql += (f" UNION SELECT * FROM ({source}) s QUALIFY row_number() OVER "
                            f"(PARTITION BY {area} ORDER BY {dataset.sort_key}) = 1")
            con.execute(f"CREATE TABLE {table.name} AS {cut_sql}").fetchall()
            snap.counts[table.name] = count_rows(con, table.name)
        else:
            con.execute(f"CREATE VIEW {table.name} AS {source}").fetchall()
            snap.counts[table.name] = sum(s.rows for s in snaps)
        done += 1
        if progress:
            progress("挂载共享数据", done, steps)
    assert set(BY_CODE) <= set(snap.shared)


def _quoted(path) -> str:
    return str(path).replace("'", "''")
