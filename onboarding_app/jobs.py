"""The seam between the services and the background worker. A service names a job and the
ids it needs (``enqueue_after_commit``); the worker module (``tasks``) registers how each job
runs. Services never import the worker, and a job is only started once the transaction
that asked for it has committed."""

from __future__ import annotations

import logging
from typing import Callable

from sqlalchemy.orm import Session

from .transactions import after_commit

log = logging.getLogger(__name__)

_RUNNERS: dict[str, Callable[..., object]] = {}


def register(name: str, runner: Callable[..., object]) -> None:
    """``runner(*ids)`` starts the job (the worker registers its tasks at start-up)."""
    _RUNNERS[name] = runner


def enqueue_after_commit(session: Session, name: str, *ids: int) -> None:
    """Start job ``name`` with ``ids`` once the current transaction has committed. A job that
    cannot be queued (the queue is down) is not lost: the worker's sweep finds its row."""
    after_commit(session, lambda: _RUNNERS[name](*ids))
