"""Accounts outside the onboarding workflow: sign-in, staff users, API tokens."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .contacts import normalise_email
from .db_retry import run_in_transaction
from .errors import (
    EmailTaken,
    InvalidCredentials,
    NotFound,
    TemporaryPasswordExpired,
    ValidationFailed,
)
from .models import ROLES, ApiToken, User, utcnow
from .security import (
    generate_api_token,
    hash_api_token,
    hash_password,
    needs_rehash,
    password_problems,
    verify_password,
)

log = logging.getLogger(__name__)

# last_used_at is written at most this often per token, so authenticating a request
# almost never writes to the database.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=5)


def authenticate(session: Session, email: str, password: str) -> User:
    """The active user with this email and password, or ``InvalidCredentials``.

    An expired temporary password is refused with ``TemporaryPasswordExpired``. The message
    of a refusal never says whether the email exists.
    """
    user = session.execute(select(User).where(User.email == email.strip().lower())).scalar_one_or_none()
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.active:
        raise InvalidCredentials("Wrong email or password.")
    if user.must_change_password and (
        user.temp_password_expires_at is None or user.temp_password_expires_at <= utcnow()
    ):
        raise TemporaryPasswordExpired(
            "Your temporary password has expired. Ask us to resend your welcome email."
        )
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        session.commit()
    return user


def end_all_sessions(session: Session, user_id: int) -> None:
    """Sign the user out everywhere: every session cookie carries the old token."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    user.rotate_session_token()
    session.commit()


def set_active(session: Session, user_id: int, active: bool) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    user.active = active
    if not active:
        user.rotate_session_token()
    session.commit()
    return user


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


def create_api_token(session: Session, email: str, *, name: str = "") -> tuple[ApiToken, str]:
    """A new token for the user; returns the row and the token, which is shown once."""
    user = session.execute(select(User).where(User.email == email.strip().lower())).scalar_one_or_none()
    if user is None:
        raise NotFound(f"No user has the email {email}.")
    token = generate_api_token()
    row = ApiToken(user_id=user.id, name=name.strip(), token_hash=hash_api_token(token))
    session.add(row)
    session.commit()
    return row, token


def revoke_api_token(session: Session, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"Token {token_id} does not exist.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row


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
        session.execute(
            update(ApiToken).where(ApiToken.id == api_token.id).values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    return user
