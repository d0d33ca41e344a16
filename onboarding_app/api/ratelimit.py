"""The API's rate limit: ``API_RATE_LIMIT`` (600 a minute) per bearer token, else per
signed-in user, else per client address (bad tokens included), on the rate limiter's storage
(``RATELIMIT_STORAGE_URI``, shared between hosts), fixed windows like every other limit.

The API counts for itself instead of through Flask-Limiter's per-request evaluation: that
machinery (limit wrappers, exemption scopes, and a second storage call to compute the
``X-RateLimit-*`` headers after the view) cost 0.3 ms of a 1.2 ms ``GET /api/v1/onboarding``
in process, a quarter of the request; even for an exempt blueprint it still resolved the
route's limits on every request, so API requests are filtered out of it before that. Here a
request is one ``incr`` on the storage: the count it returns says whether the request may go
on and what remains; the window's reset time is read only for a refusal (``Retry-After``).
``RATELIMIT_ENABLED=0`` turns it off with every other limit.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache

from flask import Blueprint, current_app, g, request
from limits import RateLimitItem, parse

from ..extensions import limiter
from .auth import caller
from .errors import ApiError

SCOPE = "api"


@lru_cache(maxsize=8)
def _item(setting: str) -> RateLimitItem:
    return parse(setting)


def key() -> str:
    """Per token; else per signed-in user; else per address (bad tokens included)."""
    who = caller()
    if who.via == "bearer":
        return f"token:{who.token_hash}"
    if who.via == "session":
        return f"user:{who.user.id}"
    return f"addr:{request.remote_addr or 'unknown'}"


def register(bp: Blueprint) -> None:
    limiter.exempt(bp)  # counted below, once, instead
    limiter.request_filter(lambda: request.blueprint == bp.name)  # ... and not even looked at there

    @bp.before_request
    def count_request():
        if not (current_app.config.get("RATELIMIT_ENABLED", True) and limiter.enabled):
            return None
        item = _item(current_app.config["API_RATE_LIMIT"])
        storage_key = item.key_for(SCOPE, key())
        used = limiter.storage.incr(storage_key, item.get_expiry())
        g.api_rate_remaining = (item.amount, max(0, item.amount - used))
        if used <= item.amount:
            return None
        retry_after = max(1, math.ceil(limiter.storage.get_expiry(storage_key) - time.time()))
        raise ApiError(429, "rate_limited", f"Too many requests ({item}). Try again in {retry_after} s.",
                       headers={"Retry-After": str(retry_after)})

    @bp.after_request
    def rate_headers(response):
        if "api_rate_remaining" in g:
            amount, remaining = g.api_rate_remaining
            response.headers["X-RateLimit-Limit"] = str(amount)
            response.headers["X-RateLimit-Remaining"] = str(remaining)
        return response
