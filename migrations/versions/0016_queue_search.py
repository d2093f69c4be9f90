"""queue word search: FTS5 tables over every ticket and every requester (SQLite), GIN expression indexes on the
same fields (PostgreSQL); the statements are in lib/queue_index.py, which lib/queries.py reads the index through

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

from alembic import op

from lib.queue_index import statements

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for sql in statements(op.get_bind().dialect.name):
        op.execute(sql)


def downgrade() -> None:
    for sql in statements(op.get_bind().dialect.name, up=False):
        op.execute(sql)
