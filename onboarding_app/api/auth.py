"""Who is calling the API: a bearer token or the browser session, resolved once per request.

A bearer request needs no CSRF token (browsers never attach the header by themselves) and
never touches the session, so it gets no cookie. A request authenticated by the session
cookie is what a browser sends on its own, so its unsafe methods still need the CSRF token.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps
from typing import Callable

from flask import g, request
from flask_login import current_user

from .. import accounts
from ..extensions import csrf, db
from ..models import User
from ..security import hash_api_token
from .errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Caller:
    user: User | None
    via: str | None  # "bearer", "session" or None
    token_hash: str | None = None
    bad_token: bool = False  # an Authorization header was sent and did not authenticate


def _bearer_token() -> str | None:
    """The token of ``Authorization: Bearer <token>``; "" when the header is there but is
    not a usable bearer token; None when there is no Authorization header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        return ""
    return token


def caller() -> Caller:
    """The caller of this request, looked up once (the rate limiter asks first)."""
    if "api_caller" not in g:
        g.api_caller = _resolve()
    return g.api_caller


def _resolve() -> Caller:
    token = _bearer_token()
    if token is not None:
        # An Authorization header decides alone: a bad token never falls back to the cookie.
        user = accounts.user_for_token(db.session, token) if token else None
        if user is None:
            return Caller(user=None, via=None, bad_token=True)
        return Caller(user=user, via="bearer", token_hash=hash_api_token(token))
    if current_user.is_authenticated:
        return Caller(user=current_user._get_current_object(), via="session")
    return Caller(user=None, via=None)


def _authenticate(staff: bool, admin: bool = False) -> User:
    who = caller()
    if who.user is None:
        if who.bad_token:
            raise ApiError(401, "invalid_token", "The bearer token is unknown, revoked, or its user is inactive.",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        raise ApiError(401, "unauthorized", "Sign in, or send Authorization: Bearer <token>.",
                       headers={"WWW-Authenticate": "Bearer"})
    if who.user.must_change_password:
        # The same answer the app-level gate gives a session user with a temporary password.
        raise ApiError(403, "password_change_required", "Set your own password first.")
    if staff and not who.user.is_staff:
        raise ApiError(403, "forbidden", "This is for staff only.")
    if admin and who.user.role != "admin":
        raise ApiError(403, "forbidden", "This is for admins only.")
    if who.via == "session" and request.method not in SAFE_METHODS:
        csrf.protect()  # raises CSRFError, answered as 400 csrf_failed
    return who.user


def signed_in(view: Callable) -> Callable:
    """Any signed-in user; the view receives the user as ``user``."""

    @wraps(view)
    def guarded(*args, **kwargs):
        return view(*args, user=_authenticate(staff=False), **kwargs)

    return guarded


def staff_only(view: Callable) -> Callable:
    """Staff and admins; the view receives the user as ``user``."""

    @wraps(view)
    def guarded(*args, **kwargs):
        return view(*args, user=_authenticate(staff=True), **kwargs)

    return guarded


def admin_only(view: Callable) -> Callable:
    """Admins; the view receives the user as ``user``."""

    @wraps(view)
    def guarded(*args, **kwargs):
        return view(*args, user=_authenticate(staff=True, admin=True), **kwargs)

    return guarded
