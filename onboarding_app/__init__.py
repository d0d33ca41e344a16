"""Onboarding: turn a qualified CRM contact into a working customer account."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path

from flask import Flask, redirect, request, url_for
from flask_login import current_user

from . import config
from .extensions import csrf, db, limiter, login_manager, mail, migrate

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.from_mapping(config.DEFAULTS)
    app.config.from_mapping(config.from_environment(app.instance_path))
    if test_config:
        app.config.from_mapping(test_config)
    _check_settings(app, test_config or {})

    from . import request_guards, sessions
    from .logsafe import get_logger
    from .security import register_security_headers

    request_guards.register(app)  # first: nothing else sees a NUL or an impossible id
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    register_security_headers(app)
    sessions.register(app)
    _register_password_gate(app)
    # app.logger is "onboarding_app", parent of every module logger; user text is escaped.
    get_logger(app.logger.name).setLevel(logging.INFO)
    return app


def _check_settings(app: Flask, explicit: dict) -> None:
    """The mode is ``APP_ENV`` (production unless told otherwise). Production refuses to
    start without its settings (``config.check``); development and tests get a demo key,
    cookies without ``Secure``, and a local base URL."""
    config.check(app.config)
    production = app.config["APP_ENV"] == "production"
    if not production:
        if not app.config.get("SECRET_KEY"):
            app.config["SECRET_KEY"] = "development-only-not-secret"
        if not app.config.get("APP_BASE_URL"):
            app.config["APP_BASE_URL"] = config.DEVELOPMENT_BASE_URL
    app.config["APP_BASE_URL"] = app.config["APP_BASE_URL"].rstrip("/")
    for key in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        if key not in explicit:
            app.config[key] = production  # HTTPS-only cookies in production
    # The browser forgets the session cookie when the session could not last longer anyway.
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=app.config["SESSION_MAX_HOURS"])
    app.config.setdefault("MAIL_DEBUG", False)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    from .models import include_in_autogenerate

    migrate.init_app(app, db, directory=str(ROOT / "migrations"), compare_type=True,
                     include_name=include_in_autogenerate)
    login_manager.init_app(app)
    mail.init_app(app)
    from .uploads import raise_body_limit_for_uploads

    # Before CSRFProtect's check reads the form: an upload's body may exceed MAX_CONTENT_LENGTH.
    app.before_request(raise_body_limit_for_uploads)
    csrf.init_app(app)
    limiter.init_app(app)
    from . import worker

    worker.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        _configure_sqlite(app)
    else:
        _ping_idle_connections(app)

    from .models import User

    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(session_token: str) -> User | None:
        from sqlalchemy import select

        return db.session.execute(
            select(User).where(User.session_token == session_token, User.active.is_(True))
        ).scalar_one_or_none()


# Set on every SQLite connection (SPEC: development default; production may run on it too):
# write-ahead logging, so readers never wait for the writer and a commit is one append;
# synchronous=NORMAL, which in WAL mode is safe against corruption (a power cut may lose the
# last commits, never the file); writers wait up to 10 s for the lock instead of failing;
# foreign keys enforced (SQLite leaves them off unless asked, per connection).
SQLITE_PRAGMAS = (
    ("journal_mode", "WAL"),
    ("synchronous", "NORMAL"),
    ("busy_timeout", "10000"),
    ("foreign_keys", "ON"),
)


def _configure_sqlite(app: Flask) -> None:
    """``SQLITE_PRAGMAS`` on every new connection of the app's engine; the threads of this
    process take turns to write (``transactions.serialize_writers``)."""
    from sqlalchemy import event

    from .transactions import serialize_writers

    with app.app_context():
        engine = db.engine
    serialize_writers(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        for name, value in SQLITE_PRAGMAS:
            # An in-memory database answers journal_mode=WAL with "memory": nothing to log.
            cursor.execute(f"PRAGMA {name} = {value}")
        cursor.close()


def _ping_idle_connections(app: Flask) -> None:
    """A pooled connection idle for ``POOL_PING_AFTER_SECONDS`` is pinged when checked out, and
    replaced if the server dropped it (an idle timeout, a restart): SQLAlchemy's pessimistic
    disconnect handling, without pool_pre_ping's round trip on every checkout (on PostgreSQL a
    fifth of a small API request's). A connection that fails in use invalidates the pool, so
    after a server restart at most the requests already running fail."""
    from sqlalchemy import event, exc

    with app.app_context():
        engine = db.engine
    idle_after = app.config["POOL_PING_AFTER_SECONDS"]

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record):
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy):
        if time.monotonic() - record.info.get("checked_in_at", 0.0) < idle_after:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the pool connects anew when told the connection is gone
            raise exc.DisconnectionError(str(error)) from error


def register_blueprints(app: Flask) -> None:
    from .api.views import bp as api_bp
    from .auth.views import bp as auth_bp
    from .crm.views import bp as crm_bp
    from .onboarding.views import bp as onboarding_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(onboarding_bp)
    app.register_blueprint(crm_bp, url_prefix="/crm")
    app.register_blueprint(api_bp, url_prefix="/api/v1")

    @app.get("/healthz")
    def healthz():
        from sqlalchemy import text

        try:
            db.session.execute(text("SELECT 1"))
        except Exception:  # any database failure means "not healthy"
            app.logger.exception("health check: the database did not answer")
            db.session.rollback()
            return {"status": "unavailable"}, 503
        return {"status": "ok"}

    @app.get("/")
    def index():
        return redirect(url_for("onboarding.dashboard"))


def register_errorhandlers(app: Flask) -> None:
    from .http_errors import register

    register(app)


def register_commands(app: Flask) -> None:
    from .cli import register

    register(app)


def _register_password_gate(app: Flask) -> None:
    """A user whose password is temporary goes to /account/password before anything else.
    (The API answers 403 password_change_required itself, for bearer and session callers
    alike: api/auth.py; looking for a session user here first would cost every API call.)"""
    allowed = {"auth.change_password", "auth.logout", "auth.forgot", "auth.reset", "auth.welcome", "static", "healthz"}

    @app.before_request
    def require_own_password():
        if request.endpoint in allowed or request.blueprint == "api" or not current_user.is_authenticated:
            return None
        if not current_user.must_change_password:
            return None
        return redirect(url_for("auth.change_password"))
