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
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from lib.workflow import Status


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
    return datetime.now(UTC)


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
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


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
        {"sqlite_autoincrement": True},
    )


class TicketEvent(Base):
    """The timeline and audit trail. Append-only: rows are never updated or deleted."""

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

    actor: Mapped[User | None] = relationship(lazy="joined")

    __table_args__ = (
        Index("ix_events_ticket", "ticket_id", "id"),
        Index("ix_events_kind_time", "kind", "occurred_at"),
        Index("ix_events_to_status_time", "to_status", "occurred_at"),
        Index("ix_events_actor_time", "actor_id", "occurred_at"),
        {"sqlite_autoincrement": True},
    )


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
    """Logins, lockouts and admin changes (ticket changes are in ticket_events)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("ix_audit_at", "at"),)


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
    state: Mapped[str] = mapped_column(String(12), default="pending")  # pending, sent, failed
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


def ticket_ref(ticket_id: int, prefix: str = "HD") -> str:
    return f"{prefix}-{ticket_id:06d}"
