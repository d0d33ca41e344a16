"""Settings read from the environment (SPEC.md, "Configuration"), the mode the app runs in,
and the check that stops a production start with a missing setting (one line, exit 1)."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Mapping, NoReturn

MODES = ("production", "development", "test")
# What production cannot run without: sessions signed with a public key, emails (with their
# credentials) written to the log, or links in emails pointing at a guessed address.
PRODUCTION_REQUIRED = ("SECRET_KEY", "MAIL_SERVER", "APP_BASE_URL")
WELCOME_CREDENTIALS = ("password", "link")
DEVELOPMENT_BASE_URL = "http://127.0.0.1:5000"


class ConfigError(RuntimeError):
    """A required production setting is missing or malformed. The message is one line that
    names the setting."""


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true or false), got {raw!r}")


def _int(name: str, default: int, *, low: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < low:
        raise ConfigError(f"{name} must be at least {low}, got {raw!r}")
    return value


def _duration(name: str, default: float) -> float:
    """``*_HOURS``, ``*_MINUTES``, ``*_DAYS``: a positive number, decimals allowed (``0.5``)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number (decimals allowed, e.g. 0.5), got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a number greater than 0, got {raw!r}")
    return int(value) if value.is_integer() else value


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {raw!r}")
    return raw


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
    """Build the configuration mapping from environment variables. Unset values stay None
    where production requires them, so ``check`` can name what is missing."""
    default_db = "sqlite:///" + str(Path(instance_path) / "onboarding.sqlite3")
    base_url = (os.environ.get("APP_BASE_URL") or "").strip().rstrip("/") or None
    return {
        "APP_ENV": _choice("APP_ENV", "production", MODES),
        "SECRET_KEY": os.environ.get("SECRET_KEY") or None,
        "SQLALCHEMY_DATABASE_URI": os.environ.get("DATABASE_URL") or default_db,
        "APP_BASE_URL": base_url,
        "MAIL_SERVER": os.environ.get("MAIL_SERVER") or None,
        "MAIL_PORT": _int("MAIL_PORT", 25, low=1),
        "MAIL_USE_TLS": _bool("MAIL_USE_TLS", False),
        "MAIL_USERNAME": os.environ.get("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": os.environ.get("MAIL_PASSWORD") or None,
        "MAIL_DEFAULT_SENDER": os.environ.get("MAIL_DEFAULT_SENDER") or "Onboarding <onboarding@localhost>",
        "TEMP_PASSWORD_TTL_HOURS": _duration("TEMP_PASSWORD_TTL_HOURS", 72),
        "WELCOME_CREDENTIAL": _choice("WELCOME_CREDENTIAL", "password", WELCOME_CREDENTIALS),
        "RESET_LINK_TTL_MINUTES": _duration("RESET_LINK_TTL_MINUTES", 60),
        "SESSION_IDLE_MINUTES": _duration("SESSION_IDLE_MINUTES", 120),
        "SESSION_MAX_HOURS": _duration("SESSION_MAX_HOURS", 24),
        "TRUSTED_PROXIES": _int("TRUSTED_PROXIES", 0),
        "RATELIMIT_ENABLED": _bool("RATELIMIT_ENABLED", True),
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI") or "memory://",
        # The worker (Huey): SQLite under instance/ by default, sqlite:///path or redis://...
        "HUEY_URL": os.environ.get("HUEY_URL") or "sqlite:///" + str(Path(instance_path) / "huey.sqlite3"),
        "MAIL_TIMEOUT": _float("MAIL_TIMEOUT", 10.0),
        "MAIL_MAX_ATTEMPTS": _int("MAIL_MAX_ATTEMPTS", 7),
        "WEBHOOK_RETRY_SCHEDULE": _schedule("WEBHOOK_RETRY_SCHEDULE", (5, 300, 1800, 7200, 18000, 36000)),
        "WEBHOOK_ALLOW_PRIVATE_HOSTS": _bool("WEBHOOK_ALLOW_PRIVATE_HOSTS", False),
        # Reminders: after this many days without activity, at most this many from the sweep.
        "REMINDER_AFTER_DAYS": _float("REMINDER_AFTER_DAYS", 3.0),
        "REMINDER_MAX": _int("REMINDER_MAX", 3),
        "KICKOFF_BOOKING_URL": os.environ.get("KICKOFF_BOOKING_URL") or None,
        "UPLOAD_MAX_BYTES": _int("UPLOAD_MAX_BYTES", 10 * 1024 * 1024, low=1),
    }


def check(settings: Mapping) -> None:
    """Refuse a configuration production cannot run with; ``ConfigError`` names the setting.

    The mode is what ``APP_ENV`` says (production unless told otherwise), never inferred."""
    mode = settings.get("APP_ENV")
    if mode not in MODES:
        raise ConfigError(f"APP_ENV must be one of {', '.join(MODES)}; got {mode!r}")
    if settings.get("WELCOME_CREDENTIAL") not in WELCOME_CREDENTIALS:
        raise ConfigError(f"WELCOME_CREDENTIAL must be one of {', '.join(WELCOME_CREDENTIALS)}")
    if mode != "production":
        return
    missing = [name for name in PRODUCTION_REQUIRED if not settings.get(name)]
    if missing:
        names = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
        raise ConfigError(
            f"APP_ENV is production (the default) and {names} {'is' if len(missing) == 1 else 'are'} not set; "
            "set them (SECRET_KEY to a long random value), or run with APP_ENV=development on your own machine"
        )


def check_environment() -> None:
    """The environment's settings, checked without building the app (gunicorn.conf.py)."""
    check(from_environment(str(Path(__file__).resolve().parent.parent / "instance")))


def refuse_to_start(exc: ConfigError) -> NoReturn:
    """One line naming the problem, no traceback, exit status 1."""
    print(f"onboarding: cannot start: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(1)


DEFAULTS = {
    # No pool_pre_ping (a round trip before every request): a pooled PostgreSQL connection
    # idle for POOL_PING_AFTER_SECONDS is pinged at checkout instead (create_app).
    "SQLALCHEMY_ENGINE_OPTIONS": {},
    "POOL_PING_AFTER_SECONDS": 30,
    # Cookies: never readable from scripts, not sent on cross-site posts, HTTPS only
    # in production (see create_app).
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "WTF_CSRF_TIME_LIMIT": None,  # tied to the session instead of a clock
    "LOGIN_RATE_LIMIT": "10 per minute",  # sign-in posts per client address
    # Failed sign-ins per submitted email; reaching it locks the email for SIGNIN_LOCK.
    "SIGNIN_EMAIL_FAILURES": "10 per 15 minutes",
    "SIGNIN_LOCK": "1 per 15 minutes",
    "FORGOT_RATE_LIMIT": "10 per hour",  # forgot-password posts per client address
    "FORGOT_EMAIL_LIMIT": "3 per hour",  # reset emails per address asked for; more are quietly not sent
    "PASSWORD_CHANGE_RATE_LIMIT": "10 per hour",  # per signed-in user
    # A forgot-password answer takes at least this long, whatever the email, so its time
    # does not tell whether an account exists.
    "FORGOT_MIN_SECONDS": 0.25,
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
