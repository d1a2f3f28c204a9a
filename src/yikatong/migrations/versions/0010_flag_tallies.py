"""Flag tallies: counts of flags per township, item, rule, Beijing day and status, and the marks that
count flagged applications, so the interception statistics and the flags list of a city read a few
thousand rows instead of grouping every flag (interception.tallies keeps them exact at every write);
the index that finds a run's flags; and the flags list's indexes: (status, id, region, item) walked
newest first instead of (status, region) sorted, and (region, status) for a township's flags.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

The tallies of the flags already there are counted here, in the upgrade.
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

COLUMNS = "kind, region_code, item_code, rule_code, day, prev_day, status, count, amount_fen"


def _sql(pg: bool) -> tuple[str, str, str]:
    """(the Beijing day of raised_at, its month, the date that stands for 'no previous mark')."""
    if pg:
        return ("CAST(raised_at + INTERVAL '8 hours' AS date)", "to_char(raised_at + INTERVAL '8 hours', 'YYYY-MM')",
                "DATE '0001-01-01'")
    return "date(raised_at, '+8 hours')", "substr(date(raised_at, '+8 hours'), 1, 7)", "'0001-01-01'"


def _backfill() -> None:
    day, month, never = _sql(op.get_bind().dialect.name == "postgresql")
    # F per township; G per county and rule
    for kind, digits, rule in (("F", 9, "''"), ("G", 6, "rule_code")):
        zeros = "0" * (12 - digits)
        by_rule = ", rule_code" if kind == "G" else ""
        op.execute(f"""INSERT INTO flag_tallies ({COLUMNS})
            SELECT '{kind}', substr(region_code, 1, {digits}) || '{zeros}', item_code, {rule}, {day}, {never}, status,
                   count(*), sum(amount_fen)
            FROM flags GROUP BY substr(region_code, 1, {digits}), item_code{by_rule}, {day}, status""")
    # marks: A per township; R (per rule) and M (per month) per county
    for kind, digits, rule, part, amount in (("A", 9, "''", "app", "sum(a.amount_fen)"),
                                             ("R", 6, "rule_code", "app, rule", "0"),
                                             ("M", 6, "''", "app, month", "0")):
        zeros = "0" * (12 - digits)
        op.execute(f"""INSERT INTO flag_tallies ({COLUMNS})
            SELECT '{kind}', substr(a.region_code, 1, {digits}) || '{zeros}', a.item_code, m.rule, m.day,
                   COALESCE(m.prev, {never}), '', count(*), {amount}
            FROM (SELECT app, rule, day, LAG(day) OVER (PARTITION BY {part} ORDER BY day) AS prev
                  FROM (SELECT DISTINCT application_id AS app, {rule} AS rule, {month} AS month, {day} AS day
                        FROM flags) d) m
            JOIN applications a ON a.id = m.app
            GROUP BY substr(a.region_code, 1, {digits}), a.item_code, m.rule, m.day, COALESCE(m.prev, {never})""")


def upgrade() -> None:
    op.create_table(
        'flag_tallies',
        sa.Column('kind', sa.String(length=1), nullable=False),
        sa.Column('region_code', sa.String(length=12), nullable=False),
        sa.Column('item_code', sa.String(length=20), nullable=False),
        sa.Column('rule_code', sa.String(length=40), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('prev_day', sa.Date(), nullable=False),
        sa.Column('status', sa.String(length=4), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.Column('amount_fen', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'region_code', 'item_code', 'rule_code', 'day', 'prev_day', 'status',
                                name=op.f('pk_flag_tallies')),
        sqlite_with_rowid=False,
    )
    op.create_index('ix_flags_run', 'flags', ['run_id'], unique=False)
    op.drop_index('ix_flags_status_region', table_name='flags')
    op.create_index('ix_flags_status_id', 'flags', ['status', 'id', 'region_code', 'item_code'], unique=False)
    op.create_index('ix_flags_region', 'flags', ['region_code', 'status'], unique=False)
    _backfill()


def downgrade() -> None:
    op.drop_index('ix_flags_region', table_name='flags')
    op.drop_index('ix_flags_status_id', table_name='flags')
    op.create_index('ix_flags_status_region', 'flags', ['status', 'region_code'], unique=False)
    op.drop_index('ix_flags_run', table_name='flags')
    op.drop_table('flag_tallies')
