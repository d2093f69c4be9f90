"""webhook_deliveries: ticket events POSTed as signed JSON to the desk's webhook (lib/webhooks.py)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lib.models import UTCDateTime

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('ticket_id', sa.Integer(), sa.ForeignKey('tickets.id'), nullable=True),
        sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), sa.ForeignKey('ticket_events.id'),
                  nullable=True),
        sa.Column('kind', sa.String(40), nullable=False),
        sa.Column('url', sa.String(2000), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('state', sa.String(12), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', UTCDateTime(), nullable=False),
        sa.Column('claimed_until', UTCDateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('sent_at', UTCDateTime(), nullable=True),
    )
    op.create_index('ix_webhook_due', 'webhook_deliveries', ['state', 'next_attempt_at'])
    op.create_index('ix_webhook_event', 'webhook_deliveries', ['event_id'])


def downgrade() -> None:
    op.drop_index('ix_webhook_event', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_due', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
