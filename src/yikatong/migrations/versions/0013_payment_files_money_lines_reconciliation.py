"""The bank loop: files exchanged with banks and the treasury (with their SHA-256), booked money lines of
bank statements and treasury files, three-way reconciliations and their differences; payment orders
learn the bank's answer, re-payment links and rework; the outbox can address a citizen (arrival SMS).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 08:34:09.524695
"""

import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payment_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=6), nullable=False),
    sa.Column('file_no', sa.Integer(), nullable=False),
    sa.Column('file_count', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('total_fen', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=4), nullable=False),
    sa.Column('by_name', sa.String(length=60), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('removed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['payment_batches.id'], name=op.f('fk_payment_files_batch_id_payment_batches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_files'))
    )
    with op.batch_alter_table('payment_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_files_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index('uq_payment_files_taken', ['kind', 'sha256'], unique=True, sqlite_where=sa.text("kind <> '代发文件'"), postgresql_where=sa.text("kind <> '代发文件'"))

    op.create_table('payment_reconciliations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('day', sa.Date(), nullable=True),
    sa.Column('orders_fen', sa.BigInteger(), nullable=False),
    sa.Column('paid_fen', sa.BigInteger(), nullable=False),
    sa.Column('failed_fen', sa.BigInteger(), nullable=False),
    sa.Column('bank_out_fen', sa.BigInteger(), nullable=False),
    sa.Column('bank_back_fen', sa.BigInteger(), nullable=False),
    sa.Column('treasury_out_fen', sa.BigInteger(), nullable=False),
    sa.Column('treasury_back_fen', sa.BigInteger(), nullable=False),
    sa.Column('orders', sa.Integer(), nullable=False),
    sa.Column('differences', sa.Integer(), nullable=False),
    sa.Column('balanced', sa.Boolean(), nullable=False),
    sa.Column('by_name', sa.String(length=60), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['payment_batches.id'], name=op.f('fk_payment_reconciliations_batch_id_payment_batches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_reconciliations'))
    )
    with op.batch_alter_table('payment_reconciliations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_reconciliations_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_reconciliations_day'), ['day'], unique=False)

    op.create_table('payment_differences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reconciliation_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('end_to_end_id', sa.String(length=35), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('order_fen', sa.BigInteger(), nullable=True),
    sa.Column('bank_fen', sa.BigInteger(), nullable=True),
    sa.Column('treasury_fen', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['payment_orders.id'], name=op.f('fk_payment_differences_order_id_payment_orders')),
    sa.ForeignKeyConstraint(['reconciliation_id'], ['payment_reconciliations.id'], name=op.f('fk_payment_differences_reconciliation_id_payment_reconciliations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_differences'))
    )
    with op.batch_alter_table('payment_differences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_differences_reconciliation_id'), ['reconciliation_id'], unique=False)

    op.create_table('payment_money_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=2), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('end_to_end_id', sa.String(length=35), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('booked_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['payment_batches.id'], name=op.f('fk_payment_money_lines_batch_id_payment_batches')),
    sa.ForeignKeyConstraint(['file_id'], ['payment_files.id'], name=op.f('fk_payment_money_lines_file_id_payment_files')),
    sa.ForeignKeyConstraint(['order_id'], ['payment_orders.id'], name=op.f('fk_payment_money_lines_order_id_payment_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_money_lines'))
    )
    with op.batch_alter_table('payment_money_lines', schema=None) as batch_op:
        batch_op.create_index('ix_payment_money_lines_batch', ['batch_id', 'source'], unique=False)
        batch_op.create_index('ix_payment_money_lines_day', ['booked_on', 'source'], unique=False)
        batch_op.create_index('uq_payment_money_lines', ['source', 'end_to_end_id', 'amount_fen'], unique=True)

    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('person_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_outbox_messages_person_id_persons'), 'persons', ['person_id'], ['id'])

    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('answered_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('paid_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('fail_code', sa.String(length=8), nullable=False, server_default=sa.text("''")))
        batch_op.add_column(sa.Column('fail_reason', sa.String(length=100), nullable=False, server_default=sa.text("''")))
        batch_op.add_column(sa.Column('retry_of', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('attempt', sa.Integer(), nullable=False, server_default=sa.text("'1'")))
        batch_op.add_column(sa.Column('rework', sa.String(length=4), nullable=False, server_default=sa.text("''")))
        batch_op.add_column(sa.Column('rework_note', sa.String(length=200), nullable=False, server_default=sa.text("''")))
        batch_op.add_column(sa.Column('rework_by_name', sa.String(length=60), nullable=False, server_default=sa.text("''")))
        batch_op.add_column(sa.Column('rework_at', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_payment_orders_person', ['person_id', 'status'], unique=False)
        batch_op.create_index('uq_payment_orders_person_period', ['person_id', 'item_code', 'period'], unique=True,
                              sqlite_where=sa.text("status NOT IN ('失败', '已撤销')"),
                              postgresql_where=sa.text("status NOT IN ('失败', '已撤销')"))
        batch_op.create_index('ix_payment_orders_rework', ['rework', 'region_code'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_payment_orders_retry_of_payment_orders'), 'payment_orders', ['retry_of'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_payment_orders_retry_of_payment_orders'), type_='foreignkey')
        batch_op.drop_index('ix_payment_orders_rework')
        batch_op.drop_index('uq_payment_orders_person_period')
        batch_op.drop_index('ix_payment_orders_person')
        batch_op.drop_column('rework_at')
        batch_op.drop_column('rework_by_name')
        batch_op.drop_column('rework_note')
        batch_op.drop_column('rework')
        batch_op.drop_column('attempt')
        batch_op.drop_column('retry_of')
        batch_op.drop_column('fail_reason')
        batch_op.drop_column('fail_code')
        batch_op.drop_column('paid_on')
        batch_op.drop_column('answered_at')

    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_outbox_messages_person_id_persons'), type_='foreignkey')
        batch_op.drop_column('person_id')

    with op.batch_alter_table('payment_money_lines', schema=None) as batch_op:
        batch_op.drop_index('uq_payment_money_lines')
        batch_op.drop_index('ix_payment_money_lines_day')
        batch_op.drop_index('ix_payment_money_lines_batch')

    op.drop_table('payment_money_lines')
    with op.batch_alter_table('payment_differences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_differences_reconciliation_id'))

    op.drop_table('payment_differences')
    with op.batch_alter_table('payment_reconciliations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_reconciliations_day'))
        batch_op.drop_index(batch_op.f('ix_payment_reconciliations_batch_id'))

    op.drop_table('payment_reconciliations')
    with op.batch_alter_table('payment_files', schema=None) as batch_op:
        batch_op.drop_index('uq_payment_files_taken', sqlite_where=sa.text("kind <> '代发文件'"), postgresql_where=sa.text("kind <> '代发文件'"))
        batch_op.drop_index(batch_op.f('ix_payment_files_batch_id'))

    op.drop_table('payment_files')
