"""Accounts: sign-in, passwords a user chooses, staff users, API tokens. Each use case runs
as one transaction through ``run_in_transaction``; nothing here commits by itself."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import credentials, feed, provisioning
from .errors import EmailTaken, InvalidCredentials, NotFound, TemporaryPasswordExpired, ValidationFailed
from .models import ROLES, ApiToken, User, utcnow
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

log = logging.getLogger(__name__)

# last_used_at is written at most this often per token, so authenticating a request
# almost never writes to the database.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=5)


def _user_by_email(session: Session, email: str) -> User | None:
    return session.execute(select(User).where(User.email == email.strip().lower())).scalar_one_or_none()


def authenticate(session: Session, email: str, password: str) -> User:
    """The active user with this email and password, or ``InvalidCredentials``.

    An expired temporary password is refused with ``TemporaryPasswordExpired``. The message
    of a refusal never says whether the email exists.
    """
    user = _user_by_email(session, email)
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.active:
        session.rollback()
        raise InvalidCredentials("Wrong email or password.")
    if credentials.temporary_password_expired(user):
        session.rollback()
        raise TemporaryPasswordExpired(
            "Your temporary password has expired. Ask us to resend your welcome email."
        )
    if needs_rehash(user.password_hash):
        new_hash = hash_password(password)
        user_id = user.id

        def rehash() -> None:
            session.execute(
                update(User).where(User.id == user_id).values(password_hash=new_hash)
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
    the policy. Ends the user's other sessions and completes the ``set-password`` task."""
    user = get_or_404(session, User, user_id)
    fields: dict[str, str] = {}
    if not verify_password(user.password_hash, current_password):
        fields["current_password"] = "That is not your current password."
    problems = password_problems(new_password, email=user.email, name=user.name)
    if problems:
        fields["new_password"] = " ".join(problems)
    elif new_password == current_password:
        fields["new_password"] = "Choose a password different from the current one."
    if fields:
        session.rollback()
        raise ValidationFailed(fields, "The password was not changed.")
    return _store_new_password(session, user_id, new_password)


def set_password(session: Session, user_id: int, new_password: str) -> User:
    """An operator sets a user's password (CLI, demo data); the policy still applies."""
    user = get_or_404(session, User, user_id)
    problems = password_problems(new_password, email=user.email, name=user.name)
    if problems:
        session.rollback()
        raise ValidationFailed({"password": " ".join(problems)}, "The password was not changed.")
    return _store_new_password(session, user_id, new_password)


def _store_new_password(session: Session, user_id: int, new_password: str) -> User:
    new_hash = hash_password(new_password)  # before the transaction: no lock held while it runs

    def work() -> User:
        user = get_or_404(session, User, user_id, lock=True)
        user.password_hash = new_hash
        user.must_change_password = False
        user.temp_password_expires_at = None
        user.rotate_session_token()
        feed.record(session, feed.EVENT_PASSWORD_SET, actor_id=user.id, user_id=user.id)
        provisioning.tick_password_task(session, user)
        return user

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


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a bearer token belongs to, or None. One SELECT; a write only when
    ``last_used_at`` is older than ``TOKEN_TOUCH_INTERVAL``."""
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_api_token(token), ApiToken.revoked_at.is_(None), User.active.is_(True))
    ).first()
    if row is None:
        return None
    api_token, user = row
    now = utcnow()
    if api_token.last_used_at is None or now - api_token.last_used_at > TOKEN_TOUCH_INTERVAL:
        touch = (
            update(ApiToken)
            .where(ApiToken.id == api_token.id)
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        run_in_transaction(session, lambda: session.execute(touch))
    return user
