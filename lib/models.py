"""SQLAlchemy 2.0 ORM tables. No streamlit import; schema changes go through Alembic (migrations/)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from lib import audit_chain, clock
from lib.config import get_settings
from lib.workflow import OPEN_STATUSES, Status


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine.

    PostgreSQL stores ``timestamptz``. SQLite has no time zone type: values are stored as naive UTC
    text (``YYYY-MM-DD HH:MM:SS.ffffff``, which sorts correctly) and come back tagged as UTC.
    Naive datetimes are refused on the way in: a time without a zone is a bug.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware value")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw text from SQLite expressions
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return clock.now()


NAMING = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


# --- people, things, reference data -------------------------------------------------------------


class User(Base):
    """Technicians, senior technicians and leads (roles: lib.workflow.Role)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(100))
    role: Mapped[int] = mapped_column(SmallInteger, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    capacity: Mapped[int] = mapped_column(Integer, default=10)
    away_until: Mapped[datetime | None]
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    skills: Mapped[list[UserSkill]] = relationship(back_populates="user", cascade="all, delete-orphan")


class LoginSession(Base):
    """A signed-in browser. The cookie carries a random token; only its SHA-256 is stored, so a copy of the
    database cannot sign anyone in. A session starts as a one-time ``code_hash`` (handed to the browser once,
    exchanged by the /auth/session route for the cookie) and ends when revoked, idle or past ``expires_at``."""

    __tablename__ = "login_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    user_agent: Mapped[str | None] = mapped_column(String(200))


class UserSkill(Base):
    __tablename__ = "user_skills"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, default=1)  # 1 basic .. 3 expert
    user: Mapped[User] = relationship(back_populates="skills")


class Category(Base):
    __tablename__ = "categories"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Requester(Base):
    """A contact; never logs in. Found again by e-mail (stored lower-case)."""

    __tablename__ = "requesters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    department: Mapped[str | None] = mapped_column(String(120))
    location: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (Index("ix_requesters_name", "name"),)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_tag: Mapped[str | None] = mapped_column(String(64), unique=True)
    device_type: Mapped[str | None] = mapped_column(String(60))
    make_model: Mapped[str | None] = mapped_column(String(120))
    os: Mapped[str | None] = mapped_column(String(80))
    serial: Mapped[str | None] = mapped_column(String(120))
    location: Mapped[str | None] = mapped_column(String(120))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("requesters.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (Index("ix_devices_make_model", "make_model"),)


class SlaTarget(Base):
    """Targets per priority, in minutes; business_hours=False means around the clock."""

    __tablename__ = "sla_targets"
    priority: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    ack_minutes: Mapped[int] = mapped_column(Integer)
    response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)
    business_hours: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Setting(Base):
    """Editable settings kept in the database (calendar, weights, templates ...), JSON values."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)  # any JSON value: an object, a number, true or false
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


#: ``Session.info`` key of the settings rows a page run read at once (lib.ui.core.reading): {key: row}.
SETTINGS_INFO = "helpdesk_settings"


def setting_row(session: Session, key: str) -> Setting | None:
    """The settings row ``key`` (None when never set), read-only: from the rows the session holds for a page run
    when it holds them (so neither a row nor its absence is asked for again), else from the database."""
    held = session.info.get(SETTINGS_INFO)
    if held is not None:
        return held.get(key)
    return session.get(Setting, key)


# --- tickets and their history -----------------------------------------------------------------


class Ticket(Base):
    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the quoted number: HD-000123
    external_source: Mapped[str | None] = mapped_column(String(20))
    external_ref: Mapped[str | None] = mapped_column(String(255))
    summary: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    channel: Mapped[str] = mapped_column(String(20))
    requester_id: Mapped[int | None] = mapped_column(ForeignKey("requesters.id"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    device_details: Mapped[str | None] = mapped_column(Text)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    priority: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(24), default=Status.NEW.value)
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    escalation_level: Mapped[int] = mapped_column(SmallInteger, default=0)
    vendor_name: Mapped[str | None] = mapped_column(String(120))
    vendor_case_ref: Mapped[str | None] = mapped_column(String(120))
    vendor_promised_at: Mapped[datetime | None]
    resolution_notes: Mapped[str | None] = mapped_column(Text)
    workaround: Mapped[str | None] = mapped_column(Text)
    root_cause: Mapped[str | None] = mapped_column(Text)
    root_cause_unknown_reason: Mapped[str | None] = mapped_column(Text)
    closure_reason: Mapped[str | None] = mapped_column(String(24))
    closure_note: Mapped[str | None] = mapped_column(Text)
    confirmation_requested_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    confirmation_via: Mapped[str | None] = mapped_column(String(20))
    confirmed_by: Mapped[str | None] = mapped_column(String(200))
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    is_major_incident: Mapped[bool] = mapped_column(Boolean, default=False)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # SLA: the policy and calendar that applied (a copy, so later edits never rewrite history),
    # the due and at-risk moments (recomputed in each writing transaction), and breaches recorded once.
    sla_policy: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    response_due_at: Mapped[datetime | None]
    response_risk_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None]
    resolution_risk_at: Mapped[datetime | None]
    response_breached_at: Mapped[datetime | None]
    resolution_breached_at: Mapped[datetime | None]

    requester: Mapped[Requester | None] = relationship(lazy="joined")
    device: Mapped[Device | None] = relationship(lazy="joined")
    category: Mapped[Category] = relationship(lazy="joined")
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id], lazy="joined")

    __table_args__ = (
        UniqueConstraint("external_source", "external_ref"),
        # The default queue: open tickets by priority (highest first), then oldest first.
        Index("ix_tickets_queue", "is_open", text("priority DESC"), "created_at", "id"),
        Index("ix_tickets_assignee_queue", "assignee_id", "is_open", text("priority DESC"), "created_at"),
        Index("ix_tickets_status", "status"),
        Index("ix_tickets_category_open", "category_id", "is_open"),
        Index("ix_tickets_requester", "requester_id", "created_at"),
        Index("ix_tickets_device", "device_id", "created_at"),
        Index("ix_tickets_parent", "parent_id"),
        Index("ix_tickets_created_at", "created_at"),
        Index("ix_tickets_resolved_at", "resolved_at"),
        Index("ix_tickets_closed_at", "closed_at"),
        Index("ix_tickets_resolution_due", "is_open", "resolution_due_at"),
        Index("ix_tickets_resolution_risk", "is_open", "resolution_risk_at"),
        Index("ix_tickets_response_due", "is_open", "response_due_at"),
        # Open tickets only, with the SLA moments the "Breaching or at risk" view and the board read (0005).
        Index("ix_tickets_open_sla", "is_open", text("priority DESC"), "created_at", "id", "assignee_id", "status",
              "resolution_risk_at", "response_risk_at", "resolution_due_at", "response_due_at",
              "resolution_breached_at", "acknowledged_at", "first_response_at",
              sqlite_where=text("is_open IS 1"), postgresql_where=text("is_open IS TRUE")),
        {"sqlite_autoincrement": True},
    )


class TicketEvent(Base):
    """The timeline and audit trail. Append-only: triggers refuse UPDATE and DELETE, and each event carries the
    hash chain of its ticket (``chain_hash``, set on insert; lib/audit_chain.py)."""

    __tablename__ = "ticket_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str | None] = mapped_column(String(200))  # e.g. the requester's address, "system"
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str | None] = mapped_column(String(24))
    field: Mapped[str | None] = mapped_column(String(40))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    minutes: Mapped[int | None] = mapped_column(Integer)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    # sha256 over the previous event's chain_hash (same ticket) and this event's fields; NULL only for events
    # written before migration 0008 and not sealed yet
    chain_hash: Mapped[str | None] = mapped_column(String(64))

    actor: Mapped[User | None] = relationship(lazy="joined")

    __table_args__ = (
        Index("ix_events_ticket", "ticket_id", "id"),
        Index("ix_events_kind_time", "kind", "occurred_at"),
        Index("ix_events_to_status_time", "to_status", "occurred_at"),
        Index("ix_events_actor_time", "actor_id", "occurred_at"),
        {"sqlite_autoincrement": True},
    )


# Every event inserted through the ORM gets its chain hash just before its INSERT (bulk inserts through Core
# call lib.audit_chain.link_rows).
event.listen(TicketEvent, "before_insert", audit_chain.before_insert)


class Attachment(Base):
    """File bytes live in the database (``data``) or in the configured shared folder (``storage_path``)."""

    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("ticket_events.id"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    storage_path: Mapped[str | None] = mapped_column(String(500))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (Index("ix_attachments_ticket", "ticket_id"),)


class AuditLog(Base):
    """Logins, lockouts and admin changes (ticket changes are in ticket_events). Append-only (triggers)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("ix_audit_at", "at"),)


#: Stands for the configured ``public_url`` in a queued mail's body: the sender puts the address in when it
#: sends, so a mail queued before the setting was made (or changed) still links to the right place.
PUBLIC_URL_MARK = "{{public_url}}"


class OutboxMail(Base):
    """Mail to send, written in the same transaction as the change it reports."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("ticket_events.id"))
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    in_reply_to: Mapped[str | None] = mapped_column(String(255))
    # an HTML alternative and attached files (the weekly report): [{"filename", "content_type", "data" (base64),
    # "cid" (an image the HTML shows inline)}]; migration 0015
    html_body: Mapped[str | None] = mapped_column(Text)
    parts: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(12), default="pending")  # pending, sent, failed, cancelled (lib.mail.outbound)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)


class QuarantinedMail(Base):
    """Inbound mail that could not become a ticket or comment, with the reason, for the lead to see."""

    __tablename__ = "mail_quarantine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    message_id: Mapped[str | None] = mapped_column(String(255))
    from_address: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)


class ProcessedMail(Base):
    """Each inbound Message-ID once, with what became of it (lib.mail.inbound; migration 0002)."""

    __tablename__ = "mail_processed"
    message_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    from_address: Mapped[str | None] = mapped_column(String(254))
    outcome: Mapped[str] = mapped_column(String(20))
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (Index("ix_mail_processed_ticket_from", "ticket_id", "from_address"),)


class ActionToken(Base):
    """Signed, expiring, single-use links (e.g. the requester's confirmation link)."""

    __tablename__ = "action_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    purpose: Mapped[str] = mapped_column(String(24))
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def ticket_ref(ticket_id: int, prefix: str | None = None) -> str:
    """The ticket number people see, e.g. ``HD-000123``: the configured prefix (``ticket_prefix``) unless given."""
    return f"{get_settings().ticket_prefix if prefix is None else prefix}-{ticket_id:06d}"


# --- knowledge base, follow-ups, preventive steps (see docs/knowledge.md) --------------------------
# Full-text search: SQLite keeps FTS5 tables kb_fts and ticket_fts in step through triggers; PostgreSQL has
# generated ``search_vector`` columns on kb_articles and tickets with GIN indexes. Both come from migration
# 0003 and are not mapped here (the ORM never writes them).


class KbArticle(Base):
    """A knowledge-base article, quoted as KB-12. The current text; earlier versions in kb_article_versions."""

    __tablename__ = "kb_articles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    symptoms: Mapped[str] = mapped_column(Text, default="")
    cause: Mapped[str] = mapped_column(Text, default="")
    resolution_steps: Mapped[str] = mapped_column(Text, default="")  # Markdown, rendered by lib.safe_markdown
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    tags: Mapped[str] = mapped_column(String(500), default="")  # lower-case, comma-separated
    status: Mapped[str] = mapped_column(String(12), default="draft")  # lib.workflow.KbStatus
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    source_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)

    category: Mapped[Category | None] = relationship(lazy="joined")
    author: Mapped[User | None] = relationship(foreign_keys=[author_id], lazy="joined")

    __table_args__ = (
        Index("ix_kb_articles_status_category", "status", "category_id"),
        Index("ix_kb_articles_source_ticket", "source_ticket_id"),
        {"sqlite_autoincrement": True},
    )


class KbArticleVersion(Base):
    """Every saved version of an article, kept (the newest equals the article's current text)."""

    __tablename__ = "kb_article_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id"))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    symptoms: Mapped[str] = mapped_column(Text, default="")
    cause: Mapped[str] = mapped_column(Text, default="")
    resolution_steps: Mapped[str] = mapped_column(Text, default="")
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    tags: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(12))  # lib.workflow.KbStatus
    edited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    edited_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str | None] = mapped_column(String(300))

    editor: Mapped[User | None] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("article_id", "version"),)


class KbArticleTicket(Base):
    """An article linked to a ticket; ``solved`` marks "solved with KB-12" (counted in the metrics)."""

    __tablename__ = "kb_article_tickets"
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id"), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    solved: Mapped[bool] = mapped_column(Boolean, default=False)
    linked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_kb_article_tickets_ticket", "ticket_id"),
        Index("ix_kb_article_tickets_solved", "solved", "linked_at"),
    )


class FollowUp(Base):
    """A check scheduled on a ticket: due date, owner, note; reminded once when due, completed with an outcome."""

    __tablename__ = "follow_ups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    due_at: Mapped[datetime]
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(20), default="manual")  # lib.workflow.FollowUpSource
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    reminded_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    outcome: Mapped[str | None] = mapped_column(Text)

    owner: Mapped[User] = relationship(foreign_keys=[owner_id], lazy="joined")

    __table_args__ = (
        Index("ix_follow_ups_owner_due", "owner_id", "completed_at", "due_at"),
        Index("ix_follow_ups_due", "completed_at", "due_at"),
        Index("ix_follow_ups_ticket", "ticket_id"),
    )


class PreventiveStep(Base):
    """What was done so it does not happen again, recorded at closure (listed in the weekly report)."""

    __tablename__ = "preventive_steps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    body: Mapped[str] = mapped_column(Text)
    follow_up_id: Mapped[int | None] = mapped_column(ForeignKey("follow_ups.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_preventive_steps_created", "created_at"),
        Index("ix_preventive_steps_ticket", "ticket_id"),
    )


# --- metrics: one narrow row per ticket, kept by triggers (migration 0004, lib/metrics/metrics_store.py) ---------


class TicketMetric(Base):
    """What the metrics read about a ticket: times as epoch microseconds (UTC), flags as 0/1.

    Written only by triggers on ``tickets`` (in the writing transaction, whoever writes: the services, the
    importers, seed-demo) and by ``python -m lib.cli rebuild-rollups``; the ORM never writes it. Each index
    starts with (priority, category) and a time, so a period's counts are index-only range reads.
    """

    __tablename__ = "ticket_metrics"
    ticket_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    priority: Mapped[int] = mapped_column(SmallInteger)
    category_id: Mapped[int] = mapped_column(Integer)
    assignee_id: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(20))
    is_open: Mapped[int] = mapped_column(SmallInteger)
    created_us: Mapped[int] = mapped_column(BigInteger)
    acknowledged_us: Mapped[int | None] = mapped_column(BigInteger)
    first_response_us: Mapped[int | None] = mapped_column(BigInteger)
    responded_us: Mapped[int | None] = mapped_column(BigInteger)  # the first of acknowledged and first response
    resolved_us: Mapped[int | None] = mapped_column(BigInteger)
    closed_us: Mapped[int | None] = mapped_column(BigInteger)
    closure_reason: Mapped[str | None] = mapped_column(String(24))
    reopen_count: Mapped[int] = mapped_column(Integer)
    escalation_level: Mapped[int] = mapped_column(SmallInteger)
    sla_target: Mapped[int] = mapped_column(SmallInteger)  # 1: the ticket carries an SLA policy
    response_breached: Mapped[int] = mapped_column(SmallInteger)
    resolution_breached: Mapped[int] = mapped_column(SmallInteger)
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)
    requester_id: Mapped[int | None] = mapped_column(Integer)
    device_id: Mapped[int | None] = mapped_column(Integer)
    is_duplicate: Mapped[int] = mapped_column(SmallInteger)  # closed as a duplicate of another ticket
    # Tallies: three 0/1 counters packed 21 bits apart, so one SUM over a period gives three counts
    # (lib/metrics/metrics_store.py TALLIES says which).
    response_tally: Mapped[int] = mapped_column(BigInteger)
    resolution_tally: Mapped[int] = mapped_column(BigInteger)
    closure_tally_a: Mapped[int] = mapped_column(BigInteger)
    closure_tally_b: Mapped[int] = mapped_column(BigInteger)
    first_contact: Mapped[int] = mapped_column(SmallInteger)  # resolved at first contact (docs/metrics.md)

    __table_args__ = (
        Index("ix_ticket_metrics_created", "priority", "category_id", "created_us", "assignee_id", "channel",
              "requester_id", "device_id", "is_duplicate", "ticket_id"),
        Index("ix_ticket_metrics_acknowledged", "priority", "category_id", "acknowledged_us", "assignee_id", "channel",
              "created_us", sqlite_where=text("acknowledged_us IS NOT NULL"),
              postgresql_where=text("acknowledged_us IS NOT NULL")),
        Index("ix_ticket_metrics_first_response", "priority", "category_id", "first_response_us", "assignee_id",
              "channel", "created_us", sqlite_where=text("first_response_us IS NOT NULL"),
              postgresql_where=text("first_response_us IS NOT NULL")),
        Index("ix_ticket_metrics_responded", "priority", "category_id", "responded_us", "assignee_id", "channel",
              "response_tally", sqlite_where=text("responded_us IS NOT NULL"),
              postgresql_where=text("responded_us IS NOT NULL")),
        Index("ix_ticket_metrics_resolved", "priority", "category_id", "resolved_us", "assignee_id", "channel",
              "created_us", "resolution_tally", "first_contact", sqlite_where=text("resolved_us IS NOT NULL"),
              postgresql_where=text("resolved_us IS NOT NULL")),
        Index("ix_ticket_metrics_closed", "priority", "category_id", "closed_us", "assignee_id", "channel",
              "closure_reason", "resolved_us", "closure_tally_a", "closure_tally_b", "satisfaction",
              sqlite_where=text("closed_us IS NOT NULL"),
              postgresql_where=text("closed_us IS NOT NULL")),
        Index("ix_ticket_metrics_open", "assignee_id", "priority", "category_id", "channel", "created_us", "is_open",
              sqlite_where=text("is_open = 1"), postgresql_where=text("is_open = 1")),
    )


# --- imports started from the app (lib/transfer/import_jobs.py; migration 0010) -----------------------------


class ImportJob(Base):
    """A CSV import (or dry run) started on the Admin page: the uploaded file, what to do with it, its progress.

    Run in the page for small files, by the worker for big ones; claimed like the outbox (``claim_token`` and
    ``claimed_until``), and resumed from ``items_done`` (committed in the same transaction as the tickets)."""

    __tablename__ = "import_jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)  # the upload; emptied when finished
    layout: Mapped[str] = mapped_column(String(20))
    mapping_toml: Mapped[str | None] = mapped_column(Text)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    in_worker: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(12), default="queued")  # queued, running, done, failed
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    items_done: Mapped[int] = mapped_column(Integer, default=0)  # the checkpoint: tickets committed
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    __table_args__ = (Index("ix_import_jobs_state", "state", "created_at"),)


class ImportRefusal(Base):
    """One refused row (or incident) of an import job, with its reason (``row 17: priority ...``)."""

    __tablename__ = "import_refusals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("import_jobs.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    __table_args__ = (Index("ix_import_refusals_job", "job_id", "id"),)


#: Status events that move a ticket into or out of open work (the backlog), for index-only reads.
_OPEN_SQL = ", ".join(f"'{s.value}'" for s in OPEN_STATUSES)
#: An event that moves a ticket into or out of open work (workflow.OPEN_STATUSES). The text is also the partial
#: index's WHERE (queries repeat it so SQLite sees the index applies): a new open status needs a migration that
#: recreates ix_events_backlog.
BACKLOG_EVENT_PREDICATE = (
    "to_status IS NOT NULL AND "
    f"(CASE WHEN to_status IN ({_OPEN_SQL}) THEN 1 ELSE 0 END)"
    f" <> (CASE WHEN from_status IN ({_OPEN_SQL}) THEN 1 ELSE 0"
    " END)"
)
Index("ix_events_backlog", TicketEvent.occurred_at, TicketEvent.ticket_id, TicketEvent.to_status,
      TicketEvent.from_status, sqlite_where=text(BACKLOG_EVENT_PREDICATE),
      postgresql_where=text(BACKLOG_EVENT_PREDICATE))
Index("ix_events_reopened", TicketEvent.occurred_at, TicketEvent.ticket_id, sqlite_where=text("kind = 'reopened'"),
      postgresql_where=text("kind = 'reopened'"))


# --- the ticket page as a shared workspace: drafts and presence (migration 0011, docs/workspace.md) ---------


class DraftText(Base):
    """Text a person is writing on a ticket and has not sent yet: one row per user, ticket and field
    (lib/drafts.py). Upserted as they type, deleted when sent or discarded."""

    __tablename__ = "ticket_drafts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "ticket_id", "field"),)


class TicketPresence(Base):
    """Who has a ticket open, refreshed by each open page every few seconds (lib/presence.py). One row per user
    and ticket, upserted: ``state`` is ``viewing`` or ``writing:<draft fields>``; rows older than the staleness
    threshold are not shown and are purged later."""

    __tablename__ = "ticket_presence"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(200), default="viewing")
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_ticket_presence_ticket", "ticket_id", "last_seen"),
        Index("ix_ticket_presence_last_seen", "last_seen"),
    )


# --- inbound mail as it arrived (lib/mail/raw_store.py; migration 0012, docs/email.md) ---------------------


class RawMail(Base):
    """The raw message of every ingested mail that became a ticket, a comment or a note (quarantined mail keeps
    its own copy in ``mail_quarantine``). Staff read it as plain text; the worker removes rows older than
    ``mail_raw_retention_days``."""

    __tablename__ = "mail_raw"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    size: Mapped[int] = mapped_column(Integer)
    raw: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)


# --- outbound webhooks (lib/webhooks.py; migration 0013, docs/notifications.md) ---------------------------


class WebhookDelivery(Base):
    """One JSON POST of a ticket event to the desk's webhook, written in the same transaction as the event;
    the worker sends it, signed, retrying with backoff."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("ticket_events.id"))
    kind: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(String(2000))
    payload: Mapped[str] = mapped_column(Text)  # the exact JSON body that is signed and sent
    state: Mapped[str] = mapped_column(String(12), default="pending")  # pending, sent, failed, cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    __table_args__ = (Index("ix_webhook_due", "state", "next_attempt_at"),
                      Index("ix_webhook_event", "event_id"))


# --- staff notifications and canned responses (lib/staff_notify.py, lib/canned.py; migration 0014) --------------


class Notification(Base):
    """Something a staff member must act on (assigned or escalated to them, a requester's reply, an SLA risk or
    breach, a follow-up due, a mention), written by the notification seam in the event's transaction."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("ticket_events.id"))
    kind: Mapped[str] = mapped_column(String(30))  # lib.staff_notify.NoticeKind
    text: Mapped[str] = mapped_column(String(500))
    link: Mapped[str | None] = mapped_column(String(300))  # the page it points to, e.g. /ticket?id=12
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True)  # once-only notices (at risk)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]
    mailed_at: Mapped[datetime | None]  # mailed on its own or in a digest (None: not mailed)
    __table_args__ = (Index("ix_notifications_user_id_read_at", "user_id", "read_at"),
                      Index("ix_notifications_user_id_id", "user_id", "id"))


class StaffNotifyPref(Base):
    """A staff member's choice of notification mail: each, digest or none (no row: the configured default)."""

    __tablename__ = "staff_notify_prefs"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    email_mode: Mapped[str] = mapped_column(String(10))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffDigest(Base):
    """One daily digest sent to one person on one desk-local day: the row is the claim (never twice a day)."""

    __tablename__ = "staff_digests"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD in the desk's time zone
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    items: Mapped[int] = mapped_column(Integer, default=0)


class CannedResponse(Base):
    """A reply snippet the lead keeps, with {placeholders} filled in from the ticket (lib/canned.py)."""

    __tablename__ = "canned_responses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(120), unique=True)
    body: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
