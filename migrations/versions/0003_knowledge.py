"""knowledge: KB articles and their versions, article-ticket links, follow-ups, preventive steps, full-text search

SQLite: FTS5 tables ``kb_fts`` (articles) and ``ticket_fts`` (resolved tickets), external-content tables
kept in step by triggers. PostgreSQL: generated ``search_vector`` tsvector columns with GIN indexes
(the one on tickets covers resolved tickets only).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import lib.models

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

TOKENIZER = "porter unicode61 remove_diacritics 2"
KB_COLUMNS = ("title", "symptoms", "cause", "resolution_steps", "tags")
TICKET_COLUMNS = ("summary", "description", "resolution_notes", "root_cause", "workaround")


def upgrade() -> None:
    op.create_table('kb_articles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('symptoms', sa.Text(), nullable=False),
    sa.Column('cause', sa.Text(), nullable=False),
    sa.Column('resolution_steps', sa.Text(), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=True),
    sa.Column('tags', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('source_ticket_id', sa.Integer(), nullable=True),
    sa.Column('published_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', lib.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', lib.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('published_at', lib.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_kb_articles_author_id_users')),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_kb_articles_category_id_categories')),
    sa.ForeignKeyConstraint(['published_by_id'], ['users.id'], name=op.f('fk_kb_articles_published_by_id_users')),
    sa.ForeignKeyConstraint(['source_ticket_id'], ['tickets.id'], name=op.f('fk_kb_articles_source_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_articles')),
    sqlite_autoincrement=True
    )
    op.create_index('ix_kb_articles_status_category', 'kb_articles', ['status', 'category_id'])
    op.create_index('ix_kb_articles_source_ticket', 'kb_articles', ['source_ticket_id'])

    op.create_table('kb_article_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('article_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('symptoms', sa.Text(), nullable=False),
    sa.Column('cause', sa.Text(), nullable=False),
    sa.Column('resolution_steps', sa.Text(), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=True),
    sa.Column('tags', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('edited_by_id', sa.Integer(), nullable=True),
    sa.Column('edited_at', lib.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('note', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['article_id'], ['kb_articles.id'], name=op.f('fk_kb_article_versions_article_id_kb_articles')),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_kb_article_versions_category_id_categories')),
    sa.ForeignKeyConstraint(['edited_by_id'], ['users.id'], name=op.f('fk_kb_article_versions_edited_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_article_versions')),
    sa.UniqueConstraint('article_id', 'version', name=op.f('uq_kb_article_versions_article_id_version'))
    )

    op.create_table('kb_article_tickets',
    sa.Column('article_id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('solved', sa.Boolean(), nullable=False),
    sa.Column('linked_by_id', sa.Integer(), nullable=True),
    sa.Column('linked_at', lib.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['kb_articles.id'], name=op.f('fk_kb_article_tickets_article_id_kb_articles')),
    sa.ForeignKeyConstraint(['linked_by_id'], ['users.id'], name=op.f('fk_kb_article_tickets_linked_by_id_users')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_kb_article_tickets_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('article_id', 'ticket_id', name=op.f('pk_kb_article_tickets'))
    )
    op.create_index('ix_kb_article_tickets_ticket', 'kb_article_tickets', ['ticket_id'])
    op.create_index('ix_kb_article_tickets_solved', 'kb_article_tickets', ['solved', 'linked_at'])

    op.create_table('follow_ups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('due_at', lib.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', lib.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reminded_at', lib.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', lib.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_by_id', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['completed_by_id'], ['users.id'], name=op.f('fk_follow_ups_completed_by_id_users')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_follow_ups_created_by_id_users')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_follow_ups_owner_id_users')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_follow_ups_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_follow_ups'))
    )
    op.create_index('ix_follow_ups_owner_due', 'follow_ups', ['owner_id', 'completed_at', 'due_at'])
    op.create_index('ix_follow_ups_due', 'follow_ups', ['completed_at', 'due_at'])
    op.create_index('ix_follow_ups_ticket', 'follow_ups', ['ticket_id'])

    op.create_table('preventive_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('follow_up_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', lib.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_preventive_steps_created_by_id_users')),
    sa.ForeignKeyConstraint(['follow_up_id'], ['follow_ups.id'], name=op.f('fk_preventive_steps_follow_up_id_follow_ups')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_preventive_steps_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_preventive_steps'))
    )
    op.create_index('ix_preventive_steps_created', 'preventive_steps', ['created_at'])
    op.create_index('ix_preventive_steps_ticket', 'preventive_steps', ['ticket_id'])

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _sqlite_fts()
    elif dialect == "postgresql":
        _postgres_fts()


def _cols(prefix: str, cols: tuple[str, ...]) -> str:
    return ", ".join(f"{prefix}{c}" for c in cols)


def _sqlite_fts() -> None:
    kb, tk = KB_COLUMNS, TICKET_COLUMNS
    op.execute(f"CREATE VIRTUAL TABLE kb_fts USING fts5({_cols('', kb)}, content='kb_articles', "
               f"content_rowid='id', tokenize='{TOKENIZER}')")
    op.execute(f"""CREATE TRIGGER kb_fts_ai AFTER INSERT ON kb_articles BEGIN
        INSERT INTO kb_fts(rowid, {_cols('', kb)}) VALUES (new.id, {_cols('new.', kb)});
    END""")
    op.execute(f"""CREATE TRIGGER kb_fts_ad AFTER DELETE ON kb_articles BEGIN
        INSERT INTO kb_fts(kb_fts, rowid, {_cols('', kb)}) VALUES ('delete', old.id, {_cols('old.', kb)});
    END""")
    op.execute(f"""CREATE TRIGGER kb_fts_au AFTER UPDATE OF {_cols('', kb)} ON kb_articles BEGIN
        INSERT INTO kb_fts(kb_fts, rowid, {_cols('', kb)}) VALUES ('delete', old.id, {_cols('old.', kb)});
        INSERT INTO kb_fts(rowid, {_cols('', kb)}) VALUES (new.id, {_cols('new.', kb)});
    END""")

    # Resolved tickets only (resolved_at set; a reopen clears it and takes the ticket out of the index).
    # The update trigger fires only when an indexed column or resolved_at is written, not on every bump.
    op.execute(f"CREATE VIRTUAL TABLE ticket_fts USING fts5({_cols('', tk)}, content='tickets', "
               f"content_rowid='id', tokenize='{TOKENIZER}')")
    op.execute(f"""CREATE TRIGGER ticket_fts_ai AFTER INSERT ON tickets WHEN new.resolved_at IS NOT NULL BEGIN
        INSERT INTO ticket_fts(rowid, {_cols('', tk)}) VALUES (new.id, {_cols('new.', tk)});
    END""")
    op.execute(f"""CREATE TRIGGER ticket_fts_ad AFTER DELETE ON tickets WHEN old.resolved_at IS NOT NULL BEGIN
        INSERT INTO ticket_fts(ticket_fts, rowid, {_cols('', tk)}) VALUES ('delete', old.id, {_cols('old.', tk)});
    END""")
    op.execute(f"""CREATE TRIGGER ticket_fts_au AFTER UPDATE OF {_cols('', tk)}, resolved_at ON tickets
        WHEN old.resolved_at IS NOT NULL OR new.resolved_at IS NOT NULL BEGIN
        INSERT INTO ticket_fts(ticket_fts, rowid, {_cols('', tk)})
            SELECT 'delete', old.id, {_cols('old.', tk)} WHERE old.resolved_at IS NOT NULL;
        INSERT INTO ticket_fts(rowid, {_cols('', tk)})
            SELECT new.id, {_cols('new.', tk)} WHERE new.resolved_at IS NOT NULL;
    END""")
    # Tickets resolved before this migration.
    op.execute(f"INSERT INTO ticket_fts(rowid, {_cols('', tk)}) "
               f"SELECT id, {_cols('', tk)} FROM tickets WHERE resolved_at IS NOT NULL")


def _tsv(column: str, weight: str) -> str:
    return f"setweight(to_tsvector('english', coalesce({column}, '')), '{weight}')"


def _postgres_fts() -> None:
    kb_vector = " || ".join([_tsv("title", "A"), _tsv("tags", "A"), _tsv("symptoms", "B"), _tsv("cause", "C"),
                             _tsv("resolution_steps", "D")])
    op.execute(f"ALTER TABLE kb_articles ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({kb_vector}) STORED")
    op.execute("CREATE INDEX ix_kb_articles_search ON kb_articles USING gin (search_vector)")
    ticket_vector = " || ".join([_tsv("summary", "A"), _tsv("description", "B"), _tsv("root_cause", "C"),
                                 _tsv("resolution_notes", "C"), _tsv("workaround", "D")])
    op.execute(f"ALTER TABLE tickets ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({ticket_vector}) STORED")
    op.execute("CREATE INDEX ix_tickets_search ON tickets USING gin (search_vector) WHERE resolved_at IS NOT NULL")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("ticket_fts_au", "ticket_fts_ad", "ticket_fts_ai", "kb_fts_au", "kb_fts_ad", "kb_fts_ai"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS ticket_fts")
        op.execute("DROP TABLE IF EXISTS kb_fts")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_tickets_search")
        op.execute("ALTER TABLE tickets DROP COLUMN IF EXISTS search_vector")
    op.drop_table('preventive_steps')
    op.drop_table('follow_ups')
    op.drop_table('kb_article_tickets')
    op.drop_table('kb_article_versions')
    op.drop_table('kb_articles')
