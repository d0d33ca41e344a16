"""The app factory, configuration from the environment, health and security headers."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from onboarding_app import create_app
from onboarding_app.config import ConfigError

from .conftest import parse


def test_test_config_overrides_defaults(app):
    assert app.testing
    assert app.config["SECRET_KEY"] == "test-secret-key"
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


PRODUCTION = {"SECRET_KEY": "s" * 40, "MAIL_SERVER": "smtp.example.com", "APP_BASE_URL": "https://onb.example.com"}
ROOT = Path(__file__).resolve().parent.parent
MODE_SETTINGS = ("APP_ENV", "SECRET_KEY", "MAIL_SERVER", "APP_BASE_URL", "DATABASE_URL", "FLASK_DEBUG")


@pytest.fixture
def bare_env(monkeypatch):
    """An environment with none of the mode's settings."""
    for name in MODE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def production(monkeypatch, **overrides):
    for name, value in {**PRODUCTION, **overrides}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_default_database_is_sqlite_under_instance(bare_env):
    app = create_app({"APP_ENV": "test"})
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    assert uri.startswith("sqlite:///") and uri.endswith("instance/onboarding.sqlite3")


def test_database_url_from_environment(bare_env):
    production(bare_env)
    bare_env.setenv("DATABASE_URL", "postgresql+psycopg://u@db.example/prod")
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db.example/prod"
    assert app.config["APP_ENV"] == "production"


@pytest.mark.parametrize("missing", ["SECRET_KEY", "MAIL_SERVER", "APP_BASE_URL"])
def test_production_refuses_to_start_without_a_required_setting(bare_env, missing):
    production(bare_env, **{missing: None})
    with pytest.raises(ConfigError, match=missing) as refused:
        create_app()
    assert "\n" not in str(refused.value)


def test_mode_is_never_inferred_from_a_missing_database_url(bare_env):
    """Finding "Mode": no DATABASE_URL used to mean development (public key, no Secure
    cookies). Now no APP_ENV means production, which refuses to start without its settings."""
    with pytest.raises(ConfigError, match="APP_ENV is production.*SECRET_KEY"):
        create_app()
    production(bare_env)
    app = create_app()  # still no DATABASE_URL: the SQLite default, served as production
    assert app.config["SESSION_COOKIE_SECURE"] is True and app.config["SECRET_KEY"] == "s" * 40


def test_development_runs_with_a_demo_key_and_plain_cookies(bare_env):
    bare_env.setenv("APP_ENV", "development")
    app = create_app()
    assert app.config["SECRET_KEY"] and app.config["SESSION_COOKIE_SECURE"] is False
    assert app.config["APP_BASE_URL"] == "http://127.0.0.1:5000"


def test_unknown_app_env_is_refused(bare_env):
    bare_env.setenv("APP_ENV", "staging")
    with pytest.raises(ConfigError, match="APP_ENV must be one of production, development, test"):
        create_app()


def test_production_cookies_are_secure(bare_env):
    production(bare_env)
    app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["REMEMBER_COOKIE_SECURE"] is True


def test_settings_read_from_environment(bare_env):
    production(bare_env, APP_BASE_URL="https://onboarding.example.com/")
    bare_env.setenv("DATABASE_URL", "postgresql+psycopg://u@db.example/prod")
    bare_env.setenv("TEMP_PASSWORD_TTL_HOURS", "24")
    bare_env.setenv("MAIL_PORT", "2525")
    bare_env.setenv("MAIL_USE_TLS", "true")
    bare_env.setenv("RATELIMIT_STORAGE_URI", "redis://127.0.0.1:6379/0")
    bare_env.setenv("WELCOME_CREDENTIAL", "link")
    bare_env.setenv("RESET_LINK_TTL_MINUTES", "30")
    bare_env.setenv("SESSION_IDLE_MINUTES", "0.5")
    bare_env.setenv("SESSION_MAX_HOURS", "8")
    bare_env.setenv("TRUSTED_PROXIES", "1")
    bare_env.setenv("RATELIMIT_ENABLED", "0")
    app = create_app()
    assert app.config["APP_BASE_URL"] == "https://onboarding.example.com"
    assert app.config["TEMP_PASSWORD_TTL_HOURS"] == 24
    assert app.config["MAIL_SERVER"] == "smtp.example.com"
    assert app.config["MAIL_PORT"] == 2525
    assert app.config["MAIL_USE_TLS"] is True
    assert app.config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/0"
    assert app.config["WELCOME_CREDENTIAL"] == "link"
    assert app.config["RESET_LINK_TTL_MINUTES"] == 30
    assert app.config["SESSION_IDLE_MINUTES"] == 0.5
    assert app.config["SESSION_MAX_HOURS"] == 8
    assert app.config["TRUSTED_PROXIES"] == 1
    assert app.config["RATELIMIT_ENABLED"] is False


@pytest.mark.parametrize("name", ["TEMP_PASSWORD_TTL_HOURS", "RESET_LINK_TTL_MINUTES", "SESSION_IDLE_MINUTES",
                                  "SESSION_MAX_HOURS"])
@pytest.mark.parametrize("value", ["three days", "nan", "-1", "0"])
def test_a_duration_that_is_not_a_positive_number_stops_the_start(bare_env, name, value):
    bare_env.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        create_app({"APP_ENV": "test"})


def _env_without_mode_settings(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in MODE_SETTINGS}
    return {**env, **extra}


def test_flask_command_refuses_to_start_in_production_with_one_line(tmp_path):
    env = _env_without_mode_settings(SECRET_KEY="s" * 40, APP_BASE_URL="https://onb.example.com",
                                     DATABASE_URL=f"sqlite:///{tmp_path}/x.sqlite3")
    done = subprocess.run([str(Path(sys.executable).with_name("flask")), "--app", "wsgi", "db", "upgrade"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "MAIL_SERVER" in lines[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "x.sqlite3").exists() or (tmp_path / "x.sqlite3").stat().st_size == 0


def test_gunicorn_refuses_to_start_in_production_with_one_line():
    env = _env_without_mode_settings(MAIL_SERVER="smtp.example.com", APP_BASE_URL="https://onb.example.com")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "--bind", "127.0.0.1:0", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)
    assert process.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "SECRET_KEY" in lines[0], err
    assert "Traceback" not in err + out


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_healthz_503_when_database_is_down(tmp_path):
    app = create_app({"APP_ENV": "test", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/missing/dir/x.db"})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable"}


def test_security_headers(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers  # cookies without Secure: no HTTPS promise
    assert len(response.headers.getlist("Content-Security-Policy")) == 1


def test_security_headers_in_production_and_a_views_own_kept(bare_env, tmp_path):
    production(bare_env)
    bare_env.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/prod.db")
    app = create_app()
    app.add_url_rule("/cached", "cached", lambda: ("x", 200, {"Cache-Control": "max-age=60"}))
    response = app.test_client().get("/cached")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response.headers.getlist("Cache-Control") == ["max-age=60"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_carry_no_inline_script(client):
    page = parse(client.get("/login"))
    assert page.all("script") and all(s.attributes.get("src") and not s.text().strip() for s in page.all("script"))
    config = json.loads(page.attr('meta[name="htmx-config"]', "content"))
    assert config["allowEval"] is False  # htmx runs without eval under the CSP


def test_unknown_page_is_html_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    page = parse(response)
    assert page.is_document and page.text("main h1") == "Not found"


def test_every_sqlite_connection_is_tuned(tmp_path):
    """WAL, synchronous=NORMAL, a busy timeout and foreign keys on every connection the app
    opens, not only the first (a pool opens more under load)."""
    from onboarding_app.extensions import db

    app = create_app({"APP_ENV": "test", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/tuned.sqlite3"})
    with app.app_context():
        connections = [db.engine.connect() for _ in range(2)]
        try:
            for conn in connections:
                pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                          for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")}
                assert pragma == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 10000, "foreign_keys": 1}
        finally:
            for conn in connections:
                conn.close()
            db.engine.dispose()
    # The write-ahead log is checkpointed and removed when the last connection closes.
    assert not (tmp_path / "tuned.sqlite3-wal").exists()


def test_sqlite_writers_of_one_process_take_turns(app):
    """SQLite's engine gets the writer lock (transactions.serialize_writers: threads, and
    processes through a file lock); PostgreSQL's, which locks rows, does not."""
    from onboarding_app import transactions
    from onboarding_app.extensions import db

    with app.app_context():
        engine = db.engine
        assert (engine in transactions._WRITERS) == (engine.dialect.name == "sqlite")
        if engine.dialect.name != "sqlite":
            return
        import fcntl
        import os

        # While one writer is in, another process (here: another open file) cannot take the lock.
        other = os.open(f"{engine.url.database}-writer", os.O_RDWR | os.O_CREAT)
        try:
            with transactions._WRITERS[engine]:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once the writer is done
        finally:
            os.close(other)
