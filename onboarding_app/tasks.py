"""The worker's jobs. Each takes ids (never ORM objects), runs in its own app context, calls
one service function, and is idempotent: the service claims its row first, so running a job
twice (a retry, the sweep, a second worker) changes nothing twice."""

from __future__ import annotations

from huey import crontab

from . import jobs, leases, outbox, reminders, webhooks, worker
from .extensions import db, huey


@huey.task()
def deliver_email(email_id: int) -> str:
    """This email and, in the same conversation, up to ``outbox.BATCH - 1`` others that are
    due (their own jobs then find nothing to do)."""
    with worker.app_context():
        attempts = outbox.deliver(db.session, [email_id], more=outbox.BATCH - 1)
    for delivered_id, attempt in attempts.items():
        if attempt.retry_at is not None:
            deliver_email.schedule(args=(delivered_id,), eta=attempt.retry_at)
    return attempts.get(email_id, leases.Attempt(leases.SKIPPED)).outcome


@huey.task()
def deliver_webhook(delivery_id: int) -> str:
    with worker.app_context():
        attempt = webhooks.deliver(db.session, delivery_id)
    if attempt.retry_at is not None:
        deliver_webhook.schedule(args=(delivery_id,), eta=attempt.retry_at)
    return attempt.outcome


@huey.periodic_task(crontab(minute="*"))
def sweep() -> None:
    """Every minute: whatever is due and not being delivered, whether its job was scheduled
    and lost (Redis restarted, a worker killed mid-job) or never queued."""
    with worker.app_context():
        outbox.deliver_pending(db.session, due_only=True)
        webhooks.deliver_due(db.session)


@huey.periodic_task(crontab(minute="17"))
def remind() -> int:
    """Every hour: remind the accounts stuck for REMINDER_AFTER_DAYS (reminders.py holds the
    rule; a second worker running it at the same time sends nothing twice)."""
    with worker.app_context():
        return reminders.sweep(db.session)


jobs.register(outbox.JOB_DELIVER, deliver_email)
jobs.register(webhooks.JOB_DELIVER, deliver_webhook)
