"""Outbox rows (emails, webhook deliveries) on their way out: claim one with a lease, so any
number of workers on any number of hosts deliver it once; record a failure with backoff;
mark it done. Each step is its own short transaction, and none waits on the network."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from .models import utcnow
from .transactions import run_in_transaction

SENT, FAILED, RETRY, SKIPPED = "sent", "failed", "retry", "skipped"


@dataclass(frozen=True)
class Attempt:
    """What one attempt did: ``SENT``, ``RETRY`` (due again at ``retry_at``), ``FAILED`` (no
    more attempts) or ``SKIPPED`` (not pending, not due, or another worker has it)."""

    outcome: str
    retry_at: datetime | None = None


def claimable(model, now: datetime, *, due_only: bool) -> list:
    conditions = [model.status == "pending", or_(model.claimed_until.is_(None), model.claimed_until < now)]
    if due_only:
        conditions.append(model.next_attempt_at <= now)
    return conditions


def pending_ids(session: Session, model, *, due_only: bool, limit: int) -> list[int]:
    """Ids of rows that can be claimed now, oldest first."""
    ids = session.execute(
        select(model.id).where(*claimable(model, utcnow(), due_only=due_only)).order_by(model.id).limit(limit)
    ).scalars().all()
    session.rollback()
    return list(ids)


def claim(session: Session, model, row_id: int, *, lease_seconds: float, due_only: bool) -> bool:
    """In the caller's transaction: take a lease on a pending row and count the attempt, or
    False when it is not claimable. PostgreSQL skips a row another transaction holds (``FOR
    UPDATE SKIP LOCKED``); on SQLite the conditional UPDATE runs under the write lock."""
    now = utcnow()
    conditions = [model.id == row_id, *claimable(model, now, due_only=due_only)]
    if session.get_bind().dialect.name == "postgresql":
        if session.execute(select(model.id).where(*conditions).with_for_update(skip_locked=True)).first() is None:
            return False
    leased = session.execute(
        update(model)
        .where(*conditions)
        .values(claimed_until=now + timedelta(seconds=lease_seconds), attempts=model.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return leased.rowcount == 1


def finish(session: Session, model, row_id: int, **values: Any) -> None:
    """Record the outcome of a claimed row (its own transaction); the lease ends."""
    run_in_transaction(session, lambda: session.execute(
        update(model).where(model.id == row_id).values(claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    ))


def record_failure(
    session: Session, model, row_id: int, *, error: str, schedule: tuple[float, ...], max_attempts: int,
    **values: Any,
) -> Attempt:
    """After a failed attempt: due again after the schedule's next step, or ``failed`` once
    ``max_attempts`` attempts have been made."""

    def record() -> Attempt:
        attempts = session.execute(select(model.attempts).where(model.id == row_id)).scalar_one()
        if attempts >= max_attempts:
            changes, result = {"status": "failed"}, Attempt(FAILED)
        else:
            retry_at = utcnow() + timedelta(seconds=schedule[min(attempts, len(schedule)) - 1])
            changes, result = {"next_attempt_at": retry_at}, Attempt(RETRY, retry_at)
        session.execute(
            update(model)
            .where(model.id == row_id, model.status == "pending")
            .values(last_error=error[:2000], claimed_until=None, **changes, **values)
            .execution_options(synchronize_session=False)
        )
        return result

    return run_in_transaction(session, record)
