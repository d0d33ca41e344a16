"""Credentials a user is sent (SPEC.md, "The welcome email"): the temporary password issued
when a welcome email is delivered, and when such a password has run out. Only hashes are
stored; the plain text exists only in the email being sent."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from .models import User, utcnow
from .security import hash_password

# Letters and digits that cannot be mistaken for one another when typed from an email.
_TEMP_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


def generate_temporary_password() -> str:
    """20 characters from a 56-symbol alphabet: about 116 bits of entropy."""
    raw = "".join(secrets.choice(_TEMP_ALPHABET) for _ in range(20))
    return "-".join(raw[i : i + 5] for i in range(0, 20, 5))


def hashed_temporary_password() -> tuple[str, str]:
    """A new temporary password and its hash (the slow part: compute it before taking locks)."""
    password = generate_temporary_password()
    return password, hash_password(password)


def issue_temporary_password(session: Session, user_id: int, password_hash: str, *, ttl_hours: float) -> bool:
    """Make ``password_hash`` the user's temporary password, valid for ``ttl_hours``, unless
    the user has set a password of their own meanwhile (then False, and nothing changes).
    One conditional UPDATE: a password change racing this delivery always wins."""
    issued = session.execute(
        update(User)
        .where(User.id == user_id, User.must_change_password.is_(True))
        .values(password_hash=password_hash, temp_password_expires_at=utcnow() + timedelta(hours=ttl_hours))
        .execution_options(synchronize_session=False)
    )
    return issued.rowcount == 1


def revoke_temporary_password(user: User) -> None:
    """The temporary password stops working now (a new one is on its way)."""
    user.password_hash = None
    user.temp_password_expires_at = None


def temporary_password_expired(user: User) -> bool:
    return user.must_change_password and (
        user.temp_password_expires_at is None or user.temp_password_expires_at <= utcnow()
    )
