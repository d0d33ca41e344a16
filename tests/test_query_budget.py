"""Query budgets: every page and API route runs a fixed number of SQL statements, whatever
the number of contacts, checklist tasks or feed events (issue 6).

Each test counts the statements of one request (a SQLAlchemy ``before_cursor_execute``
listener on the app's engine) with 3 contacts, 3 extra checklist tasks and 3 feed events,
then grows the data to 30 of each and counts again: the two counts must be equal and within
the route's budget (at most 4 for the onboarding API, at most 8 for any page).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from onboarding_app import accounts, outbox, provisioning, tracker
from onboarding_app.accounts import TOKEN_TOUCH_INTERVAL
from onboarding_app.extensions import db
from onboarding_app.models import (
    ApiToken, Contact, ContactStatusCount, FeedEvent, OnboardingTask, OutboundEmail, User,
)
from onboarding_app.security import hash_password

from . import answers
from .conftest import NEW_PASSWORD

SMALL, LARGE = 3, 30
ONBOARDING_API_BUDGET = 4
# Ticking an open task: the token, the locked read, the tick, the contact's last activity (the
# tracker sorts on it), the feed event and its webhook fan-out (one INSERT ... SELECT), the
# required count (checklist.required_progress).
COMPLETE_TASK_BUDGET = 7
PAGE_BUDGET = 8
# "Mark done" from the dashboard: a page's reads plus the tick, the last activity, the feed event.
MARK_DONE_BUDGET = 9
# A contact edit that writes two feed events (edited, status changed), each with its fan-out.
WRITE_BUDGET = 10
# Provisioning is a whole use case: the token; the contact (locked) with any user of its email;
# the user; the checklist (one INSERT ... SELECT for all its rows); the welcome email; the feed
# event and its webhook fan-out; the contact's claim. Nothing is read back after the commit.
# Tests run the worker's jobs at once, so the delivery of the welcome email is counted too:
# the claim, the email with its user and contact, the temporary password, the kept copy, the
# outcome (test_welcome_email_delivery).
PROVISION_BUDGET = 13
STATUSES = ("ONBOARDING", "QUALIFIED", "LEAD", "LOST", "ACTIVE")  # the first 3 include an account


class StatementCounter:
    """Counts what the app sends to the database while ``counting`` is on."""

    def __init__(self, app) -> None:
        with app.app_context():
            self.engine = db.engine
        self.statements: list[str] = []
        self.counting = False
        event.listen(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self.counting:
            self.statements.append(statement)

    def run(self, call) -> tuple[int, object]:
        # The pages' funnel is shared for a minute: count every call as the minute's first.
        tracker.forget_recent_funnels()
        self.statements = []
        self.counting = True
        try:
            result = call()
        finally:
            self.counting = False
        return len(self.statements), result

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


class World:
    """The data a test grows: contacts in every status (some provisioned, with checklists),
    extra checklist tasks for both roles, feed events about them."""

    def __init__(self, app) -> None:
        self.app = app
        self.contacts = 0
        self.tasks = 0
        self.events = 0

    def grow_to(self, size: int) -> None:
        with self.app.app_context():
            conn = db.session.connection()
            now = datetime.now(timezone.utc)
            password_hash = hash_password("not-used-in-these-tests-1")
            users, contacts, events, tasks = (
                model.__table__ for model in (User, Contact, FeedEvent, OnboardingTask)
            )
            for i in range(self.contacts, size):
                status = STATUSES[i % len(STATUSES)]
                user_id = None
                if status in ("ONBOARDING", "ACTIVE"):
                    user_id = conn.execute(
                        users.insert().values(
                            email=f"grown{i}@example.com", name=f"Grown {i}", role="client", password_hash=password_hash,
                            must_change_password=False, active=True, created_at=now, updated_at=now,
                        ).returning(users.c.id)
                    ).scalar_one()
                    conn.execute(sa.text(
                        "INSERT INTO onboarding_progress (user_id, task_id, completed) "
                        "SELECT :user_id, id, 0 FROM onboarding_tasks WHERE role = 'client'"
                    ), {"user_id": user_id})
                contact_id = conn.execute(
                    contacts.insert().values(
                        name=f"Grown Contact {i}", email=f"grown{i}@example.com", company=f"Grown Co {i}", phone="",
                        role="client", status=status, user_id=user_id, created_at=now, updated_at=now,
                    ).returning(contacts.c.id)
                ).scalar_one()
                conn.execute(events.insert().values(
                    type="crm.contact.created", actor_id=1, contact_id=contact_id, user_id=user_id,
                    payload={"name": f"Grown Contact {i}"}, created_at=now,
                ))
            for i in range(self.tasks, size):
                for role in ("client", "partner"):
                    conn.execute(tasks.insert().values(
                        role=role, slug=f"extra-{i}", title=f"Extra task {i}", description="", position=100 + i,
                        required=False, action_url=None,
                    ))
            db.session.commit()
        self.contacts = self.tasks = max(size, self.contacts)


@pytest.fixture
def counter(app):
    counter = StatementCounter(app)
    yield counter
    counter.close()


@pytest.fixture
def world(app, staff) -> World:
    """A signed-in staff member (user id 1), and a world to grow."""
    assert staff == 1
    return World(app)


@pytest.fixture
def api(app):
    """A client that sends no cookies, as a script with a bearer token does."""
    return app.test_client(use_cookies=False)


@pytest.fixture
def tokens(app, make, world):
    """Bearer tokens: the staff member's, and a provisioned client's who set their own
    password (so the API serves them). Both already used once, so the once-per-5-minutes
    touch of last_used_at is out of the way."""
    contact_id, user_id = make.provisioned(email="client@example.com")
    with app.app_context():
        accounts.set_password(db.session, user_id, NEW_PASSWORD)
        _, staff_token = accounts.create_api_token(db.session, "sam@example.com")
        _, user_token = accounts.create_api_token(db.session, "client@example.com")
        for token in (staff_token, user_token):
            assert accounts.user_for_token(db.session, token) is not None
    return {"staff": {"Authorization": f"Bearer {staff_token}"}, "user": {"Authorization": f"Bearer {user_token}"},
            "contact_id": contact_id, "user_id": user_id}


def _twice(counter: StatementCounter, world: World, call, *, budget: int, fresh=None) -> tuple[int, int]:
    """The statements of ``call`` at the small size and at the large size. ``fresh(size)``
    makes the call's target anew for each size (for requests that change something)."""
    counts, runs = [], []
    for size in (SMALL, LARGE):
        world.grow_to(size)
        target = fresh(size) if fresh else None
        call(target)  # warm up: first-request work (a token's first touch, a session refresh)
        if fresh:
            target = fresh(size + 1000)
        n, response = counter.run(lambda: call(target))
        assert response.status_code < 400, response.get_data(as_text=True)[:500]
        counts.append(n)
        runs.append(counter.statements)
    assert counts[0] == counts[1], (
        f"{counts[0]} statements with {SMALL} of everything, {counts[1]} with {LARGE}; only at {LARGE}: "
        f"{list((Counter(runs[1]) - Counter(runs[0])).elements())}"
    )
    assert counts[0] <= budget, f"{counts[0]} statements, budget {budget}: {counter.statements}"
    return counts[0], counts[1]


# --- the onboarding API: at most 4 statements to read, 5 to tick a task --------------------------------------------------


def test_api_onboarding_checklist(api, counter, world, tokens):
    _twice(counter, world, lambda _: api.get("/api/v1/onboarding", headers=tokens["user"]),
           budget=ONBOARDING_API_BUDGET)


def test_api_complete_task_repeated(api, counter, world, tokens):
    """Repeating a completion changes nothing, and costs the same at any size."""
    _twice(counter, world,
           lambda _: api.post("/api/v1/onboarding/complete/book-kickoff-call", headers=tokens["user"]),
           budget=COMPLETE_TASK_BUDGET)


def test_api_complete_task_first_time(api, counter, world, tokens, app):
    """Ticking a task that was open (one added after provisioning, so its row is made now):
    the progress row, the feed event, the answer."""
    slugs = iter(["extra-0", "extra-1", "extra-2", "extra-3"])
    _twice(counter, world,
           lambda slug: api.post(f"/api/v1/onboarding/complete/{slug}", headers=tokens["user"]),
           budget=COMPLETE_TASK_BUDGET + 2, fresh=lambda size: next(slugs))


# Sending a data task's answers (again): the locked read, what the kind stores, the answers,
# the required count (+ terms: the current document; teammates: the known addresses, the new
# contact and its feed event with the webhook fan-out).
DATA_TASK_BUDGETS = {"complete-profile": 8, "accept-terms": 7, "add-billing-contact": 6, "invite-teammates": 11}


@pytest.mark.parametrize("slug", list(DATA_TASK_BUDGETS))
def test_api_complete_data_task(api, counter, world, tokens, slug):
    def call(n):
        body = answers.api(slug)
        if slug == "invite-teammates":  # a new address each time: one new contact each time
            body = {"json": {"emails": [f"mate{n}@example.com"]}}
        return api.post(f"/api/v1/onboarding/complete/{slug}", headers=tokens["user"], **body)

    _twice(counter, world, call, budget=DATA_TASK_BUDGETS[slug], fresh=lambda size: size)


# --- the rest of the API -------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "?status=QUALIFIED", "?status=QUALIFIED&q=grown", "?q=co&page=2&per_page=5"])
def test_api_contact_list(api, counter, world, tokens, query):
    _twice(counter, world, lambda _: api.get(f"/api/v1/crm/contacts{query}", headers=tokens["staff"]),
           budget=PAGE_BUDGET)


def test_api_contact_detail(api, counter, world, tokens):
    _twice(counter, world,
           lambda _: api.get(f"/api/v1/crm/contacts/{tokens['contact_id']}", headers=tokens["staff"]),
           budget=PAGE_BUDGET)


@pytest.mark.parametrize("who", ["staff", "user"])
def test_api_feed(api, counter, world, tokens, who):
    _twice(counter, world, lambda _: api.get("/api/v1/feed?limit=5", headers=tokens[who]), budget=PAGE_BUDGET)
    before = api.get("/api/v1/feed?limit=2", headers=tokens[who]).get_json()["next_before"]
    n, response = counter.run(lambda: api.get(f"/api/v1/feed?limit=2&before={before}", headers=tokens[who]))
    assert response.status_code == 200 and n <= PAGE_BUDGET


def test_api_create_and_update_contact(api, counter, world, tokens):
    _twice(counter, world, lambda target: api.post(
        "/api/v1/crm/contacts", headers=tokens["staff"],
        json={"name": f"New {target}", "email": f"new{target}@example.com"}),
        budget=WRITE_BUDGET, fresh=lambda size: size)

    def fresh(size):
        return api.post("/api/v1/crm/contacts", headers=tokens["staff"],
                           json={"name": f"Edit {size}", "email": f"edit{size}@example.com"}).get_json()["id"]

    _twice(counter, world, lambda contact_id: api.patch(
        f"/api/v1/crm/contacts/{contact_id}", headers=tokens["staff"], json={"status": "QUALIFIED", "phone": "1"}),
        budget=WRITE_BUDGET, fresh=fresh)


def test_api_provision(api, counter, world, tokens, make, mailbox):
    """The same count with a checklist of 9 tasks or of 36."""
    _twice(counter, world, lambda contact_id: api.post(
        f"/api/v1/crm/contacts/{contact_id}/provision", headers=tokens["staff"]),
        budget=PROVISION_BUDGET, fresh=lambda size: make.contact("QUALIFIED"))


# --- the worker: delivering welcome emails --------------------------------------------------------


def test_welcome_email_delivery(app, make, counter, mailbox):
    """A batch of welcome emails (the worker's job takes up to ``outbox.BATCH``): the claim of
    all of them, the emails with their users and contacts, each user's temporary password
    (a conditional UPDATE each: the user may have set their own meanwhile), the kept copies
    (one executemany), the outcomes. Only the passwords grow with the batch."""
    mailbox.refuse = True  # the attempt right after provisioning fails: the emails stay pending
    ids = [make.contact("QUALIFIED", email=f"batch{n}@example.com") for n in range(outbox.BATCH + 1)]
    with app.app_context():
        for contact_id in ids:
            provisioning.provision_account(db.session, contact_id)
        email_ids = db.session.execute(sa.select(OutboundEmail.id).order_by(OutboundEmail.id)).scalars().all()
        db.session.rollback()
    mailbox.refuse = False
    with app.app_context():
        for batch in (email_ids[:1], email_ids[1:]):
            n, attempts = counter.run(lambda: outbox.deliver(db.session, batch, due_only=False))
            assert [a.outcome for a in attempts.values()] == ["sent"] * len(batch)
            assert n == 4 + len(batch), counter.statements
    assert len(mailbox.messages) == outbox.BATCH + 1


# --- pages: at most 8 statements -------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/dashboard",
    "/dashboard?before=999999",
    "/crm/contacts",
    "/crm/contacts?status=QUALIFIED&q=grown",
    "/crm/contacts?page=2&per_page=1",
    "/crm/contacts/new",
])
def test_staff_pages(client, counter, world, path):
    _twice(counter, world, lambda _: client.get(path), budget=PAGE_BUDGET)


def test_staff_contact_page(client, counter, world, tokens):
    _twice(counter, world, lambda _: client.get(f"/crm/contacts/{tokens['contact_id']}"), budget=PAGE_BUDGET)


def test_user_dashboard_and_task_completion(client, counter, world, tokens, auth):
    auth.logout()
    assert auth.login("client@example.com", NEW_PASSWORD).status_code == 302
    _twice(counter, world, lambda _: client.get("/dashboard"), budget=PAGE_BUDGET)
    slugs = iter(["extra-0", "extra-1", "extra-2", "extra-3"])
    token = auth.csrf("/dashboard")
    _twice(counter, world, lambda slug: client.post(
        f"/onboarding/tasks/{slug}/complete", data={"csrf_token": token}, headers={"HX-Request": "true"}),
        budget=MARK_DONE_BUDGET + 2, fresh=lambda size: next(slugs))
    # A data task's inline form: stored, then the row and the progress bar read back.
    _twice(counter, world, lambda _: client.post(
        "/onboarding/tasks/complete-profile/complete", data={"csrf_token": token, **answers.form("complete-profile")},
        headers={"HX-Request": "true"}), budget=MARK_DONE_BUDGET + 4)
    # An invalid one: nothing written, the form back.
    n, response = counter.run(lambda: client.post(
        "/onboarding/tasks/complete-profile/complete", data={"csrf_token": token, "name": ""},
        headers={"HX-Request": "true"}))
    assert response.status_code == 422 and n <= PAGE_BUDGET, counter.statements


# --- bearer tokens write at most every 5 minutes ------------------------------------------------


def test_bearer_auth_does_not_write_on_every_request(app, api, counter, tokens):
    """After the first use, authenticating a token is one SELECT and no write; the touch of
    last_used_at comes back only once it is older than TOKEN_TOUCH_INTERVAL."""
    for _ in range(3):
        n, response = counter.run(lambda: api.get("/api/v1/onboarding", headers=tokens["user"]))
        assert response.status_code == 200
        writes = [s for s in counter.statements if not s.lstrip().upper().startswith("SELECT")]
        assert writes == []
    with app.app_context():
        old = datetime.now(timezone.utc) - TOKEN_TOUCH_INTERVAL - timedelta(seconds=1)
        db.session.execute(sa.update(ApiToken).values(last_used_at=old))
        db.session.commit()
    counter.run(lambda: api.get("/api/v1/onboarding", headers=tokens["user"]))
    assert [s for s in counter.statements if s.lstrip().upper().startswith("UPDATE API_TOKENS")], counter.statements


# --- the per-status counters stay right -----------------------------------------------------------


def test_status_counts_follow_every_write(app, make, world):
    """contact_status_counts (kept by triggers) equals a real count after inserts, status
    moves, provisioning and deletes, bulk or one by one."""
    world.grow_to(LARGE)
    make.provisioned()
    make.contact("LOST")
    with app.app_context():
        db.session.execute(sa.update(Contact).where(Contact.status == "LEAD").values(status="QUALIFIED"))
        lost = sa.select(Contact.id).where(Contact.status == "LOST", Contact.user_id.is_(None)).scalar_subquery()
        db.session.execute(sa.delete(FeedEvent).where(FeedEvent.contact_id.in_(lost)))
        db.session.execute(sa.delete(Contact).where(Contact.status == "LOST", Contact.user_id.is_(None)))
        db.session.commit()
        real = dict(db.session.execute(sa.select(Contact.status, sa.func.count()).group_by(Contact.status)).all())
        kept = dict(db.session.execute(sa.select(ContactStatusCount.status, ContactStatusCount.contacts)).all())
        assert kept == {status: real.get(status, 0) for status in kept}
        assert set(kept) == {"LEAD", "QUALIFIED", "ONBOARDING", "ACTIVE", "LOST"}
