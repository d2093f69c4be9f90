"""metrics: ticket_metrics (one narrow row per ticket) and metric_days (counts per day), kept by triggers;
event indexes for the backlog and the reopenings

See lib/metrics/metrics_store.py and docs/metrics.md. The table is filled from the existing tickets here; later
``python -m lib.cli rebuild-rollups`` refills it the same way.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lib.models import BACKLOG_EVENT_PREDICATE

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

INDEXES = {
    "ix_ticket_metrics_created": (["priority", "category_id", "created_us", "assignee_id", "channel", "requester_id",
                                   "device_id", "is_duplicate", "ticket_id"], None),
    "ix_ticket_metrics_acknowledged": (["priority", "category_id", "acknowledged_us", "assignee_id", "channel",
                                        "created_us"], "acknowledged_us IS NOT NULL"),
    "ix_ticket_metrics_first_response": (["priority", "category_id", "first_response_us", "assignee_id", "channel",
                                          "created_us"], "first_response_us IS NOT NULL"),
    "ix_ticket_metrics_responded": (["priority", "category_id", "responded_us", "assignee_id", "channel",
                                     "response_tally"], "responded_us IS NOT NULL"),
    "ix_ticket_metrics_resolved": (["priority", "category_id", "resolved_us", "assignee_id", "channel", "created_us",
                                    "resolution_tally", "first_contact"], "resolved_us IS NOT NULL"),
    "ix_ticket_metrics_closed": (["priority", "category_id", "closed_us", "assignee_id", "channel", "closure_reason",
                                  "resolved_us", "closure_tally_a", "closure_tally_b", "satisfaction"],
                                 "closed_us IS NOT NULL"),
    "ix_ticket_metrics_open": (["assignee_id", "priority", "category_id", "channel", "created_us", "is_open"],
                               "is_open = 1"),
}


def upgrade() -> None:
    from lib.metrics import metrics_store

    dialect = op.get_bind().dialect.name
    op.create_table('ticket_metrics',
    sa.Column('ticket_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('is_open', sa.SmallInteger(), nullable=False),
    sa.Column('created_us', sa.BigInteger(), nullable=False),
    sa.Column('acknowledged_us', sa.BigInteger(), nullable=True),
    sa.Column('first_response_us', sa.BigInteger(), nullable=True),
    sa.Column('responded_us', sa.BigInteger(), nullable=True),
    sa.Column('resolved_us', sa.BigInteger(), nullable=True),
    sa.Column('closed_us', sa.BigInteger(), nullable=True),
    sa.Column('closure_reason', sa.String(length=24), nullable=True),
    sa.Column('reopen_count', sa.Integer(), nullable=False),
    sa.Column('escalation_level', sa.SmallInteger(), nullable=False),
    sa.Column('sla_target', sa.SmallInteger(), nullable=False),
    sa.Column('response_breached', sa.SmallInteger(), nullable=False),
    sa.Column('resolution_breached', sa.SmallInteger(), nullable=False),
    sa.Column('satisfaction', sa.SmallInteger(), nullable=True),
    sa.Column('requester_id', sa.Integer(), nullable=True),
    sa.Column('device_id', sa.Integer(), nullable=True),
    sa.Column('is_duplicate', sa.SmallInteger(), nullable=False),
    sa.Column('response_tally', sa.BigInteger(), nullable=False),
    sa.Column('resolution_tally', sa.BigInteger(), nullable=False),
    sa.Column('closure_tally_a', sa.BigInteger(), nullable=False),
    sa.Column('closure_tally_b', sa.BigInteger(), nullable=False),
    sa.Column('first_contact', sa.SmallInteger(), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id', name=op.f('pk_ticket_metrics'))
    )
    for name, (columns, where) in INDEXES.items():
        kw = {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)} if where else {}
        op.create_index(name, 'ticket_metrics', columns, unique=False, **kw)
    op.create_index('ix_events_backlog', 'ticket_events', ['occurred_at', 'ticket_id', 'to_status', 'from_status'],
                    unique=False, sqlite_where=sa.text(BACKLOG_EVENT_PREDICATE),
                    postgresql_where=sa.text(BACKLOG_EVENT_PREDICATE))
    op.create_index('ix_events_reopened', 'ticket_events', ['occurred_at', 'ticket_id'], unique=False,
                    sqlite_where=sa.text("kind = 'reopened'"), postgresql_where=sa.text("kind = 'reopened'"))
    # Per UTC day, priority and category: what each milestone adds (lib/metrics/metrics_store.py MILESTONES). Not an
    # ORM model: only triggers and rebuild-rollups write it.
    zero = sa.text('0')
    op.create_table('metric_days',
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=False),
    *(sa.Column(name, sa.BigInteger(), nullable=False, server_default=zero)
      for name in ('created', 'resolved', 'resolution_tally', 'first_contact', 'closed', 'closure_tally_a',
                   'closure_tally_b', 'satisfaction_sum', 'response_tally')),
    sa.PrimaryKeyConstraint('day', 'priority', 'category_id', name=op.f('pk_metric_days')),
    sqlite_with_rowid=False  # stored in key order: a range of days is one contiguous read
    )
    for statement in metrics_store.create_ddl(dialect) + metrics_store.days_ddl(dialect):
        op.execute(statement)
    columns = metrics_store.COLUMNS
    select_list = ", ".join(metrics_store.source_exprs(dialect, "t").values())
    op.execute(f"INSERT INTO ticket_metrics ({columns}) SELECT {select_list} FROM tickets t")


def downgrade() -> None:
    from lib.metrics import metrics_store

    for statement in metrics_store.drop_ddl(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_index('ix_events_reopened', table_name='ticket_events')
    op.drop_index('ix_events_backlog', table_name='ticket_events')
    op.drop_table('metric_days')
    for name in INDEXES:
        op.drop_index(name, table_name='ticket_metrics')
    op.drop_table('ticket_metrics')
