"""Sign-in, sign-out and the user's own password."""

import logging
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from .. import accounts
from ..errors import InvalidCredentials, TemporaryPasswordExpired, ValidationFailed
from ..extensions import db, limiter
from ..security import PASSWORD_RULES
from .forms import LoginForm, PasswordForm

bp = Blueprint("auth", __name__)
log = logging.getLogger("onboarding_app.auth")


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: never another host, never a scheme-relative URL."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("onboarding.dashboard"))
    form = LoginForm()
    if request.method == "GET" and request.args.get("email"):
        form.email.data = request.args["email"][:254]
    error = None
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(db.session, form.email.data, form.password.data)
        except TemporaryPasswordExpired as exc:
            log.warning("sign-in refused (temporary password expired) email=%s ip=%s",
                        form.email.data.lower(), request.remote_addr)
            error = exc.message
        except InvalidCredentials as exc:
            log.warning("sign-in refused email=%s ip=%s", form.email.data.lower(), request.remote_addr)
            error = exc.message
        else:
            session.clear()  # a fresh session at sign-in: nothing carried over from before
            login_user(user)
            accounts.record_sign_in(db.session, user.id)
            log.info("sign-in user_id=%s ip=%s", user.id, request.remote_addr)
            return redirect(_safe_next(request.args.get("next")) or url_for("onboarding.dashboard"))
    status = 401 if error else (422 if form.errors else 200)
    return render_template("auth/login.html", form=form, error=error), status


@bp.post("/logout")
@login_required
def logout():
    accounts.end_all_sessions(db.session, current_user.id)
    log.info("sign-out user_id=%s", current_user.id)
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = PasswordForm()
    field_errors: dict[str, str] = {}
    if form.validate_on_submit():
        try:
            user = accounts.change_password(
                db.session,
                current_user.id,
                current_password=form.current_password.data,
                new_password=form.new_password.data,
            )
        except ValidationFailed as exc:
            field_errors = exc.fields
        else:
            # The change ended every session of the user; keep this one.
            login_user(user)
            log.info("password changed user_id=%s", user.id)
            flash("Your password is set.", "success")
            return redirect(url_for("onboarding.dashboard"))
    status = 422 if (form.errors or field_errors) else 200
    return render_template(
        "auth/password.html", form=form, field_errors=field_errors, rules=PASSWORD_RULES,
        forced=current_user.must_change_password,
    ), status
