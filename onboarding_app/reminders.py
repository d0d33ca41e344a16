"""Nudging accounts that are stuck (SPEC.md, "Reminders"): the hourly sweep, and staff's
"Remind now".

A reminder is one email in the outbox and one ``onboarding.reminder.sent`` feed event: a user
still on the welcome email's temporary credential gets the welcome email again with a fresh
one (``provisioning.queue_fresh_welcome``); anyone else gets the ``reminder`` email listing
their open required tasks with a link to the dashboard.

The sweep's rule lives in one conditional UPDATE (``_claim``): the contact is still
ONBOARDING, its last activity and its last reminder are both older than
``REMINDER_AFTER_DAYS``, and it has had fewer than ``REMINDER_MAX`` reminders. The UPDATE
counts the reminder and restarts the interval in the same statement, so however many sweeps
run at once only one of them sees the row match (PostgreSQL re-checks the condition after
waiting on the row lock; SQLite runs one writer at a time): never two reminders inside the
interval, never more than ``REMINDER_MAX`` from the sweep. Staff's "Remind now" always sends,
counts like any reminder and restarts the interval.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from . import feed, outbox, provisioning
from .errors import NotOnboarding
from .models import Contact, User, utcnow
from .transactions import LostRace, get_or_404, run_in_transaction

SWEEP_BATCH = 200


def _due(cutoff: datetime, limit: int) -> list:
    """The sweep's condition, shared by the candidate read and the claim."""
    return [
        Contact.status == "ONBOARDING",
        Contact.user_id.is_not(None),
        Contact.last_activity_at < cutoff,
        or_(Contact.last_reminder_at.is_(None), Contact.last_reminder_at < cutoff),
        Contact.reminders_sent < limit,
    ]


def _queue(session: Session, contact: Contact, *, actor_id: int | None, by: str) -> str:
    """The reminder email and its feed event, in the caller's transaction; its kind."""
    user = session.get(User, contact.user_id)
    if provisioning.queue_fresh_welcome(session, user, contact):
        kind = "welcome"
    else:
        outbox.queue_email(session, outbox.KIND_REMINDER, user=user, contact=contact)
        kind = "reminder"
    feed.record_account_event(
        session, feed.EVENT_REMINDER_SENT, contact_id=contact.id, user=user, actor_id=actor_id,
        email_kind=kind, reminders_sent=contact.reminders_sent, by=by,
    )
    return kind


def _reload(session: Session, contact_id: int) -> Contact:
    return session.execute(
        select(Contact).where(Contact.id == contact_id).execution_options(populate_existing=True)
    ).scalar_one()


def _claim(session: Session, contact_id: int, *, now: datetime, cutoff: datetime, limit: int) -> str | None:
    """Remind one contact if, at this moment, it is due; None when it is not (any more)."""

    def work() -> str | None:
        claimed = session.execute(
            update(Contact)
            .where(Contact.id == contact_id, *_due(cutoff, limit))
            .values(reminders_sent=Contact.reminders_sent + 1, last_reminder_at=now, updated_at=Contact.updated_at)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            return None
        return _queue(session, _reload(session, contact_id), actor_id=None, by="sweep")

    return run_in_transaction(session, work)


def send_due_reminders(session: Session, *, after_days: float, limit: int, now: datetime | None = None) -> int:
    """The sweep: remind every account that is due, each in its own short transaction.
    Returns how many reminders were queued by this sweep (a concurrent sweep's are not)."""
    now = now or utcnow()
    cutoff = now - timedelta(days=after_days)
    queued, after_id = 0, 0
    while True:
        ids = session.execute(
            select(Contact.id)
            .where(Contact.id > after_id, *_due(cutoff, limit))
            .order_by(Contact.id)
            .limit(SWEEP_BATCH)
        ).scalars().all()
        session.rollback()  # end the read: each reminder is its own transaction
        for contact_id in ids:
            if _claim(session, contact_id, now=now, cutoff=cutoff, limit=limit):
                queued += 1
        if len(ids) < SWEEP_BATCH:
            return queued
        after_id = ids[-1]


def sweep(session: Session) -> int:
    """The sweep with this app's ``REMINDER_AFTER_DAYS`` and ``REMINDER_MAX`` (the hourly job
    and ``flask onboarding remind``)."""
    config = current_app.config
    return send_due_reminders(session, after_days=float(config["REMINDER_AFTER_DAYS"]), limit=int(config["REMINDER_MAX"]))


def remind_now(session: Session, contact_id: int, *, actor: User | int | None = None) -> str:
    """Staff's "Remind now": always sends (even past ``REMINDER_MAX``), counts in
    ``reminders_sent`` and restarts the interval. Returns ``"welcome"`` or ``"reminder"``,
    what was queued. A contact that is not ONBOARDING: ``NotOnboarding``."""
    actor_id = actor.id if isinstance(actor, User) else actor

    def work() -> str:
        contact = get_or_404(session, Contact, contact_id, lock=True)
        if contact.status != "ONBOARDING" or contact.user_id is None:
            raise NotOnboarding(
                f"{contact.name} is {contact.status}; only an account still onboarding can be reminded.",
                status=contact.status,
            )
        counted = session.execute(
            update(Contact)
            .where(Contact.id == contact_id, Contact.status == "ONBOARDING")
            .values(reminders_sent=Contact.reminders_sent + 1, last_reminder_at=utcnow(), updated_at=Contact.updated_at)
            .execution_options(synchronize_session=False)
        )
        if counted.rowcount != 1:  # SQLite: it became ACTIVE since we read it
            raise LostRace(f"contact {contact_id} changed while being reminded")
        return _queue(session, _reload(session, contact_id), actor_id=actor_id, by="staff")

    return run_in_transaction(session, work)
