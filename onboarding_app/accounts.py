"""Accounts: sign-in, passwords a user chooses (by hand or through a link), staff users, API
tokens. Each use case runs as one transaction through ``run_in_transaction``; nothing here
commits by itself. Password writes are conditional UPDATEs (see ``credentials``)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from . import credentials, feed, outbox, provisioning, throttle
from .errors import (
    EmailTaken,
    InvalidCredentials,
    LinkInvalid,
    NotFound,
    TemporaryPasswordExpired,
    ValidationFailed,
)
from .logsafe import get_logger
from .models import ROLES, ApiToken, User, new_session_token, utcnow
from .schemas import normalise_email
from .security import (
    generate_api_token,
    hash_api_token,
    hash_password,
    needs_rehash,
    password_problems,
    verify_password,
)
from .transactions import get_or_404, run_in_transaction

log = get_logger(__name__)

# last_used_at is written at most this often per token, so authenticating a request
# almost never writes to the database.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
MAX_EMAIL_LENGTH = 254
WRONG_CREDENTIALS = "Wrong email or password."


def _clean_email(email: str) -> str | None:
    """The email as stored (trimmed, lower case), or None when it cannot be anyone's."""
    email = (email or "").strip().lower()
    if not email or len(email) > MAX_EMAIL_LENGTH or not email.isprintable():
        return None
    return email


def _user_by_email(session: Session, email: str) -> User | None:
    cleaned = _clean_email(email)
    if cleaned is None:
        return None
    return session.execute(select(User).where(User.email == cleaned)).scalar_one_or_none()


def authenticate(session: Session, email: str, password: str) -> User:
    """The active user with this email and password, or ``InvalidCredentials``.

    An expired temporary password is refused with ``TemporaryPasswordExpired``. The message
    of a refusal never says whether the email exists, and an email locked by too many
    failures (``throttle``) is answered exactly as an unknown one, after the same work.
    """
    cleaned = _clean_email(email) or ""
    if throttle.email_locked(cleaned):
        verify_password(None, password)  # the same work as any other answer
        session.rollback()
        raise InvalidCredentials(WRONG_CREDENTIALS)
    user = _user_by_email(session, cleaned)
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.active:
        session.rollback()
        throttle.record_failed_sign_in(cleaned)
        raise InvalidCredentials(WRONG_CREDENTIALS)
    if credentials.temporary_password_expired(user):
        session.rollback()
        raise TemporaryPasswordExpired(
            "Your temporary password has expired. We can email you a link to set your password."
        )
    throttle.clear_failed_sign_ins(cleaned)
    if needs_rehash(user.password_hash):
        new_hash = hash_password(password)
        user_id, old_hash = user.id, user.password_hash

        def rehash() -> None:
            session.execute(
                update(User).where(User.id == user_id, User.password_hash == old_hash).values(password_hash=new_hash)
                .execution_options(synchronize_session=False)
            )

        run_in_transaction(session, rehash)
        session.refresh(user)
    return user


def record_sign_in(session: Session, user_id: int) -> None:
    """The user has just signed in: ``last_sign_in_at``, and their contact's last activity
    (the tracker and the reminder sweep read it)."""
    now = utcnow()

    def work() -> None:
        session.execute(
            update(User).where(User.id == user_id).values(last_sign_in_at=now)
            .execution_options(synchronize_session=False)
        )
        provisioning.touch_activity(session, user_id, now)

    run_in_transaction(session, work)


def end_all_sessions(session: Session, user_id: int) -> None:
    """Sign the user out everywhere: every session cookie carries the old token."""
    run_in_transaction(session, lambda: get_or_404(session, User, user_id, lock=True).rotate_session_token())


def set_active(session: Session, user_id: int, active: bool) -> User:
    def work() -> User:
        user = get_or_404(session, User, user_id, lock=True)
        user.active = active
        if not active:
            user.rotate_session_token()
        return user

    return run_in_transaction(session, work)


def create_user(session: Session, *, email: str, role: str, password: str, name: str = "") -> User:
    """A user with a password of their own (staff accounts, say)."""
    fields: dict[str, str] = {}
    try:
        email = normalise_email(email)
    except ValueError as exc:
        fields["email"] = str(exc)
    if role not in ROLES:
        fields["role"] = f"Choose one of: {', '.join(ROLES)}."
    problems = password_problems(password, email=email, name=name)
    if problems:
        fields["password"] = " ".join(problems)
    if fields:
        raise ValidationFailed(fields)
    password_hash = hash_password(password)

    def work() -> User:
        if session.execute(select(User.id).where(User.email == email)).first():
            raise EmailTaken(f"A user with the email {email} already exists.")
        user = User(email=email, role=role, name=name.strip(), password_hash=password_hash)
        session.add(user)
        session.flush()
        return user

    return run_in_transaction(session, work)


def change_password(
    session: Session, user_id: int, *, current_password: str, new_password: str
) -> User:
    """The user replaces their password: the current one is checked, the new one must pass
    the policy. Ends the user's other sessions and completes the ``set-password`` task.

    The write happens only if the password checked is still the current one (a resend of the
    welcome email may have replaced a temporary password meanwhile)."""
    user = get_or_404(session, User, user_id)
    checked_hash = user.password_hash
    fields: dict[str, str] = {}
    if not verify_password(checked_hash, current_password):
        fields["current_password"] = "That is not your current password."
    problems = password_problems(new_password, email=user.email, name=user.name)
    if problems:
        fields["new_password"] = " ".join(problems)
    elif new_password == current_password:
        fields["new_password"] = "Choose a password different from the current one."
    if fields:
        session.rollback()
        raise ValidationFailed(fields, "The password was not changed.")
    return _store_new_password(session, user_id, new_password, User.password_hash == checked_hash)


def set_password(session: Session, user_id: int, new_password: str) -> User:
    """An operator sets a user's password (CLI, demo data); the policy still applies."""
    user = get_or_404(session, User, user_id)
    problems = password_problems(new_password, email=user.email, name=user.name)
    if problems:
        session.rollback()
        raise ValidationFailed({"password": " ".join(problems)}, "The password was not changed.")
    return _store_new_password(session, user_id, new_password)


def _reload(session: Session, user_id: int) -> User:
    return session.execute(
        select(User).where(User.id == user_id).execution_options(populate_existing=True)
    ).scalar_one()


def _password_stored(session: Session, user_id: int) -> User:
    """What follows a password of the user's own: the feed event and the ``set-password`` task."""
    user = _reload(session, user_id)
    feed.record(session, feed.EVENT_PASSWORD_SET, actor_id=user.id, user_id=user.id)
    provisioning.tick_password_task(session, user)
    return user


def _store_new_password(session: Session, user_id: int, new_password: str, *conditions) -> User:
    new_hash = hash_password(new_password)  # before the transaction: no lock held while it runs

    def work() -> User:
        get_or_404(session, User, user_id, lock=True)
        stored = session.execute(
            update(User)
            .where(User.id == user_id, *conditions)
            .values(
                password_hash=new_hash, must_change_password=False, temp_password_expires_at=None,
                # Any link still out stops working, and every other session ends.
                link_token_hash=None, link_purpose=None, link_expires_at=None,
                session_token=new_session_token(),
            )
            .execution_options(synchronize_session=False)
        )
        if stored.rowcount != 1:
            raise ValidationFailed(
                {"current_password": "Your password was replaced meanwhile (a new welcome email?). "
                                     "Use the newest one you were sent."},
                "The password was not changed.",
            )
        return _password_stored(session, user_id)

    return run_in_transaction(session, work)


# --- sign-in links -------------------------------------------------------------------------------


def request_password_reset(session: Session, email: str) -> None:
    """Forgot password: email the account a reset link, if there is one. Answers nothing, so
    the caller cannot tell known, unknown and throttled addresses apart."""
    cleaned = _clean_email(email)
    if cleaned is None:
        return
    allowed = throttle.allow_reset_email(cleaned)  # counted for every address, known or not
    user = _user_by_email(session, cleaned)
    if user is None or not user.active or not allowed:
        session.rollback()
        return
    _queue_reset(session, user.id)


def send_password_reset(session: Session, email: str) -> User:
    """An operator's reset (``flask users reset-password``): no throttle; unknown is an error."""
    user = _user_by_email(session, email)
    if user is None:
        session.rollback()
        raise NotFound(f"No user has the email {email}.")
    if not user.active:
        session.rollback()
        raise ValidationFailed({"email": "This account is deactivated."}, "No link was sent.")
    return _queue_reset(session, user.id)


def _queue_reset(session: Session, user_id: int) -> User:
    def work() -> User:
        user = get_or_404(session, User, user_id)
        outbox.queue_email(session, outbox.KIND_PASSWORD_RESET, user=user, contact=user.contact)
        return user

    return run_in_transaction(session, work)


def link_user(session: Session, token: str, purpose: str) -> User:
    """The user a valid link belongs to (showing its form never uses it), or ``LinkInvalid``."""
    user = credentials.user_for_link(session, token, purpose)
    if user is None:
        session.rollback()
        raise LinkInvalid("This link is not valid any more: it was used, it expired, or a newer one was sent.")
    return user


def set_password_with_link(session: Session, token: str, purpose: str, new_password: str) -> User:
    """Set the user's own password through a reset or welcome link: the link is used up, the
    user's other sessions end, ``set-password`` is completed. A weak password leaves the
    link unused; a link used by a concurrent request is ``LinkInvalid`` here."""
    user = link_user(session, token, purpose)
    problems = password_problems(new_password, email=user.email, name=user.name)
    if problems:
        session.rollback()
        raise ValidationFailed({"new_password": " ".join(problems)}, "The password was not set.")
    new_hash = hash_password(new_password)
    user_id = user.id

    def work() -> User:
        if not credentials.use_link(session, user_id, token, purpose, new_hash):
            raise LinkInvalid("This link was just used; it works only once.")
        return _password_stored(session, user_id)

    return run_in_transaction(session, work)


def create_api_token(session: Session, email: str, *, name: str = "") -> tuple[ApiToken, str]:
    """A new token for the user; returns the row and the token, which is shown once."""
    token = generate_api_token()

    def work() -> ApiToken:
        user = _user_by_email(session, email)
        if user is None:
            raise NotFound(f"No user has the email {email}.")
        row = ApiToken(user_id=user.id, name=name.strip(), token_hash=hash_api_token(token))
        session.add(row)
        return row

    return run_in_transaction(session, work), token


def revoke_api_token(session: Session, token_id: int) -> ApiToken:
    def work() -> ApiToken:
        row = get_or_404(session, ApiToken, token_id, label="Token")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        return row

    return run_in_transaction(session, work)


# Bearer authentication, on every API request: one statement, built once (building a
# SELECT per request cost about as much as running it), reading the token's id and
# last_used_at as plain columns and the user as the one ORM object the request needs.
_TOKEN_USER = (
    select(ApiToken.id, ApiToken.last_used_at, User)
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None), User.active.is_(True))
)
_TOUCH_TOKEN = (
    update(ApiToken)
    .where(ApiToken.id == bindparam("token_id"))
    .values(last_used_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a bearer token belongs to, or None. One SELECT; a write only when
    ``last_used_at`` is older than ``TOKEN_TOUCH_INTERVAL``."""
    row = session.execute(_TOKEN_USER, {"token_hash": hash_api_token(token)}).first()
    if row is None:
        return None
    token_id, last_used_at, user = row
    now = utcnow()
    if last_used_at is None or now - last_used_at > TOKEN_TOUCH_INTERVAL:
        run_in_transaction(session, lambda: session.execute(_TOUCH_TOKEN, {"token_id": token_id, "now": now}))
    return user
