"""registry, catalogue, users and audit

Revision ID: 0001
Revises: 
Create Date: 2026-11-28

The audit table is append-only: triggers refuse UPDATE and DELETE on both engines.
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('banks',
    sa.Column('code', sa.String(length=10), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('account_prefix', sa.String(length=8), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_banks'))
    )
    op.create_table('regions',
    sa.Column('code', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('level', sa.String(length=10), nullable=False),
    sa.Column('parent_code', sa.String(length=12), nullable=True),
    sa.ForeignKeyConstraint(['parent_code'], ['regions.code'], name=op.f('fk_regions_parent_code_regions')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_regions'))
    )
    with op.batch_alter_table('regions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_regions_parent_code'), ['parent_code'], unique=False)

    op.create_table('subsidy_categories',
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_subsidy_categories'))
    )
    op.create_table('departments',
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('sector', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['region_code'], ['regions.code'], name=op.f('fk_departments_region_code_regions')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_departments'))
    )
    with op.batch_alter_table('departments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_departments_region_code'), ['region_code'], unique=False)

    op.create_table('households',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=30), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('address', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['region_code'], ['regions.code'], name=op.f('fk_households_region_code_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_households')),
    sa.UniqueConstraint('code', name=op.f('uq_households_code'))
    )
    with op.batch_alter_table('households', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_households_region_code'), ['region_code'], unique=False)

    op.create_table('treasury_accounts',
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=4), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('bank_code', sa.String(length=10), nullable=False),
    sa.Column('account_number', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['bank_code'], ['banks.code'], name=op.f('fk_treasury_accounts_bank_code_banks')),
    sa.ForeignKeyConstraint(['region_code'], ['regions.code'], name=op.f('fk_treasury_accounts_region_code_regions')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_treasury_accounts'))
    )
    op.create_table('persons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('id_number_enc', sa.LargeBinary(), nullable=False),
    sa.Column('id_number_hash', sa.String(length=32), nullable=False),
    sa.Column('id_number_masked', sa.String(length=18), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('gender', sa.String(length=1), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=True),
    sa.Column('relation', sa.String(length=10), nullable=True),
    sa.Column('phone_enc', sa.LargeBinary(), nullable=True),
    sa.Column('phone_hash', sa.String(length=32), nullable=True),
    sa.Column('phone_masked', sa.String(length=20), nullable=True),
    sa.Column('is_beneficiary', sa.Boolean(), nullable=False),
    sa.Column('has_active_card', sa.Boolean(), nullable=False),
    sa.Column('no_card_reason', sa.String(length=60), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_persons_household_id_households')),
    sa.ForeignKeyConstraint(['region_code'], ['regions.code'], name=op.f('fk_persons_region_code_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_persons')),
    sa.UniqueConstraint('id_number_hash', name=op.f('uq_persons_id_number_hash'))
    )
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_persons_household_id'), ['household_id'], unique=False)
        batch_op.create_index('ix_persons_name_region', ['name', 'region_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_persons_phone_hash'), ['phone_hash'], unique=False)
        batch_op.create_index('ix_persons_region_counts', ['region_code', 'is_beneficiary', 'has_active_card'], unique=False)

    op.create_table('subsidy_items',
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('category_code', sa.String(length=20), nullable=False),
    sa.Column('funding_level', sa.String(length=4), nullable=False),
    sa.Column('department_code', sa.String(length=20), nullable=False),
    sa.Column('basis', sa.String(length=2), nullable=False),
    sa.Column('standard_fen', sa.Integer(), nullable=False),
    sa.Column('frequency', sa.String(length=4), nullable=False),
    sa.Column('village_publicity', sa.Boolean(), nullable=False),
    sa.Column('means_tested', sa.Boolean(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['category_code'], ['subsidy_categories.code'], name=op.f('fk_subsidy_items_category_code_subsidy_categories')),
    sa.ForeignKeyConstraint(['department_code'], ['departments.code'], name=op.f('fk_subsidy_items_department_code_departments')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_subsidy_items'))
    )
    with op.batch_alter_table('subsidy_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subsidy_items_category_code'), ['category_code'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=40), nullable=False),
    sa.Column('display_name', sa.String(length=60), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=30), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('department_code', sa.String(length=20), nullable=True),
    sa.Column('bank_code', sa.String(length=10), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.Column('last_login_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['bank_code'], ['banks.code'], name=op.f('fk_users_bank_code_banks')),
    sa.ForeignKeyConstraint(['department_code'], ['departments.code'], name=op.f('fk_users_department_code_departments')),
    sa.ForeignKeyConstraint(['region_code'], ['regions.code'], name=op.f('fk_users_region_code_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('username', sa.String(length=40), nullable=False),
    sa.Column('role', sa.String(length=30), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('object_type', sa.String(length=30), nullable=False),
    sa.Column('object_id', sa.String(length=100), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_audit_events_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_user_id'), ['user_id'], unique=False)

    op.create_table('cards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('card_number', sa.String(length=20), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('bank_code', sa.String(length=10), nullable=False),
    sa.Column('bank_account_enc', sa.LargeBinary(), nullable=False),
    sa.Column('bank_account_hash', sa.String(length=32), nullable=False),
    sa.Column('bank_account_masked', sa.String(length=24), nullable=False),
    sa.Column('status', sa.String(length=4), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('status_changed_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['bank_code'], ['banks.code'], name=op.f('fk_cards_bank_code_banks')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_cards_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cards')),
    sa.UniqueConstraint('card_number', name=op.f('uq_cards_card_number'))
    )
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cards_bank_account_hash'), ['bank_account_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_cards_person_id'), ['person_id'], unique=False)

    op.create_table('documents',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(), nullable=False),
    sa.Column('uploaded_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['uploaded_by'], ['users.id'], name=op.f('fk_documents_uploaded_by_users')),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_documents'))
    )
    op.create_table('proxy_holdings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('holder_name', sa.String(length=40), nullable=False),
    sa.Column('holder_id_number_enc', sa.LargeBinary(), nullable=False),
    sa.Column('holder_id_number_hash', sa.String(length=32), nullable=False),
    sa.Column('holder_id_number_masked', sa.String(length=18), nullable=False),
    sa.Column('holder_relation', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('approved_by', sa.Integer(), nullable=True),
    sa.Column('approver_name', sa.String(length=60), nullable=False),
    sa.Column('approved_on', sa.Date(), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['approved_by'], ['users.id'], name=op.f('fk_proxy_holdings_approved_by_users')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_proxy_holdings_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_proxy_holdings'))
    )
    with op.batch_alter_table('proxy_holdings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proxy_holdings_holder_id_number_hash'), ['holder_id_number_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_proxy_holdings_person_id'), ['person_id'], unique=False)

    op.create_table('user_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_sessions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_user_sessions_token_hash'))
    )
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('proxy_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('proxy_id', sa.Integer(), nullable=False),
    sa.Column('document_sha256', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['document_sha256'], ['documents.sha256'], name=op.f('fk_proxy_documents_document_sha256_documents')),
    sa.ForeignKeyConstraint(['proxy_id'], ['proxy_holdings.id'], name=op.f('fk_proxy_documents_proxy_id_proxy_holdings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_proxy_documents'))
    )
    with op.batch_alter_table('proxy_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proxy_documents_proxy_id'), ['proxy_id'], unique=False)

    _make_audit_append_only()
    if op.get_bind().dialect.name == "postgresql":
        # Prefix search (name LIKE '王%') needs pattern ops under a non-C collation.
        op.execute("CREATE INDEX ix_persons_name_pattern ON persons (name text_pattern_ops, region_code)")


def downgrade() -> None:
    _drop_audit_triggers()
    op.execute("DROP INDEX IF EXISTS ix_persons_name_pattern")
    with op.batch_alter_table('proxy_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proxy_documents_proxy_id'))

    op.drop_table('proxy_documents')
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_sessions_user_id'))

    op.drop_table('user_sessions')
    with op.batch_alter_table('proxy_holdings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proxy_holdings_person_id'))
        batch_op.drop_index(batch_op.f('ix_proxy_holdings_holder_id_number_hash'))

    op.drop_table('proxy_holdings')
    op.drop_table('documents')
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cards_person_id'))
        batch_op.drop_index(batch_op.f('ix_cards_bank_account_hash'))

    op.drop_table('cards')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_user_id'))
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))
        batch_op.drop_index(batch_op.f('ix_audit_events_action'))

    op.drop_table('audit_events')
    op.drop_table('users')
    with op.batch_alter_table('subsidy_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subsidy_items_category_code'))

    op.drop_table('subsidy_items')
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_index('ix_persons_region_counts')
        batch_op.drop_index(batch_op.f('ix_persons_phone_hash'))
        batch_op.drop_index('ix_persons_name_region')
        batch_op.drop_index(batch_op.f('ix_persons_household_id'))

    op.drop_table('persons')
    op.drop_table('treasury_accounts')
    with op.batch_alter_table('households', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_households_region_code'))

    op.drop_table('households')
    with op.batch_alter_table('departments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_departments_region_code'))

    op.drop_table('departments')
    op.drop_table('subsidy_categories')
    with op.batch_alter_table('regions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_regions_parent_code'))

    op.drop_table('regions')
    op.drop_table('banks')


AUDIT_MESSAGE = "audit_events is append-only"


def _make_audit_append_only() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ykt_refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{AUDIT_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION ykt_refuse_audit_change()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                f"BEGIN SELECT RAISE(ABORT, '{AUDIT_MESSAGE}'); END"
            )


def _drop_audit_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS ykt_refuse_audit_change()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
