"""Reading a user's onboarding checklist: each task with its state, and how many required
tasks are done. ``required_progress`` is the one place that counts required progress; the
workflow (``provisioning``) and every page and API answer use it. Retired tasks are in no
checklist and count for nothing; a skipped (optional) task counts neither way."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import and_, bindparam, func, select, true as sa_true
from sqlalchemy.orm import Session

from .documents import current_version_query
from .models import Contact, Document, OnboardingProgress, OnboardingTask, User
from .transactions import get_or_404


def live_tasks():
    """The condition "the task is in checklists": not retired."""
    return OnboardingTask.retired_at.is_(None)


@dataclass(frozen=True)
class RequiredProgress:
    required_total: int
    required_completed: int

    @property
    def complete(self) -> bool:
        return self.required_completed == self.required_total

    @classmethod
    def of(cls, tasks: Iterable[TaskState | Any]) -> RequiredProgress:
        """The same count as ``required_progress``, from a checklist already loaded (its task
        states, or anything else with ``required`` and ``completed``: the tracker's cells)."""
        required = [t for t in tasks if t.required]
        return cls(len(required), sum(1 for t in required if t.completed))


def is_skipped(completed: bool, skipped_at: datetime | None) -> bool:
    """Skipped: an optional task set aside and not done since."""
    return skipped_at is not None and not completed


@dataclass(frozen=True)
class TaskState:
    task: OnboardingTask
    completed: bool
    completed_at: datetime | None
    skipped_at: datetime | None = None
    data: dict[str, Any] | None = None  # the answers the task collected
    document: Document | None = None  # a terms task's document, current version

    @property
    def required(self) -> bool:
        return self.task.required

    @property
    def skipped(self) -> bool:
        return is_skipped(self.completed, self.skipped_at)


class WithProgress:
    """The required-progress figures of a row that carries ``progress`` (a checklist, a
    tracker row), so templates and serializers read them the same way everywhere."""

    progress: RequiredProgress

    @property
    def required_total(self) -> int:
        return self.progress.required_total

    @property
    def required_completed(self) -> int:
        return self.progress.required_completed

    @property
    def complete(self) -> bool:
        return self.progress.complete


@dataclass(frozen=True)
class OnboardingState(WithProgress):
    """A user's checklist as the dashboard and the API show it."""

    tasks: list[TaskState]
    progress: RequiredProgress
    status: str | None  # the contact's status, when the user has a contact
    contact_id: int | None = None


    def task(self, slug: str) -> TaskState:
        return next(t for t in self.tasks if t.task.slug == slug)

    def find(self, slug: str) -> TaskState | None:
        return next((t for t in self.tasks if t.task.slug == slug), None)


def required_progress(session: Session, user_ids: list[int]) -> dict[int, RequiredProgress]:
    """Required tasks and required tasks done, per user, for any number of users in one query
    (a required task with no progress row yet counts as not done)."""
    if not user_ids:
        return {}
    done = and_(
        OnboardingProgress.task_id == OnboardingTask.id,
        OnboardingProgress.user_id == User.id,
        OnboardingProgress.completed == 1,
    )
    rows = session.execute(
        select(User.id, func.count(OnboardingTask.id), func.count(OnboardingProgress.id))
        .select_from(User)
        .outerjoin(OnboardingTask, and_(OnboardingTask.role == User.role, OnboardingTask.required.is_(True), live_tasks()))
        .outerjoin(OnboardingProgress, done)
        .where(User.id.in_(user_ids))
        .group_by(User.id)
    ).all()
    return {user_id: RequiredProgress(total, completed) for user_id, total, completed in rows}


@cache
def _checklist_query():
    """The checklist of one user (``user_id``, ``role``), built once: it runs on every
    dashboard and API read, and building the statement cost about as much as running it."""
    user_id = bindparam("user_id")
    contact = select(Contact.id, Contact.status).where(Contact.user_id == user_id).subquery()
    return (
        select(OnboardingTask, OnboardingProgress.completed, OnboardingProgress.completed_at,
               OnboardingProgress.skipped_at, OnboardingProgress.data, Document, contact.c.id, contact.c.status)
        .outerjoin(
            OnboardingProgress,
            and_(OnboardingProgress.task_id == OnboardingTask.id, OnboardingProgress.user_id == user_id),
        )
        .outerjoin(
            Document,
            and_(Document.key == OnboardingTask.document_key,
                 Document.version == current_version_query(OnboardingTask.document_key)),
        )
        .outerjoin(contact, sa_true())
        .where(OnboardingTask.role == bindparam("role"), live_tasks())
        .order_by(OnboardingTask.position, OnboardingTask.id)
    )


def onboarding_state(session: Session, user_id: int) -> OnboardingState:
    """The user's checklist with each task's state, answers and (terms) current document, and
    the contact's status, in one query (two when the user is not already in the session).
    The counts come from the same rows."""
    user = get_or_404(session, User, user_id)
    rows = session.execute(_checklist_query(), {"user_id": user.id, "role": user.role}).all()
    tasks = [
        TaskState(task=task, completed=completed == 1, completed_at=completed_at, skipped_at=skipped_at,
                  data=data, document=document)
        for task, completed, completed_at, skipped_at, data, document, _, _ in rows
    ]
    if rows:  # the contact came with the tasks
        contact_id, status = rows[0][-2], rows[0][-1]
    elif user.contact is not None:
        contact_id, status = user.contact.id, user.contact.status
    else:
        contact_id = status = None
    return OnboardingState(tasks=tasks, progress=RequiredProgress.of(tasks), status=status, contact_id=contact_id)


def open_required_tasks(session: Session, user_id: int) -> list[OnboardingTask]:
    """The required tasks of the user's checklist not done yet, in checklist order (what a
    reminder lists). One query."""
    done = select(OnboardingProgress.task_id).where(
        OnboardingProgress.user_id == user_id, OnboardingProgress.completed == 1
    )
    role = select(User.role).where(User.id == user_id).scalar_subquery()
    return list(session.execute(
        select(OnboardingTask)
        .where(OnboardingTask.role == role, OnboardingTask.required.is_(True), live_tasks(),
               OnboardingTask.id.not_in(done))
        .order_by(OnboardingTask.position, OnboardingTask.id)
    ).scalars())
