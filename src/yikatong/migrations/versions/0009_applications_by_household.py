"""Applications by household: screening a claim reads the live claims of the claimant's household (the
focus snapshot); without this index every claim at the counter scanned all applications (2.7 s of its
answer at the reference scale, docs/benchmarks.md).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_applications_household', 'applications', ['household_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_applications_household', table_name='applications')
