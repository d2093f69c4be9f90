"""mail_processed: every inbound Message-ID handled once (tickets, comments, ignored, quarantined)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import lib.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mail_processed',
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('from_address', sa.String(length=254), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('processed_at', lib.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_mail_processed_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_mail_processed'))
    )
    with op.batch_alter_table('mail_processed', schema=None) as batch_op:
        batch_op.create_index('ix_mail_processed_ticket_from', ['ticket_id', 'from_address'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('mail_processed', schema=None) as batch_op:
        batch_op.drop_index('ix_mail_processed_ticket_from')
    op.drop_table('mail_processed')
