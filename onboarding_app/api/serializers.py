"""What the API says about each thing: explicit fields, never a model's ``__dict__``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..contacts import ContactPage
from ..feed import FeedPage
from ..models import Contact, FeedEvent
from ..checklist import OnboardingState, RequiredProgress, TaskState
from ..provisioning import TaskCompletion


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, e.g. ``2026-01-31T09:30:00.123456Z``."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def contact(c: Contact, progress: RequiredProgress | None = None) -> dict[str, Any]:
    body = {
        "id": c.id,
        "name": c.name,
        "email": c.email,
        "company": c.company,
        "phone": c.phone,
        "role": c.role,
        "status": c.status,
        "user_id": c.user_id,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
    }
    if progress is not None:
        body["onboarding"] = {
            "required_total": progress.required_total,
            "required_completed": progress.required_completed,
            "complete": progress.complete,
        }
    return body


def contact_page(page: ContactPage) -> dict[str, Any]:
    return {
        "items": [contact(c) for c in page.items],
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
    }


def task(state: TaskState) -> dict[str, Any]:
    t = state.task
    return {
        "slug": t.slug,
        "title": t.title,
        "description": t.description,
        "required": t.required,
        "position": t.position,
        "completed": state.completed,
        "completed_at": iso(state.completed_at),
    }


def onboarding(state: OnboardingState) -> dict[str, Any]:
    return {
        "tasks": [task(t) for t in state.tasks],
        "required_total": state.required_total,
        "required_completed": state.required_completed,
        "complete": state.complete,
        "status": state.status,
    }


def completion(result: TaskCompletion) -> dict[str, Any]:
    return {"task": task(result.task), "complete": result.complete, "status": result.status}


def feed_event(event: FeedEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "created_at": iso(event.created_at),
        "actor_id": event.actor_id,
        "contact_id": event.contact_id,
        "user_id": event.user_id,
        "data": event.payload or {},
    }


def feed_page(page: FeedPage) -> dict[str, Any]:
    return {"items": [feed_event(e) for e in page.items], "next_before": page.next_before}
