"""Outbox rows (emails, webhook deliveries) on their way out: claim them with a lease (one
row or a batch, in one statement), so any number of workers on any number of hosts deliver
each once; record a failure with backoff; mark them done. Each step is its own short
transaction, and none waits on the network."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Sequence

from sqlalchemy import ARRAY, Integer, Row, any_, case, cast, func, or_, select, update
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


@dataclass(frozen=True)
class Lease:
    """Rows one deliverer claimed in one statement, by id: ``(id, attempts, *returning)``,
    the attempt count including this attempt; and when the lease ends, which also tells it
    from a later lease on the same rows (``held``)."""

    until: datetime
    rows: dict[int, Row]


def claim_many(
    session: Session, model, ids: Sequence[int], *, lease_seconds: float, due_only: bool, more: int = 0,
    returning: Sequence = (),
) -> Lease:
    """In the caller's transaction, one statement: lease those of ``ids`` that are claimable
    and, with ``more``, up to that many other claimable rows, oldest first; count the attempt
    of each; the rows come back with the ``returning`` columns. PostgreSQL skips rows another
    transaction holds (``FOR UPDATE SKIP LOCKED``), so concurrent deliverers never take the
    same row; SQLite runs the statement under its write lock."""
    now = utcnow()
    until = now + timedelta(seconds=lease_seconds)
    chosen = select(model.id).where(*claimable(model, now, due_only=due_only))
    if more:
        chosen = chosen.order_by(case((model.id.in_(ids), 0), else_=1), model.id)
    else:
        chosen = chosen.where(model.id.in_(ids))
    chosen = chosen.limit(len(ids) + more).with_for_update(skip_locked=True)
    if session.get_bind().dialect.name == "postgresql":
        # The pick as one array, computed once before the UPDATE finds its rows by primary key:
        # with stale statistics (a new or growing outbox) ``id IN (pick)`` was planned as a
        # semi-join scanning the whole table, even running the pick again for each of its rows.
        pick = select(func.array_agg(chosen.subquery().c.id)).scalar_subquery()
        picked = model.id == any_(cast(pick, ARRAY(Integer)))  # ANY of an array, not of a subquery's rows
    else:
        picked = model.id.in_(chosen.scalar_subquery())
    leased = session.execute(
        update(model)
        .where(picked)
        .values(claimed_until=until, attempts=model.attempts + 1)
        .returning(model.id, model.attempts, *returning)
        .execution_options(synchronize_session=False)
    )
    return Lease(until, {row.id: row for row in leased})


def claim(session: Session, model, row_id: int, *, lease_seconds: float, due_only: bool) -> bool:
    """``claim_many`` for one row: True when it was leased."""
    return bool(claim_many(session, model, [row_id], lease_seconds=lease_seconds, due_only=due_only).rows)


def held(model, lease: Lease) -> list:
    """Conditions for "still pending under this lease" (not superseded, not expired and taken
    by another deliverer meanwhile)."""
    return [model.status == "pending", model.claimed_until == lease.until]


def finish(session: Session, model, row_id: int, **values: Any) -> None:
    """Record the outcome of a claimed row (its own transaction); the lease ends."""
    run_in_transaction(session, lambda: session.execute(
        update(model).where(model.id == row_id).values(claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    ))


def _fail(session: Session, model, row_id: int, attempts: int, *, error: str, schedule: tuple[float, ...],
          max_attempts: int, **values: Any) -> Attempt:
    """In the caller's transaction: after failed attempt number ``attempts``, due again after
    the schedule's next step, or ``failed`` once ``max_attempts`` attempts have been made."""
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


def record_failure(
    session: Session, model, row_id: int, *, error: str, schedule: tuple[float, ...], max_attempts: int,
    **values: Any,
) -> Attempt:
    """After a failed attempt (its own transaction): retry on the schedule, or ``failed``."""

    def record() -> Attempt:
        attempts = session.execute(select(model.attempts).where(model.id == row_id)).scalar_one()
        return _fail(session, model, row_id, attempts, error=error, schedule=schedule, max_attempts=max_attempts,
                     **values)

    return run_in_transaction(session, record)


def settle(
    session: Session, model, lease: Lease, *, done: Sequence[int], failed: dict[int, str],
    schedule: tuple[float, ...], max_attempts: int, **done_values: Any,
) -> dict[int, Attempt]:
    """Record what became of a lease's rows, in one transaction: the ``done`` ones take
    ``done_values`` (one UPDATE for all), each ``failed`` one its error and its retry (or
    ``failed``), from the attempt count the claim returned. Every lease ends."""

    def record() -> dict[int, Attempt]:
        outcomes: dict[int, Attempt] = {}
        if done:
            session.execute(
                update(model).where(model.id.in_(done)).values(claimed_until=None, **done_values)
                .execution_options(synchronize_session=False)
            )
            outcomes = dict.fromkeys(done, Attempt(SENT))
        for row_id, error in failed.items():
            outcomes[row_id] = _fail(session, model, row_id, lease.rows[row_id].attempts, error=error,
                                     schedule=schedule, max_attempts=max_attempts)
        return outcomes

    return run_in_transaction(session, record)
