"""mail_raw: the raw message of every ingested mail, kept for mail_raw_retention_days (docs/email.md)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 07:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lib.models import UTCDateTime

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_raw",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_mail_raw_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_raw")),
    )
    op.create_index(op.f("ix_mail_raw_message_id"), "mail_raw", ["message_id"], unique=False)
    op.create_index(op.f("ix_mail_raw_ticket_id"), "mail_raw", ["ticket_id"], unique=False)
    op.create_index(op.f("ix_mail_raw_received_at"), "mail_raw", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_mail_raw_received_at"), table_name="mail_raw")
    op.drop_index(op.f("ix_mail_raw_ticket_id"), table_name="mail_raw")
    op.drop_index(op.f("ix_mail_raw_message_id"), table_name="mail_raw")
    op.drop_table("mail_raw")
