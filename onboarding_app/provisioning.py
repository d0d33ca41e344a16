"""The onboarding workflow (SPEC.md, "The provisioning module"): provision an account for a
qualified contact, tick its checklist tasks, notice when onboarding is complete, resend the
welcome email.

Every function takes the session and plain values, never reads the request, and runs its use
case as one transaction through ``run_in_transaction`` (or changes nothing and raises a
``DomainError``). Reading the checklist lives in ``checklist``, the feed in ``feed``, the
credentials a user is sent in ``credentials``, the emails in ``outbox``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, insert, literal, select, update
from sqlalchemy.orm import Session

from typing import Any

from . import credentials, feed, outbox
from .checklist import RequiredProgress, TaskState, live_tasks, required_progress
from .errors import (
    AutomaticTask,
    Conflict,
    NotProvisioned,
    NotQualified,
    PasswordAlreadySet,
    StaffAccount,
    RequiredTask,
    UnknownTask,
)
from .models import Contact, OnboardingProgress, OnboardingTask, User, utcnow
from .task_kinds import RequestMeta, Submission, kind_of
from .transactions import LostRace, get_or_404, one_or_404, run_in_transaction

__all__ = [
    "ProvisionResult",
    "TaskCompletion",
    "SET_PASSWORD_SLUG",
    "provision_account",
    "resend_welcome_email",
    "queue_fresh_welcome",
    "touch_activity",
    "complete_task",
    "skip_task",
    "check_onboarding_complete",
    "tick_password_task",
]

SET_PASSWORD_SLUG = "set-password"


@dataclass(frozen=True)
class ProvisionResult:
    user: User
    created: bool  # a new user was made (False: an existing user was linked, or nothing was done)
    already_provisioned: bool = False  # the contact had its account before this call; nothing changed


@dataclass(frozen=True)
class TaskCompletion:
    task: TaskState
    complete: bool
    status: str | None
    changed: bool  # the task's state changed (done, or skipped), not merely its answers
    extra: dict[str, Any] | None = None  # what the kind adds to the answer (teammates: created, skipped)
    contact_id: int | None = None


def _actor_id(actor: User | int | None) -> int | None:
    if actor is None or isinstance(actor, int):
        return actor
    return actor.id


def provision_account(
    session: Session, contact_id: int, *, actor: User | int | None = None
) -> ProvisionResult:
    """Turn a QUALIFIED contact into an account: user, checklist, welcome email, feed event.

    Idempotent: a contact that already has an account returns that user with
    ``created=False`` and changes nothing. Concurrent calls for one contact end with one of
    everything; the losers see the winner's user.
    """
    actor_id = _actor_id(actor)

    def work() -> ProvisionResult:
        contact, user = _contact_and_user(session, contact_id)
        if contact.user_id is not None:
            user = session.get(User, contact.user_id)
            session.expunge(user)  # read after the commit: keep it loaded instead of expired
            return ProvisionResult(user=user, created=False, already_provisioned=True)
        if contact.status != "QUALIFIED":
            raise NotQualified(
                f"{contact.name} is {contact.status}; only a QUALIFIED contact can get an account.",
                status=contact.status,
            )

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
        elif user.is_staff:
            # A customer contact never takes over a staff login (SPEC step 4): change nothing.
            raise StaffAccount(
                f"{user.email} is a {user.role} account; a customer contact cannot be linked to it. "
                "Give the contact another email address.",
                user_id=user.id, email=user.email,
            )
        elif user.contact is not None:
            if user.contact.id == contact.id:
                # SQLite: a concurrent request provisioned this very contact since we read it;
                # the retry reads it again and answers "already provisioned".
                raise LostRace(f"contact {contact.id} was provisioned while being read")
            raise Conflict(f"The account {user.email} already belongs to another contact.")

        _ensure_progress_rows(session, user)
        outbox.queue_welcome_email(session, user=user, contact=contact, with_password=created, new_account=created)
        feed.record_account_event(
            session, feed.EVENT_PROVISIONED, contact_id=contact.id, user=user, actor_id=actor_id, created=created
        )
        # Claim the contact last, and only if it is still unclaimed (on SQLite, where a read
        # takes no lock, a concurrent request may have provisioned it since we looked). Its
        # status change locks the per-status counters (``contact_status_counts``, kept by a
        # trigger) that every provisioning writes, so they are held for the commit alone.
        now = utcnow()
        claimed = session.execute(
            update(Contact)
            .where(Contact.id == contact.id, Contact.user_id.is_(None), Contact.status == "QUALIFIED")
            .values(user_id=user.id, status="ONBOARDING", updated_at=now, status_changed_at=now,
                    provisioned_at=now, last_activity_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            raise LostRace(f"contact {contact.id} changed while being provisioned")
        session.expunge(user)  # read after the commit (id, email): no reload
        return ProvisionResult(user=user, created=created)

    return run_in_transaction(session, work)


def _contact_and_user(session: Session, contact_id: int) -> tuple[Contact, User | None]:
    """The contact, locked, and the user that already has its email (or None), in one
    statement; the domain's NotFound when there is no such contact."""
    query = (select(Contact, User).outerjoin(User, User.email == Contact.email)
             .where(Contact.id == contact_id).with_for_update(of=Contact))
    return tuple(one_or_404(session, query, Contact, contact_id))


def resend_welcome_email(session: Session, contact_id: int, *, actor: User | int | None = None) -> User:
    """Queue a fresh welcome email. The old temporary password (or link) stops working now; the
    new one is issued when this email is delivered. Refused once the user has set their own
    password, however close the two requests are."""
    actor_id = _actor_id(actor)

    def work() -> User:
        contact = get_or_404(session, Contact, contact_id, lock=True)
        if contact.user_id is None:
            raise NotProvisioned(f"{contact.name} has no account yet.")
        user = session.get(User, contact.user_id)
        if not queue_fresh_welcome(session, user, contact):
            raise PasswordAlreadySet(
                f"{user.email} has already set their own password; there is nothing to resend."
            )
        feed.record_account_event(session, feed.EVENT_WELCOME_RESENT, contact_id=contact.id, user=user, actor_id=actor_id)
        return user

    return run_in_transaction(session, work)


def queue_fresh_welcome(session: Session, user: User, contact: Contact) -> bool:
    """The welcome email again, in the caller's transaction, for a user still on a temporary
    credential: the old one stops working now, a new one is issued at delivery. False (and
    nothing changes) once the user has set their own password. "Resend welcome" and a
    reminder to someone who never got in both send it this way."""
    # Conditional, not read-then-write: if the user sets their own password meanwhile,
    # nothing is revoked and nothing is sent.
    if not credentials.revoke_welcome_credentials(session, user.id):
        return False
    outbox.queue_welcome_email(session, user=user, contact=contact, with_password=True)
    return True


def touch_activity(session: Session, user_id: int, at: datetime) -> None:
    """The user did something (signed in, ticked or skipped a task): their contact's
    ``last_activity_at``, which the tracker sorts on and the reminder sweep reads."""
    session.execute(
        update(Contact)
        .where(Contact.user_id == user_id)
        .values(last_activity_at=at, updated_at=Contact.updated_at)  # activity, not an edit
        .execution_options(synchronize_session=False)
    )


def _ensure_progress_rows(session: Session, user: User) -> None:
    """One progress row per task of the user's role; existing rows are kept. One INSERT ...
    SELECT, however long the checklist."""
    have = select(OnboardingProgress.task_id).where(OnboardingProgress.user_id == user.id)
    session.flush()
    session.execute(
        insert(OnboardingProgress).from_select(
            ["user_id", "task_id", "completed"],
            select(literal(user.id), OnboardingTask.id, literal(0)).where(
                OnboardingTask.role == user.role, live_tasks(), OnboardingTask.id.not_in(have)
            ),
        )
    )


def _settle_completion(session: Session, user: User, *, contact_id: int | None, status: str | None) -> tuple[bool, str | None]:
    """Whether every required task is done, and the contact's status after it. The first time
    every required task is done, move the contact to ACTIVE and write ``onboarding.completed``;
    the conditional UPDATE makes that happen once, however many requests get here at once.
    The count is read after the caller's lock on the user, so no concurrent tick is missed."""
    progress: RequiredProgress = required_progress(session, [user.id])[user.id]
    if progress.complete and status == "ONBOARDING":
        now = utcnow()
        moved = session.execute(
            update(Contact)
            .where(Contact.user_id == user.id, Contact.status == "ONBOARDING")
            .values(status="ACTIVE", updated_at=now, status_changed_at=now, activated_at=now)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount == 1:
            status = "ACTIVE"
            feed.record_account_event(session, feed.EVENT_COMPLETED, contact_id=contact_id, user=user)
    return progress.complete, status


def check_onboarding_complete(session: Session, user_id: int) -> bool:
    """True when every required task of the user's role is completed. Moves the contact to
    ACTIVE (once) the first time it is."""

    def work() -> bool:
        user = get_or_404(session, User, user_id, lock=True)
        contact = user.contact
        return _settle_completion(
            session, user, contact_id=contact.id if contact else None, status=contact.status if contact else None
        )[0]

    return run_in_transaction(session, work)


def _tick(session: Session, user: User, task: OnboardingTask, contact_id: int | None,
          data: dict[str, Any] | None = None) -> tuple[bool, datetime | None]:
    """Mark the user's row for ``task`` done (made now for a task added after provisioning).
    Returns (changed, completed_at). Only the transaction that flips the row from 0 to 1
    writes the feed event (SQLite reads take no lock, so the flip is a conditional UPDATE)."""
    progress_id = session.execute(
        select(OnboardingProgress.id).where(OnboardingProgress.user_id == user.id, OnboardingProgress.task_id == task.id)
    ).scalar_one_or_none()
    if progress_id is None:
        progress = OnboardingProgress(user_id=user.id, task_id=task.id, completed=0)
        session.add(progress)
        session.flush()
        progress_id = progress.id
    return _flip(session, user, task, progress_id, contact_id, data)


def _flip(session: Session, user: User, task: OnboardingTask, progress_id: int, contact_id: int | None,
          data: dict[str, Any] | None = None) -> tuple[bool, datetime | None]:
    """Done, with these answers (a skip is undone). A task done already keeps its completion
    time and takes the new answers: sending a data task again replaces them."""
    now = utcnow()
    ticked = session.execute(
        update(OnboardingProgress)
        .where(OnboardingProgress.id == progress_id, OnboardingProgress.completed == 0)
        .values(completed=1, completed_at=now, skipped_at=None, data=data)
        .execution_options(synchronize_session=False)
    )
    if ticked.rowcount != 1:  # done before (or by a concurrent request): replace the answers
        if data is not None:
            session.execute(
                update(OnboardingProgress).where(OnboardingProgress.id == progress_id).values(data=data)
                .execution_options(synchronize_session=False)
            )
        completed_at = session.execute(
            select(OnboardingProgress.completed_at).where(OnboardingProgress.id == progress_id)
        ).scalar_one()
        return False, completed_at
    touch_activity(session, user.id, now)
    feed.record(
        session,
        feed.EVENT_TASK_COMPLETED,
        actor_id=user.id,
        contact_id=contact_id,
        user_id=user.id,
        data={"slug": task.slug, "title": task.title, "required": task.required},
    )
    return True, now


def _locked_task(session: Session, user_id: int, slug: str):
    """The user (locked) with the task of their checklist called ``slug``, its progress row
    and the contact, in one statement; UnknownTask when the checklist has no such task."""
    query = (
        select(User, OnboardingTask, OnboardingProgress, Contact)
        .select_from(User)
        .outerjoin(OnboardingTask, and_(OnboardingTask.role == User.role, OnboardingTask.slug == slug, live_tasks()))
        .outerjoin(
            OnboardingProgress,
            and_(OnboardingProgress.user_id == User.id, OnboardingProgress.task_id == OnboardingTask.id),
        )
        .outerjoin(Contact, Contact.user_id == User.id)
        .where(User.id == user_id)
        .with_for_update(of=User)
    )
    user, task, progress, contact = one_or_404(session, query, User, user_id)
    if task is None:
        raise UnknownTask(f"There is no task {slug!r} in your checklist.", slug=slug)
    return user, task, progress, contact


def complete_task(
    session: Session, user_id: int, slug: str, answers: Any = None, *, meta: RequestMeta | None = None
) -> TaskCompletion:
    """Complete one checklist task with what its kind asks for (``task_kinds``) and run the
    completion check. The answers are checked before anything is written; a refusal (422
    ``invalid_fields``, 409 ``stale_version``, 413 ``file_too_large``) stores nothing. Sending
    a data task again replaces its answers and it stays done; completing a skipped task
    un-skips it. Repeating a task that takes nothing changes nothing.

    Four statements for a task that takes nothing (the user locked together with the task,
    its progress and the contact; the conditional tick; the feed event; the required count),
    whatever the checklist's length; a data task adds what its kind stores."""
    meta = meta or RequestMeta()
    parsed: dict[str, Any] = {}

    def work() -> TaskCompletion:
        user, task, progress, contact = _locked_task(session, user_id, slug)
        kind = kind_of(task)
        contact_id, status = (contact.id, contact.status) if contact is not None else (None, None)
        if kind.automatic and not (progress is not None and progress.completed == 1) and user.must_change_password:
            raise AutomaticTask("This task completes itself when you set your own password.")
        if "answers" not in parsed:  # checked once, before the first write (a retry reuses it)
            parsed["answers"] = kind.parse(task, answers) if not kind.automatic else None
        session.expunge(task)  # read after the commit: keep it loaded instead of expired
        stored = None
        if kind.takes_data:
            stored = kind.store(Submission(session, user, contact, task, parsed["answers"], meta, utcnow()))
        data = stored.data if stored is not None else None

        if stored is not None and stored.document is not None:
            session.expunge(stored.document)  # read after the commit, like the task
        if progress is not None and progress.completed == 1:  # done before: only the answers change
            changed, completed_at = False, progress.completed_at
            if data is not None:
                session.execute(
                    update(OnboardingProgress).where(OnboardingProgress.id == progress.id).values(data=data)
                    .execution_options(synchronize_session=False)
                )
        elif progress is not None:
            changed, completed_at = _flip(session, user, task, progress.id, contact_id, data)
        else:  # a task added to the checklist after provisioning
            changed, completed_at = _tick(session, user, task, contact_id, data)
        if data is None and progress is not None:
            data = progress.data
        complete, status = _settle_completion(session, user, contact_id=contact_id, status=status)
        return TaskCompletion(
            task=TaskState(task=task, completed=True, completed_at=completed_at, data=data,
                           document=stored.document if stored is not None else None),
            complete=complete,
            status=status,
            changed=changed,
            extra=stored.extra if stored is not None else None,
            contact_id=contact_id,
        )

    return run_in_transaction(session, work)


def skip_task(session: Session, user_id: int, slug: str) -> TaskCompletion:
    """Skip an optional task (a required one: ``RequiredTask``). A skipped task counts neither
    way; completing it later un-skips it. Skipping a done task, or skipping twice, changes
    nothing."""

    def work() -> TaskCompletion:
        user, task, progress, contact = _locked_task(session, user_id, slug)
        if task.required:
            raise RequiredTask(f"“{task.title}” is required; it cannot be skipped.")
        session.expunge(task)
        contact_id, status = (contact.id, contact.status) if contact is not None else (None, None)
        if progress is not None and progress.completed == 1:
            state = TaskState(task=task, completed=True, completed_at=progress.completed_at, data=progress.data)
            changed = False
        else:
            if progress is None:
                progress = OnboardingProgress(user_id=user.id, task_id=task.id, completed=0)
                session.add(progress)
                session.flush()
            now = utcnow()
            skipped = session.execute(
                update(OnboardingProgress)
                .where(OnboardingProgress.id == progress.id, OnboardingProgress.completed == 0,
                       OnboardingProgress.skipped_at.is_(None))
                .values(skipped_at=now)
                .execution_options(synchronize_session=False)
            )
            changed = skipped.rowcount == 1
            if changed:
                touch_activity(session, user.id, now)
                feed.record(session, feed.EVENT_TASK_SKIPPED, actor_id=user.id, contact_id=contact_id, user_id=user.id,
                            data={"slug": task.slug, "title": task.title})
            state = TaskState(task=task, completed=False, completed_at=None,
                              skipped_at=now if changed else progress.skipped_at)
        complete, status = _settle_completion(session, user, contact_id=contact_id, status=status)
        return TaskCompletion(task=state, complete=complete, status=status, changed=changed, contact_id=contact_id)

    return run_in_transaction(session, work)


def tick_password_task(session: Session, user: User) -> None:
    """The user has set a password of their own: tick ``set-password`` and run the completion
    check, in the caller's transaction (``accounts`` calls it when a password is stored)."""
    task = session.execute(
        select(OnboardingTask)
        .where(OnboardingTask.role == user.role, OnboardingTask.kind == "password", live_tasks())
        .order_by(OnboardingTask.position).limit(1)
    ).scalar_one_or_none()
    contact = user.contact
    if task is not None and contact is not None:
        _tick(session, user, task, contact.id)
        _settle_completion(session, user, contact_id=contact.id, status=contact.status)
