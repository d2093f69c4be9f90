"""append-only audit trail: triggers refuse UPDATE and DELETE on ticket_events and audit_log; events get chain_hash

Existing events keep a NULL chain_hash: a ticket's next event seals its history first, and
``python -m lib.cli verify-audit --seal`` seals them all (lib/audit_chain.py). Hashing millions of rows here
would hold every app server's start for minutes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from lib import audit_chain

    dialect = op.get_bind().dialect.name
    op.add_column("ticket_events", sa.Column("chain_hash", sa.String(length=64), nullable=True))
    statements = audit_chain.function_ddl() if dialect == "postgresql" else []
    for statement in statements + audit_chain.trigger_ddl(dialect):
        op.execute(statement)


def downgrade() -> None:
    from lib import audit_chain

    dialect = op.get_bind().dialect.name
    statements = audit_chain.drop_trigger_ddl(dialect)
    if dialect == "postgresql":
        statements += audit_chain.drop_function_ddl()
    for statement in statements:
        op.execute(statement)
    op.drop_column("ticket_events", "chain_hash")
