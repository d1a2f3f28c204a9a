"""Database engine and sessions. SQLite is the embedded default, PostgreSQL production; same code."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, create_engine, event, insert, literal, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from yikatong.core.clock import as_utc
from yikatong.core.settings import get_settings

# Stable constraint names so Alembic migrations are identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """An instant: stored as naive UTC (`timestamp without time zone` on PostgreSQL, text on SQLite,
    as before), read back as an aware UTC datetime, so Python never compares naive with aware. A
    naive value written is taken to be UTC; an aware one in any zone is converted."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        # only instants take this type: `column + timedelta(...)` binds an interval
        return self if value is None or isinstance(value, datetime) else literal(value).type


def naive_utc(moment: datetime) -> datetime:
    """How the database keeps an instant: naive UTC (for COPY and raw SQL, which bypass UTCDateTime)."""
    return as_utc(moment).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    # Lets `name LIKE '王%'` use the plain index on persons.name (Chinese has no case to fold).
    cur.execute("PRAGMA case_sensitive_like=ON")
    cur.close()


def make_engine(url: str, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10)


@lru_cache
def engine() -> Engine:
    s = get_settings()
    return make_engine(s.database_url, s.sql_echo)


@lru_cache
def _factory() -> sessionmaker[Session]:
    return sessionmaker(bind=engine(), expire_on_commit=False)


_side_engines: dict[str, Engine] = {}
_side_lock = threading.Lock()


def side_engine(main: Engine) -> Engine:
    """A small pool of its own beside `main`, for short transactions that commit on their own while
    the caller's transaction stays open (the application-number counter on PostgreSQL). A request
    that already holds a connection of the main pool never waits for a second one from it: many
    such requests at once could starve the pool."""
    key = main.url.render_as_string(hide_password=False)
    with _side_lock:
        if key not in _side_engines:
            _side_engines[key] = create_engine(main.url, pool_size=2, max_overflow=8, pool_pre_ping=True)
        return _side_engines[key]


def reset_engine() -> None:
    if engine.cache_info().currsize:
        engine().dispose()
    engine.cache_clear()
    _factory.cache_clear()
    with _side_lock:
        for side in _side_engines.values():
            side.dispose()
        _side_engines.clear()


def new_session() -> Session:
    return _factory()()


@contextmanager
def transaction() -> Iterator[Session]:
    """One unit of work: commit on success, roll back everything on any error."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """`session.begin_nested()` that is a real savepoint on SQLite too.

    Python's sqlite3 module opens a transaction only before INSERT/UPDATE/DELETE; a SAVEPOINT
    issued while only SELECTs have run starts the transaction itself, and releasing it COMMITS —
    the caller's later rollback would then undo nothing. Opening the transaction first keeps the
    savepoint nested in the caller's unit of work, as it is on PostgreSQL.

    The transaction is opened IMMEDIATE (taking the write lock at once, waiting up to busy_timeout
    for it): a plain BEGIN reads first and upgrades to a write lock later, and SQLite refuses that
    upgrade at once with "database is locked" when another writer committed meanwhile."""
    connection = session.connection()
    if connection.dialect.name == "sqlite" and not connection.connection.dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    with session.begin_nested():
        yield


def create_database(server_url: str, prefix: str) -> str:
    """Create a fresh, uniquely named PostgreSQL database on the server of `server_url` (tests and
    benchmarks) and return its URL; drop it with drop_database."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    base = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop the database of `url`, closing whatever connections it still has."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    admin.dispose()


_COPY_FROM = 100  # rows: fewer go in one executemany
_RAW_FROM = 5_000  # rows: more go to SQLite's executemany as tuples, past SQLAlchemy's per-row parameters
KEYS_FROM = 2_000  # keys: more are sent as one parameter (in_keys) rather than chunks of IN (...)


def in_keys(session: Session, column: Any, keys: Iterable[Any]) -> Any:
    """`column IN keys` for many keys (a million) as one statement with one parameter: on PostgreSQL
    `= ANY(array)`, on SQLite `IN (SELECT value FROM json_each(json))`. Each engine looks the keys up
    through the column's index (or hashes them on a scan), where chunks of IN (...) would mean a
    thousand statements. Integer or text keys."""
    import json

    from sqlalchemy import BigInteger, String, bindparam, func, literal_column, select
    from sqlalchemy.dialects.postgresql import ARRAY

    values = sorted(set(keys))
    if session.get_bind().dialect.name == "postgresql":
        kind = String() if values and isinstance(values[0], str) else BigInteger()
        return column == func.any(bindparam("keys", values, type_=ARRAY(kind), unique=True))
    return column.in_(select(literal_column("value")).select_from(
        func.json_each(bindparam("keys", json.dumps(values), unique=True))).scalar_subquery())


def bulk_insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows in the session's transaction. PostgreSQL takes them through COPY: an
    executemany there is one statement per row (100,000 for a department list) and a multi-row
    INSERT .. VALUES makes psycopg re-parse 30,000 placeholders per statement. SQLite's executemany
    runs in C and is fast."""
    if not rows:
        return
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        if len(rows) < _RAW_FROM or not _sqlite_raw_insert(session, table, rows):
            session.execute(insert(table), rows)
        return
    if len(rows) < _COPY_FROM:
        session.execute(insert(table), rows)
        return
    import psycopg

    columns = list(rows[0])
    driver = session.connection().connection.dbapi_connection
    try:
        with driver.cursor() as cursor, cursor.copy(
                f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                # COPY bypasses UTCDateTime: instants go in as naive UTC like every other write
                copy.write_row([naive_utc(v) if isinstance(v, datetime) else v for v in (row[c] for c in columns)])
    except psycopg.errors.IntegrityError as e:
        # as SQLAlchemy would raise it, so callers see one kind of constraint error on both engines
        raise IntegrityError(f"COPY {table.name}", None, e) from e


def _sqlite_raw_insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> bool:
    """Many rows into SQLite as tuples, each value through its column type's own bind processing (as
    SQLAlchemy would do it, per column instead of per row). False when a column left out of the rows has
    a Python-side default (SQLAlchemy fills those in): the caller takes the ordinary way."""
    columns = list(rows[0])
    given = set(columns)
    if any(getattr(c, "default", None) is not None and c.name not in given for c in table.columns):
        return False
    dialect = session.get_bind().dialect
    processors = [table.c[name].type._cached_bind_processor(dialect) for name in columns]
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    connection = session.connection()
    for start in range(0, len(rows), 50_000):
        part = rows[start:start + 50_000]
        by_column = []
        for name, process in zip(columns, processors, strict=True):
            values = [row[name] for row in part]
            if process is not None:
                values = _processed(values, process)
            by_column.append(values)
        connection.exec_driver_sql(sql, list(zip(*by_column, strict=True)))
    return True


def _processed(values: list[Any], process: Any) -> list[Any]:
    """Each value through a bind processor, once per distinct value: a batch's rows share their instants
    and flags."""
    done: dict[Any, Any] = {}
    try:
        return [None if v is None else done[v] if v in done else done.setdefault(v, process(v)) for v in values]
    except TypeError:  # unhashable values (JSON)
        return [None if v is None else process(v) for v in values]


def insert_from_duckdb(session: Session, table: str, columns: list[str], con: Any, query: str) -> None:
    """Insert the rows of a DuckDB query (its columns in `columns` order, values as the database
    stores them: instants as naive UTC text) into `table`, in the session's transaction. PostgreSQL:
    COPY fed with DuckDB's own CSV (no Python object per value); SQLite: executemany of tuples."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        cursor = con.execute(query)
        while rows := cursor.fetchmany(50_000):
            connection.exec_driver_sql(sql, rows)
        return
    import os
    import tempfile

    import psycopg

    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    handle, path = tempfile.mkstemp(prefix="ykt-copy-", suffix=".csv", dir=shm)
    os.close(handle)
    try:
        quoted = path.replace("'", "''")
        con.execute(f"COPY ({query}) TO '{quoted}' (FORMAT csv, HEADER false)").fetchall()
        driver = connection.connection.dbapi_connection
        try:
            with driver.cursor() as cursor, cursor.copy(
                    f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)") as copy, open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
        except psycopg.errors.IntegrityError as e:
            raise IntegrityError(f"COPY {table}", None, e) from e
    finally:
        os.remove(path)


@contextmanager
def scratch_table(session: Session, name: str, columns: str) -> Iterator[Any]:
    """A temporary table in the session's transaction, e.g. `scratch_table(s, "answers", "order_id BIGINT,
    paid BOOLEAN")`, for set-based work on many rows (fill it with bulk_insert, then UPDATE .. FROM it).
    Yields a lightweight table object for bulk_insert; the table is gone afterwards on both engines."""
    from sqlalchemy import column, table

    session.execute(text(f"CREATE TEMPORARY TABLE {name} ({columns})"))
    try:
        yield table(name, *(column(c.split()[0]) for c in columns.split(",")))
    finally:
        session.execute(text(f"DROP TABLE IF EXISTS {name}"))
