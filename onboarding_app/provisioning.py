"""The onboarding workflow: provision an account for a qualified contact, track its
checklist, and notice when onboarding is complete (SPEC.md, "The provisioning module").

Every function takes the session and plain values, never reads the request, and commits its
use case as a whole (or changes nothing and raises a ``DomainError``). The crm, onboarding
and api blueprints all call these functions; none of them re-implements any step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, column, func, insert, literal, select, text, update
from sqlalchemy.orm import Session

from . import outbox
from .db_retry import LostRace, run_in_transaction
from .errors import (
    AutomaticTask,
    Conflict,
    DomainError,
    InvalidTransition,
    NotFound,
    NotProvisioned,
    NotQualified,
    PasswordAlreadySet,
    UnknownTask,
    ValidationFailed,
)
from .models import (
    Contact,
    FeedEvent,
    OnboardingProgress,
    OnboardingTask,
    User,
    utcnow,
)
from .security import hash_password, password_problems, verify_password

__all__ = [
    "AutomaticTask",
    "Conflict",
    "DomainError",
    "InvalidTransition",
    "NotFound",
    "NotProvisioned",
    "NotQualified",
    "UnknownTask",
    "ProvisionResult",
    "TaskCompletion",
    "OnboardingState",
    "provision_account",
    "resend_welcome_email",
    "complete_task",
    "check_onboarding_complete",
    "change_password",
    "set_password",
    "onboarding_state",
    "required_progress",
    "write_feed_event",
]

SET_PASSWORD_SLUG = "set-password"

# Feed event types written by the workflow.
EVENT_PROVISIONED = "onboarding.account.provisioned"
EVENT_WELCOME_RESENT = "onboarding.welcome_email.resent"
EVENT_TASK_COMPLETED = "onboarding.task.completed"
EVENT_COMPLETED = "onboarding.completed"
EVENT_PASSWORD_SET = "account.password.changed"


@dataclass(frozen=True)
class ProvisionResult:
    user: User
    created: bool  # a new user was made (False: an existing user was linked, or nothing was done)
    already_provisioned: bool = False  # the contact had its account before this call; nothing changed


@dataclass(frozen=True)
class TaskState:
    task: OnboardingTask
    completed: bool
    completed_at: datetime | None


@dataclass(frozen=True)
class OnboardingState:
    """A user's checklist as the dashboard and the API show it."""

    tasks: list[TaskState]
    required_total: int
    required_completed: int
    status: str | None  # the contact's status, when the user has a contact

    @property
    def complete(self) -> bool:
        return self.required_completed == self.required_total

    def task(self, slug: str) -> TaskState:
        return next(t for t in self.tasks if t.task.slug == slug)


@dataclass(frozen=True)
class TaskCompletion:
    task: TaskState
    complete: bool
    status: str | None
    changed: bool


def write_feed_event(
    session: Session,
    type: str,
    *,
    actor_id: int | None = None,
    contact_id: int | None = None,
    user_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> FeedEvent:
    """Add one event to the action feed, in the caller's transaction."""
    event = FeedEvent(
        type=type, actor_id=actor_id, contact_id=contact_id, user_id=user_id, payload=data or {}
    )
    session.add(event)
    return event


def _actor_id(actor: User | int | None) -> int | None:
    if actor is None or isinstance(actor, int):
        return actor
    return actor.id


def _lock_contact(session: Session, contact_id: int) -> Contact:
    """Load a contact and hold its row until the transaction ends (PostgreSQL; SQLite writes
    are serialised by the database lock, and the retry loop settles what remains)."""
    contact = session.execute(
        select(Contact).where(Contact.id == contact_id).with_for_update()
    ).scalar_one_or_none()
    if contact is None:
        raise NotFound(f"Contact {contact_id} does not exist.")
    return contact


def provision_account(
    session: Session, contact_id: int, *, actor: User | int | None = None
) -> ProvisionResult:
    """Turn a QUALIFIED contact into an account: user, checklist, welcome email, feed event.

    Idempotent: a contact that already has an account returns that user with
    ``created=False`` and changes nothing. Concurrent calls for one contact end with one of
    everything; the losers see the winner's user.
    """
    actor_id = _actor_id(actor)
    queued: list[int] = []

    def work() -> ProvisionResult:
        queued.clear()
        contact = _lock_contact(session, contact_id)
        if contact.user_id is not None:
            return ProvisionResult(user=session.get(User, contact.user_id), created=False, already_provisioned=True)
        if contact.status != "QUALIFIED":
            raise NotQualified(
                f"{contact.name} is {contact.status}; only a QUALIFIED contact can get an account.",
                status=contact.status,
            )

        user = session.execute(select(User).where(User.email == contact.email)).scalar_one_or_none()
        created = user is None
        if created:
            # The temporary password is issued when the welcome email is delivered, so
            # until then the account has no usable password at all.
            user = User(
                email=contact.email,
                name=contact.name,
                role=contact.role,
                password_hash=None,
                must_change_password=True,
            )
            session.add(user)
            session.flush()
        elif user.contact is not None:
            if user.contact.id == contact.id:
                # SQLite: a concurrent request provisioned this very contact since we read it;
                # the retry reads it again and answers "already provisioned".
                raise LostRace(f"contact {contact.id} was provisioned while being read")
            raise Conflict(f"The account {user.email} already belongs to another contact.")

        # Claim the contact only if it is still unclaimed: on SQLite, where a read takes no
        # lock, a concurrent request may have provisioned it since we looked.
        claimed = session.execute(
            update(Contact)
            .where(Contact.id == contact.id, Contact.user_id.is_(None), Contact.status == "QUALIFIED")
            .values(user_id=user.id, status="ONBOARDING", updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            raise LostRace(f"contact {contact.id} changed while being provisioned")
        session.refresh(contact)
        _ensure_progress_rows(session, user)
        email = outbox.queue_welcome_email(session, user=user, contact=contact, with_password=created)
        session.flush()
        queued.append(email.id)
        write_feed_event(
            session,
            EVENT_PROVISIONED,
            actor_id=actor_id,
            contact_id=contact.id,
            user_id=user.id,
            data={"contact_id": contact.id, "user_id": user.id, "email": user.email, "created": created},
        )
        return ProvisionResult(user=user, created=created)

    result = run_in_transaction(session, work)
    for email_id in queued:
        outbox.deliver_email(session, email_id)
    return result


def resend_welcome_email(session: Session, contact_id: int, *, actor: User | int | None = None) -> User:
    """Queue a fresh welcome email. The old temporary password stops working now; the new one
    is issued when this email is delivered."""
    actor_id = _actor_id(actor)
    queued: list[int] = []

    def work() -> User:
        queued.clear()
        contact = _lock_contact(session, contact_id)
        if contact.user_id is None:
            raise NotProvisioned(f"{contact.name} has no account yet.")
        user = session.get(User, contact.user_id)
        if not user.must_change_password:
            raise PasswordAlreadySet(
                f"{user.email} has already set their own password; there is nothing to resend."
            )
        user.password_hash = None
        user.temp_password_expires_at = None
        email = outbox.queue_welcome_email(session, user=user, contact=contact, with_password=True)
        session.flush()
        queued.append(email.id)
        write_feed_event(
            session,
            EVENT_WELCOME_RESENT,
            actor_id=actor_id,
            contact_id=contact.id,
            user_id=user.id,
            data={"contact_id": contact.id, "user_id": user.id, "email": user.email},
        )
        return user

    user = run_in_transaction(session, work)
    for email_id in queued:
        outbox.deliver_email(session, email_id)
    return user


def _ensure_progress_rows(session: Session, user: User) -> None:
    """One progress row per task of the user's role; existing rows are kept. One INSERT ...
    SELECT, however long the checklist."""
    have = select(OnboardingProgress.task_id).where(OnboardingProgress.user_id == user.id)
    session.flush()
    session.execute(
        insert(OnboardingProgress).from_select(
            ["user_id", "task_id", "completed"],
            select(literal(user.id), OnboardingTask.id, literal(0)).where(
                OnboardingTask.role == user.role, OnboardingTask.id.not_in(have)
            ),
        )
    )


def _required_counts(session: Session, user: User) -> tuple[int, int]:
    done = and_(
        OnboardingProgress.task_id == OnboardingTask.id,
        OnboardingProgress.user_id == user.id,
        OnboardingProgress.completed == 1,
    )
    total, completed = session.execute(
        select(func.count(OnboardingTask.id), func.count(OnboardingProgress.id))
        .select_from(OnboardingTask)
        .outerjoin(OnboardingProgress, done)
        .where(OnboardingTask.role == user.role, OnboardingTask.required.is_(True))
    ).one()
    return total, completed


def _settle_completion(
    session: Session,
    user: User,
    *,
    counts: tuple[int, int] | None = None,
    contact_id: int | None = None,
    status: str | None = "ONBOARDING",
) -> tuple[bool, str | None]:
    """Whether every required task is done (``counts`` = (total, completed) when the caller
    already has them), and the contact's status after it. The first time every required task
    is done, move the contact to ACTIVE and write ``onboarding.completed``; the conditional
    UPDATE makes that happen once, however many requests get here at the same moment."""
    total, completed = counts if counts is not None else _required_counts(session, user)
    complete = completed == total
    if complete and status == "ONBOARDING":
        moved = session.execute(
            update(Contact)
            .where(Contact.user_id == user.id, Contact.status == "ONBOARDING")
            .values(status="ACTIVE", updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount == 1:
            status = "ACTIVE"
            if contact_id is None:
                contact_id = session.execute(select(Contact.id).where(Contact.user_id == user.id)).scalar_one()
            write_feed_event(
                session,
                EVENT_COMPLETED,
                contact_id=contact_id,
                user_id=user.id,
                data={"contact_id": contact_id, "user_id": user.id, "email": user.email},
            )
    return complete, status


def _lock_user(session: Session, user_id: int) -> User:
    user = session.execute(select(User).where(User.id == user_id).with_for_update()).scalar_one_or_none()
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    return user


def check_onboarding_complete(session: Session, user_id: int) -> bool:
    """True when every required task of the user's role is completed. Moves the contact to
    ACTIVE (once) the first time it is."""

    def work() -> bool:
        return _settle_completion(session, _lock_user(session, user_id))[0]

    return run_in_transaction(session, work)


def _progress_row(session: Session, user: User, task: OnboardingTask) -> OnboardingProgress:
    """The user's progress row for the task, made now for a task added after provisioning."""
    progress = session.execute(
        select(OnboardingProgress).where(OnboardingProgress.user_id == user.id, OnboardingProgress.task_id == task.id)
    ).scalar_one_or_none()
    if progress is None:
        progress = OnboardingProgress(user_id=user.id, task_id=task.id, completed=0)
        session.add(progress)
        session.flush()
    return progress


def _tick(
    session: Session, user: User, task: OnboardingTask, progress_id: int, contact_id: int | None
) -> tuple[bool, datetime | None, tuple[int, int] | None]:
    """Flip the progress row from 0 to 1. Returns (changed, completed_at, counts), where counts
    = (required tasks, required tasks done) comes with the change, read in the same statement.

    Only the transaction that flips the row writes the feed event (SQLite reads take no lock).
    The counts are read after the caller's lock on the user, so no concurrent tick is missed."""
    now = utcnow()
    # Written out because SQLite prints RETURNING columns without their table, which would
    # make a subquery built from the models ambiguous.
    required_total = text(
        "SELECT count(*) FROM onboarding_tasks t WHERE t.role = :role AND t.required"
    ).bindparams(role=user.role).columns(column("n", Integer)).scalar_subquery()
    others_done = text(
        "SELECT count(*) FROM onboarding_progress p JOIN onboarding_tasks t ON t.id = p.task_id "
        "WHERE p.user_id = :user_id AND p.completed = 1 AND p.task_id <> :task_id AND t.required"
    ).bindparams(user_id=user.id, task_id=task.id).columns(column("n", Integer)).scalar_subquery()
    ticked = session.execute(
        update(OnboardingProgress)
        .where(OnboardingProgress.id == progress_id, OnboardingProgress.completed == 0)
        .values(completed=1, completed_at=now)
        .returning(required_total, others_done)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if ticked is None:  # a concurrent request ticked it first
        completed_at = session.execute(
            select(OnboardingProgress.completed_at).where(OnboardingProgress.id == progress_id)
        ).scalar_one()
        return False, completed_at, None
    write_feed_event(
        session,
        EVENT_TASK_COMPLETED,
        actor_id=user.id,
        contact_id=contact_id,
        user_id=user.id,
        data={"slug": task.slug, "title": task.title, "required": task.required},
    )
    return True, now, (ticked[0], ticked[1] + (1 if task.required else 0))


def complete_task(session: Session, user_id: int, slug: str) -> TaskCompletion:
    """Mark one checklist task done and run the completion check. Repeating it changes nothing.

    Three statements (the user locked together with the task, its progress and the contact;
    the conditional tick, which also returns the other required tasks' state; the feed
    event), two when it changes nothing, whatever the length of the checklist."""

    def work() -> TaskCompletion:
        row = session.execute(
            select(User, OnboardingTask, OnboardingProgress, Contact.id, Contact.status)
            .select_from(User)
            .outerjoin(OnboardingTask, and_(OnboardingTask.role == User.role, OnboardingTask.slug == slug))
            .outerjoin(
                OnboardingProgress,
                and_(OnboardingProgress.user_id == User.id, OnboardingProgress.task_id == OnboardingTask.id),
            )
            .outerjoin(Contact, Contact.user_id == User.id)
            .where(User.id == user_id)
            .with_for_update(of=User)
        ).one_or_none()
        if row is None:
            raise NotFound(f"User {user_id} does not exist.")
        user, task, progress, contact_id, status = row
        if task is None:
            raise UnknownTask(f"There is no task {slug!r} in your checklist.", slug=slug)
        if task.slug == SET_PASSWORD_SLUG and user.must_change_password:
            raise AutomaticTask("This task completes itself when you set your own password.")
        session.expunge(task)  # read after the commit: keep it loaded instead of expired

        if progress is not None and progress.completed == 1:  # repeated: nothing changes
            changed, completed_at, counts = False, progress.completed_at, None
        else:
            if progress is None:  # a task added to the checklist after provisioning
                progress = _progress_row(session, user, task)
            changed, completed_at, counts = _tick(session, user, task, progress.id, contact_id)
        complete, status = _settle_completion(
            session, user, counts=counts, contact_id=contact_id, status=status
        )
        return TaskCompletion(
            task=TaskState(task=task, completed=True, completed_at=completed_at),
            complete=complete,
            status=status,
            changed=changed,
        )

    return run_in_transaction(session, work)


def change_password(
    session: Session, user_id: int, *, current_password: str, new_password: str
) -> User:
    """The user replaces their password: the current one is checked, the new one must pass
    the policy. Ends the user's other sessions and completes the ``set-password`` task."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    fields: dict[str, str] = {}
    if not verify_password(user.password_hash, current_password):
        fields["current_password"] = "That is not your current password."
    problems = password_problems(new_password, email=user.email, name=user.name)
    if problems:
        fields["new_password"] = " ".join(problems)
    elif new_password == current_password:
        fields["new_password"] = "Choose a password different from the current one."
    if fields:
        session.rollback()
        raise ValidationFailed(fields, "The password was not changed.")
    return _store_new_password(session, user_id, new_password)


def set_password(session: Session, user_id: int, new_password: str) -> User:
    """An operator sets a user's password (CLI, demo data); the policy still applies."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    problems = password_problems(new_password, email=user.email, name=user.name)
    if problems:
        raise ValidationFailed({"password": " ".join(problems)}, "The password was not changed.")
    return _store_new_password(session, user_id, new_password)


def _store_new_password(session: Session, user_id: int, new_password: str) -> User:
    new_hash = hash_password(new_password)

    def work() -> User:
        user = _lock_user(session, user_id)
        user.password_hash = new_hash
        user.must_change_password = False
        user.temp_password_expires_at = None
        user.rotate_session_token()
        write_feed_event(session, EVENT_PASSWORD_SET, actor_id=user.id, user_id=user.id)
        task = session.execute(
            select(OnboardingTask).where(OnboardingTask.role == user.role, OnboardingTask.slug == SET_PASSWORD_SLUG)
        ).scalar_one_or_none()
        contact = user.contact
        if task is not None and contact is not None:
            _, _, counts = _tick(session, user, task, _progress_row(session, user, task).id, contact.id)
            _settle_completion(session, user, counts=counts, contact_id=contact.id, status=contact.status)
        return user

    return run_in_transaction(session, work)


def onboarding_state(session: Session, user_id: int) -> OnboardingState:
    """The user's checklist with each task's state and the contact's status, in one query
    (two when the user is not already in the session)."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
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
    required = [t for t in tasks if t.task.required]
    if rows:  # the contact's status came with the tasks
        status = rows[0][3]
    else:
        status = user.contact.status if user.contact is not None else None
    return OnboardingState(
        tasks=tasks,
        required_total=len(required),
        required_completed=sum(1 for t in required if t.completed),
        status=status,
    )


@dataclass(frozen=True)
class RequiredProgress:
    required_total: int
    required_completed: int

    @property
    def complete(self) -> bool:
        return self.required_completed == self.required_total


def required_progress(session: Session, user_ids: list[int]) -> dict[int, RequiredProgress]:
    """Required tasks done per user, for any number of users in one query (contact pages,
    lists and the API use it, so none of them counts row by row)."""
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
