"""Flags are deduplicated on their fact key, not on the wording of their evidence; applications that
passed the pre-payment gate wait in a new live status, 待支付.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Existing flags get the fact key "evidence:<evidence_key>": the next run that sees the same evidence
on the same application and rule gives them the rule's real fact key (interception.screening), so a
flag cleared before this migration is not raised again.

The old unique constraint on (application_id, rule_code, evidence_key) is dropped on PostgreSQL. On
SQLite it cannot be dropped without rebuilding the flags table, which leads' foreign key forbids
inside a migration's transaction; it stays, and stays harmless: since this revision evidence_key
holds the hash of the fact key, so it says what the new index says.
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

OLD_LIVE = "status IN ('办理中', '已通过')"
NEW_LIVE = "status IN ('办理中', '已通过', '待支付')"


def _live_claim_index(where: str) -> None:
    op.drop_index('uq_applications_live_claim', table_name='applications')
    op.create_index('uq_applications_live_claim', 'applications', ['person_id', 'item_code', 'period'], unique=True,
                    sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def upgrade() -> None:
    op.add_column('flags', sa.Column('fact_key', sa.String(length=128), nullable=False, server_default=''))
    op.execute("UPDATE flags SET fact_key = 'evidence:' || evidence_key")
    op.create_index('uq_flags_fact', 'flags', ['application_id', 'rule_code', 'fact_key'], unique=True)
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('flags', 'fact_key', server_default=None)
        op.drop_constraint('uq_flags_application_id_rule_code_evidence_key', 'flags', type_='unique')
    _live_claim_index(NEW_LIVE)


def downgrade() -> None:
    op.execute("UPDATE applications SET status = '已通过' WHERE status = '待支付'")
    _live_claim_index(OLD_LIVE)
    if op.get_bind().dialect.name == 'postgresql':
        op.create_unique_constraint('uq_flags_application_id_rule_code_evidence_key', 'flags',
                                    ['application_id', 'rule_code', 'evidence_key'])
    op.drop_index('uq_flags_fact', table_name='flags')
    op.drop_column('flags', 'fact_key')  # native DROP COLUMN: no rebuild of the flags table
