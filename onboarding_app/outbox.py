"""The email outbox: queue an email in the caller's transaction; the worker delivers it.

A pending row says what to send (kind, user, contact), never a secret. A delivery takes a
batch (the job's own email and up to ``BATCH - 1`` others that are due) in short steps, none
holding a lock while argon2 runs or the mail server is talked to: claim the rows (a lease, so
no other deliverer takes them; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL); make the credential
of each email that carries one (a temporary password, a sign-in link:
``credentials.CREDENTIAL_KINDS``); issue them (their hashes stored on the users) and render
the emails in one transaction; send them in one SMTP conversation with ``MAIL_TIMEOUT``;
record the outcomes. A failed attempt is retried on ``MAIL_RETRY_SCHEDULE`` up to
``MAIL_MAX_ATTEMPTS``, then the row is ``failed``. The stored copy of a sent email has its
credential redacted. ``_mail_server`` is the one place an email leaves the app; only
development writes emails to the log instead (a credential is never logged anywhere else).
"""

from __future__ import annotations

import smtplib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from flask import current_app, render_template
from flask_mail import Connection, Message
from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload, object_session

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


def queue_email(
    session: Session, kind: str, *, user: User, contact: Contact | None = None, new_account: bool = False
) -> OutboundEmail:
    """Add an email of ``kind`` (a key of ``_SUBJECTS``, rendered from
    ``templates/email/<kind>.txt`` and ``.html`` at delivery) to the outbox in the caller's
    transaction; it is delivered once that transaction has committed. A newer email of the
    same kind to the same user supersedes any older one still pending (a ``new_account``,
    made in this transaction, has none)."""
    if not new_account:
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


def queue_welcome_email(
    session: Session, *, user: User, contact: Contact, with_password: bool, new_account: bool = False
) -> OutboundEmail:
    """The welcome email: with a credential issued at delivery for a new account (a temporary
    password, or a set-password link when ``WELCOME_CREDENTIAL=link``), or without one for an
    existing account that was linked to the contact."""
    if not with_password:
        kind = KIND_WELCOME_EXISTING
    else:
        kind = KIND_WELCOME_LINK if current_app.config["WELCOME_CREDENTIAL"] == "link" else KIND_WELCOME
    return queue_email(session, kind, user=user, contact=contact, new_account=new_account)


def _lease_seconds(emails: int) -> float:
    """How long a claim of ``emails`` keeps other deliverers away: longer than any SMTP
    conversation sending them (each exchange may take ``MAIL_TIMEOUT``: a few to connect and
    greet, four per message)."""
    return max(60.0, (3 + 4 * emails) * float(current_app.config["MAIL_TIMEOUT"]))


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

    def __exit__(self, exc_type, exc_value, tb) -> None:
        if self.host is not None and exc_type is not None:
            self.host.close()  # the conversation broke: no QUIT to wait on
        else:
            super().__exit__(exc_type, exc_value, tb)


@dataclass(frozen=True)
class _Outgoing:
    recipient: str
    subject: str
    text: str
    html: str


@contextmanager
def _mail_server() -> Iterator[Callable[[_Outgoing], None]]:
    """The one place an email leaves the app: one SMTP conversation, for as many emails as
    the caller sends through it; in development without a server, the log. Anywhere else, no
    server means the attempt fails: a credential is never logged."""
    if not current_app.config.get("MAIL_SERVER"):
        if current_app.config["APP_ENV"] != "development":
            raise smtplib.SMTPException("MAIL_SERVER is not set; the email was not sent")
        yield lambda email: log.info(
            "MAIL_SERVER is not set (development); the email is written here instead. "
            "To: %s | Subject: %s | %s", email.recipient, email.subject, email.text)
        return
    with _TimedConnection(current_app.extensions["mail"]) as connection:
        yield lambda email: connection.send(
            Message(subject=email.subject, recipients=[email.recipient], body=email.text, html=email.html))


def _send_all(emails: dict[int, _Outgoing]) -> tuple[list[int], dict[int, str]]:
    """Send ``emails`` in one conversation: (the ids sent, the error of each one that was
    not). A message the server refuses fails alone; a conversation that breaks (refused,
    unreachable, timed out) fails every email not sent yet."""
    sent: list[int] = []
    failed: dict[int, str] = {}
    try:
        with _mail_server() as send:
            for email_id, email in emails.items():
                try:
                    send(email)
                except smtplib.SMTPServerDisconnected:
                    raise
                except smtplib.SMTPException as exc:  # this message refused; the conversation goes on
                    failed[email_id] = f"{type(exc).__name__}: {exc}"
                else:
                    sent.append(email_id)
    except (smtplib.SMTPException, OSError) as exc:  # refused, unreachable, timed out
        failed.update({email_id: f"{type(exc).__name__}: {exc}" for email_id in emails
                       if email_id not in failed and email_id not in sent})
    return sent, failed


# How many emails one delivery job takes: its own and, while it is at it, up to BATCH - 1
# others that are due. One claim, one conversation with the mail server and one record of
# the outcomes serve them all; the KDF of each temporary password still runs once per email.
BATCH = 10


def deliver(
    session: Session, ids: Sequence[int], *, due_only: bool = True, more: int = 0
) -> dict[int, leases.Attempt]:
    """One attempt at each of ``ids`` (and, with ``more``, at up to that many other due
    emails), in three short transactions, none open while argon2 runs or the mail server is
    talked to: claim them (a lease; PostgreSQL skips rows another deliverer holds), issue
    each credential and render each email, record the outcomes. Safe to call from any number
    of workers at once and to repeat: each email is sent by one of them only. Returns the
    attempt at each email claimed (one that is not pending, not due or taken is absent)."""
    lease = run_in_transaction(session, lambda: leases.claim_many(
        session, OutboundEmail, ids, lease_seconds=_lease_seconds(len(ids) + more), due_only=due_only, more=more,
        returning=(OutboundEmail.kind,)))
    if not lease.rows:
        return {}
    # The slow or random part (argon2), with no transaction open.
    prepared = {email_id: credentials.prepare(row.kind) for email_id, row in lease.rows.items()}

    def issue_and_render() -> tuple[dict[int, _Outgoing], dict[int, leases.Attempt]]:
        # Those still pending under this lease (a resend may have superseded one meanwhile),
        # with their user and contact, locked until the credentials are stored.
        emails = session.execute(
            select(OutboundEmail)
            .options(joinedload(OutboundEmail.user), joinedload(OutboundEmail.contact))
            .where(OutboundEmail.id.in_(lease.rows), *leases.held(OutboundEmail, lease))
            .with_for_update(of=OutboundEmail)
            .execution_options(populate_existing=True)
        ).scalars().all()
        outgoing: dict[int, _Outgoing] = {}
        refused: dict[int, leases.Attempt] = {}
        kept: list[dict] = []
        for email in emails:
            issued = None
            if prepared[email.id] is not None:
                try:
                    issued = credentials.issue(session, email.kind, email.user_id, prepared[email.id])
                except credentials.NotIssued as exc:  # e.g. the user has set their own password
                    email.status, email.claimed_until, email.last_error = "failed", None, f"Not sent: {exc}."
                    refused[email.id] = leases.Attempt(leases.FAILED)
                    continue
            text, html = _render(email, issued.context if issued else {})
            # The stored copy is what is sent, less the secret.
            kept_text, kept_html = _render(email, issued.redacted) if issued else (text, html)
            kept.append({"id": email.id, "body_text": kept_text, "body_html": kept_html})
            outgoing[email.id] = _Outgoing(email.recipient, email.subject, text, html)
        if kept:
            session.execute(update(OutboundEmail), kept)  # one executemany by primary key
        return outgoing, refused

    outgoing, outcomes = run_in_transaction(session, issue_and_render)
    if not outgoing:
        return outcomes
    sent, failed = _send_all(outgoing)
    for email_id, error in failed.items():
        log.warning("email %s not sent: %s", email_id, error)
    config = current_app.config
    outcomes.update(leases.settle(
        session, OutboundEmail, lease, done=sent, failed=failed, schedule=config["MAIL_RETRY_SCHEDULE"],
        max_attempts=config["MAIL_MAX_ATTEMPTS"], status="sent", sent_at=utcnow(), last_error=None,
    ))
    for email_id in sent:
        log.info("email %s (%s) sent to %s", email_id, lease.rows[email_id].kind, outgoing[email_id].recipient)
    return outcomes


def deliver_pending(session: Session, *, due_only: bool = False, limit: int = 500) -> DeliveryReport:
    """Try pending emails once each, oldest first, ``BATCH`` at a time: every one (``flask
    outbox deliver``), or only those due now (the worker's sweep, which also picks up any
    whose job was lost)."""
    ids = leases.pending_ids(session, OutboundEmail, due_only=due_only, limit=limit)
    outcomes = [attempt.outcome for start in range(0, len(ids), BATCH)
                for attempt in deliver(session, ids[start:start + BATCH], due_only=due_only).values()]
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
