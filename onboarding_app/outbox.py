"""The email outbox: queue an email in the caller's transaction; the worker delivers it.

A pending row says what to send (kind, user, contact), never a secret. Delivery has three
short steps, none holding a lock while it waits on the network: claim the row (a lease, so
no other deliverer takes it; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and, for an email that
carries a credential (a temporary password, a sign-in link: ``credentials.CREDENTIAL_KINDS``),
issue it (its hash stored on the user in that same transaction);
talk to the mail server with ``MAIL_TIMEOUT``; record the outcome. A failed attempt is
retried on ``MAIL_RETRY_SCHEDULE`` up to ``MAIL_MAX_ATTEMPTS``, then the row is ``failed``.
The stored copy of a sent email has its credential redacted. ``_send`` is the one place an
email leaves the app; only development writes emails to the log instead (a credential is
never logged anywhere else).
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass

from flask import current_app, render_template
from flask_mail import Connection, Message
from sqlalchemy import select, update
from sqlalchemy.orm import Session, object_session

from . import checklist, credentials, jobs, leases
from .errors import NotFound
from .logsafe import get_logger
from .models import Contact, OutboundEmail, User, utcnow
from .transactions import get_or_404, run_in_transaction
from .web import external_url

log = get_logger(__name__)

KIND_WELCOME = credentials.KIND_WELCOME  # a new account: a temporary password issued at delivery
KIND_WELCOME_LINK = credentials.KIND_WELCOME_LINK  # a new account, WELCOME_CREDENTIAL=link
KIND_WELCOME_EXISTING = "welcome_existing"  # an existing account linked to the contact
KIND_PASSWORD_RESET = credentials.KIND_PASSWORD_RESET  # a reset link issued at delivery
KIND_REMINDER = "reminder"  # the user's open required tasks, with a link to the dashboard
REDACTED = credentials.REDACTED_PASSWORD
_SUBJECTS = {
    KIND_WELCOME: "Welcome! Your account is ready",
    KIND_WELCOME_LINK: "Welcome! Your account is ready",
    KIND_WELCOME_EXISTING: "Welcome! Your onboarding has started",
    KIND_PASSWORD_RESET: "Reset your password",
    KIND_REMINDER: "A few steps left to finish setting up your account",
}
# A newer email supersedes the pending ones of these kinds: one welcome credential at a time.
_SUPERSEDES = {KIND_WELCOME: (KIND_WELCOME, KIND_WELCOME_LINK), KIND_WELCOME_LINK: (KIND_WELCOME, KIND_WELCOME_LINK)}
# The emails a contact's page and the tracker report as its welcome email.
WELCOME_KINDS = (KIND_WELCOME, KIND_WELCOME_LINK, KIND_WELCOME_EXISTING)
JOB_DELIVER = "deliver_email"


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int


def queue_email(session: Session, kind: str, *, user: User, contact: Contact | None = None) -> OutboundEmail:
    """Add an email of ``kind`` (a key of ``_SUBJECTS``, rendered from
    ``templates/email/<kind>.txt`` and ``.html`` at delivery) to the outbox in the caller's
    transaction; it is delivered once that transaction has committed. A newer email of the
    same kind to the same user supersedes any older one still pending."""
    session.execute(
        update(OutboundEmail)
        .where(OutboundEmail.user_id == user.id, OutboundEmail.kind.in_(_SUPERSEDES.get(kind, (kind,))),
               OutboundEmail.status == "pending")
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
    jobs.enqueue_after_commit(session, JOB_DELIVER, email.id)
    return email


def queue_welcome_email(session: Session, *, user: User, contact: Contact, with_password: bool) -> OutboundEmail:
    """The welcome email: with a credential issued at delivery for a new account (a temporary
    password, or a set-password link when ``WELCOME_CREDENTIAL=link``), or without one for an
    existing account that was linked to the contact."""
    if not with_password:
        kind = KIND_WELCOME_EXISTING
    else:
        kind = KIND_WELCOME_LINK if current_app.config["WELCOME_CREDENTIAL"] == "link" else KIND_WELCOME
    return queue_email(session, kind, user=user, contact=contact)


def _lease_seconds() -> float:
    """How long a claim keeps other deliverers away: longer than any SMTP conversation."""
    return max(60.0, 6 * float(current_app.config["MAIL_TIMEOUT"]))


def _reminder_context(email: OutboundEmail) -> dict:
    """The reminder lists the required tasks still open when it is sent."""
    return {
        "open_tasks": checklist.open_required_tasks(object_session(email), email.user_id),
        "dashboard_url": external_url("onboarding.dashboard"),
    }


# What an email of a kind shows beyond the user and the sign-in link, read at delivery.
_CONTEXT = {KIND_REMINDER: _reminder_context}


def _render(email: OutboundEmail, secret: dict[str, str]) -> tuple[str, str]:
    context = {
        "user": email.user,
        "contact": email.contact,
        "password": None,
        "link_url": None,
        "sign_in_url": external_url("auth.login", email=email.recipient),
        "forgot_url": external_url("auth.forgot"),
        "ttl_hours": current_app.config["TEMP_PASSWORD_TTL_HOURS"],
        "reset_ttl_minutes": current_app.config["RESET_LINK_TTL_MINUTES"],
        "email": email,
        **secret,
    }
    extra = _CONTEXT.get(email.kind)
    if extra is not None:
        context.update(extra(email))
    return (
        render_template(f"email/{email.kind}.txt", **context),
        render_template(f"email/{email.kind}.html", **context),
    )


class _TimedConnection(Connection):
    """Flask-Mail's SMTP connection with ``MAIL_TIMEOUT`` on every socket operation, so a mail
    server that accepts and then hangs holds a worker for at most that long."""

    def configure_host(self) -> smtplib.SMTP:
        timeout = float(current_app.config["MAIL_TIMEOUT"])
        smtp_class = smtplib.SMTP_SSL if self.mail.use_ssl else smtplib.SMTP
        host = smtp_class(self.mail.server, self.mail.port, timeout=timeout)
        if self.mail.use_tls:
            host.starttls()
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host


def _send(recipient: str, subject: str, text: str, html: str) -> None:
    """The one place an email leaves the app: SMTP; in development without a server, the log.
    Anywhere else, no server means the attempt fails: a credential is never logged."""
    if not current_app.config.get("MAIL_SERVER"):
        if current_app.config["APP_ENV"] != "development":
            raise smtplib.SMTPException("MAIL_SERVER is not set; the email was not sent")
        log.info("MAIL_SERVER is not set (development); the email is written here instead. "
                 "To: %s | Subject: %s | %s", recipient, subject, text)
        return
    with _TimedConnection(current_app.extensions["mail"]) as connection:
        connection.send(Message(subject=subject, recipients=[recipient], body=text, html=html))


@dataclass(frozen=True)
class _Claimed:
    recipient: str
    subject: str
    text: str
    html: str


def deliver_email(session: Session, email_id: int, *, due_only: bool = True) -> leases.Attempt:
    """One attempt at one email: claim it, send it, record what happened. Safe to call from
    any number of workers at once and to repeat: an email is sent by one of them only."""
    kind = session.execute(select(OutboundEmail.kind).where(OutboundEmail.id == email_id)).scalar_one_or_none()
    session.rollback()
    # The slow or random part (argon2) comes before the claim, so no lock waits on it.
    prepared = credentials.prepare(kind)

    def claim() -> _Claimed | str | None:
        if not leases.claim(session, OutboundEmail, email_id, lease_seconds=_lease_seconds(), due_only=due_only):
            return None
        email = session.execute(
            select(OutboundEmail).where(OutboundEmail.id == email_id).execution_options(populate_existing=True)
        ).scalar_one()
        issued = None
        if prepared is not None:
            try:
                issued = credentials.issue(session, kind, email.user_id, prepared)
            except credentials.NotIssued as exc:  # e.g. the user has set their own password
                email.status = "failed"
                email.claimed_until = None
                email.last_error = f"Not sent: {exc}."
                return leases.FAILED
        text, html = _render(email, issued.context if issued else {})
        # The stored copy is what is sent, less the secret.
        email.body_text, email.body_html = _render(email, issued.redacted) if issued else (text, html)
        return _Claimed(email.recipient, email.subject, text, html)

    claimed = run_in_transaction(session, claim)
    if claimed is None:
        return leases.Attempt(leases.SKIPPED)
    if claimed == leases.FAILED:
        return leases.Attempt(leases.FAILED)
    try:
        _send(claimed.recipient, claimed.subject, claimed.text, claimed.html)
    except (smtplib.SMTPException, OSError) as exc:  # refused, unreachable, timed out
        error = f"{type(exc).__name__}: {exc}"
        log.warning("email %s not sent: %s", email_id, error)
        config = current_app.config
        return leases.record_failure(
            session, OutboundEmail, email_id, error=error,
            schedule=config["MAIL_RETRY_SCHEDULE"], max_attempts=config["MAIL_MAX_ATTEMPTS"],
        )
    leases.finish(session, OutboundEmail, email_id, status="sent", sent_at=utcnow(), last_error=None)
    log.info("email %s (%s) sent to %s", email_id, kind, claimed.recipient)
    return leases.Attempt(leases.SENT)


def deliver_pending(session: Session, *, due_only: bool = False, limit: int = 500) -> DeliveryReport:
    """Try pending emails, oldest first: every one (``flask outbox deliver``), or only those
    due now (the worker's sweep, which also picks up any whose job was lost)."""
    ids = leases.pending_ids(session, OutboundEmail, due_only=due_only, limit=limit)
    outcomes = [deliver_email(session, email_id, due_only=due_only).outcome for email_id in ids]
    return DeliveryReport(
        sent=outcomes.count(leases.SENT), failed=outcomes.count(leases.FAILED) + outcomes.count(leases.RETRY)
    )


def retry_now(session: Session, contact_id: int, email_id: int) -> OutboundEmail:
    """Staff's "Retry now" on a contact's failed or waiting email: due now, with a full set of
    attempts. A sent email is left as it is."""

    def work() -> OutboundEmail:
        email = get_or_404(session, OutboundEmail, email_id, lock=True, label="Email")
        if email.contact_id != contact_id:
            raise NotFound(f"Email {email_id} does not exist.")
        if email.status != "sent":
            email.status, email.attempts, email.next_attempt_at, email.claimed_until = "pending", 0, utcnow(), None
            jobs.enqueue_after_commit(session, JOB_DELIVER, email.id)
        return email

    email = run_in_transaction(session, work)
    session.refresh(email)
    return email


def latest_welcome_email(session: Session, contact_id: int) -> OutboundEmail | None:
    return session.execute(
        select(OutboundEmail)
        .where(OutboundEmail.contact_id == contact_id, OutboundEmail.kind.in_(WELCOME_KINDS))
        .order_by(OutboundEmail.id.desc())
        .limit(1)
    ).scalar_one_or_none()
