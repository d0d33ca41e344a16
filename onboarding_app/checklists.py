"""Editing the checklists (SPEC.md, "Checklist editor"): list a role's tasks, add one, change
one (fields, position, retired). Positions are 1-based and dense per role; moving a task
renumbers the rest. A required task added (or brought back) gives every account of the role
still in ONBOARDING an open progress row; a task that stops blocking (retired, or no longer
required) runs the completion check for everyone of the role still in ONBOARDING. Each change
is a feed event (``checklist.task.added`` / ``checklist.task.changed``: who, which task, what
changed), so staff can see who edited a checklist and webhooks hear of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, literal, select
from sqlalchemy.orm import Session

from . import feed
from .checklist import required_progress
from .errors import NotFound, SlugTaken, ValidationFailed
from .models import ACCOUNT_ROLES, Contact, Document, OnboardingProgress, OnboardingTask, User, utcnow
from .provisioning import _settle_completion
from .schemas import ChecklistTaskCreate, ChecklistTaskUpdate, check
from .transactions import run_in_transaction


@dataclass(frozen=True)
class Checklist:
    role: str
    tasks: list[OnboardingTask]


def _role(role: str) -> str:
    if role not in ACCOUNT_ROLES:
        raise NotFound("There is no such checklist.")
    return role


def _tasks(session: Session, role: str, *, lock: bool = False) -> list[OnboardingTask]:
    query = select(OnboardingTask).where(OnboardingTask.role == role).order_by(OnboardingTask.position, OnboardingTask.id)
    if lock:
        query = query.with_for_update()
    return list(session.execute(query).scalars())


def get_checklist(session: Session, role: str) -> Checklist:
    """Every task of ``role`` (retired ones too, flagged), in checklist order. One query."""
    return Checklist(role=_role(role), tasks=_tasks(session, role))


def _renumber(tasks: list[OnboardingTask]) -> None:
    for number, task in enumerate(tasks, start=1):
        if task.position != number:
            task.position = number


def _open_rows_for_onboarding(session: Session, task: OnboardingTask) -> None:
    """An open progress row for ``task`` for every account of its role still in ONBOARDING
    that has none (one INSERT ... SELECT)."""
    have = select(OnboardingProgress.user_id).where(OnboardingProgress.task_id == task.id)
    session.flush()
    session.execute(
        insert(OnboardingProgress).from_select(
            ["user_id", "task_id", "completed"],
            select(User.id, literal(task.id), literal(0))
            .join(Contact, Contact.user_id == User.id)
            .where(User.role == task.role, Contact.status == "ONBOARDING", User.id.not_in(have)),
        )
    )


def _settle_everyone(session: Session, role: str) -> int:
    """The completion check for every account of ``role`` in ONBOARDING: those whose required
    tasks are now all done become ACTIVE (once each, with ``onboarding.completed``). Returns
    how many moved."""
    session.flush()
    rows = session.execute(
        select(User, Contact.id, Contact.status)
        .join(Contact, Contact.user_id == User.id)
        .where(User.role == role, Contact.status == "ONBOARDING")
        .order_by(User.id)
        .with_for_update(of=User)
    ).all()
    progress = required_progress(session, [user.id for user, _, _ in rows])
    moved = 0
    for user, contact_id, status in rows:
        if progress[user.id].complete:
            _, after = _settle_completion(session, user, contact_id=contact_id, status=status)
            moved += after == "ACTIVE"
    return moved


def _task_words(task: OnboardingTask) -> dict[str, Any]:
    """What a checklist event names of its task."""
    return {"role": task.role, "slug": task.slug, "title": task.title}


def _editable(task: OnboardingTask) -> dict[str, Any]:
    """A task's editable fields, to name what an update changed (the others renumbered are not
    changes of theirs)."""
    return {"title": task.title, "description": task.description, "action_url": task.action_url,
            "required": task.required, "retired": task.retired_at is not None, "position": task.position}


def add_task(session: Session, role: str, data: ChecklistTaskCreate | dict[str, Any], *, actor_id: int | None = None) -> OnboardingTask:
    """Add a task at the end of ``role``'s checklist. 409 ``slug_taken`` when the role has a
    task (even retired) with that slug; 422 for a bad field or an unknown document."""
    _role(role)
    values = check(ChecklistTaskCreate, data)
    document = values.document or None
    if values.kind == "terms" and document is None:
        raise ValidationFailed({"document": "A terms task needs the document to accept."})
    if values.kind != "terms" and document is not None:
        raise ValidationFailed({"document": "Only a terms task names a document."})

    def work() -> OnboardingTask:
        if document is not None and session.execute(
            select(func.count()).select_from(Document).where(Document.key == document)
        ).scalar_one() == 0:
            raise ValidationFailed({"document": f"There is no document {document!r}."})
        tasks = _tasks(session, role, lock=True)
        if any(t.slug == values.slug for t in tasks):
            raise SlugTaken(f"The {role} checklist already has a task {values.slug!r}.")
        _renumber(tasks)
        task = OnboardingTask(role=role, slug=values.slug, title=values.title, description=values.description,
                              kind=values.kind, required=values.required, action_url=values.action_url or None,
                              document_key=document, position=len(tasks) + 1)
        session.add(task)
        session.flush()
        if task.required:
            _open_rows_for_onboarding(session, task)
        feed.record(session, feed.EVENT_CHECKLIST_TASK_ADDED, actor_id=actor_id,
                    data={**_task_words(task), "kind": task.kind, "required": task.required})
        return task

    return run_in_transaction(session, work)


def update_task(session: Session, role: str, slug: str, data: ChecklistTaskUpdate | dict[str, Any], *, actor_id: int | None = None) -> OnboardingTask:
    """Change a task's fields, move it (``position``, 1-based: the rest are renumbered) or
    retire it (``retired``; false brings it back). 404 for an unknown role or slug; 422 for a
    bad field or a position past the end."""
    _role(role)
    values = check(ChecklistTaskUpdate, data)
    sent = values.model_fields_set
    for name in ("title", "required", "retired"):  # sent as null: not a value
        if name in sent and getattr(values, name) is None:
            raise ValidationFailed({name: "Must not be null."})

    def work() -> OnboardingTask:
        tasks = _tasks(session, role, lock=True)
        task = next((t for t in tasks if t.slug == slug), None)
        if task is None:
            raise NotFound(f"The {role} checklist has no task {slug!r}.", slug=slug)
        if "position" in sent and values.position is not None and values.position > len(tasks):
            raise ValidationFailed({"position": f"Must be between 1 and {len(tasks)}."})
        blocking_before = task.required and task.retired_at is None
        before = _editable(task)
        if "title" in sent:
            task.title = values.title
        if "description" in sent:
            task.description = values.description or ""
        if "action_url" in sent:
            task.action_url = values.action_url or None
        if "required" in sent:
            task.required = values.required
        if "retired" in sent and values.retired != (task.retired_at is not None):
            task.retired_at = utcnow() if values.retired else None
        if "position" in sent and values.position is not None:
            tasks.remove(task)
            tasks.insert(values.position - 1, task)
        _renumber(tasks)
        session.flush()
        blocking_now = task.required and task.retired_at is None
        if blocking_now and not blocking_before:
            _open_rows_for_onboarding(session, task)
        elif blocking_before and not blocking_now:
            _settle_everyone(session, role)
        after = _editable(task)
        changed = [name for name in after if after[name] != before[name]]
        if changed:
            feed.record(session, feed.EVENT_CHECKLIST_TASK_CHANGED, actor_id=actor_id,
                        data={**_task_words(task), "fields": changed, "position": task.position,
                              "required": task.required, "retired": task.retired_at is not None})
        return task

    return run_in_transaction(session, work)
