"""CRM contacts: creation, edits, the list and the staff side of the lifecycle. What a valid
contact is lives in ``schemas.py``; these functions check their input through it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from . import feed
from .errors import AccountLinked, EmailTaken, InvalidTransition
from .models import CONTACT_STATUSES, Contact, ContactStatusCount, User
from .schemas import ContactCreate, ContactUpdate, check
from .transactions import get_or_404, run_in_transaction

# The moves staff may make by hand (SPEC.md, "The contact lifecycle"). QUALIFIED→ONBOARDING
# belongs to provisioning and ONBOARDING→ACTIVE to the completion check.
STAFF_TRANSITIONS: dict[str, frozenset[str]] = {
    "LEAD": frozenset({"QUALIFIED", "LOST"}),
    "QUALIFIED": frozenset({"LEAD", "LOST"}),
    "LOST": frozenset({"LEAD"}),
    "ONBOARDING": frozenset(),
    "ACTIVE": frozenset(),
}


def get_contact(session: Session, contact_id: int) -> Contact:
    return get_or_404(session, Contact, contact_id)


def _refuse_taken_email(session: Session, email: str) -> None:
    if session.execute(select(Contact.id).where(Contact.email == email)).first():
        raise EmailTaken(f"A contact with the email {email} already exists.", field="email")


def create_contact(session: Session, data: ContactCreate | dict[str, Any], *, actor: User | None = None) -> Contact:
    """A new LEAD. The email must be new to the CRM, whatever its letter case."""
    values = check(ContactCreate, data).model_dump()

    def work() -> Contact:
        _refuse_taken_email(session, values["email"])
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
    session: Session, contact_id: int, data: ContactUpdate | dict[str, Any], *, actor: User | None = None
) -> Contact:
    """Edit details and/or move the status along a staff transition. The email changes only
    while no account is linked (the account's login is that address)."""
    values = check(ContactUpdate, data).model_dump(exclude_unset=True)
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
        if values.get("email", contact.email) != contact.email:
            if contact.user_id is not None:
                raise AccountLinked("The email cannot change once the account exists.", field="email")
            _refuse_taken_email(session, values["email"])
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
