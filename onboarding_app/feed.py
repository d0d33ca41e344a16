"""The action feed: ``record`` writes an event in the caller's transaction; ``list_feed``
reads it newest first by an id cursor; ``describe`` turns an event into a sentence.

Every event type is named here once (``EVENT_*``) with its sentence in ``SENTENCES``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from .models import Contact, FeedEvent, User

EVENT_PROVISIONED = "onboarding.account.provisioned"
EVENT_WELCOME_RESENT = "onboarding.welcome_email.resent"
EVENT_TASK_COMPLETED = "onboarding.task.completed"
EVENT_TASK_SKIPPED = "onboarding.task.skipped"
EVENT_DOCUMENT_PUBLISHED = "document.published"
EVENT_COMPLETED = "onboarding.completed"
EVENT_REMINDER_SENT = "onboarding.reminder.sent"
EVENT_PASSWORD_SET = "account.password.changed"
EVENT_CONTACT_CREATED = "crm.contact.created"
EVENT_CONTACT_UPDATED = "crm.contact.updated"
EVENT_STATUS_CHANGED = "crm.contact.status_changed"
EVENT_WEBHOOK_TEST = "webhook.test"
EVENT_CONTACT_DELETED = "crm.contact.deleted"
EVENT_CHECKLIST_TASK_ADDED = "checklist.task.added"
EVENT_CHECKLIST_TASK_CHANGED = "checklist.task.changed"


def record(
    session: Session,
    type: str,
    *,
    actor_id: int | None = None,
    contact_id: int | None = None,
    user_id: int | None = None,
    data: dict[str, Any] | None = None,
    fan_out: bool = True,
) -> FeedEvent:
    """Add one event to the feed, in the caller's transaction, with a webhook delivery for
    every endpoint subscribed to it (the outbox: the rows commit or roll back together)."""
    from .webhooks import fan_out as write_deliveries  # webhooks reads this module's tables

    event = FeedEvent(
        type=type, actor_id=actor_id, contact_id=contact_id, user_id=user_id, payload=data or {}
    )
    session.add(event)
    if fan_out:
        write_deliveries(session, event)
    return event


def record_account_event(
    session: Session, type: str, *, contact_id: int | None, user: User, actor_id: int | None = None, **extra: Any
) -> FeedEvent:
    """An event about a contact's account; its data names the contact, the user and the email."""
    data = {"contact_id": contact_id, "user_id": user.id, "email": user.email, **extra}
    return record(session, type, actor_id=actor_id, contact_id=contact_id, user_id=user.id, data=data)


@dataclass(frozen=True)
class FeedPage:
    items: list[FeedEvent]
    next_before: int | None


def list_feed(
    session: Session, viewer: User, *, type: str | None = None, before: int | None = None, limit: int = 20,
    contact_id: int | None = None,
) -> FeedPage:
    """Staff see every event; anyone else only the events about their own account.
    ``contact_id`` narrows it to one contact's timeline (``ix_feed_events_contact_id_id``).
    ``before`` is the id cursor from the previous page, so deep pages cost the same."""
    # With what ``describe`` names of the actor and the contact, not their whole rows.
    query = select(FeedEvent).options(
        joinedload(FeedEvent.actor).load_only(User.name, User.email),
        joinedload(FeedEvent.contact).load_only(Contact.name),
    )
    if not viewer.is_staff:
        query = query.where(FeedEvent.user_id == viewer.id)
    if contact_id is not None:
        query = query.where(FeedEvent.contact_id == contact_id)
    if type:
        query = query.where(FeedEvent.type == type)
    if before:
        query = query.where(FeedEvent.id < before)
    rows = session.execute(query.order_by(FeedEvent.id.desc()).limit(limit + 1)).scalars().all()
    items = list(rows[:limit])
    return FeedPage(items=items, next_before=items[-1].id if len(rows) > limit else None)


@dataclass(frozen=True)
class _Words:
    """What a sentence can name: who acted, which contact, and the event's payload."""

    actor: str
    contact: str
    data: dict[str, Any]
    has_contact: bool


def _provisioned(w: _Words) -> str:
    if w.data.get("created"):
        return f"{w.actor} approved {w.contact}; account created"
    return f"{w.actor} approved {w.contact}; linked to the existing account {w.data.get('email')}"


def _checklist_task_changed(w: _Words) -> str:
    title, role, fields = w.data.get("title"), w.data.get("role"), w.data.get("fields", [])
    if "retired" in fields:
        return f"{w.actor} {'retired' if w.data.get('retired') else 'brought back'} “{title}” on the {role} checklist"
    if fields == ["position"]:
        return f"{w.actor} moved “{title}” to position {w.data.get('position')} of the {role} checklist"
    return f"{w.actor} edited “{title}” on the {role} checklist ({', '.join(fields)})"


SENTENCES: dict[str, Callable[[_Words], str]] = {
    EVENT_PROVISIONED: _provisioned,
    EVENT_WELCOME_RESENT: lambda w: f"{w.actor} resent the welcome email to {w.contact}",
    EVENT_TASK_COMPLETED: lambda w: (
        f"{w.contact if w.has_contact else w.actor} completed “{w.data.get('title', w.data.get('slug'))}”"
    ),
    EVENT_TASK_SKIPPED: lambda w: (
        f"{w.contact if w.has_contact else w.actor} skipped “{w.data.get('title', w.data.get('slug'))}”"
    ),
    EVENT_COMPLETED: lambda w: f"{w.contact} finished onboarding and is now active",
    EVENT_REMINDER_SENT: lambda w: (
        f"{w.actor} reminded {w.contact}"
        + (" with a fresh sign-in" if w.data.get("email_kind") == "welcome" else " of their open tasks")
    ),
    EVENT_CONTACT_CREATED: lambda w: (
        f"{w.actor} invited {w.contact}" if w.data.get("invited") else f"{w.actor} added {w.contact}"
    ),
    EVENT_DOCUMENT_PUBLISHED: lambda w: (
        f"{w.actor} published version {w.data.get('version')} of “{w.data.get('title', w.data.get('key'))}”"
    ),
    EVENT_STATUS_CHANGED: lambda w: f"{w.actor} moved {w.contact} from {w.data.get('from')} to {w.data.get('to')}",
    EVENT_CONTACT_UPDATED: lambda w: f"{w.actor} edited {w.contact} ({', '.join(w.data.get('fields', []))})",
    EVENT_CONTACT_DELETED: lambda w: f"{w.actor} deleted {w.contact}",
    EVENT_PASSWORD_SET: lambda w: f"{w.actor} set a new password",
    EVENT_WEBHOOK_TEST: lambda w: f"{w.actor} sent a test webhook",
    EVENT_CHECKLIST_TASK_ADDED: lambda w: (
        f"{w.actor} added “{w.data.get('title')}” to the {w.data.get('role')} checklist"
        + ("" if w.data.get("required") else " (optional)")
    ),
    EVENT_CHECKLIST_TASK_CHANGED: _checklist_task_changed,
}


def describe(event: FeedEvent) -> str:
    """One readable sentence for the feed, e.g. "Sam approved Ada Lovelace; account created"."""
    data = event.payload or {}
    words = _Words(
        actor=event.actor.display_name if event.actor else "The system",
        contact=event.contact.name if event.contact else data.get("name") or data.get("email") or "a contact",
        data=data,
        has_contact=event.contact is not None,
    )
    sentence = SENTENCES.get(event.type)
    return sentence(words) if sentence else f"{event.type} ({words.actor})"
