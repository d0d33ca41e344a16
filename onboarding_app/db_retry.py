"""Run a unit of work as one transaction, retrying when a concurrent writer got there first."""

from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

T = TypeVar("T")


class LostRace(Exception):
    """A conditional write found the row already changed by a concurrent transaction.
    ``run_in_transaction`` rolls back and runs the work again, which then sees the change."""

# PostgreSQL: serialization failure, deadlock, lock not available.
_RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}


def _is_retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        # A unique constraint lost a race: the retry re-reads and sees the winner's row.
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def run_in_transaction(session: Session, work: Callable[[], T], *, attempts: int = 6) -> T:
    """Call ``work`` and commit. On a lost race, roll back and run it again from the start.

    ``work`` must read everything it needs itself, so a retry decides afresh: that is what
    turns "two requests at once" into "one wins, the other sees the winner's result".
    Domain errors propagate after a rollback, so a refusal never leaves a half-done write.
    """
    for attempt in range(1, attempts + 1):
        try:
            result = work()
            session.commit()
            return result
        except (DBAPIError, LostRace) as exc:
            session.rollback()
            if attempt == attempts or not (isinstance(exc, LostRace) or _is_retryable(exc)):
                raise
            time.sleep(random.uniform(0.005, 0.03) * attempt)
        except BaseException:
            session.rollback()
            raise
    raise AssertionError("unreachable")
