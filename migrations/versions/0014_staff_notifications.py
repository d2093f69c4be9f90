"""staff notifications and canned responses: the staff inbox (lib/staff_notify.py), each person's e-mail choice,
the daily digest's once-a-day claim, and the lead's reply snippets (lib/canned.py)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lib.models import UTCDateTime

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'notifications',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='CASCADE',
                                                         name='fk_notifications_user_id_users'), nullable=False),
        sa.Column('ticket_id', sa.Integer(), sa.ForeignKey('tickets.id', name='fk_notifications_ticket_id_tickets'),
                  nullable=True),
        sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), sa.ForeignKey('ticket_events.id',
                                                          name='fk_notifications_event_id_ticket_events'),
                  nullable=True),
        sa.Column('kind', sa.String(30), nullable=False),
        sa.Column('text', sa.String(500), nullable=False),
        sa.Column('link', sa.String(300), nullable=True),
        sa.Column('dedupe_key', sa.String(120), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('read_at', UTCDateTime(), nullable=True),
        sa.Column('mailed_at', UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_notifications'),
        sa.UniqueConstraint('dedupe_key', name='uq_notifications_dedupe_key'),
    )
    # the sidebar's unread count and the digest's unread, un-mailed rows: one index range per person
    op.create_index('ix_notifications_user_id_read_at', 'notifications', ['user_id', 'read_at'])
    op.create_index('ix_notifications_user_id_id', 'notifications', ['user_id', 'id'])
    op.create_table(
        'staff_notify_prefs',
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='CASCADE',
                                                         name='fk_staff_notify_prefs_user_id_users'),
                  nullable=False),
        sa.Column('email_mode', sa.String(10), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('user_id', name='pk_staff_notify_prefs'),
    )
    op.create_table(
        'staff_digests',
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='CASCADE',
                                                         name='fk_staff_digests_user_id_users'), nullable=False),
        sa.Column('day', sa.String(10), nullable=False),
        sa.Column('sent_at', UTCDateTime(), nullable=False),
        sa.Column('items', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('user_id', 'day', name='pk_staff_digests'),
    )
    op.create_table(
        'canned_responses',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('title', sa.String(120), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('updated_by', sa.String(64), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_canned_responses'),
        sa.UniqueConstraint('title', name='uq_canned_responses_title'),
    )


def downgrade() -> None:
    op.drop_table('canned_responses')
    op.drop_table('staff_digests')
    op.drop_table('staff_notify_prefs')
    op.drop_index('ix_notifications_user_id_id', table_name='notifications')
    op.drop_index('ix_notifications_user_id_read_at', table_name='notifications')
    op.drop_table('notifications')
