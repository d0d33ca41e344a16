"""What staff read about onboarding (SPEC.md, "Staff: who is stuck, nudges, checklists,
funnel"): the tracker, one row per account, most stalled first; and the funnel of a cohort,
with the time from provisioning to ACTIVE.

Both are computed in the database, in a fixed number of queries whatever the number of
accounts: a page of the tracker is three (the total, the page, every task cell of the page),
the funnel three (the cohort's counts, each required task's count, the percentiles). The
pages' funnel (the default cohort) is shared for a minute: ``recent_funnel``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from weakref import WeakKeyDictionary

from sqlalchemy import Float, Integer, and_, case, cast, func, literal, select
from sqlalchemy.orm import Session

from . import contacts
from .checklist import RequiredProgress, WithProgress, is_skipped, live_tasks
from .errors import NotFound
from .models import Contact, OnboardingProgress, OnboardingTask, OutboundEmail, User, utcnow
from .outbox import WELCOME_KINDS

TRACKER_STATUSES = ("ONBOARDING", "ACTIVE", "all")
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class TaskCell:
    slug: str
    title: str
    required: bool
    completed: bool
    skipped: bool
    completed_at: datetime | None

    @property
    def state(self) -> str:
        return "done" if self.completed else "skipped" if self.skipped else "open"


@dataclass(frozen=True)
class WelcomeEmailState:
    status: str
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class AccountRow(WithProgress):
    contact_id: int
    user_id: int
    name: str
    email: str
    role: str
    status: str
    provisioned_at: datetime | None
    last_sign_in_at: datetime | None
    last_activity_at: datetime | None
    stalled_days: int
    reminders_sent: int
    last_reminder_at: datetime | None
    temporary_password: bool  # still on the welcome email's credential: "Resend welcome" applies
    welcome_email: WelcomeEmailState | None
    tasks: list[TaskCell]
    progress: RequiredProgress


@dataclass(frozen=True)
class TrackerPage:
    items: list[AccountRow]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def stalled_days(last_activity_at: datetime | None, status: str, now: datetime) -> int:
    """Whole days since the user's last activity; 0 for an account that is not onboarding."""
    if status != "ONBOARDING" or last_activity_at is None:
        return 0
    return max(0, int((now - last_activity_at).total_seconds() // SECONDS_PER_DAY))


def stalled_cutoff(now: datetime, after_days: float) -> datetime:
    """``stalled_days >= after_days`` exactly when the last activity is at or before this."""
    return now - timedelta(days=math.ceil(after_days))


def _statuses(status: str) -> tuple[str, ...]:
    return ("ONBOARDING", "ACTIVE") if status == "all" else (status,)


def _filters(status: str, role: str | None, stalled_before: datetime | None) -> list:
    where = [Contact.user_id.is_not(None), Contact.status.in_(_statuses(status))]
    if role:
        where.append(Contact.role == role)
    if stalled_before is not None:
        where += [Contact.status == "ONBOARDING", Contact.last_activity_at <= stalled_before]
    return where


def _row_query(where: list):
    """The accounts with their user's sign-in and their latest welcome email, one row each
    (columns, not entities: a page reads them once)."""
    latest_welcome = (
        select(func.max(OutboundEmail.id))
        .where(OutboundEmail.contact_id == Contact.id, OutboundEmail.kind.in_(WELCOME_KINDS))
        .correlate(Contact)
        .scalar_subquery()
    )
    return (
        select(
            Contact.id, Contact.user_id, Contact.name, Contact.email, Contact.role, Contact.status,
            Contact.provisioned_at, Contact.last_activity_at, Contact.reminders_sent, Contact.last_reminder_at,
            User.last_sign_in_at, User.must_change_password,
            OutboundEmail.status.label("email_status"), OutboundEmail.attempts, OutboundEmail.last_error,
        )
        .join(User, User.id == Contact.user_id)
        .outerjoin(OutboundEmail, OutboundEmail.id == latest_welcome)
        .where(*where)
    )


def _cells(session: Session, user_ids: list[int]) -> dict[int, list[TaskCell]]:
    """Every task of each user's checklist with their progress on it, in checklist order:
    one query for the whole page."""
    if not user_ids:
        return {}
    rows = session.execute(
        select(User.id, OnboardingTask.slug, OnboardingTask.title, OnboardingTask.required,
               OnboardingProgress.completed, OnboardingProgress.completed_at, OnboardingProgress.skipped_at)
        .join(OnboardingTask, and_(OnboardingTask.role == User.role, live_tasks()))
        .outerjoin(
            OnboardingProgress,
            and_(OnboardingProgress.task_id == OnboardingTask.id, OnboardingProgress.user_id == User.id),
        )
        .where(User.id.in_(user_ids))
        .order_by(User.id, OnboardingTask.position, OnboardingTask.id)
    ).all()
    cells: dict[int, list[TaskCell]] = {user_id: [] for user_id in user_ids}
    for user_id, slug, title, required, completed, completed_at, skipped_at in rows:
        done = completed == 1
        cells[user_id].append(TaskCell(slug=slug, title=title, required=required, completed=done,
                                       skipped=is_skipped(done, skipped_at), completed_at=completed_at))
    return cells


def _rows(session: Session, query, now: datetime) -> list[AccountRow]:
    found = session.execute(query).all()
    cells = _cells(session, [row.user_id for row in found])
    return [
        AccountRow(
            contact_id=row.id, user_id=row.user_id, name=row.name, email=row.email, role=row.role,
            status=row.status, provisioned_at=row.provisioned_at, last_sign_in_at=row.last_sign_in_at,
            last_activity_at=row.last_activity_at,
            stalled_days=stalled_days(row.last_activity_at, row.status, now),
            reminders_sent=row.reminders_sent, last_reminder_at=row.last_reminder_at,
            temporary_password=bool(row.must_change_password),
            welcome_email=(WelcomeEmailState(row.email_status, row.attempts, row.last_error)
                           if row.email_status else None),
            tasks=cells[row.user_id],
            progress=RequiredProgress.of(cells[row.user_id]),
        )
        for row in found
    ]


def list_accounts(
    session: Session,
    *,
    status: str = "ONBOARDING",
    role: str | None = None,
    stalled: bool = False,
    page: int = 1,
    per_page: int = 25,
    stalled_after_days: float = 3.0,
    now: datetime | None = None,
) -> TrackerPage:
    """One page of accounts, most stalled first (the oldest last activity; with ``status="all"``
    the ACTIVE ones after every ONBOARDING one). ``stalled`` keeps the accounts stalled for at
    least ``stalled_after_days``. Three queries whatever the page size or number of accounts."""
    now = now or utcnow()
    where = _filters(status, role, stalled_cutoff(now, stalled_after_days) if stalled else None)
    if role or stalled:
        total = session.execute(select(func.count()).select_from(Contact).where(*where)).scalar_one()
    else:
        # Every ONBOARDING or ACTIVE contact has its account (only provisioning, which links
        # it, moves a contact to ONBOARDING), so the status counters count the accounts.
        total = contacts.status_total(session, _statuses(status))
    order = (Contact.last_activity_at.asc().nulls_first(), Contact.id)
    if status == "all":  # one status alone is read in the order of its index (0010)
        order = (case((Contact.status == "ONBOARDING", 0), else_=1), *order)
    # The page's contacts are picked first, from the contacts alone (the status and last-activity
    # index, no join), so the users and the latest welcome emails are joined for this page's
    # rows only, not for every account before the sort (which made a page cost O(accounts)).
    page_ids = select(Contact.id).where(*where).order_by(*order).limit(per_page).offset((page - 1) * per_page)
    query = _row_query([Contact.id.in_(page_ids)]).order_by(*order)
    return TrackerPage(items=_rows(session, query, now), page=page, per_page=per_page, total=total)


def account_row(session: Session, contact_id: int, *, now: datetime | None = None) -> AccountRow:
    """One account's tracker row (after staff reminded it or resent its welcome email)."""
    rows = _rows(session, _row_query([Contact.id == contact_id, Contact.user_id.is_not(None)]), now or utcnow())
    if not rows:
        raise NotFound(f"Contact {contact_id} has no account.")
    return rows[0]


# --- the funnel ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStep:
    key: str
    label: str
    count: int


@dataclass(frozen=True)
class TimeToActive:
    n: int
    median_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True)
class Funnel:
    role: str
    since: datetime
    steps: list[FunnelStep]
    time_to_active: TimeToActive

    @property
    def provisioned(self) -> int:
        return self.steps[0].count

    def percent(self, step: FunnelStep) -> int:
        """The step's share of the provisioned accounts, in whole percent."""
        return round(100 * step.count / self.provisioned) if self.provisioned else 0


def _hours(session: Session, start, end):
    """``end - start`` in hours, in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start) / 3600.0
    return (func.julianday(end) - func.julianday(start)) * 24.0


def _percentiles(session: Session, hours, where: list, fractions: tuple[float, ...]) -> tuple:
    """(n, each percentile of ``hours``) over the rows matching ``where``, interpolated
    linearly between the two nearest values (as PostgreSQL's ``percentile_cont``), computed
    in the database: ``percentile_cont`` on PostgreSQL; on SQLite, which has no percentile
    function, each value's rank and the count from window functions."""
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(
            select(func.count(), *[func.percentile_cont(f).within_group(hours) for f in fractions])
            .select_from(Contact).where(*where)
        ).one()
    ranked = (
        select(
            hours.label("h"),
            (func.row_number().over(order_by=hours) - 1).label("i"),
            func.count().over().label("n"),
        )
        .select_from(Contact).where(*where)
        .subquery()
    )
    columns = []
    for fraction in fractions:
        position = literal(fraction, Float) * (ranked.c.n - 1)
        below = cast(position, Integer)  # the position's whole part (positions are never negative)
        weight = position - below
        columns.append(func.sum(case(
            (ranked.c.i == below, ranked.c.h * (1 - weight)),
            (ranked.c.i == below + 1, ranked.c.h * weight),
            else_=0.0,
        )))
    return session.execute(select(func.coalesce(func.max(ranked.c.n), 0), *columns)).one()


def funnel(session: Session, *, role: str, since: datetime) -> Funnel:
    """For the accounts of ``role`` provisioned since ``since``: how many were provisioned,
    signed in, have each required task done (in checklist order, whatever order they did them
    in) and are ACTIVE; and the median and 90th percentile of the hours from provisioning to
    ACTIVE. Three queries, all counted in the database."""
    cohort = [Contact.role == role, Contact.provisioned_at >= since, Contact.user_id.is_not(None)]
    provisioned, signed_in, active = session.execute(
        select(func.count(), func.count(User.last_sign_in_at), func.count(Contact.activated_at))
        .select_from(Contact).join(User, User.id == Contact.user_id).where(*cohort)
    ).one()
    cohort_users = select(Contact.user_id).where(*cohort)
    tasks = session.execute(
        select(OnboardingTask.slug, OnboardingTask.title, func.count(OnboardingProgress.id))
        .outerjoin(OnboardingProgress, and_(
            OnboardingProgress.task_id == OnboardingTask.id,
            OnboardingProgress.completed == 1,
            OnboardingProgress.user_id.in_(cohort_users),
        ))
        .where(OnboardingTask.role == role, OnboardingTask.required.is_(True))
        .group_by(OnboardingTask.id, OnboardingTask.slug, OnboardingTask.title, OnboardingTask.position)
        .order_by(OnboardingTask.position, OnboardingTask.id)
    ).all()
    hours = _hours(session, Contact.provisioned_at, Contact.activated_at)
    n, median, p90 = _percentiles(session, hours, [*cohort, Contact.activated_at.is_not(None)], (0.5, 0.9))
    steps = [
        FunnelStep("provisioned", "Provisioned", provisioned),
        FunnelStep("signed_in", "Signed in", signed_in),
        *[FunnelStep(slug, title, count) for slug, title, count in tasks],
        FunnelStep("active", "Active", active),
    ]
    return Funnel(
        role=role, since=since, steps=steps,
        time_to_active=TimeToActive(
            n=n,
            median_hours=round(float(median), 2) if n else None,
            p90_hours=round(float(p90), 2) if n else None,
        ),
    )


# engine -> (the cohort's first minute, {role: Funnel})
_recent_funnels: WeakKeyDictionary = WeakKeyDictionary()


def recent_funnel(session: Session, *, role: str, since: datetime) -> Funnel:
    """The funnel of the accounts provisioned since the start of ``since``'s minute, computed
    once per role and minute in this process. The staff dashboard and the tracker page show the
    default cohort (the last days) on every view, and its queries read every account of the
    cohort, so they grow with the data; the pages share one answer, at most a minute old."""
    since = since.replace(second=0, microsecond=0)
    engine = session.get_bind()
    minute, by_role = _recent_funnels.get(engine, (None, {}))
    if minute != since:
        by_role = {}
        _recent_funnels[engine] = (since, by_role)
    if role not in by_role:
        by_role[role] = funnel(session, role=role, since=since)
    return by_role[role]


def forget_recent_funnels() -> None:
    """Drop the shared funnels: the next page view of each counts again (a query count that
    must not depend on the minute it runs in)."""
    _recent_funnels.clear()
