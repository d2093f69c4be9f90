"""import jobs: CSV imports and dry runs started on the Admin page, with their checkpoint and refused rows

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 07:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import lib.models

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'import_jobs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', lib.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('started_by_id', sa.Integer(), nullable=True),
        sa.Column('filename', sa.String(length=255), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=True),
        sa.Column('layout', sa.String(length=20), nullable=False),
        sa.Column('mapping_toml', sa.Text(), nullable=True),
        sa.Column('dry_run', sa.Boolean(), nullable=False),
        sa.Column('in_worker', sa.Boolean(), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('rows_total', sa.Integer(), nullable=False),
        sa.Column('rows_done', sa.Integer(), nullable=False),
        sa.Column('items_done', sa.Integer(), nullable=False),
        sa.Column('created', sa.Integer(), nullable=False),
        sa.Column('updated', sa.Integer(), nullable=False),
        sa.Column('unchanged', sa.Integer(), nullable=False),
        sa.Column('refused', sa.Integer(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('claim_token', sa.String(length=32), nullable=True),
        sa.Column('claimed_until', lib.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('started_at', lib.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('finished_at', lib.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['started_by_id'], ['users.id'], name=op.f('fk_import_jobs_started_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_import_jobs')),
    )
    op.create_index('ix_import_jobs_state', 'import_jobs', ['state', 'created_at'])
    op.create_table(
        'import_refusals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['import_jobs.id'], name=op.f('fk_import_refusals_job_id_import_jobs'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_import_refusals')),
    )
    op.create_index('ix_import_refusals_job', 'import_refusals', ['job_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_import_refusals_job', table_name='import_refusals')
    op.drop_table('import_refusals')
    op.drop_index('ix_import_jobs_state', table_name='import_jobs')
    op.drop_table('import_jobs')
