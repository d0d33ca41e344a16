"""The one way a use case touches the database: ``run_in_transaction`` runs it as a single
transaction, retries it when a concurrent writer got there first, and runs its
``after_commit`` callbacks (enqueue an email, a webhook) only once it has committed.
``get_or_404`` loads a row or raises the domain's ``NotFound``."""

from __future__ import annotations

import fcntl
import os
import random
import threading
import time
import weakref
from contextlib import nullcontext
from typing import Callable, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from .errors import NotFound
from .logsafe import get_logger
from .schemas import MAX_ID  # the largest value an INTEGER primary key holds

T = TypeVar("T")
M = TypeVar("M")
log = get_logger(__name__)

_CALLBACKS = "after_commit_callbacks"


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


# SQLite has one write lock per database, and a writer that finds it taken sleeps in growing
# steps (up to 100 ms) before it tries again: with 2 gunicorn workers of 4 threads, 8
# concurrent provisioning requests had a p95 near a second. So writers queue before they
# start, on a lock that wakes the next one the moment the writer is done: an RLock for the
# threads of a process and, for a database file, an exclusive ``flock`` on ``<file>-writer``
# for the processes of the host (web and worker). PostgreSQL locks rows: no such lock.
# ``create_app`` registers the SQLite engine.


class _WriterLock:
    def __init__(self, path: str | None) -> None:
        self.path = f"{path}-writer" if path and path != ":memory:" else None
        self.threads = threading.RLock()
        self.depth = 0
        self.fd: int | None = None
        self.pid = 0

    def _file(self) -> int:
        if self.fd is None or self.pid != os.getpid():  # opened after a fork, never shared
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self.pid = os.getpid()
        return self.fd

    def __enter__(self) -> None:
        self.threads.acquire()
        if self.depth == 0 and self.path:
            try:
                fcntl.flock(self._file(), fcntl.LOCK_EX)
            except BaseException:
                self.threads.release()
                raise
        self.depth += 1

    def __exit__(self, *exc) -> None:
        self.depth -= 1
        try:
            if self.depth == 0 and self.path:
                fcntl.flock(self._file(), fcntl.LOCK_UN)
        finally:
            self.threads.release()


_WRITERS: weakref.WeakKeyDictionary[Engine, _WriterLock] = weakref.WeakKeyDictionary()
_NO_LOCK = nullcontext()


def serialize_writers(engine: Engine, on: bool = True) -> None:
    """Make the transactions on ``engine`` take turns (``on``), or stop that (a test that
    plays two processes with two threads)."""
    if on:
        _WRITERS.setdefault(engine, _WriterLock(engine.url.database))
    else:
        _WRITERS.pop(engine, None)


def _writer_lock(session: Session):
    return _WRITERS.get(session.get_bind(), _NO_LOCK)


def after_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run ``callback`` once the current ``run_in_transaction`` has committed; never when it
    rolls back (a retried attempt registers its callbacks again)."""
    session.info.setdefault(_CALLBACKS, []).append(callback)


def _run_callbacks(callbacks: list[Callable[[], object]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # the use case has committed; what a callback starts is retried elsewhere
            log.exception("an after-commit callback failed")


def run_in_transaction(session: Session, work: Callable[[], T], *, attempts: int = 6) -> T:
    """Call ``work`` and commit, then run what it registered with ``after_commit``. On a lost
    race, roll back and run it again from the start.

    ``work`` must read everything it needs itself, so a retry decides afresh: that is what
    turns "two requests at once" into "one wins, the other sees the winner's result".
    Domain errors propagate after a rollback, so a refusal never leaves a half-done write.
    """
    writer = _writer_lock(session)
    for attempt in range(1, attempts + 1):
        session.info[_CALLBACKS] = []
        retry = False
        try:
            with writer:  # held until the commit or the rollback has released the database
                try:
                    result = work()
                    session.commit()
                except (DBAPIError, LostRace) as exc:
                    session.rollback()
                    if attempt == attempts or not (isinstance(exc, LostRace) or _is_retryable(exc)):
                        raise
                    retry = True
                except BaseException:
                    session.rollback()
                    raise
        finally:
            callbacks = session.info.pop(_CALLBACKS, [])
        if retry:
            time.sleep(random.uniform(0.005, 0.03) * attempt)
            continue
        _run_callbacks(callbacks)
        return result
    raise AssertionError("unreachable")


def get_or_404(session: Session, model: type[M], row_id: int, *, lock: bool = False, label: str | None = None) -> M:
    """The row with this primary key, or the domain's ``NotFound`` ("Contact 7 does not
    exist."). ``lock`` holds the row until the transaction ends (FOR UPDATE on PostgreSQL;
    SQLite serialises writers with its database lock)."""
    if lock:
        return one_or_404(session, select(model).where(model.id == row_id).with_for_update(), model, row_id,
                          label=label)[0]
    row = session.get(model, row_id) if 0 <= row_id <= MAX_ID else None
    if row is None:
        raise _not_found(model, row_id, label)
    return row


def one_or_404(session: Session, query, model: type, row_id: int, *, label: str | None = None):
    """The one result row of ``query``, which selects ``model``'s row ``row_id`` (perhaps with
    more: other columns, a join, a lock), or the domain's ``NotFound`` as ``get_or_404``'s."""
    # An id past MAX_ID is no row's; PostgreSQL would refuse the comparison.
    row = session.execute(query).one_or_none() if 0 <= row_id <= MAX_ID else None
    if row is None:
        raise _not_found(model, row_id, label)
    return row


def _not_found(model: type, row_id: int, label: str | None) -> NotFound:
    return NotFound(f"{label or model.__name__} {row_id} does not exist.")
