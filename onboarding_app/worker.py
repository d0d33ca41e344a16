"""The background worker (Huey): binds the queue to its storage and runs the consumer.

``HUEY_URL`` picks the storage: ``sqlite:///path`` (the default, a file under ``instance/``:
nothing to install) or ``redis://host:port/db`` (several hosts). ``HUEY_IMMEDIATE`` (tests)
runs each job at once in the caller. The jobs themselves live in ``tasks``."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask
from huey.storage import RedisStorage, SqliteStorage

from .extensions import huey

_app: Flask | None = None


def init_app(app: Flask) -> None:
    global _app
    _app = app
    from . import tasks  # noqa: F401  (registers the jobs with ``jobs``)

    immediate = app.config["HUEY_IMMEDIATE"]
    if immediate is None:
        immediate = app.testing
    huey.immediate = bool(immediate)
    if not huey.immediate:
        huey.storage = _storage(app.config["HUEY_URL"])


def _storage(url: str):
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        return RedisStorage(huey.name, url=url)
    if parts.scheme == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteStorage(huey.name, filename=str(path))
    raise ValueError(f"HUEY_URL must be sqlite:///path or redis://host:port/db, got {url!r}")


def app_context():
    """The app context a job runs in (its own database session)."""
    if _app is None:
        raise RuntimeError("the worker was not initialised with an app (worker.init_app)")
    return _app.app_context()


def run_consumer(workers: int) -> None:
    """Run the Huey consumer (jobs and periodic jobs) until stopped with Ctrl-C or SIGTERM."""
    logging.getLogger("huey").setLevel(logging.INFO)
    consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=True, check_worker_health=True)
    consumer.run()
