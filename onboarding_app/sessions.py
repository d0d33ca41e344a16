"""How long a browser session lasts (SPEC.md, "Getting in, and staying safe").

The signed session cookie records when the user signed in and when they were last seen; a
session ends after ``SESSION_IDLE_MINUTES`` without a request and ``SESSION_MAX_HOURS`` in
all. A session opened with a temporary password records a fingerprint of that password and
ends when it expires or is replaced (a resend). Signing out, a password change or a used link
end every session of the user through ``User.session_token`` (Flask-Login's alternative id).
"""

from __future__ import annotations

import time

from flask import Flask, current_app, flash, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user, login_user, logout_user

from . import accounts, credentials
from .extensions import db
from .models import User

SIGNED_IN_AT = "signed_in_at"
SEEN_AT = "seen_at"
TEMPORARY_PASSWORD = "temporary_password"  # fingerprint of the temporary password it was opened with


def now() -> float:
    return time.time()


def start(user: User) -> None:
    """A fresh session for ``user`` (nothing carried over from before signing in)."""
    session.clear()
    login_user(user)
    session.permanent = True  # the cookie expires with SESSION_MAX_HOURS (PERMANENT_SESSION_LIFETIME)
    session[SIGNED_IN_AT] = session[SEEN_AT] = now()
    if user.must_change_password:
        session[TEMPORARY_PASSWORD] = credentials.fingerprint(user.password_hash)
    accounts.record_sign_in(db.session, user.id)  # last sign-in and activity (tracker, reminders)


def keep(user: User) -> None:
    """The user set their own password in this session: keep it (its clock too), now tied to
    the new session token and no longer to a temporary password."""
    login_user(user)
    session.pop(TEMPORARY_PASSWORD, None)


def end() -> None:
    logout_user()
    session.clear()


def _ended_because() -> str | None:
    """Why the current session must end, or None while it may go on."""
    cfg = current_app.config
    signed_in, seen = session.get(SIGNED_IN_AT), session.get(SEEN_AT)
    at = now()
    if not isinstance(signed_in, (int, float)) or not isinstance(seen, (int, float)):
        return "Please sign in again."
    if at - seen > cfg["SESSION_IDLE_MINUTES"] * 60:
        return "You were signed out after a while without activity. Please sign in again."
    if at - signed_in > cfg["SESSION_MAX_HOURS"] * 3600:
        return "Your session has ended. Please sign in again."
    if TEMPORARY_PASSWORD in session and current_user.is_authenticated and current_user.must_change_password:
        if credentials.temporary_password_expired(current_user) or (
            credentials.fingerprint(current_user.password_hash) != session[TEMPORARY_PASSWORD]
        ):
            return "Your temporary password has expired or was replaced. Please sign in again."
    return None


class CookieSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened without building its signer when the request
    carries no session cookie (every bearer API call): a new, empty session, as Flask's own
    would be."""

    def open_session(self, app, request):
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def register(app: Flask) -> None:
    app.session_interface = CookieSessionInterface()

    @app.before_request
    def end_expired_sessions():
        if app.config["SESSION_COOKIE_NAME"] not in request.cookies or "_user_id" not in session:
            return None  # no signed-in session (bearer API calls never touch it)
        reason = _ended_because()
        if reason is None:
            session[SEEN_AT] = now()
            return None
        end()
        if request.blueprint == "api" or request.endpoint == "static":
            return None  # the request goes on signed out: the API answers 401
        # A page goes to sign in saying why (and not also "please sign in": one message).
        flash(reason, "info")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?") if request.method == "GET" else None))
