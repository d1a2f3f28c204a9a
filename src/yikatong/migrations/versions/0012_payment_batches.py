"""Payments: budget allocations (指标) and their yearly totals, payment batches (发放批次), payment orders
(one live order per application: uq_payment_orders_live) and the applications a batch left out.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op



revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('budget_allocations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_code', sa.String(length=20), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('funding_level', sa.String(length=4), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.Column('updated_by_name', sa.String(length=60), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['item_code'], ['subsidy_items.code'], name=op.f('fk_budget_allocations_item_code_subsidy_items')),
    sa.ForeignKeyConstraint(['updated_by'], ['users.id'], name=op.f('fk_budget_allocations_updated_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_budget_allocations'))
    )
    with op.batch_alter_table('budget_allocations', schema=None) as batch_op:
        batch_op.create_index('uq_budget_allocations_key', ['item_code', 'year', 'funding_level'], unique=True)

    op.create_table('budget_years',
    sa.Column('item_code', sa.String(length=20), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('allocated_fen', sa.BigInteger(), nullable=False),
    sa.Column('committed_fen', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['item_code'], ['subsidy_items.code'], name=op.f('fk_budget_years_item_code_subsidy_items')),
    sa.PrimaryKeyConstraint('item_code', 'year', name=op.f('pk_budget_years'))
    )
    op.create_table('payment_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('item_code', sa.String(length=20), nullable=False),
    sa.Column('period', sa.String(length=10), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('bank_code', sa.String(length=10), nullable=False),
    sa.Column('treasury_code', sa.String(length=20), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=4), nullable=False),
    sa.Column('order_count', sa.Integer(), nullable=False),
    sa.Column('total_fen', sa.BigInteger(), nullable=False),
    sa.Column('blocked_count', sa.Integer(), nullable=False),
    sa.Column('made_by', sa.Integer(), nullable=False),
    sa.Column('made_by_name', sa.String(length=60), nullable=False),
    sa.Column('made_at', sa.DateTime(), nullable=False),
    sa.Column('approved_by', sa.Integer(), nullable=True),
    sa.Column('approved_by_name', sa.String(length=60), nullable=False),
    sa.Column('approved_at', sa.DateTime(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['approved_by'], ['users.id'], name=op.f('fk_payment_batches_approved_by_users')),
    sa.ForeignKeyConstraint(['bank_code'], ['banks.code'], name=op.f('fk_payment_batches_bank_code_banks')),
    sa.ForeignKeyConstraint(['item_code'], ['subsidy_items.code'], name=op.f('fk_payment_batches_item_code_subsidy_items')),
    sa.ForeignKeyConstraint(['made_by'], ['users.id'], name=op.f('fk_payment_batches_made_by_users')),
    sa.ForeignKeyConstraint(['treasury_code'], ['treasury_accounts.code'], name=op.f('fk_payment_batches_treasury_code_treasury_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_batches')),
    sa.UniqueConstraint('number', name=op.f('uq_payment_batches_number'))
    )
    with op.batch_alter_table('payment_batches', schema=None) as batch_op:
        batch_op.create_index('ix_payment_batches_item', ['item_code', 'year', 'status'], unique=False)

    op.create_table('payment_batch_exclusions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], name=op.f('fk_payment_batch_exclusions_application_id_applications')),
    sa.ForeignKeyConstraint(['batch_id'], ['payment_batches.id'], name=op.f('fk_payment_batch_exclusions_batch_id_payment_batches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_batch_exclusions'))
    )
    with op.batch_alter_table('payment_batch_exclusions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_batch_exclusions_batch_id'), ['batch_id'], unique=False)

    op.create_table('payment_orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('item_code', sa.String(length=20), nullable=False),
    sa.Column('period', sa.String(length=10), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=4), nullable=False),
    sa.Column('bank_code', sa.String(length=10), nullable=False),
    sa.Column('payee_name', sa.String(length=40), nullable=False),
    sa.Column('by_proxy', sa.Boolean(), nullable=False),
    sa.Column('proxy_id', sa.Integer(), nullable=True),
    sa.Column('card_id', sa.Integer(), nullable=True),
    sa.Column('account_enc', sa.LargeBinary(), nullable=True),
    sa.Column('account_hash', sa.String(length=32), nullable=False),
    sa.Column('account_masked', sa.String(length=24), nullable=False),
    sa.Column('treasury_code', sa.String(length=20), nullable=True),
    sa.Column('end_to_end_id', sa.String(length=35), nullable=True),
    sa.Column('approved_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], name=op.f('fk_payment_orders_application_id_applications')),
    sa.ForeignKeyConstraint(['bank_code'], ['banks.code'], name=op.f('fk_payment_orders_bank_code_banks')),
    sa.ForeignKeyConstraint(['batch_id'], ['payment_batches.id'], name=op.f('fk_payment_orders_batch_id_payment_batches')),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_payment_orders_card_id_cards')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_payment_orders_person_id_persons')),
    sa.ForeignKeyConstraint(['proxy_id'], ['proxy_holdings.id'], name=op.f('fk_payment_orders_proxy_id_proxy_holdings')),
    sa.ForeignKeyConstraint(['treasury_code'], ['treasury_accounts.code'], name=op.f('fk_payment_orders_treasury_code_treasury_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_orders')),
    sa.UniqueConstraint('end_to_end_id', name=op.f('uq_payment_orders_end_to_end_id'))
    )
    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_orders_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index('ix_payment_orders_item', ['item_code', 'year', 'status'], unique=False)
        batch_op.create_index('uq_payment_orders_live', ['application_id'], unique=True, sqlite_where=sa.text("status NOT IN ('失败', '已撤销')"), postgresql_where=sa.text("status NOT IN ('失败', '已撤销')"))



def downgrade() -> None:
    with op.batch_alter_table('payment_orders', schema=None) as batch_op:
        batch_op.drop_index('uq_payment_orders_live', sqlite_where=sa.text("status NOT IN ('失败', '已撤销')"), postgresql_where=sa.text("status NOT IN ('失败', '已撤销')"))
        batch_op.drop_index('ix_payment_orders_item')
        batch_op.drop_index(batch_op.f('ix_payment_orders_batch_id'))

    op.drop_table('payment_orders')
    with op.batch_alter_table('payment_batch_exclusions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_batch_exclusions_batch_id'))

    op.drop_table('payment_batch_exclusions')
    with op.batch_alter_table('payment_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_batches_item')

    op.drop_table('payment_batches')
    op.drop_table('budget_years')
    with op.batch_alter_table('budget_allocations', schema=None) as batch_op:
        batch_op.drop_index('uq_budget_allocations_key')

    op.drop_table('budget_allocations')
