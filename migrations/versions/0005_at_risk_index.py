"""at-risk index: the open tickets with their SLA moments, in queue order, so the "Breaching or at risk"
view, its total and the workload board read the index alone

A partial index over open tickets only (a few thousand rows however long the history), keyed like the
default queue (is_open, priority DESC, created_at, id) and carrying the columns the at-risk condition and the
board's per-person counts read. Without it the view's total and the board look up every open ticket's row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

NAME = "ix_tickets_open_sla"
COLUMNS = ["is_open", sa.text("priority DESC"), "created_at", "id", "assignee_id", "status", "resolution_risk_at",
           "response_risk_at", "resolution_due_at", "response_due_at", "resolution_breached_at", "acknowledged_at",
           "first_response_at"]
# Written as the queries render the condition, so SQLite sees the query implies the index's WHERE.
WHERE = {"sqlite": "is_open IS 1", "postgresql": "is_open IS TRUE"}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    where = sa.text(WHERE.get(dialect, "is_open IS TRUE"))
    op.create_index(NAME, "tickets", COLUMNS, unique=False, sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    op.drop_index(NAME, table_name="tickets")
