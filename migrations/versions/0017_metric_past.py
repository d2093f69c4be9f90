"""metrics of closed days kept between page runs: the count of writes that reach back (lib/metrics/closed_cache.py)

``metric_past`` holds the database's identity (a random token) and, on SQLite, the count; on PostgreSQL the
count is the number of rows of ``metric_past_log`` (one appended per transaction that reaches back, so writers
never wait for each other on one row). The triggers are in lib/metrics/closed_cache.py ``ddl``.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 15:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from lib.metrics import closed_cache

    dialect = op.get_bind().dialect.name
    op.create_table(
        'metric_past',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token', sa.String(64), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False, server_default=sa.text('0')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_past')),
    )
    op.execute(sa.text("INSERT INTO metric_past (id, token, version) VALUES (1, :t, 0)").bindparams(
        t=closed_cache.new_token()))
    if dialect == "postgresql":
        op.create_table(
            'metric_past_log',
            sa.Column('id', sa.BigInteger(), sa.Identity(), nullable=False),
            sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_past_log')),
        )
    for statement in closed_cache.ddl(dialect):
        op.execute(statement)


def downgrade() -> None:
    from lib.metrics import closed_cache

    dialect = op.get_bind().dialect.name
    for statement in closed_cache.drop_ddl(dialect):
        op.execute(statement)
    if dialect == "postgresql":
        op.drop_table('metric_past_log')
    op.drop_table('metric_past')
