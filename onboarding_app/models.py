"""Database models. Schema changes go through Flask-Migrate migrations only."""

from __future__ import annotations

import secrets
import unicodedata
from datetime import datetime, timezone
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    column,
    nulls_first,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from .extensions import db

ROLES = ("admin", "staff", "client", "partner")
STAFF_ROLES = ("admin", "staff")
ACCOUNT_ROLES = ("client", "partner")
CONTACT_STATUSES = ("LEAD", "QUALIFIED", "ONBOARDING", "ACTIVE", "LOST")
EMAIL_STATUSES = ("pending", "sent", "failed")
LINK_PURPOSES = ("reset", "welcome")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


# SQLite's full-text index for contact search (migration 0009_search_index_tracker_index):
# an FTS5 table that no model declares (it is an index, kept by triggers), with the shadow tables
# FTS5 keeps for it.
# The schema check and autogenerate leave them out.
CONTACTS_FTS = "contacts_fts"


def unmodelled_table(name: str | None) -> bool:
    return name is not None and (name == CONTACTS_FTS or name.startswith(CONTACTS_FTS + "_"))


def include_in_autogenerate(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic's ``include_name``: every table but the unmodelled ones."""
    return not (type_ == "table" and unmodelled_table(name))


def fold(text: str | None) -> str:
    """Text as search compares it: lower-case, accents stripped (NFKD, combining marks
    dropped), whitespace collapsed. "Zoë  ÅSTRÖM" -> "zoe astrom"."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


class UTCDateTime(TypeDecorator):
    """A timestamp stored as naive UTC and always read back timezone-aware.

    SQLite keeps no zone, so storing naive UTC everywhere keeps both databases alike.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class User(UserMixin, TimestampMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role"),
        CheckConstraint("email = lower(email)", name="email_lower"),
        CheckConstraint(_in("link_purpose", LINK_PURPOSES), name="link_purpose"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(default=False)
    temp_password_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(default=True)
    # Flask-Login's alternative id: rotating it ends every session of the user.
    session_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_session_token)
    # The user's current sign-in link (credentials.py): SHA-256 of the emailed token, what it
    # is for, when it stops working. A new link replaces it; using it clears it.
    link_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    link_purpose: Mapped[str | None] = mapped_column(String(10))
    link_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The IANA zone of the user's profile ("Europe/Paris"); pages show times in it. None:
    # the browser's zone (static/app.js), else UTC. Migration 0006_ux_timezone_search.
    timezone: Mapped[str | None] = mapped_column(String(64))
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    contact: Mapped[Contact | None] = relationship(
        back_populates="user", foreign_keys="Contact.user_id", uselist=False
    )

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.active

    @property
    def display_name(self) -> str:
        return self.name or self.email

    def get_id(self) -> str:  # Flask-Login
        return self.session_token

    def rotate_session_token(self) -> None:
        self.session_token = new_session_token()

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role}>"


class Contact(TimestampMixin, db.Model):
    __tablename__ = "contacts"
    __table_args__ = (
        CheckConstraint(_in("role", ACCOUNT_ROLES), name="role"),
        CheckConstraint(_in("status", CONTACT_STATUSES), name="status"),
        CheckConstraint("email = lower(email)", name="email_lower"),
        Index("ix_contacts_status_id", "status", "id"),
        # Word search (contacts.list_contacts) on search_text: pg_trgm GIN on PostgreSQL, a
        # covering index on SQLite. Migration 0006_ux_timezone_search.
        Index(
            "ix_contacts_search", "search_text",
            postgresql_using="gin", postgresql_ops={"search_text": "gin_trgm_ops"},
        ),
        # The staff dashboard's "waiting for approval", oldest first.
        Index("ix_contacts_status_changed", "status", "status_changed_at", "id"),
        # The tracker, most stalled first; the funnel's cohort (migration 0007_tracker).
        # With user_id, the tracker's count and page choice read the index alone (0009); NULLs
        # first, as the tracker orders (on PostgreSQL; SQLite's default, 0010).
        Index("ix_contacts_status_last_activity_at", "status", nulls_first(column("last_activity_at")), "user_id"),
        Index("ix_contacts_role_provisioned_at", "role", "provisioned_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Stored lower-case, so the unique constraint is case-insensitive.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    company: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    role: Mapped[str] = mapped_column(String(20), default="client")
    status: Mapped[str] = mapped_column(String(20), default="LEAD")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), unique=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # fold(name email company), kept by _keep_search_text below; what search matches.
    search_text: Mapped[str] = mapped_column(String(700), default="")
    # When the status last changed (how long a QUALIFIED contact has waited for approval).
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The account's onboarding over time (the tracker, reminders and the funnel): when it was
    # provisioned and became ACTIVE; the user's last activity (provisioning, sign-in, a task
    # done or skipped); the reminders sent, the last one restarting the reminder interval.
    provisioned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_reminder_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The user who invited this contact from their checklist ("Invite your teammates").
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    user: Mapped[User | None] = relationship(back_populates="contact", foreign_keys=[user_id])
    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    invited_by: Mapped[User | None] = relationship(foreign_keys=[invited_by_id])

    @validates("name", "email", "company")
    def _keep_search_text(self, key: str, value: str | None) -> str | None:
        parts = {"name": self.name, "email": self.email, "company": self.company, key: value}
        self.search_text = fold(" ".join(p for p in parts.values() if p))
        return value

    @validates("status")
    def _stamp_status_change(self, key: str, value: str) -> str:
        if value != self.status:
            self.status_changed_at = utcnow()
        return value

    def __repr__(self) -> str:
        return f"<Contact {self.id} {self.email} {self.status}>"


class ContactStatusCount(db.Model):
    """How many contacts are in each status, kept by triggers on ``contacts`` (migration
    0003_contact_search_and_counts), so totals never count the whole table. Read-only here."""

    __tablename__ = "contact_status_counts"

    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    contacts: Mapped[int] = mapped_column(Integer)


class FeedEvent(db.Model):
    __tablename__ = "feed_events"
    __table_args__ = (
        Index("ix_feed_events_created_at_id", "created_at", "id"),
        Index("ix_feed_events_type_id", "type", "id"),
        Index("ix_feed_events_user_id_id", "user_id", "id"),
        Index("ix_feed_events_contact_id_id", "contact_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])
    contact: Mapped[Contact | None] = relationship(foreign_keys=[contact_id])


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    # SHA-256 of a 256-bit random token: the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class OutboundEmail(db.Model):
    """The outbox. A pending row says what to send, never a secret: the welcome
    email's temporary password is issued and rendered at delivery, and the stored
    bodies of a sent email have it redacted."""

    __tablename__ = "outbound_emails"
    __table_args__ = (
        CheckConstraint(_in("status", EMAIL_STATUSES), name="status"),
        Index("ix_outbound_emails_status_id", "status", "id"),
        Index("ix_outbound_emails_contact_id_id", "contact_id", "id"),
        Index("ix_outbound_emails_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a pending email is due: now when queued, later after a failed attempt (backoff).
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A deliverer's lease: while it lies in the future, nobody else tries this email.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)

    user: Mapped[User | None] = relationship()
    contact: Mapped[Contact | None] = relationship()


# What completes a task (SPEC.md, "Onboarding tasks that check themselves"); the registry of
# what each kind takes and stores is ``task_kinds.TASK_KINDS``.
TASK_KIND_NAMES = ("password", "manual", "profile", "terms", "billing", "teammates", "upload")


class OnboardingTask(db.Model):
    __tablename__ = "onboarding_tasks"
    __table_args__ = (
        UniqueConstraint("role", "slug", name="uq_onboarding_tasks_role_slug"),
        Index("ix_onboarding_tasks_role_position", "role", "position"),
        CheckConstraint(_in("kind", TASK_KIND_NAMES), name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    slug: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)
    required: Mapped[bool] = mapped_column(default=True)
    action_url: Mapped[str | None] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(20), default="manual")
    # ``terms`` tasks: the document accepted (``documents.key``), and whether the acceptance
    # is signed with the signer's full name (the partner agreement).
    document_key: Mapped[str | None] = mapped_column(String(64))
    signature_required: Mapped[bool] = mapped_column(default=False)
    # A retired task leaves every checklist: not shown, not counted, not completable.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OnboardingProgress(db.Model):
    __tablename__ = "onboarding_progress"
    __table_args__ = (
        UniqueConstraint("user_id", "task_id", name="uq_onboarding_progress_user_id_task_id"),
        CheckConstraint("completed IN (0, 1)", name="completed"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    task_id: Mapped[int] = mapped_column(ForeignKey("onboarding_tasks.id"), index=True)
    completed: Mapped[int] = mapped_column(SmallInteger, default=0)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An optional task the user chose not to do (cleared when they complete it after all).
    skipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the task collected (its kind's answers, as stored); None for password/manual.
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    task: Mapped[OnboardingTask] = relationship()


class Document(db.Model):
    """One published version of a document users accept (``service-terms``...). Versions
    are never edited: publishing makes the next one, which is then the current one."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("key", "version", name="uq_documents_key_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    body_markdown: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class UploadedFile(db.Model):
    """A file a user uploaded for a task. The bytes live in the database, so any number
    of app hosts serve them; the type is the one detected from the content."""

    __tablename__ = "uploaded_files"
    __table_args__ = (Index("ix_uploaded_files_owner_id_id", "owner_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("onboarding_tasks.id"))
    original_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


DELIVERY_STATUSES = ("pending", "delivered", "failed")


class WebhookEndpoint(db.Model):
    """Where feed events are pushed (SPEC.md, "Webhooks"). ``events`` holds the subscribed
    event types (or ``*`` for all) between spaces, " a b ", so the delivery rows of an event
    are written by one INSERT ... SELECT with LIKE on both databases. The secret signs each
    delivery (Standard Webhooks) and is shown to the admin once."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))
    events: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def event_types(self) -> list[str]:
        return self.events.split()


class WebhookDelivery(db.Model):
    """One feed event to one endpoint: written with the event, delivered by the worker."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        UniqueConstraint("endpoint_id", "feed_event_id", name="uq_webhook_deliveries_endpoint_id_feed_event_id"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    feed_event_id: Mapped[int] = mapped_column(ForeignKey("feed_events.id"))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    endpoint: Mapped[WebhookEndpoint] = relationship()
    event: Mapped[FeedEvent] = relationship()
