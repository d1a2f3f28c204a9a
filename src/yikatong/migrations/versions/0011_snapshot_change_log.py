"""The change log of the kept snapshot: triggers note every row of the tables the city run reads that
is inserted, deleted, or updated in a column the snapshot holds, so the snapshot is refreshed by
what changed instead of being exported whole.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

`snapshot_changes` (seq, table, row id) is filled by the triggers on both engines, whoever writes
(the services, Core bulk statements, COPY on PostgreSQL, the synthetic city); the kept snapshot
(interception.kept) reads it, applies it and deletes what it applied. `snapshot_state` holds one
token: a kept snapshot is fresh only if it knows the token, and anything that bypasses the log (a
TRUNCATE, a bulk load with the triggers off) changes it, so a snapshot built before is rebuilt.

SQLite: row triggers. PostgreSQL: inserts and deletes by statement triggers with transition tables,
one INSERT .. SELECT per statement (a COPY of 100,000 rows logs them in one statement, not 100,000
calls); updates by a row trigger. On both, an update fires only when it sets a watched column and
is logged only when a value really changed: the frequent updates of other columns (open flags,
reminders) cost nothing.
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

# The columns of each table the kept snapshot holds (interception.snapshot.EXPORTS reads them; a
# test holds the two lists equal). A later change of EXPORTS needs a migration that recreates the
# triggers with the new lists.
WATCHED = {
    "applications": ("number", "item_code", "person_id", "household_id", "region_code", "period", "period_start",
                     "period_end", "basis", "quantity_centi", "standard_fen", "amount_fen", "status", "stage",
                     "created_at"),
    "persons": ("id_number_hash", "id_number_masked", "name", "gender", "birth_date", "region_code",
                "household_id"),
    "households": ("code", "region_code"),
    "cards": ("card_number", "person_id", "bank_code", "bank_account_hash", "bank_account_masked", "status",
              "issued_on"),
    "proxy_holdings": ("person_id", "holder_id_number_hash", "holder_relation", "valid_from", "valid_until"),
}


def _log(table: str, row: str) -> str:
    return f"INSERT INTO snapshot_changes (table_name, row_id) VALUES ('{table}', {row}.id);"


def upgrade() -> None:
    op.create_table(
        'snapshot_changes',
        sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('table_name', sa.String(length=32), nullable=False),
        sa.Column('row_id', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('seq', name=op.f('pk_snapshot_changes')),
        sqlite_autoincrement=True,  # a seq is never reused, even after the log is emptied
    )
    op.create_table(
        'snapshot_state',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('token', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_snapshot_state')),
    )
    # random: a kept snapshot made on another database (one this data directory served before) never
    # matches it
    op.execute(f"INSERT INTO snapshot_state (id, token) VALUES (1, '{uuid.uuid4().hex}')")
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("""
            CREATE FUNCTION ykt_snapshot_log_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              INSERT INTO snapshot_changes (table_name, row_id) SELECT TG_TABLE_NAME, id FROM new_rows;
              RETURN NULL;
            END $$""")
        op.execute("""
            CREATE FUNCTION ykt_snapshot_log_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              INSERT INTO snapshot_changes (table_name, row_id) SELECT TG_TABLE_NAME, id FROM old_rows;
              RETURN NULL;
            END $$""")
        op.execute("""
            CREATE FUNCTION ykt_snapshot_log_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              UPDATE snapshot_state SET token = md5(random()::text || clock_timestamp()::text);
              RETURN NULL;
            END $$""")
        op.execute("""
            CREATE FUNCTION ykt_snapshot_log_updated() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              INSERT INTO snapshot_changes (table_name, row_id) VALUES (TG_TABLE_NAME, NEW.id);
              RETURN NULL;
            END $$""")
        for table, columns in WATCHED.items():
            new = ", ".join(f"NEW.{c}" for c in columns)
            old = ", ".join(f"OLD.{c}" for c in columns)
            op.execute(f"CREATE TRIGGER snapshot_log_{table}_ins AFTER INSERT ON {table} REFERENCING NEW TABLE AS "
                       f"new_rows FOR EACH STATEMENT EXECUTE FUNCTION ykt_snapshot_log_inserted()")
            op.execute(f"CREATE TRIGGER snapshot_log_{table}_del AFTER DELETE ON {table} REFERENCING OLD TABLE AS "
                       f"old_rows FOR EACH STATEMENT EXECUTE FUNCTION ykt_snapshot_log_deleted()")
            # a row trigger on the watched columns only: the many updates of other columns (open_flags,
            # reminders, card flags) do not fire it at all, and an unchanged value is not logged
            op.execute(f"CREATE TRIGGER snapshot_log_{table}_upd AFTER UPDATE OF {', '.join(columns)} ON {table} "
                       f"FOR EACH ROW WHEN (ROW({old}) IS DISTINCT FROM ROW({new})) "
                       f"EXECUTE FUNCTION ykt_snapshot_log_updated()")
            op.execute(f"CREATE TRIGGER snapshot_log_{table}_trunc AFTER TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION ykt_snapshot_log_truncated()")
    else:
        for table, columns in WATCHED.items():
            changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)
            op.execute(f"CREATE TRIGGER snapshot_log_{table}_ins AFTER INSERT ON {table} BEGIN {_log(table, 'NEW')} END")
            op.execute(f"CREATE TRIGGER snapshot_log_{table}_del AFTER DELETE ON {table} BEGIN {_log(table, 'OLD')} END")
            op.execute(f"CREATE TRIGGER snapshot_log_{table}_upd AFTER UPDATE OF id, {', '.join(columns)} ON {table} "
                       f"WHEN OLD.id IS NOT NEW.id OR {changed} BEGIN {_log(table, 'OLD')} {_log(table, 'NEW')} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in WATCHED:
            for kind in ("ins", "del", "upd", "trunc"):
                op.execute(f"DROP TRIGGER IF EXISTS snapshot_log_{table}_{kind} ON {table}")
        for name in ("inserted", "deleted", "updated", "truncated"):
            op.execute(f"DROP FUNCTION IF EXISTS ykt_snapshot_log_{name}()")
    else:
        for table in WATCHED:
            for kind in ("ins", "del", "upd"):
                op.execute(f"DROP TRIGGER IF EXISTS snapshot_log_{table}_{kind}")
    op.drop_table('snapshot_state')
    op.drop_table('snapshot_changes')
