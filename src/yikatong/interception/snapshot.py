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

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from yikatong.core.settings import get_settings
from yikatong.interception.tables import PLATFORM_TABLES, RULE_TABLES
from yikatong.sharing.datasets import BY_CODE
from yikatong.sharing.models import SharedSnapshot
from yikatong.sharing.store import snapshot_path

CHUNK = 900
# Shared data sets whose coverage rules read (ID_NOT_IN_HUKOU flags only counties the hukou delivery
# covers): a focus snapshot keeps one row per county of these besides the rows of its people.
COVERAGE = {"hukou": "left(region_code, 6)"}
Progress = Callable[[str, int, int], None]

# How each platform table is read. Text and date columns that may be NULL are read as text with ''
# for NULL: ADBC's SQLite driver guesses a column's type from its first rows, and a NULL there would
# make it expect integers. The DuckDB side turns '' back into NULL and casts every column.
_LIVE = "status IN ('办理中', '已通过', '待支付')"
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

    def close(self) -> None:
        try:
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
    keys = sorted({k for k in keys if k is not None})
    rows: list[dict[str, Any]] = []
    for start in range(0, len(keys), CHUNK):
        part = keys[start:start + CHUNK]
        marks = ", ".join(f":k{i}" for i in range(len(part)))
        glue = " AND " if " WHERE " in sql else " WHERE "
        result = session.execute(text(f"{sql}{glue}{column} IN ({marks})"), {f"k{i}": k for i, k in enumerate(part)})
        rows.extend(dict(r._mapping) for r in result)
    return rows


def _arrow(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    if not rows:
        return _empty_arrow(name)
    return pa.Table.from_pylist([{k: (None if v is None else str(v) if not isinstance(v, int | bool) else v)
                                  for k, v in row.items()} for row in rows])


def focus_snapshot(session: Session, application_ids: Sequence[int],
                   shared: dict[str, list[SharedSnapshot]], *, threads: int | None = None) -> Snapshot:
    """The applications in `application_ids` and everything a rule may compare them with, read
    through `session` (so uncommitted claims count)."""
    con = connect_duckdb(threads)
    snap = Snapshot(con, tuple(sorted(set(application_ids))))
    live_apps = f"SELECT * FROM ({EXPORTS['applications']}) x WHERE {_LIVE}"
    targets = _rows_in(session, live_apps, "application_id", snap.focus)
    persons0 = {r["person_id"] for r in targets}
    person_rows0 = _rows_in(session, EXPORTS["persons"], "id", persons0)
    households = {r["household_id"] for r in targets} | {r["household_id"] for r in person_rows0}
    apps = {r["application_id"]: r for r in targets}
    for r in _rows_in(session, live_apps, "person_id", persons0) + _rows_in(session, live_apps, "household_id",
                                                                            households):
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
    tables = {
        "applications": list(apps.values()),
        "persons": list(persons.values()),
        "households": _rows_in(session, EXPORTS["households"], "id", households),
        "cards": list(cards.values()),
        "proxy_holdings": _rows_in(session, EXPORTS["proxy_holdings"], "person_id", set(persons)),
        "items": [dict(r._mapping) for r in session.execute(text(EXPORTS["items"]))],
        "item_standards": [dict(r._mapping) for r in session.execute(text(EXPORTS["item_standards"]))],
        "item_exclusions": [dict(r._mapping) for r in session.execute(text(EXPORTS["item_exclusions"]))],
    }
    for name, rows in tables.items():
        snap.counts[name] = _load_platform_table(con, name, _arrow(name, rows))
    _price_periods(con)
    con.execute("CREATE TABLE focus AS SELECT UNNEST(?::BIGINT[]) AS application_id", [list(snap.focus)]).fetchall()
    _attach_shared(snap, shared, cut=True)
    return snap


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
            if table.name in COVERAGE:
                # plus one row per county, so a rule still sees which counties the delivery covers
                cut_sql += (f" UNION SELECT * FROM ({source}) s QUALIFY row_number() OVER "
                            f"(PARTITION BY {COVERAGE[table.name]} ORDER BY id_hash) = 1")
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
