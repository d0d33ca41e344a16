"""Settings read from the environment (SPEC.md, "Configuration")."""

import os
from pathlib import Path


class ConfigError(RuntimeError):
    """A required production setting is missing or malformed."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _schedule(name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    """Seconds between attempts, comma-separated: ``5,300,1800``."""
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        steps = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(f"{name} must be numbers of seconds separated by commas, got {raw!r}") from None
    if not steps or any(step < 0 for step in steps):
        raise ConfigError(f"{name} must list at least one number of seconds, none negative, got {raw!r}")
    return steps


def from_environment(instance_path: str) -> dict:
    """Build the configuration mapping from environment variables."""
    default_db = "sqlite:///" + str(Path(instance_path) / "onboarding.sqlite3")
    mail_server = os.environ.get("MAIL_SERVER") or None
    return {
        "SECRET_KEY": os.environ.get("SECRET_KEY") or None,
        "SQLALCHEMY_DATABASE_URI": os.environ.get("DATABASE_URL") or default_db,
        # No DATABASE_URL: the embedded SQLite default, i.e. a developer's machine.
        "EMBEDDED_DATABASE": not os.environ.get("DATABASE_URL"),
        "APP_BASE_URL": (os.environ.get("APP_BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
        "MAIL_SERVER": mail_server,
        "MAIL_PORT": _int("MAIL_PORT", 25),
        "MAIL_USE_TLS": _bool(os.environ.get("MAIL_USE_TLS")),
        "MAIL_USERNAME": os.environ.get("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": os.environ.get("MAIL_PASSWORD") or None,
        "MAIL_DEFAULT_SENDER": os.environ.get("MAIL_DEFAULT_SENDER") or "Onboarding <onboarding@localhost>",
        "TEMP_PASSWORD_TTL_HOURS": _int("TEMP_PASSWORD_TTL_HOURS", 72),
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI") or "memory://",
        # The worker (Huey): SQLite under instance/ by default, sqlite:///path or redis://...
        "HUEY_URL": os.environ.get("HUEY_URL") or "sqlite:///" + str(Path(instance_path) / "huey.sqlite3"),
        "MAIL_TIMEOUT": _float("MAIL_TIMEOUT", 10.0),
        "MAIL_MAX_ATTEMPTS": _int("MAIL_MAX_ATTEMPTS", 7),
        "WEBHOOK_RETRY_SCHEDULE": _schedule("WEBHOOK_RETRY_SCHEDULE", (5, 300, 1800, 7200, 18000, 36000)),
        "WEBHOOK_ALLOW_PRIVATE_HOSTS": _bool(os.environ.get("WEBHOOK_ALLOW_PRIVATE_HOSTS")),
        # Reminders: after this many days without activity, at most this many from the sweep.
        "REMINDER_AFTER_DAYS": _float("REMINDER_AFTER_DAYS", 3.0),
        "REMINDER_MAX": _int("REMINDER_MAX", 3),
    }


DEFAULTS = {
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    # Cookies: never readable from scripts, not sent on cross-site posts, HTTPS only
    # outside development and tests (see create_app).
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "WTF_CSRF_TIME_LIMIT": None,  # tied to the session instead of a clock
    "LOGIN_RATE_LIMIT": "10 per minute",
    "API_RATE_LIMIT": "600 per minute",
    "RATELIMIT_HEADERS_ENABLED": True,
    # Argon2id parameters: OWASP ASVS 5 asks at least t=2, m=19 MiB, p=1.
    "ARGON2_TIME_COST": 2,
    "ARGON2_MEMORY_COST_KIB": 19 * 1024,
    "ARGON2_PARALLELISM": 1,
    "FEED_PAGE_SIZE": 20,
    # Seconds between a failed email and its next attempt (SPEC.md: 1 min ... 12 h).
    "MAIL_RETRY_SCHEDULE": (60, 300, 1800, 7200, 21600, 43200),
    "WEBHOOK_TIMEOUT": 10.0,
    # None: run jobs in the worker; True (tests): run each job at once, in the caller.
    "HUEY_IMMEDIATE": None,
    "CONTACTS_PAGE_SIZE": 25,
    "TRACKER_PAGE_SIZE": 25,
}
