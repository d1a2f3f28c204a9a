"""The change log behind the kept snapshot (migration 0011): which triggers must be there, the token a
kept snapshot must know, and pausing the log for a bulk load.

Triggers on the tables the city run reads write (seq, table, row id) into `snapshot_changes` on every
insert, delete and change of a watched column, on both engines and for every way of writing (ORM,
Core, COPY). Whatever bypasses them must change the token (`invalidate`), so that no snapshot built
before can be taken for fresh: a TRUNCATE does it by trigger on PostgreSQL, a bulk load that pauses
the log does it when it resumes.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, text

LOGGED_TABLES = ("applications", "persons", "households", "cards", "proxy_holdings")
_KINDS = {"sqlite": ("ins", "del", "upd"), "postgresql": ("ins", "del", "upd", "trunc")}


def trigger_names(dialect: str) -> list[str]:
    return [f"snapshot_log_{t}_{k}" for t in LOGGED_TABLES for k in _KINDS[dialect]]


def healthy(conn: Connection) -> bool:
    """Every trigger of the log is there and enabled (a migration that rebuilt a table, or a bulk
    load that died while the log was paused, may have left one out: then no snapshot may be kept)."""
    dialect = conn.dialect.name
    if dialect not in _KINDS:
        return False
    names = trigger_names(dialect)
    if dialect == "sqlite":
        found = conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE "
                                  "'snapshot_log_%'")).scalar_one()
        if found != len(names):
            return False
        present = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))}
        return set(names) <= present
    enabled = {r[0] for r in conn.execute(text(
        "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'snapshot_log_%' AND tgenabled <> 'D' AND NOT tgisinternal"))}
    return set(names) <= enabled


def token(conn: Connection) -> str:
    return conn.execute(text("SELECT token FROM snapshot_state WHERE id = 1")).scalar_one()


def new_token() -> str:
    return uuid.uuid4().hex


def invalidate(conn: Connection) -> None:
    """Every kept snapshot built so far is stale: it will be rebuilt whole (the log is emptied, it
    says nothing a rebuild does not read anyway)."""
    conn.execute(text("UPDATE snapshot_state SET token = :t WHERE id = 1"), {"t": new_token()})
    conn.execute(text("DELETE FROM snapshot_changes"))


def pause(conn: Connection) -> list[tuple[str, str]]:
    """Stop logging for a bulk load of millions of rows (a rebuild is cheaper than replaying them).
    Returns what `resume` needs; the caller commits. Until `resume`, `healthy` is False, so no
    snapshot is kept meanwhile, and a load that dies here leaves a database that is never served a
    stale snapshot (only a slower, whole one every run) until `resume` is called."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        saved = [(r[0], r[1]) for r in conn.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'snapshot_log_%'"))]
        for name, _sql in saved:
            conn.execute(text(f'DROP TRIGGER "{name}"'))
        return saved
    saved = [(r[0], r[1]) for r in conn.execute(text(
        "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE t.tgname LIKE 'snapshot_log_%' AND NOT t.tgisinternal"))]
    for name, table in saved:
        conn.execute(text(f'ALTER TABLE "{table}" DISABLE TRIGGER "{name}"'))
    return saved


def resume(conn: Connection, saved: list[tuple[str, str]]) -> None:
    """Log again after `pause`, and make every kept snapshot stale. The caller commits."""
    if conn.dialect.name == "sqlite":
        present = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))}
        for name, sql in saved:
            if name not in present:
                conn.exec_driver_sql(sql)  # as stored: no bind parameters to parse
    else:
        for name, table in saved:
            conn.execute(text(f'ALTER TABLE "{table}" ENABLE TRIGGER "{name}"'))
    invalidate(conn)
