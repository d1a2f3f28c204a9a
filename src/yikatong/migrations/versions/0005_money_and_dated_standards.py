"""Money columns are 64-bit; items' standards are effective-dated (item_standards, seeded with each
item's standard as valid from 2000-01-01 city-wide); rule versions say why they were made and
built-in rules keep the parameters a supervisor set.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from datetime import date, datetime

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# (table, column, nullable): every fen column
MONEY = [
    ('applications', 'standard_fen', False),
    ('applications', 'amount_fen', False),
    ('subsidy_items', 'standard_fen', False),
    ('publicity_entries', 'amount_fen', False),
    ('flags', 'amount_fen', False),
    ('leads', 'amount_fen', False),
    ('rule_versions', 'dry_run_amount_fen', True),
]


def upgrade() -> None:
    # SQLite's INTEGER is already 64-bit: only PostgreSQL needs the columns widened.
    if op.get_bind().dialect.name == 'postgresql':
        for table, column, nullable in MONEY:
            op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer(),
                            existing_nullable=nullable)
    op.create_table('item_standards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_code', sa.String(length=20), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=True),
    sa.Column('standard_fen', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_by_name', sa.String(length=60), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_item_standards_created_by_users')),
    sa.ForeignKeyConstraint(['item_code'], ['subsidy_items.code'], name=op.f('fk_item_standards_item_code_subsidy_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_item_standards'))
    )
    op.create_index('ix_item_standards_lookup', 'item_standards', ['item_code', 'county_code', 'valid_from'],
                    unique=False)
    # Every existing item keeps its standard, now as a dated row valid since long before any claim.
    op.get_bind().execute(sa.text(
        "INSERT INTO item_standards (item_code, valid_from, county_code, standard_fen, reason, created_by_name, "
        "created_at) SELECT code, :day, NULL, standard_fen, '原有标准', '系统', :now FROM subsidy_items"),
        {"day": date(2000, 1, 1), "now": datetime(2000, 1, 1)})
    with op.batch_alter_table('rule_versions') as batch_op:
        batch_op.add_column(sa.Column('reason', sa.Text(), server_default='', nullable=False))
    with op.batch_alter_table('rules') as batch_op:
        batch_op.add_column(sa.Column('params_set', sa.Text(), server_default='{}', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('rules') as batch_op:
        batch_op.drop_column('params_set')
    with op.batch_alter_table('rule_versions') as batch_op:
        batch_op.drop_column('reason')
    op.drop_index('ix_item_standards_lookup', table_name='item_standards')
    op.drop_table('item_standards')
    if op.get_bind().dialect.name == 'postgresql':
        for table, column, nullable in MONEY:
            op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger(),
                            existing_nullable=nullable)
