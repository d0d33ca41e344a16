"""The email outbox: queue an email in the caller's transaction; deliver it after the commit.

A pending row says what to send (kind, user, contact), never a secret. The welcome email's
temporary password is issued at delivery, its hash and expiry stored on the user in the same
transaction that marks the email sent, so a pending email holds no password and a sent one is
stored with the password redacted. One sending function (``_send``) talks to Flask-Mail.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, render_template
from flask_mail import Message
from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from . import credentials
from .extensions import mail
from .models import Contact, OutboundEmail, User, utcnow
from .transactions import after_commit

log = logging.getLogger(__name__)

KIND_WELCOME = "welcome"  # a new account: holds a temporary password issued at delivery
KIND_WELCOME_EXISTING = "welcome_existing"  # an existing account linked to the contact
MAX_ATTEMPTS = 8
REDACTED = "(temporary password, not stored)"
_SUBJECTS = {
    KIND_WELCOME: "Welcome! Your account is ready",
    KIND_WELCOME_EXISTING: "Welcome! Your onboarding has started",
}


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int


def external_url(endpoint: str, **values) -> str:
    """An absolute URL under ``APP_BASE_URL``, for links that leave the request (emails)."""
    base = urlsplit(current_app.config["APP_BASE_URL"])
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "http"
    )
    return adapter.build(endpoint, values, force_external=True)


def queue_email(session: Session, kind: str, *, user: User, contact: Contact | None = None) -> OutboundEmail:
    """Add an email of ``kind`` (a key of ``_SUBJECTS``, rendered from
    ``templates/email/<kind>.txt`` and ``.html`` at delivery) to the outbox in the caller's
    transaction; it is delivered once that transaction has committed. A newer email of the
    same kind to the same user supersedes any older one still pending."""
    session.execute(
        update(OutboundEmail)
        .where(OutboundEmail.user_id == user.id, OutboundEmail.kind == kind, OutboundEmail.status == "pending")
        .values(status="failed", last_error="Superseded by a newer email of the same kind.")
        .execution_options(synchronize_session=False)
    )
    email = OutboundEmail(
        kind=kind,
        recipient=user.email,
        subject=_SUBJECTS[kind],
        status="pending",
        attempts=0,
        user_id=user.id,
        contact_id=contact.id if contact is not None else None,
    )
    session.add(email)
    session.flush()
    email_id = email.id
    after_commit(session, lambda: deliver_email(session, email_id))
    return email


def queue_welcome_email(session: Session, *, user: User, contact: Contact, with_password: bool) -> OutboundEmail:
    """The welcome email: with a temporary password issued at delivery for a new account, or
    without one for an existing account that was linked to the contact."""
    return queue_email(session, KIND_WELCOME if with_password else KIND_WELCOME_EXISTING, user=user, contact=contact)


def _claim(session: Session, email_id: int) -> OutboundEmail | None:
    """Lock a still-pending email for this deliverer, or None if someone else has it."""
    query = select(OutboundEmail).where(OutboundEmail.id == email_id, OutboundEmail.status == "pending")
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(query.with_for_update(skip_locked=True)).scalar_one_or_none()
    # SQLite has no row locks: a no-op write takes the database write lock while the row is
    # still pending, and keeps every other deliverer out until this transaction ends.
    touched = session.execute(
        update(OutboundEmail)
        .where(OutboundEmail.id == email_id, OutboundEmail.status == "pending")
        .values(attempts=OutboundEmail.attempts)
        .execution_options(synchronize_session=False)
    )
    if touched.rowcount != 1:
        return None
    return session.execute(query.execution_options(populate_existing=True)).scalar_one()


def _render(email: OutboundEmail, password: str | None) -> tuple[str, str]:
    context = {
        "user": email.user,
        "contact": email.contact,
        "password": password,
        "sign_in_url": external_url("auth.login", email=email.recipient),
        "ttl_hours": current_app.config["TEMP_PASSWORD_TTL_HOURS"],
        "email": email,
    }
    return (
        render_template(f"email/{email.kind}.txt", **context),
        render_template(f"email/{email.kind}.html", **context),
    )


def _send(recipient: str, subject: str, text: str, html: str) -> None:
    """The one place an email leaves the app: Flask-Mail, or the log when no server is set."""
    if not current_app.config.get("MAIL_SERVER"):
        log.info("MAIL_SERVER is not set; the email is written here instead.\nTo: %s\nSubject: %s\n\n%s",
                 recipient, subject, text)
        return
    mail.send(Message(subject=subject, recipients=[recipient], body=text, html=html))


SENT, FAILED, SKIPPED = "sent", "failed", "skipped"


def deliver_email(session: Session, email_id: int) -> str:
    """Send one pending email: ``SENT``, ``FAILED`` (recorded on the row, which stays pending
    until ``MAX_ATTEMPTS``) or ``SKIPPED`` (not pending, or another deliverer has it)."""
    # The slow part (argon2) comes before the claim, so no lock is held while it runs.
    kind = session.execute(select(OutboundEmail.kind).where(OutboundEmail.id == email_id)).scalar_one_or_none()
    password, password_hash = credentials.hashed_temporary_password() if kind == KIND_WELCOME else (None, None)
    email = _claim(session, email_id)
    if email is None:
        session.rollback()
        return SKIPPED
    try:
        if password:
            user = email.user
            if not user.must_change_password:
                email.status = "failed"
                email.last_error = "Not sent: the user has already set their own password."
                session.commit()
                return FAILED
            credentials.store_temporary_password(
                user, password_hash, ttl_hours=current_app.config["TEMP_PASSWORD_TTL_HOURS"]
            )
        text, html = _render(email, password)
        _send(email.recipient, email.subject, text, html)
    except (smtplib.SMTPException, OSError) as exc:
        session.rollback()
        _record_failure(session, email_id, exc)
        return FAILED
    except BaseException:
        session.rollback()
        raise
    # The stored copy is what was sent, less the secret.
    email.body_text, email.body_html = _render(email, REDACTED) if password else (text, html)
    email.status = "sent"
    email.sent_at = utcnow()
    email.attempts += 1
    email.last_error = None
    recipient = email.recipient
    session.commit()
    log.info("email %s (%s) sent to %s", email_id, kind, recipient)
    return SENT


def _record_failure(session: Session, email_id: int, exc: BaseException) -> None:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    log.warning("email %s not sent: %s", email_id, error)
    session.execute(
        update(OutboundEmail)
        .where(OutboundEmail.id == email_id, OutboundEmail.status == "pending")
        .values(
            attempts=OutboundEmail.attempts + 1,
            last_error=error,
            status=case((OutboundEmail.attempts + 1 >= MAX_ATTEMPTS, "failed"), else_="pending"),
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()


def deliver_pending(session: Session, *, limit: int = 500) -> DeliveryReport:
    """Try every pending email, oldest first. Safe to run from several processes at once."""
    ids = session.execute(
        select(OutboundEmail.id).where(OutboundEmail.status == "pending").order_by(OutboundEmail.id).limit(limit)
    ).scalars().all()
    session.rollback()
    outcomes = [deliver_email(session, email_id) for email_id in ids]
    return DeliveryReport(sent=outcomes.count(SENT), failed=outcomes.count(FAILED))


def latest_welcome_email(session: Session, contact_id: int) -> OutboundEmail | None:
    return session.execute(
        select(OutboundEmail).where(OutboundEmail.contact_id == contact_id).order_by(OutboundEmail.id.desc()).limit(1)
    ).scalar_one_or_none()
