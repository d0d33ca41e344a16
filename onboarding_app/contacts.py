"""CRM contacts: creation, edits, the list and the staff side of the lifecycle. What a valid
contact is lives in ``schemas.py``; these functions check their input through it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import column, func, literal_column, select, table, update
from sqlalchemy.orm import Session

from . import feed
from .errors import AccountLinked, EmailTaken, InvalidTransition, NotDeletable
from .models import CONTACTS_FTS, CONTACT_STATUSES, Contact, ContactStatusCount, FeedEvent, OutboundEmail, User, fold
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
# Staff may delete a contact only in these statuses (and only while no account is linked).
DELETABLE_STATUSES = ("LEAD", "LOST")


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
                f"A contact in status {contact.status} cannot be moved to {new_status}.",
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


def can_delete(contact: Contact) -> bool:
    return contact.status in DELETABLE_STATUSES and contact.user_id is None


def delete_contact(session: Session, contact_id: int, *, actor: User | None = None) -> str:
    """Delete a LEAD or LOST contact that has no account; return its name. Its feed events
    stay (they keep the name in their data) and a ``crm.contact.deleted`` event is added."""

    def work() -> str:
        contact = get_or_404(session, Contact, contact_id, lock=True)
        if not can_delete(contact):
            raise NotDeletable(
                f"{contact.name} cannot be deleted: only a lead or a lost contact without an account can be.",
                status=contact.status,
            )
        name, email = contact.name, contact.email
        session.execute(update(FeedEvent).where(FeedEvent.contact_id == contact_id).values(contact_id=None))
        session.execute(update(OutboundEmail).where(OutboundEmail.contact_id == contact_id).values(contact_id=None))
        session.delete(contact)
        session.flush()
        feed.record(
            session, feed.EVENT_CONTACT_DELETED, actor_id=actor.id if actor else None,
            data={"name": name, "email": email, "contact_id": contact_id},
        )
        return name

    return run_in_transaction(session, work)


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


def search_words(q: str) -> list[str]:
    """The words of a search as ``search_text`` stores them (folded: case and accents)."""
    return fold(q).split()


# A trigram needs 3 characters: shorter words cannot be looked up in a trigram index.
TRIGRAM = 3
_contacts_fts = table(CONTACTS_FTS, column("rowid"))


def _fts_phrase(word: str) -> str:
    """A word as an FTS5 string: with the trigram tokenizer, a substring to find."""
    return '"' + word.replace('"', '""') + '"'


def search_conditions(session: Session, words: list[str]) -> list:
    """What "every word somewhere in name, email or company" is on this database.

    - PostgreSQL: ``search_text LIKE '%word%'`` per word, each answered by the pg_trgm GIN
      index ``ix_contacts_search`` (the planner ANDs their bitmaps).
    - SQLite: the words of 3 characters or more in one ``MATCH`` on ``contacts_fts``, the
      trigram FTS5 index over ``search_text`` (migration 0009_search_index_tracker_index), so the
      work follows the matches, not the table; shorter words (no trigram) stay ``LIKE`` on
      the rows it found.
    Both match the same contacts: a word is a substring of the folded text."""
    conditions = []
    indexed = [w for w in words if len(w) >= TRIGRAM]
    if session.get_bind().dialect.name == "sqlite" and indexed:
        match = " AND ".join(_fts_phrase(w) for w in indexed)
        conditions.append(Contact.id.in_(
            select(_contacts_fts.c.rowid).where(literal_column(CONTACTS_FTS).op("MATCH")(match))))
        words = [w for w in words if len(w) < TRIGRAM]
    conditions.extend(Contact.search_text.like(f"%{_escape_like(w)}%", escape="\\") for w in words)
    return conditions


# How each list can be ordered: newest first (the contact list), or the longest waiting in
# its status first (the staff dashboard's "waiting for approval").
ORDERS = {
    "newest": (Contact.id.desc(),),
    "waiting": (Contact.status_changed_at.asc(), Contact.id.asc()),
}


def list_contacts(
    session: Session, *, status: str | None = None, q: str = "", page: int = 1, per_page: int = 25,
    order: str = "newest",
) -> ContactPage:
    """The one contact search, for the pages and the API. ``q`` matches contacts having every
    word of it somewhere in their name, email or company, in any order, ignoring letter case
    and accents ("lovelace ada" finds Ada Lovelace, "zoe" finds Zoë).

    The words are looked up in the search index of each database (``search_conditions``:
    pg_trgm on PostgreSQL, FTS5 trigram on SQLite). Without ``q`` the total comes from
    ``contact_status_counts``, so it costs the same at any number of contacts; with ``q`` a
    first page that is not full holds every match, so only a fuller search counts them."""
    conditions = []
    if status:
        conditions.append(Contact.status == status)
    words = search_words(q)
    if words:
        conditions.extend(search_conditions(session, words))
    items = session.execute(
        select(Contact).where(*conditions).order_by(*ORDERS[order]).limit(per_page).offset((page - 1) * per_page)
    ).scalars().all()
    if not words:
        total = status_total(session, (status,) if status else None)
    elif page == 1 and len(items) < per_page:
        total = len(items)
    else:
        total = session.execute(select(func.count(Contact.id)).where(*conditions)).scalar_one()
    return ContactPage(items=list(items), page=page, per_page=per_page, total=total)


def status_total(session: Session, statuses: tuple[str, ...] | None = None) -> int:
    """How many contacts are in these statuses (None: in any), from the counters the database
    keeps (``contact_status_counts``): one small read, whatever the number of contacts."""
    query = select(func.coalesce(func.sum(ContactStatusCount.contacts), 0))
    if statuses is not None:
        query = query.where(ContactStatusCount.status.in_(statuses))
    return session.execute(query).scalar_one()


def pipeline_counts(session: Session) -> dict[str, int]:
    """Contacts per status, from the counters the database keeps (one small read)."""
    rows = session.execute(select(ContactStatusCount.status, ContactStatusCount.contacts)).all()
    counts = dict.fromkeys(CONTACT_STATUSES, 0)
    counts.update({status: n for status, n in rows})
    return counts
