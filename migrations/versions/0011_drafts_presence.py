"""drafts and presence: unsent text per user, ticket and field; who has a ticket open (docs/workspace.md)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 07:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lib.models import UTCDateTime

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_ticket_drafts_user_id_users"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_drafts_ticket_id_tickets"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_drafts")),
        sa.UniqueConstraint("user_id", "ticket_id", "field", name=op.f("uq_ticket_drafts_user_id_ticket_id_field")),
    )
    op.create_index(op.f("ix_ticket_drafts_ticket_id"), "ticket_drafts", ["ticket_id"], unique=False)
    op.create_table(
        "ticket_presence",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=200), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_ticket_presence_user_id_users"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_presence_ticket_id_tickets"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "ticket_id", name=op.f("pk_ticket_presence")),
    )
    op.create_index("ix_ticket_presence_ticket", "ticket_presence", ["ticket_id", "last_seen"], unique=False)
    op.create_index("ix_ticket_presence_last_seen", "ticket_presence", ["last_seen"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ticket_presence_last_seen", table_name="ticket_presence")
    op.drop_index("ix_ticket_presence_ticket", table_name="ticket_presence")
    op.drop_table("ticket_presence")
    op.drop_index(op.f("ix_ticket_drafts_ticket_id"), table_name="ticket_drafts")
    op.drop_table("ticket_drafts")
