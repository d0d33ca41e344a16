"""Limits that are not "N requests per address", counted on the rate limiter's storage
(``RATELIMIT_STORAGE_URI``), so every app server shares them: failed sign-ins per submitted
email (reaching the limit locks the email), reset emails per address asked for.

Keys hold a digest of the email, never the email itself. ``RATELIMIT_ENABLED=0`` turns these
off with every other limit.
"""

from __future__ import annotations

import hashlib

from flask import current_app
from limits import parse

from .extensions import limiter


def _enabled() -> bool:
    return bool(current_app.config.get("RATELIMIT_ENABLED", True)) and limiter.enabled


def _key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _item(setting: str):
    return parse(current_app.config[setting])


def email_locked(email: str) -> bool:
    """Whether too many failed sign-ins for this email have locked it (for ``SIGNIN_LOCK``)."""
    if not _enabled():
        return False
    return not limiter.limiter.test(_item("SIGNIN_LOCK"), "signin-lock", _key(email))


def record_failed_sign_in(email: str) -> None:
    """Count one failure for this email; the one that reaches ``SIGNIN_EMAIL_FAILURES``
    locks the email."""
    if not _enabled():
        return
    strategy, key, failures = limiter.limiter, _key(email), _item("SIGNIN_EMAIL_FAILURES")
    strategy.hit(failures, "signin-failures", key)
    if not strategy.test(failures, "signin-failures", key):  # that was the last one allowed
        strategy.hit(_item("SIGNIN_LOCK"), "signin-lock", key)
        strategy.clear(failures, "signin-failures", key)


def clear_failed_sign_ins(email: str) -> None:
    if _enabled():
        limiter.limiter.clear(_item("SIGNIN_EMAIL_FAILURES"), "signin-failures", _key(email))


def allow_reset_email(email: str) -> bool:
    """Count one reset email for this address; False once ``FORGOT_EMAIL_LIMIT`` is reached
    (the request is then answered as usual and nothing is sent)."""
    if not _enabled():
        return True
    return limiter.limiter.hit(_item("FORGOT_EMAIL_LIMIT"), "forgot-email", _key(email))
