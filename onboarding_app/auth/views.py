"""Sign-in, sign-out, the user's own password, and the sign-in links (forgot password, reset,
welcome): SPEC.md, "Getting in, and staying safe"."""

import time
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import accounts, sessions
from ..credentials import PURPOSE_RESET, PURPOSE_WELCOME
from ..errors import InvalidCredentials, LinkInvalid, TemporaryPasswordExpired, ValidationFailed
from ..extensions import db, limiter
from ..logsafe import get_logger
from ..security import PASSWORD_RULES
from .forms import ForgotForm, LoginForm, NewPasswordForm, PasswordForm

bp = Blueprint("auth", __name__)
log = get_logger("onboarding_app.auth")


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: never another host, never a scheme-relative URL, never a
    control character (CR/LF would break the Location header; browsers drop tabs and
    newlines, which would turn ``/\\t/evil.example`` into ``//evil.example``)."""
    if not target or len(target) > 2000 or not target.isprintable():
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _forgot_limit() -> str:
    return current_app.config["FORGOT_RATE_LIMIT"]


def _password_change_limit() -> str:
    return current_app.config["PASSWORD_CHANGE_RATE_LIMIT"]


def _user_key() -> str:
    return f"user:{current_user.id}" if current_user.is_authenticated else f"addr:{request.remote_addr}"


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("onboarding.dashboard"))
    form = LoginForm()
    if request.method == "GET" and request.args.get("email"):
        form.email.data = request.args["email"][:254]
    error, expired_email = None, None
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(db.session, form.email.data, form.password.data)
        except TemporaryPasswordExpired as exc:
            log.warning("sign-in refused (temporary password expired) email=%s ip=%s",
                        form.email.data.lower(), request.remote_addr)
            error, expired_email = exc.message, form.email.data.strip().lower()
        except InvalidCredentials as exc:
            log.warning("sign-in refused email=%s ip=%s", form.email.data.lower(), request.remote_addr)
            error = exc.message
        else:
            sessions.start(user)  # a fresh session: nothing carried over from before
            log.info("sign-in user_id=%s ip=%s", user.id, request.remote_addr)
            return redirect(_safe_next(request.args.get("next")) or url_for("onboarding.dashboard"))
    status = 401 if error else (422 if form.errors else 200)
    return render_template(
        "auth/login.html", form=form, error=error, expired_email=expired_email, forgot_form=ForgotForm(),
    ), status


@bp.post("/logout")
@login_required
def logout():
    accounts.end_all_sessions(db.session, current_user.id)
    log.info("sign-out user_id=%s", current_user.id)
    sessions.end()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
@limiter.limit(_password_change_limit, methods=["POST"], key_func=_user_key)
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
            sessions.keep(user)
            log.info("password changed user_id=%s", user.id)
            flash("Your password is set.", "success")
            return redirect(url_for("onboarding.dashboard"))
    status = 422 if (form.errors or field_errors) else 200
    return render_template(
        "auth/password.html", form=form, field_errors=field_errors, rules=PASSWORD_RULES,
        forced=current_user.must_change_password,
    ), status


@bp.route("/account/forgot", methods=["GET", "POST"])
@limiter.limit(_forgot_limit, methods=["POST"])
def forgot():
    """Always the same answer, in words and in time: a known, an unknown and a throttled
    address cannot be told apart."""
    form = ForgotForm()
    if form.validate_on_submit():
        started = time.monotonic()
        accounts.request_password_reset(db.session, form.email.data)
        time.sleep(max(0.0, current_app.config["FORGOT_MIN_SECONDS"] - (time.monotonic() - started)))
        return render_template("auth/forgot_sent.html", email=form.email.data.strip())
    return render_template("auth/forgot.html", form=form), 422 if form.errors else 200


def _link_page(purpose: str, token: str):
    """GET shows the form (never uses the link: mail scanners open links); POST sets the
    password, ends the user's other sessions and signs this one in."""
    form = NewPasswordForm()
    field_errors: dict[str, str] = {}
    try:
        if form.validate_on_submit():
            try:
                user = accounts.set_password_with_link(db.session, token, purpose, form.new_password.data)
            except ValidationFailed as exc:
                field_errors = exc.fields
            else:
                sessions.start(user)
                log.info("password set through a %s link user_id=%s", purpose, user.id)
                flash("Your password is set; you are signed in.", "success")
                return redirect(url_for("onboarding.dashboard"))
        user = accounts.link_user(db.session, token, purpose)
    except LinkInvalid as exc:
        return render_template("auth/link_invalid.html", purpose=purpose, message=exc.message,
                               form=ForgotForm()), 404
    status = 422 if (form.errors or field_errors) else 200
    return render_template(
        "auth/link.html", form=form, field_errors=field_errors, rules=PASSWORD_RULES, purpose=purpose, user=user,
    ), status


@bp.route("/account/reset/<token>", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def reset(token: str):
    return _link_page(PURPOSE_RESET, token)


@bp.route("/account/welcome/<token>", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def welcome(token: str):
    return _link_page(PURPOSE_WELCOME, token)
