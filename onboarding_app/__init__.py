"""Onboarding: turn a qualified CRM contact into a working customer account."""

from __future__ import annotations

import logging
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

    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    from .security import register_security_headers

    register_security_headers(app)
    _register_password_gate(app)
    app.logger.setLevel(logging.INFO)  # app.logger is "onboarding_app", parent of every module logger
    return app


def _check_settings(app: Flask, explicit: dict) -> None:
    # Development: debug mode, tests, or the embedded SQLite default (no DATABASE_URL), which
    # is what a fresh clone runs. Anything pointed at a real database is production.
    development = app.debug or app.testing or app.config.get("EMBEDDED_DATABASE", False)
    if not app.config.get("SECRET_KEY"):
        if not development:
            raise config.ConfigError(
                "SECRET_KEY is not set. Set it to a long random value, e.g. "
                "SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))'). "
                "Only development (--debug, or the embedded SQLite default) and tests run without it."
            )
        app.config["SECRET_KEY"] = "development-only-not-secret"
    for key in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        if key not in explicit:
            app.config[key] = not development  # HTTPS-only cookies outside development
    app.config.setdefault("MAIL_DEBUG", False)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), compare_type=True)
    login_manager.init_app(app)
    mail.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    from . import worker

    worker.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        _configure_sqlite(app)

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


def _configure_sqlite(app: Flask) -> None:
    """Foreign keys on, and a busy timeout so concurrent writers wait instead of failing."""
    from sqlalchemy import event

    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 10000")
        cursor.close()


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
    """A user whose password is temporary goes to /account/password before anything else."""
    allowed = {"auth.change_password", "auth.logout", "static", "healthz"}

    @app.before_request
    def require_own_password():
        if request.endpoint in allowed or not current_user.is_authenticated:
            return None
        if not current_user.must_change_password:
            return None
        if request.blueprint == "api":
            from .http_errors import error_response

            return error_response(403, "password_change_required", "Set your own password first.")
        return redirect(url_for("auth.change_password"))
