"""Password hashing and policy, generated secrets, and HTTP security headers."""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import Flask, current_app
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128
PASSWORD_RULES = (
    f"At least {MIN_PASSWORD_LENGTH} characters, not a commonly used password, "
    "and not easy to guess from your name or email. A few unrelated words work well."
)
_COMMON_PASSWORDS = frozenset(FREQUENCY_LISTS["passwords"])


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
    )


def password_hasher() -> PasswordHasher:
    cfg = current_app.config
    return _hasher(cfg["ARGON2_TIME_COST"], cfg["ARGON2_MEMORY_COST_KIB"], cfg["ARGON2_PARALLELISM"])


def hash_password(password: str) -> str:
    """Argon2id hash of the password (salted, memory-hard)."""
    return password_hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        # Same work as a real check, so timing does not tell which accounts exist.
        password_hasher().hash(password)
        return False
    try:
        return password_hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return password_hasher().check_needs_rehash(password_hash)


def password_problems(password: str, *, email: str = "", name: str = "") -> list[str]:
    """Why a new password is refused; an empty list when it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return [f"Use at least {MIN_PASSWORD_LENGTH} characters."]
    if len(password) > MAX_PASSWORD_LENGTH:
        return [f"Use at most {MAX_PASSWORD_LENGTH} characters."]
    lowered = password.lower()
    stem = lowered.rstrip("0123456789!@#$%^&*?.-_ ")
    if lowered in _COMMON_PASSWORDS or (len(stem) >= 4 and stem in _COMMON_PASSWORDS):
        return ["This is a commonly used password; choose another."]
    hints = [part for part in (email, email.split("@")[0], name) if part]
    result = zxcvbn(password[:100], user_inputs=hints)
    if result["score"] < 3:
        warning = result["feedback"].get("warning") or "It would be easy to guess."
        return [f"Too easy to guess. {warning}".strip()]
    return []


def generate_api_token() -> str:
    return "onb_" + secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    """Tokens are 256-bit random values, so a fast hash is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
NO_STORE = ("Cache-Control", "no-store")


def register_security_headers(app: Flask) -> None:
    """The headers above on every response, unless the view set its own: one pass over the
    response's headers instead of a ``setdefault`` (a scan of the list) per header."""
    defaults = SECURITY_HEADERS + ((HSTS,) if app.config.get("SESSION_COOKIE_SECURE") else ())

    @app.after_request
    def set_security_headers(response):
        headers = response.headers
        present = {name.lower() for name in headers.keys()}
        missing = [(name, value) for name, value in defaults if name.lower() not in present]
        if response.mimetype in ("text/html", "application/json") and "cache-control" not in present:
            missing.append(NO_STORE)
        headers.extend(missing)
        return response
