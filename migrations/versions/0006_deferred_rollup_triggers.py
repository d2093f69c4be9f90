"""metric_days triggers on PostgreSQL: deferred to commit and serialised by one advisory lock

Immediate row and statement triggers deadlocked when concurrent writers touched two day rows in opposite
orders (lib/metrics/metrics_store.py days_ddl). The counts they keep are the same; SQLite is unchanged (its writers
are serialised already).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 20:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

DROP = ["DROP TRIGGER IF EXISTS metric_days_insert ON ticket_metrics",
        "DROP TRIGGER IF EXISTS metric_days_update ON ticket_metrics",
        "DROP TRIGGER IF EXISTS metric_days_delete ON ticket_metrics",
        "DROP FUNCTION IF EXISTS metric_days_insert()"]


def upgrade() -> None:
    from lib.metrics import metrics_store

    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in DROP + metrics_store.days_ddl("postgresql"):
        op.execute(statement)


def downgrade() -> None:
    # The deferred triggers keep the same counts as the ones they replaced: nothing to undo.
    pass
