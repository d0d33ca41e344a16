"""Reminders (SPEC.md, "Reminders"): the sweep's rule, staff's "Remind now", the emails, and
concurrent sweeps sending one email per user. Services only; the API and pages elsewhere."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from onboarding_app import accounts, provisioning, reminders, tasks
from onboarding_app.errors import NotOnboarding
from onboarding_app.extensions import db, huey
from onboarding_app.models import Contact, FeedEvent, OutboundEmail

from .conftest import NEW_PASSWORD

DAY = timedelta(days=1)


def now() -> datetime:
    return datetime.now(timezone.utc)


def age(app, contact_id: int, days: float) -> None:
    """The account was provisioned and last active ``days`` ago."""
    with app.app_context():
        at = now() - timedelta(days=days)
        db.session.execute(sa.update(Contact).where(Contact.id == contact_id)
                           .values(last_activity_at=at, provisioned_at=at))
        db.session.commit()


def contact_row(app, contact_id: int) -> Contact:
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        db.session.expunge(contact)
        return contact


def emails_to(app, user_id: int) -> list[tuple[str, str]]:
    with app.app_context():
        return db.session.execute(
            select(OutboundEmail.kind, OutboundEmail.status).where(OutboundEmail.user_id == user_id)
            .order_by(OutboundEmail.id)
        ).all()


def reminder_events(app) -> list[dict]:
    with app.app_context():
        return [e.payload for e in db.session.execute(
            select(FeedEvent).where(FeedEvent.type == "onboarding.reminder.sent").order_by(FeedEvent.id)
        ).scalars()]


def sweep(app, when: datetime | None = None, *, after_days: float = 3, limit: int = 3) -> int:
    with app.app_context():
        return reminders.send_due_reminders(db.session, after_days=after_days, limit=limit, now=when)


@pytest.fixture
def accounts_at_three_points(app, make):
    """Never signed in (temporary password), 4 days quiet; set a password, 4 days quiet;
    active yesterday. Returns {name: (contact_id, user_id)}."""
    never = make.provisioned(email="never@example.com")
    quiet = make.provisioned(email="quiet@example.com")
    recent = make.provisioned(email="recent@example.com")
    with app.app_context():
        accounts.set_password(db.session, quiet[1], NEW_PASSWORD)
    age(app, never[0], 4)
    age(app, quiet[0], 4)
    age(app, recent[0], 1)
    return {"never": never, "quiet": quiet, "recent": recent}


def test_the_sweep_reminds_each_stalled_account_with_the_right_email(app, mailbox, accounts_at_three_points):
    never, quiet, recent = (accounts_at_three_points[k] for k in ("never", "quiet", "recent"))
    mailbox.clear()
    assert sweep(app) == 2

    # Never got in: the welcome email again, with a fresh temporary password that works.
    assert emails_to(app, never[1])[-1] == ("welcome", "sent")
    password = mailbox.temporary_password("never@example.com")
    with app.app_context():
        assert accounts.authenticate(db.session, "never@example.com", password).id == never[1]

    # Has a password: the open required tasks, one link to the dashboard, in text and HTML.
    assert emails_to(app, quiet[1])[-1] == ("reminder", "sent")
    [message] = mailbox.to("quiet@example.com")
    text, html = mailbox.text(message), mailbox.html(message)
    for title in ("Complete your profile", "Review and accept the service terms", "Add a billing contact"):
        assert title in text and title in html
    assert "Set your password" not in text  # done when the password was set
    assert "Book your kickoff call" not in text  # optional
    assert "http://localhost/dashboard" in text and 'href="http://localhost/dashboard"' in html

    assert emails_to(app, recent[1]) == [("welcome", "sent")]  # only the original welcome
    assert contact_row(app, never[0]).reminders_sent == 1
    assert contact_row(app, recent[0]).reminders_sent == 0
    events = reminder_events(app)
    assert sorted((e["contact_id"], e["email_kind"], e["by"]) for e in events) == sorted(
        [(never[0], "welcome", "sweep"), (quiet[0], "reminder", "sweep")])


def test_never_two_inside_the_interval_and_never_more_than_the_maximum(app, mailbox, accounts_at_three_points):
    quiet = accounts_at_three_points["quiet"]
    assert sweep(app) == 2
    assert sweep(app) == 0  # at once: inside the interval
    start = now()
    assert sweep(app, start + DAY) == 0  # inside the interval; "recent" is quiet for 2 days only
    assert sweep(app, start + 2 * DAY + timedelta(hours=1)) == 1  # "recent" now
    assert sweep(app, start + 3 * DAY + timedelta(hours=1)) == 2  # the first two, once more
    assert sweep(app, start + 6 * DAY + timedelta(hours=2)) == 3
    assert sweep(app, start + 10 * DAY) == 1  # the first two have had REMINDER_MAX (3)
    assert sweep(app, start + 30 * DAY) == 0
    assert contact_row(app, quiet[0]).reminders_sent == 3
    assert len([k for k, _ in emails_to(app, quiet[1]) if k == "reminder"]) == 3


def test_activity_restarts_the_interval(app, mailbox, accounts_at_three_points):
    quiet = accounts_at_three_points["quiet"]
    with app.app_context():
        provisioning.complete_task(db.session, quiet[1], "book-kickoff-call")  # optional, still activity
    assert contact_row(app, quiet[0]).last_activity_at > now() - timedelta(minutes=1)
    assert sweep(app) == 1  # only "never"
    with app.app_context():
        accounts.record_sign_in(db.session, accounts_at_three_points["never"][1])
    assert sweep(app, now() + 2 * DAY + timedelta(hours=1)) == 1
    # "recent", quiet for 3 days by then; not "never", who signed in 2 days before.
    assert [e["contact_id"] for e in reminder_events(app)][-1] == accounts_at_three_points["recent"][0]


def test_an_account_no_longer_onboarding_is_not_reminded(app, mailbox, make):
    contact_id, user_id = make.provisioned(email="done@example.com")
    with app.app_context():
        db.session.execute(sa.update(Contact).where(Contact.id == contact_id).values(status="ACTIVE"))
        db.session.commit()
    age(app, contact_id, 10)
    assert sweep(app) == 0


def test_remind_now_always_sends_counts_and_restarts_the_interval(app, mailbox, make, staff):
    contact_id, user_id = make.provisioned(email="nudge@example.com")
    with app.app_context():
        accounts.set_password(db.session, user_id, NEW_PASSWORD)
    age(app, contact_id, 10)
    with app.app_context():
        db.session.execute(sa.update(Contact).where(Contact.id == contact_id).values(reminders_sent=3))
        db.session.commit()
        assert reminders.remind_now(db.session, contact_id, actor=staff) == "reminder"  # past REMINDER_MAX
    row = contact_row(app, contact_id)
    assert row.reminders_sent == 4 and row.last_reminder_at > now() - timedelta(minutes=1)
    assert emails_to(app, user_id)[-1] == ("reminder", "sent")
    [event] = reminder_events(app)
    assert event["by"] == "staff" and event["reminders_sent"] == 4
    with app.app_context():
        actor = db.session.execute(select(FeedEvent.actor_id).where(FeedEvent.type == "onboarding.reminder.sent")).scalar()
    assert actor == staff
    # The sweep would have been due (10 days quiet, but at the maximum anyway); raise the maximum:
    assert sweep(app, limit=10) == 0  # the staff reminder restarted the interval
    assert sweep(app, now() + 3 * DAY + timedelta(hours=1), limit=10) == 1


def test_remind_now_sends_a_fresh_welcome_to_someone_who_never_got_in(app, mailbox, make, staff):
    contact_id, user_id = make.provisioned(email="lost@example.com")
    first = mailbox.temporary_password("lost@example.com")
    with app.app_context():
        assert reminders.remind_now(db.session, contact_id, actor=staff) == "welcome"
    second = mailbox.temporary_password("lost@example.com")
    assert second != first
    with app.app_context():
        assert accounts.authenticate(db.session, "lost@example.com", second).id == user_id
        with pytest.raises(Exception):
            accounts.authenticate(db.session, "lost@example.com", first)


@pytest.mark.parametrize("status", ["LEAD", "QUALIFIED", "LOST", "ACTIVE"])
def test_remind_now_refuses_a_contact_that_is_not_onboarding(app, make, staff, status):
    if status == "ACTIVE":
        contact_id, _ = make.provisioned()
        with app.app_context():
            db.session.execute(sa.update(Contact).where(Contact.id == contact_id).values(status="ACTIVE"))
            db.session.commit()
    else:
        contact_id = make.contact(status)
    before = contact_row(app, contact_id)
    with app.app_context(), pytest.raises(NotOnboarding) as refused:
        reminders.remind_now(db.session, contact_id, actor=staff)
    assert refused.value.code == "not_onboarding"
    after = contact_row(app, contact_id)
    assert (after.reminders_sent, after.last_reminder_at) == (before.reminders_sent, before.last_reminder_at)
    assert reminder_events(app) == []


def test_concurrent_sweeps_send_one_email_per_user(app, mailbox, make):
    """Four sweeps at once (four workers, each its own session): every due account gets exactly
    one reminder, and the counts the sweeps report add up to that."""
    due = [make.provisioned(email=f"due{i}@example.com") for i in range(6)]
    for contact_id, _ in due:
        age(app, contact_id, 5)
    barrier = threading.Barrier(4)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with app.app_context():
                barrier.wait()
                results.append(reminders.send_due_reminders(db.session, after_days=3, limit=3))
                db.session.remove()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sum(results) == len(due)
    with app.app_context():
        per_user = dict(db.session.execute(
            select(OutboundEmail.user_id, func.count()).where(OutboundEmail.kind == "welcome")
            .group_by(OutboundEmail.user_id)).all())
        assert per_user == {user_id: 2 for _, user_id in due}  # the original welcome and one reminder
        assert db.session.scalar(select(func.count()).select_from(FeedEvent)
                                 .where(FeedEvent.type == "onboarding.reminder.sent")) == len(due)
        assert set(db.session.scalars(select(Contact.reminders_sent).where(Contact.user_id.is_not(None)))) == {1}


def test_the_hourly_job_runs_the_sweep_with_the_configured_rule(app, mailbox, make):
    contact_id, user_id = make.provisioned(email="hourly@example.com")
    age(app, contact_id, 2)
    app.config["REMINDER_AFTER_DAYS"] = 1.5
    assert tasks.remind.call_local() == 1
    app.config["REMINDER_MAX"] = 1
    assert sweep(app, now() + 5 * DAY, after_days=1.5, limit=1) == 0
    # Declared as an hourly periodic job: due once an hour, beside the every-minute sweep.
    due = [datetime(2026, 1, 1, 5, minute) for minute in range(60)]
    assert sum(1 for at in due if "remind" in {type(t).__name__ for t in huey.read_periodic(at)}) == 1
