"""Reading a user's onboarding checklist: each task with its state, and how many required
tasks are done. ``required_progress`` is the one place that counts required progress; the
workflow (``provisioning``) and every page and API answer use it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from .models import Contact, OnboardingProgress, OnboardingTask, User
from .transactions import get_or_404


@dataclass(frozen=True)
class RequiredProgress:
    required_total: int
    required_completed: int

    @property
    def complete(self) -> bool:
        return self.required_completed == self.required_total

    @classmethod
    def of(cls, tasks: list[TaskState]) -> RequiredProgress:
        """The same count as ``required_progress``, from a checklist already loaded."""
        required = [t for t in tasks if t.task.required]
        return cls(len(required), sum(1 for t in required if t.completed))


@dataclass(frozen=True)
class TaskState:
    task: OnboardingTask
    completed: bool
    completed_at: datetime | None


@dataclass(frozen=True)
class OnboardingState:
    """A user's checklist as the dashboard and the API show it."""

    tasks: list[TaskState]
    progress: RequiredProgress
    status: str | None  # the contact's status, when the user has a contact

    @property
    def required_total(self) -> int:
        return self.progress.required_total

    @property
    def required_completed(self) -> int:
        return self.progress.required_completed

    @property
    def complete(self) -> bool:
        return self.progress.complete

    def task(self, slug: str) -> TaskState:
        return next(t for t in self.tasks if t.task.slug == slug)


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
        .outerjoin(OnboardingTask, and_(OnboardingTask.role == User.role, OnboardingTask.required.is_(True)))
        .outerjoin(OnboardingProgress, done)
        .where(User.id.in_(user_ids))
        .group_by(User.id)
    ).all()
    return {user_id: RequiredProgress(total, completed) for user_id, total, completed in rows}


def onboarding_state(session: Session, user_id: int) -> OnboardingState:
    """The user's checklist with each task's state and the contact's status, in one query
    (two when the user is not already in the session). The counts come from the same rows."""
    user = get_or_404(session, User, user_id)
    contact_status = select(Contact.status).where(Contact.user_id == user.id).scalar_subquery()
    rows = session.execute(
        select(OnboardingTask, OnboardingProgress.completed, OnboardingProgress.completed_at, contact_status)
        .outerjoin(
            OnboardingProgress,
            and_(OnboardingProgress.task_id == OnboardingTask.id, OnboardingProgress.user_id == user.id),
        )
        .where(OnboardingTask.role == user.role)
        .order_by(OnboardingTask.position, OnboardingTask.id)
    ).all()
    tasks = [TaskState(task=t, completed=completed == 1, completed_at=at) for t, completed, at, _ in rows]
    if rows:  # the contact's status came with the tasks
        status = rows[0][3]
    else:
        status = user.contact.status if user.contact is not None else None
    return OnboardingState(
        tasks=tasks,
        progress=RequiredProgress.of(tasks),
        status=status,
    )


def open_required_tasks(session: Session, user_id: int) -> list[OnboardingTask]:
    """The required tasks of the user's checklist not done yet, in checklist order (what a
    reminder lists). One query."""
    done = select(OnboardingProgress.task_id).where(
        OnboardingProgress.user_id == user_id, OnboardingProgress.completed == 1
    )
    role = select(User.role).where(User.id == user_id).scalar_subquery()
    return list(session.execute(
        select(OnboardingTask)
        .where(OnboardingTask.role == role, OnboardingTask.required.is_(True), OnboardingTask.id.not_in(done))
        .order_by(OnboardingTask.position, OnboardingTask.id)
    ).scalars())
