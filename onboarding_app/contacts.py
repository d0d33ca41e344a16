"""CRM contacts: validation, creation, edits and the staff side of the lifecycle."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from .errors import EmailTaken, InvalidTransition, ValidationFailed
from .models import ACCOUNT_ROLES, CONTACT_STATUSES, Contact, ContactStatusCount, User
from . import feed
from .transactions import get_or_404, run_in_transaction
from .validation import whole_number

# The moves staff may make by hand (SPEC.md, "The contact lifecycle"). QUALIFIED→ONBOARDING
# belongs to provisioning and ONBOARDING→ACTIVE to the completion check.
STAFF_TRANSITIONS: dict[str, frozenset[str]] = {
    "LEAD": frozenset({"QUALIFIED", "LOST"}),
    "QUALIFIED": frozenset({"LEAD", "LOST"}),
    "LOST": frozenset({"LEAD"}),
    "ONBOARDING": frozenset(),
    "ACTIVE": frozenset(),
}

MAX_PER_PAGE = 100
MAX_QUERY_LENGTH = 200
_PHONE = re.compile(r"^[0-9+().\-\s/x]*$")
_LIMITS = {"name": 200, "company": 200, "phone": 50}
CREATE_FIELDS = frozenset({"name", "email", "company", "phone", "role"})
UPDATE_FIELDS = frozenset({"name", "company", "phone", "role", "status"})


def normalise_email(value: Any) -> str:
    """The lower-cased address, or ValueError with a sentence saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("Enter an email address.")
    value = value.strip()
    if len(value) > 254:
        raise ValueError("An email address has at most 254 characters.")
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"Enter a valid email address ({exc}).") from None
    return checked.normalized.lower()


def _clean(data: dict[str, Any], allowed: frozenset[str], *, creating: bool) -> dict[str, Any]:
    """Check every field of a create or an update in one place; raise ``ValidationFailed``
    with a sentence per bad field, or return the cleaned values."""
    fields: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for key in data:
        if key not in allowed:
            fields[key] = "Unknown field." if key != "email" else "The email of a contact cannot be changed."
    if creating:
        for key in ("name", "email"):
            if data.get(key) in (None, ""):
                fields[key] = "This field is required."
    for key, limit in _LIMITS.items():
        if key not in data or key in fields:
            continue
        value = data[key]
        if value is None and key != "name":
            value = ""
        if not isinstance(value, str):
            fields[key] = "Must be text."
            continue
        value = value.strip()
        if key == "name" and not value:
            fields[key] = "This field is required."
        elif len(value) > limit:
            fields[key] = f"At most {limit} characters."
        elif "\x00" in value:
            fields[key] = "Contains a character that is not allowed."
        elif key == "phone" and not _PHONE.match(value):
            fields[key] = "Use digits, spaces and + ( ) - . / x only."
        else:
            clean[key] = value
    if "email" in data and "email" not in fields and "email" in allowed:
        try:
            clean["email"] = normalise_email(data["email"])
        except ValueError as exc:
            fields["email"] = str(exc)
    if "role" in data and "role" not in fields:
        if data["role"] in ACCOUNT_ROLES:
            clean["role"] = data["role"]
        else:
            fields["role"] = f"Choose one of: {', '.join(ACCOUNT_ROLES)}."
    if "status" in data and "status" not in fields and "status" in allowed:
        if data["status"] in CONTACT_STATUSES:
            clean["status"] = data["status"]
        else:
            fields["status"] = f"Choose one of: {', '.join(CONTACT_STATUSES)}."
    if fields:
        raise ValidationFailed(fields)
    return clean


def get_contact(session: Session, contact_id: int) -> Contact:
    return get_or_404(session, Contact, contact_id)


def create_contact(session: Session, data: dict[str, Any], *, actor: User | None = None) -> Contact:
    """A new LEAD. The email must be new to the CRM, whatever its letter case."""
    values = _clean(data, CREATE_FIELDS, creating=True)
    values.setdefault("company", "")
    values.setdefault("phone", "")
    values.setdefault("role", "client")

    def work() -> Contact:
        if session.execute(select(Contact.id).where(Contact.email == values["email"])).first():
            raise EmailTaken(f"A contact with the email {values['email']} already exists.", field="email")
        contact = Contact(**values, status="LEAD", owner_id=actor.id if actor else None)
        session.add(contact)
        session.flush()
        feed.record(
            session,
            feed.EVENT_CONTACT_CREATED,
            actor_id=actor.id if actor else None,
            contact_id=contact.id,
            data={"name": contact.name, "email": contact.email},
        )
        return contact

    return run_in_transaction(session, work)


def update_contact(
    session: Session, contact_id: int, data: dict[str, Any], *, actor: User | None = None
) -> Contact:
    """Edit details and/or move the status along a staff transition."""
    values = _clean(data, UPDATE_FIELDS, creating=False)
    actor_id = actor.id if actor else None

    def work() -> Contact:
        contact = get_or_404(session, Contact, contact_id, lock=True)
        new_status = values.pop("status", contact.status)
        if new_status != contact.status and new_status not in STAFF_TRANSITIONS[contact.status]:
            raise InvalidTransition(
                f"A {contact.status} contact cannot be moved to {new_status}.",
                current=contact.status,
                requested=new_status,
            )
        if "role" in values and values["role"] != contact.role and contact.user_id is not None:
            raise InvalidTransition("The role cannot change once the account exists.", field="role")
        changed = {k: v for k, v in values.items() if getattr(contact, k) != v}
        for key, value in changed.items():
            setattr(contact, key, value)
        if changed:
            feed.record(
                session, feed.EVENT_CONTACT_UPDATED, actor_id=actor_id, contact_id=contact.id,
                data={"fields": sorted(changed)},
            )
        if new_status != contact.status:
            old = contact.status
            contact.status = new_status
            feed.record(
                session, feed.EVENT_STATUS_CHANGED, actor_id=actor_id, contact_id=contact.id,
                data={"name": contact.name, "from": old, "to": new_status},
            )
        return contact

    return run_in_transaction(session, work)


def change_status(session: Session, contact_id: int, status: str, *, actor: User | None = None) -> Contact:
    return update_contact(session, contact_id, {"status": status}, actor=actor)


@dataclass(frozen=True)
class ContactPage:
    items: list[Contact]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def parse_listing(status: Any, q: Any, page: Any, per_page: Any, *, default_per_page: int) -> dict[str, Any]:
    """Validate the list filters (from a query string: all text) into typed values."""
    fields: dict[str, str] = {}
    result: dict[str, Any] = {"status": None, "q": "", "page": 1, "per_page": default_per_page}
    if status not in (None, ""):
        if status in CONTACT_STATUSES:
            result["status"] = status
        else:
            fields["status"] = f"Choose one of: {', '.join(CONTACT_STATUSES)}."
    if q not in (None, ""):
        q = str(q).strip()
        if len(q) > MAX_QUERY_LENGTH or "\x00" in q:
            fields["q"] = f"Search with at most {MAX_QUERY_LENGTH} characters."
        else:
            result["q"] = q
    for key, low, high in (("page", 1, 100_000), ("per_page", 1, MAX_PER_PAGE)):
        raw = {"page": page, "per_page": per_page}[key]
        if raw in (None, ""):
            continue
        try:
            result[key] = whole_number(raw, low, high)
        except ValueError as exc:
            fields[key] = str(exc)
    if fields:
        raise ValidationFailed(fields, "Invalid filter.")
    return result


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_contacts(
    session: Session, *, status: str | None = None, q: str = "", page: int = 1, per_page: int = 25
) -> ContactPage:
    """Newest first; ``q`` matches part of the name, email or company, in any letter case.

    Search uses ``ix_contacts_search`` (pg_trgm on PostgreSQL). Without ``q`` the total
    comes from ``contact_status_counts``, so it costs the same at any number of contacts."""
    conditions = []
    if status:
        conditions.append(Contact.status == status)
    if q:
        pattern = f"%{_escape_like(q.lower())}%"
        # PostgreSQL: ILIKE, which the trigram index serves. SQLite: LIKE, which is already
        # case-insensitive there for exactly the letters its lower() folds (ASCII), and is
        # cheaper than lower() on every row.
        if session.get_bind().dialect.name == "postgresql":
            name, company = Contact.name.ilike(pattern, escape="\\"), Contact.company.ilike(pattern, escape="\\")
        else:
            name, company = Contact.name.like(pattern, escape="\\"), Contact.company.like(pattern, escape="\\")
        conditions.append(or_(name, Contact.email.like(pattern, escape="\\"), company))
        total_query = select(func.count(Contact.id)).where(*conditions)
    else:
        total_query = select(func.coalesce(func.sum(ContactStatusCount.contacts), 0))
        if status:
            total_query = total_query.where(ContactStatusCount.status == status)
    total = session.execute(total_query).scalar_one()
    items = session.execute(
        select(Contact).where(*conditions).order_by(Contact.id.desc()).limit(per_page).offset((page - 1) * per_page)
    ).scalars().all()
    return ContactPage(items=list(items), page=page, per_page=per_page, total=total)


def pipeline_counts(session: Session) -> dict[str, int]:
    """Contacts per status, from the counters the database keeps (one small read)."""
    rows = session.execute(select(ContactStatusCount.status, ContactStatusCount.contacts)).all()
    counts = dict.fromkeys(CONTACT_STATUSES, 0)
    counts.update({status: n for status, n in rows})
    return counts
