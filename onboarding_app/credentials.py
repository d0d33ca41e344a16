"""Credentials a user is sent (SPEC.md, "The welcome email", "Getting in, and staying safe"):
the temporary password and the single-use sign-in links (welcome, reset), issued when their
email is delivered. Only hashes are stored; the plain text exists only in the email being sent.

Every write here is a conditional UPDATE (``... WHERE must_change_password``, ``... WHERE
link_token_hash = :old``), never read-then-write: a resend racing the user's own password
change cannot wipe the password the user just chose, and a link is used at most once.

``CREDENTIAL_KINDS`` maps an email kind to its credential: ``prepare`` (the slow or random
part, before the delivery claims its row) and ``issue`` (the write, in the delivery's
transaction). ``outbox`` asks it by kind and knows nothing else about secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .models import User, new_session_token, utcnow
from .security import hash_password
from .web import external_url

KIND_WELCOME = "welcome"  # a new account: a temporary password
KIND_WELCOME_LINK = "welcome_link"  # a new account, WELCOME_CREDENTIAL=link: a set-password link
KIND_PASSWORD_RESET = "password_reset"  # forgot password, or an operator's reset: a reset link
PURPOSE_WELCOME, PURPOSE_RESET = "welcome", "reset"
REDACTED_PASSWORD = "(temporary password, not stored)"
REDACTED_LINK = "(single-use link, not stored)"
LINK_TOKEN_BYTES = 32  # 256 bits

# Letters and digits that cannot be mistaken for one another when typed from an email.
_TEMP_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


def _update(user_id: int, *conditions, **values):
    return (
        update(User)
        .where(User.id == user_id, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


# --- temporary passwords ---------------------------------------------------------------------


def generate_temporary_password() -> str:
    """20 characters from a 56-symbol alphabet: about 116 bits of entropy."""
    raw = "".join(secrets.choice(_TEMP_ALPHABET) for _ in range(20))
    return "-".join(raw[i : i + 5] for i in range(0, 20, 5))


def hashed_temporary_password() -> tuple[str, str]:
    """A new temporary password and its hash (the slow part: compute it before taking locks)."""
    password = generate_temporary_password()
    return password, hash_password(password)


def store_temporary_password(session: Session, user_id: int, password_hash: str, *, ttl_hours: float) -> bool:
    """Make ``password_hash`` the user's temporary password, valid for ``ttl_hours``, unless
    the user has meanwhile set their own (then nothing changes and the answer is False)."""
    stored = session.execute(
        _update(
            user_id, User.must_change_password.is_(True),
            password_hash=password_hash, temp_password_expires_at=utcnow() + timedelta(hours=ttl_hours),
        )
    )
    return stored.rowcount == 1


def revoke_welcome_credentials(session: Session, user_id: int) -> bool:
    """The temporary password and any link stop working now (a new welcome email is on its
    way), unless the user has meanwhile set their own password: False, and nothing changes."""
    revoked = session.execute(
        _update(
            user_id, User.must_change_password.is_(True),
            password_hash=None, temp_password_expires_at=None,
            link_token_hash=None, link_purpose=None, link_expires_at=None,
        )
    )
    return revoked.rowcount == 1


def temporary_password_expired(user: User) -> bool:
    return user.must_change_password and (
        user.temp_password_expires_at is None or user.temp_password_expires_at <= utcnow()
    )


def fingerprint(password_hash: str | None) -> str:
    """A short keyed digest of a password hash, kept in a session opened with a temporary
    password: when the hash changes (a resend), the fingerprint no longer matches."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, (password_hash or "").encode(), hashlib.sha256).hexdigest()[:32]


# --- sign-in links ---------------------------------------------------------------------------


def generate_link_token() -> str:
    return secrets.token_urlsafe(LINK_TOKEN_BYTES)


def hash_link_token(token: str) -> str:
    """Tokens are 256-bit random values, so a fast hash is enough to store them."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _store_link(session: Session, user_id: int, token_hash: str, purpose: str, expires_at: datetime, *conditions) -> bool:
    """Replace the user's link (ending the older one) if ``conditions`` still hold."""
    stored = session.execute(
        _update(user_id, *conditions, link_token_hash=token_hash, link_purpose=purpose, link_expires_at=expires_at)
    )
    return stored.rowcount == 1


def user_for_link(session: Session, token: str, purpose: str) -> User | None:
    """The active user this unused, unexpired link of ``purpose`` belongs to, or None. Reads
    only: opening a link (a mail scanner does) never uses it up."""
    if not token or len(token) > 128:
        return None
    return session.execute(
        select(User).where(
            User.link_token_hash == hash_link_token(token),
            User.link_purpose == purpose,
            User.link_expires_at > utcnow(),
            User.active.is_(True),
        )
    ).scalar_one_or_none()


def use_link(session: Session, user_id: int, token: str, purpose: str, new_password_hash: str) -> bool:
    """Set the user's own password through the link, once: the UPDATE matches only while the
    link is still theirs, unused and unexpired. Ends every other session (new session token)."""
    used = session.execute(
        _update(
            user_id,
            User.link_token_hash == hash_link_token(token),
            User.link_purpose == purpose,
            User.link_expires_at > utcnow(),
            User.active.is_(True),
            password_hash=new_password_hash, must_change_password=False, temp_password_expires_at=None,
            link_token_hash=None, link_purpose=None, link_expires_at=None,
            session_token=new_session_token(),
        )
    )
    return used.rowcount == 1


# --- what a delivery issues, per email kind --------------------------------------------------


class NotIssued(Exception):
    """The credential no longer applies (the user set their own password, was deactivated);
    the email is not sent."""


@dataclass(frozen=True)
class Prepared:
    plain: str  # what the email shows
    stored: str  # what the database keeps (a hash)


@dataclass(frozen=True)
class Issued:
    context: dict[str, str]  # template variables holding the secret
    redacted: dict[str, str]  # the same variables for the copy that is kept


@dataclass(frozen=True)
class CredentialKind:
    prepare: Callable[[], Prepared]
    issue: Callable[[Session, int, Prepared], Issued]


def _prepare_password() -> Prepared:
    return Prepared(*hashed_temporary_password())


def _prepare_link() -> Prepared:
    token = generate_link_token()
    return Prepared(token, hash_link_token(token))


def issue_temporary_password(session: Session, user_id: int, prepared: Prepared) -> Issued:
    if not store_temporary_password(
        session, user_id, prepared.stored, ttl_hours=current_app.config["TEMP_PASSWORD_TTL_HOURS"]
    ):
        raise NotIssued("the user has already set their own password")
    return Issued({"password": prepared.plain}, {"password": REDACTED_PASSWORD})


def issue_welcome_link(session: Session, user_id: int, prepared: Prepared) -> Issued:
    ttl_hours = current_app.config["TEMP_PASSWORD_TTL_HOURS"]
    if not _store_link(session, user_id, prepared.stored, PURPOSE_WELCOME, utcnow() + timedelta(hours=ttl_hours),
                       User.must_change_password.is_(True)):
        raise NotIssued("the user has already set their own password")
    return Issued({"link_url": external_url("auth.welcome", token=prepared.plain)}, {"link_url": REDACTED_LINK})


def issue_reset_link(session: Session, user_id: int, prepared: Prepared) -> Issued:
    ttl_minutes = current_app.config["RESET_LINK_TTL_MINUTES"]
    if not _store_link(session, user_id, prepared.stored, PURPOSE_RESET, utcnow() + timedelta(minutes=ttl_minutes),
                       User.active.is_(True)):
        raise NotIssued("the account is deactivated")
    return Issued({"link_url": external_url("auth.reset", token=prepared.plain)}, {"link_url": REDACTED_LINK})


CREDENTIAL_KINDS: dict[str, CredentialKind] = {
    KIND_WELCOME: CredentialKind(_prepare_password, issue_temporary_password),
    KIND_WELCOME_LINK: CredentialKind(_prepare_link, issue_welcome_link),
    KIND_PASSWORD_RESET: CredentialKind(_prepare_link, issue_reset_link),
}


def prepare(kind: str | None) -> Prepared | None:
    """The credential an email of ``kind`` carries, made before the delivery takes its lock
    (argon2 is slow); None for kinds that carry none."""
    credential = CREDENTIAL_KINDS.get(kind or "")
    return credential.prepare() if credential else None


def issue(session: Session, kind: str, user_id: int, prepared: Prepared) -> Issued:
    """Store ``prepared`` for the user in the delivery's transaction; ``NotIssued`` when it
    no longer applies."""
    return CREDENTIAL_KINDS[kind].issue(session, user_id, prepared)
