"""Jobs (后台任务): long work claimed and run by the worker, with progress, result and log.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('params', sa.Text(), nullable=False),
    sa.Column('started_by', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=4), nullable=False),
    sa.Column('stage', sa.String(length=100), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('log', sa.Text(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('worker', sa.String(length=100), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['started_by'], ['users.id'], name=op.f('fk_jobs_started_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    op.create_index('ix_jobs_status_id', 'jobs', ['status', 'id'], unique=False)
    op.create_index(op.f('ix_jobs_started_by'), 'jobs', ['started_by'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_jobs_started_by'), table_name='jobs')
    op.drop_index('ix_jobs_status_id', table_name='jobs')
    op.drop_table('jobs')
