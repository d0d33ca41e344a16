"""Reading the action feed: newest first, paged by an id cursor, with readable sentences."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from .errors import ValidationFailed
from .models import FeedEvent, User
from .validation import whole_number

MAX_LIMIT = 100


@dataclass(frozen=True)
class FeedPage:
    items: list[FeedEvent]
    next_before: int | None


def parse_feed_query(type_: str | None, before: str | None, limit: str | None, *, default_limit: int) -> dict:
    fields: dict[str, str] = {}
    result = {"type": None, "before": None, "limit": default_limit}
    if type_:
        if len(type_) > 64:
            fields["type"] = "At most 64 characters."
        elif "\x00" in type_:
            fields["type"] = "Contains a character that is not allowed."
        else:
            result["type"] = type_
    for key, raw, low, high in (("before", before, 1, 2**62), ("limit", limit, 1, MAX_LIMIT)):
        if raw in (None, ""):
            continue
        try:
            result[key] = whole_number(raw, low, high)
        except ValueError as exc:
            fields[key] = str(exc)
    if fields:
        raise ValidationFailed(fields, "Invalid feed query.")
    return result


def list_feed(
    session: Session, viewer: User, *, type: str | None = None, before: int | None = None, limit: int = 20
) -> FeedPage:
    """Staff see every event; anyone else only the events about their own account.
    ``before`` is the id cursor from the previous page, so deep pages cost the same."""
    query = select(FeedEvent).options(joinedload(FeedEvent.actor), joinedload(FeedEvent.contact))
    if not viewer.is_staff:
        query = query.where(FeedEvent.user_id == viewer.id)
    if type:
        query = query.where(FeedEvent.type == type)
    if before:
        query = query.where(FeedEvent.id < before)
    rows = session.execute(query.order_by(FeedEvent.id.desc()).limit(limit + 1)).scalars().all()
    items = list(rows[:limit])
    return FeedPage(items=items, next_before=items[-1].id if len(rows) > limit else None)


def describe(event: FeedEvent) -> str:
    """One readable sentence for the feed, e.g. "Sam approved Ada Lovelace; account created"."""
    data = event.payload or {}
    actor = event.actor.display_name if event.actor else "The system"
    contact = event.contact.name if event.contact else data.get("name") or data.get("email") or "a contact"
    if event.type == "onboarding.account.provisioned":
        if data.get("created"):
            return f"{actor} approved {contact}; account created"
        return f"{actor} approved {contact}; linked to the existing account {data.get('email')}"
    if event.type == "onboarding.welcome_email.resent":
        return f"{actor} resent the welcome email to {contact}"
    if event.type == "onboarding.task.completed":
        return f"{contact if event.contact else actor} completed “{data.get('title', data.get('slug'))}”"
    if event.type == "onboarding.completed":
        return f"{contact} finished onboarding and is now active"
    if event.type == "crm.contact.created":
        return f"{actor} added {contact}"
    if event.type == "crm.contact.status_changed":
        return f"{actor} moved {contact} from {data.get('from')} to {data.get('to')}"
    if event.type == "crm.contact.updated":
        return f"{actor} edited {contact} ({', '.join(data.get('fields', []))})"
    if event.type == "account.password.changed":
        return f"{actor} set a new password"
    return f"{event.type} ({actor})"
