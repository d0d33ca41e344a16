"""Pooled PostgreSQL connections: an idle one is pinged at checkout and replaced when the server
dropped it; a busy pool sends no ping (no round trip of its own on every request)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from onboarding_app.extensions import db

from .conftest import ON_POSTGRES, make_app

pytestmark = pytest.mark.skipif(not ON_POSTGRES, reason="pooled server connections: PostgreSQL")


def _terminate_pooled_backend(app) -> None:
    """Check a connection out, have the server end it from another connection, check it back in."""
    with app.app_context():
        with db.engine.connect() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            conn.commit()
        admin = sa.create_engine(db.engine.url, poolclass=sa.pool.NullPool)
        with admin.connect() as other:
            assert other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        admin.dispose()


def test_a_connection_the_server_dropped_is_replaced_before_use(app_config):
    app = make_app(dict(app_config, POOL_PING_AFTER_SECONDS=0))
    try:
        _terminate_pooled_backend(app)
        assert app.test_client().get("/healthz").get_json() == {"status": "ok"}
    finally:
        with app.app_context():
            db.engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged(app_config, monkeypatch):
    app = make_app(dict(app_config, POOL_PING_AFTER_SECONDS=30))
    pings = []
    with app.app_context():
        monkeypatch.setattr(db.engine.dialect, "do_ping", lambda conn: pings.append(conn) or True)
    try:
        client = app.test_client()
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
        assert len(pings) == 1  # the first checkout of the new connection only
    finally:
        with app.app_context():
            db.engine.dispose()
