"""outbox.html_body and outbox.parts: mail with an HTML alternative, inline images and attachments (the weekly
report by mail, lib/report_mail.py)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('html_body', sa.Text(), nullable=True))
        batch.add_column(sa.Column('parts', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('parts')
        batch.drop_column('html_body')
