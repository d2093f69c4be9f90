"""metric_days on PostgreSQL: triggers append deltas (metric_day_deltas), the worker folds them

The deferred triggers of 0006 upserted metric_days rows at commit under one advisory lock: no deadlock, but
every create, acknowledgement, priority change and resolution on the desk queued behind the others' commits.
Now the triggers only INSERT into metric_day_deltas (no row is shared between writers), reads add the deltas
to metric_days (lib/metrics/metrics_store.py days_source) and lib.metrics.metrics_store.fold_days moves them in. SQLite is
unchanged (its writers are serialised already).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

COLUMNS = ('created', 'resolved', 'resolution_tally', 'first_contact', 'closed', 'closure_tally_a',
           'closure_tally_b', 'satisfaction_sum', 'response_tally')
DROP = ["DROP TRIGGER IF EXISTS metric_days_insert ON ticket_metrics",
        "DROP TRIGGER IF EXISTS metric_days_update ON ticket_metrics",
        "DROP TRIGGER IF EXISTS metric_days_delete ON ticket_metrics"]


def upgrade() -> None:
    from lib.metrics import metrics_store

    if op.get_bind().dialect.name != "postgresql":
        return
    zero = sa.text('0')
    op.create_table(
        'metric_day_deltas',
        sa.Column('id', sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column('day', sa.Integer(), nullable=False),
        sa.Column('priority', sa.SmallInteger(), nullable=False),
        sa.Column('category_id', sa.Integer(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False, server_default=zero) for name in COLUMNS),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_day_deltas')),
    )
    op.create_index('ix_metric_day_deltas_day', 'metric_day_deltas', ['day', 'priority', 'category_id'])
    for statement in DROP + metrics_store.days_ddl("postgresql"):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    raise NotImplementedError("metric_day_deltas cannot be taken back without losing counts: restore a backup made "
                              "before the upgrade, or run rebuild-rollups on the newer version")
