"""The onboarding tracker and the funnel (SPEC.md, "Staff: who is stuck..."): the services,
their API routes and pages, and their query counts with 5 and with 200 accounts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from selectolax.lexbor import LexborHTMLParser as HTMLParser
from sqlalchemy import select

from onboarding_app import accounts, provisioning, tracker
from onboarding_app.extensions import db
from onboarding_app.models import Contact, OnboardingProgress, OnboardingTask, OutboundEmail, User

from .answers import service
from .conftest import NEW_PASSWORD
from .test_query_budget import StatementCounter

API = "/api/v1"
DAY = timedelta(days=1)
CLIENT_REQUIRED = ["set-password", "complete-profile", "accept-terms", "add-billing-contact"]


def now() -> datetime:
    return datetime.now(timezone.utc)


def set_times(app, contact_id: int, **values) -> None:
    with app.app_context():
        db.session.execute(sa.update(Contact).where(Contact.id == contact_id).values(**values))
        db.session.commit()


def complete(app, user_id: int, *slugs: str) -> None:
    with app.app_context():
        for slug in slugs:
            if slug == "set-password":
                accounts.set_password(db.session, user_id, NEW_PASSWORD)
            else:
                provisioning.complete_task(db.session, user_id, slug, service(slug))


def row_fragment(response) -> HTMLParser:
    """A tracker row returned alone (a ``<tr>``), parsed where a row can stand: in a table."""
    return HTMLParser("<table><tbody>" + response.get_data(as_text=True) + "</tbody></table>")


def listing(app, **filters) -> tracker.TrackerPage:
    with app.app_context():
        return tracker.list_accounts(db.session, **filters)


# --- activity is recorded -------------------------------------------------------------------


def test_provisioning_sign_in_and_tasks_record_activity(app, make, auth, mailbox):
    contact_id, user_id = make.provisioned(email="ada@example.com")
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        assert contact.provisioned_at is not None and contact.last_activity_at == contact.provisioned_at
        assert db.session.get(User, user_id).last_sign_in_at is None
    set_times(app, contact_id, last_activity_at=now() - 5 * DAY)
    assert auth.login("ada@example.com", mailbox.temporary_password("ada@example.com")).status_code == 302
    with app.app_context():
        signed_in = db.session.get(User, user_id).last_sign_in_at
        assert signed_in > now() - timedelta(minutes=1)
        assert db.session.get(Contact, contact_id).last_activity_at == signed_in
    set_times(app, contact_id, last_activity_at=now() - 5 * DAY)
    complete(app, user_id, "book-kickoff-call")
    with app.app_context():
        assert db.session.get(Contact, contact_id).last_activity_at > now() - timedelta(minutes=1)
    complete(app, user_id, *CLIENT_REQUIRED)
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        assert contact.status == "ACTIVE" and contact.activated_at is not None


# --- the tracker ------------------------------------------------------------------------------


def test_most_stalled_first_with_every_column(app, make, mailbox):
    make.provisioned(email="fresh@example.com")
    stuck = make.provisioned(email="stuck@example.com")
    middling = make.provisioned(role="partner", email="mid@example.com")
    complete(app, stuck[1], "set-password", "complete-profile")
    set_times(app, stuck[0], last_activity_at=now() - 9 * DAY - timedelta(hours=2), reminders_sent=2)
    set_times(app, middling[0], last_activity_at=now() - 4 * DAY)

    page = listing(app)
    assert [row.email for row in page.items] == ["stuck@example.com", "mid@example.com", "fresh@example.com"]
    assert page.total == 3
    row = page.items[0]
    assert (row.stalled_days, row.required_completed, row.required_total, row.reminders_sent) == (9, 2, 4, 2)
    assert [(c.slug, c.state) for c in row.tasks] == [
        ("set-password", "done"), ("complete-profile", "done"), ("accept-terms", "open"),
        ("add-billing-contact", "open"), ("book-kickoff-call", "open"), ("invite-teammates", "open"),
    ]
    assert row.tasks[1].completed_at is not None and row.tasks[2].completed_at is None
    assert row.welcome_email.status == "sent" and row.welcome_email.attempts == 1
    assert row.temporary_password is False and page.items[2].temporary_password is True
    assert [c.slug for c in page.items[1].tasks][:2] == ["set-password", "sign-partner-agreement"]


def test_filters_role_stalled_and_status(app, make, mailbox):
    client = make.provisioned(email="c@example.com")
    partner = make.provisioned(role="partner", email="p@example.com")
    done = make.provisioned(email="done@example.com")
    set_times(app, client[0], last_activity_at=now() - 3 * DAY - timedelta(minutes=5))
    set_times(app, partner[0], last_activity_at=now() - 2 * DAY)
    complete(app, done[1], *CLIENT_REQUIRED)

    assert [r.email for r in listing(app, role="partner").items] == ["p@example.com"]
    assert [r.email for r in listing(app, stalled=True, stalled_after_days=3).items] == ["c@example.com"]
    assert [r.email for r in listing(app, stalled=True, stalled_after_days=2).items] == ["c@example.com", "p@example.com"]
    assert [r.email for r in listing(app, status="ACTIVE").items] == ["done@example.com"]
    everyone = listing(app, status="all")
    assert [r.email for r in everyone.items][-1] == "done@example.com" and everyone.total == 3
    assert everyone.items[-1].stalled_days == 0


def test_totals_with_and_without_filters(app, make, mailbox):
    """The plain listing's total comes from the status counters, a filtered one is counted:
    both agree with the rows."""
    for i in range(3):
        make.provisioned(email=f"t{i}@example.com")
    make.provisioned(role="partner", email="partner@example.com")
    done = make.provisioned(email="done@example.com")
    make.contact("QUALIFIED")  # no account: in no listing
    complete(app, done[1], *CLIENT_REQUIRED)
    for filters, total in [({}, 4), ({"status": "ACTIVE"}, 1), ({"status": "all"}, 5), ({"role": "partner"}, 1),
                           ({"status": "all", "role": "client"}, 4)]:
        page = listing(app, per_page=100, **filters)
        assert page.total == len(page.items) == total, filters


def test_pages(app, make, mailbox):
    for i in range(5):
        contact_id, _ = make.provisioned(email=f"a{i}@example.com")
        set_times(app, contact_id, last_activity_at=now() - (10 - i) * DAY)
    first, last = listing(app, per_page=2), listing(app, per_page=2, page=3)
    assert [r.email for r in first.items] == ["a0@example.com", "a1@example.com"]
    assert [r.email for r in last.items] == ["a4@example.com"] and last.pages == 3


# --- the funnel -------------------------------------------------------------------------------


def test_funnel_counts_each_step_of_the_cohort(app, make, mailbox, auth):
    since = now() - 30 * DAY
    accounts_ = [make.provisioned(email=f"f{i}@example.com") for i in range(4)]
    old = make.provisioned(email="old@example.com")
    set_times(app, old[0], provisioned_at=now() - 60 * DAY)  # outside the cohort
    make.provisioned(role="partner")  # another role
    # f0 signed in only; f1 did profile and terms (out of order, no password); f2, f3 are ACTIVE.
    auth.login("f0@example.com", mailbox.temporary_password("f0@example.com"))
    complete(app, accounts_[1][1], "accept-terms", "complete-profile")
    complete(app, accounts_[2][1], *CLIENT_REQUIRED)
    complete(app, accounts_[3][1], *CLIENT_REQUIRED)
    with app.app_context():
        db.session.execute(sa.update(User).where(User.id.in_([accounts_[2][1], accounts_[3][1]]))
                           .values(last_sign_in_at=now()))
        db.session.commit()
        result = tracker.funnel(db.session, role="client", since=since)
    assert [(s.key, s.count) for s in result.steps] == [
        ("provisioned", 4), ("signed_in", 3), ("set-password", 2), ("complete-profile", 3),
        ("accept-terms", 3), ("add-billing-contact", 2), ("active", 2),
    ]
    assert result.percent(result.steps[1]) == 75
    assert result.time_to_active.n == 2


@pytest.mark.parametrize("hours, median, p90", [
    ([10, 20, 30, 40], 25.0, 37.0),
    ([5], 5.0, 5.0),
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100], 6.0, 10.0),
    ([12, 2, 7], 7.0, 11.0),
])
def test_time_to_active_median_and_p90_as_percentile_cont(app, make, mailbox, hours, median, p90):
    """The same linear interpolation on both databases (percentile_cont on PostgreSQL, window
    functions on SQLite)."""
    start = now() - 20 * DAY
    for i, h in enumerate(hours):
        contact_id, _ = make.provisioned(email=f"t{i}@example.com")
        set_times(app, contact_id, provisioned_at=start, activated_at=start + timedelta(hours=h), status="ACTIVE")
    with app.app_context():
        result = tracker.funnel(db.session, role="client", since=now() - 30 * DAY)
    assert result.time_to_active.n == len(hours)
    assert result.time_to_active.median_hours == pytest.approx(median, abs=0.01)
    assert result.time_to_active.p90_hours == pytest.approx(p90, abs=0.01)


def test_the_pages_funnel_is_shared_for_a_minute(app, make, mailbox):
    """recent_funnel: one answer per role and minute (the cohort starts at the minute), kept
    while the minute lasts; the next minute counts again."""
    make.provisioned(email="first@example.com")
    minute = now().replace(second=0, microsecond=0) - 30 * DAY
    with app.app_context():
        first = tracker.recent_funnel(db.session, role="client", since=minute + timedelta(seconds=5))
        assert first.since == minute and first.provisioned == 1
        make.provisioned(email="second@example.com")
        assert tracker.recent_funnel(db.session, role="client", since=minute + timedelta(seconds=50)) is first
        assert tracker.recent_funnel(db.session, role="partner", since=minute).role == "partner"
        later = tracker.recent_funnel(db.session, role="client", since=minute + timedelta(minutes=1))
        assert later.provisioned == 2
        tracker.forget_recent_funnels()
        assert tracker.recent_funnel(db.session, role="client", since=minute).provisioned == 2


def test_funnel_of_an_empty_cohort(app):
    with app.app_context():
        result = tracker.funnel(db.session, role="partner", since=now())
    assert [s.count for s in result.steps] == [0] * len(result.steps)
    assert result.time_to_active.n == 0 and result.time_to_active.median_hours is None


# --- the API ----------------------------------------------------------------------------------


@pytest.fixture
def api(app, make):
    make.user("staff", email="ops@example.com")
    with app.app_context():
        _, token = accounts.create_api_token(db.session, "ops@example.com")
    client = app.test_client(use_cookies=False)
    headers = {"Authorization": f"Bearer {token}"}
    return lambda method, path, **kw: client.open(API + path, method=method, headers=headers, **kw)


def test_api_accounts(app, api, make, mailbox):
    contact_id, user_id = make.provisioned(email="api@example.com")
    set_times(app, contact_id, last_activity_at=now() - 4 * DAY)
    body = api("GET", "/onboarding/accounts?stalled=true").get_json()
    assert body["total"] == 1 and body["page"] == 1
    [item] = body["items"]
    assert set(item) == {"contact_id", "user_id", "name", "email", "role", "status", "provisioned_at",
                         "last_sign_in_at", "last_activity_at", "stalled_days", "required_total",
                         "required_completed", "reminders_sent", "welcome_email", "tasks"}
    assert (item["contact_id"], item["user_id"], item["stalled_days"]) == (contact_id, user_id, 4)
    assert item["welcome_email"] == {"status": "sent", "attempts": 1, "last_error": None}
    assert item["tasks"][0] == {"slug": "set-password", "title": "Set your password", "required": True,
                                "completed": False, "skipped": False, "completed_at": None}
    assert api("GET", "/onboarding/accounts?status=ACTIVE").get_json()["items"] == []


@pytest.mark.parametrize("query, field", [
    ("status=LEAD", "status"), ("role=admin", "role"), ("stalled=maybe", "stalled"),
    ("page=0", "page"), ("per_page=1000", "per_page"),
])
def test_api_accounts_bad_filters(api, query, field):
    response = api("GET", f"/onboarding/accounts?{query}")
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]


def test_api_funnel(app, api, make, mailbox):
    make.provisioned()
    body = api("GET", "/onboarding/funnel").get_json()
    assert body["role"] == "client"
    assert [s["key"] for s in body["steps"]] == ["provisioned", "signed_in", *CLIENT_REQUIRED, "active"]
    assert body["steps"][0] == {"key": "provisioned", "label": "Provisioned", "count": 1}
    assert body["time_to_active"] == {"n": 0, "median_hours": None, "p90_hours": None}
    since = datetime.fromisoformat(body["since"].replace("Z", "+00:00"))
    assert abs((now() - since) - 30 * DAY) < timedelta(minutes=1)
    later = api("GET", f"/onboarding/funnel?role=partner&since={(now() + DAY).date().isoformat()}").get_json()
    assert later["role"] == "partner" and later["steps"][0]["count"] == 0
    assert [s["key"] for s in later["steps"]][3:5] == ["sign-partner-agreement", "upload-tax-form"]


@pytest.mark.parametrize("query, field", [("role=staff", "role"), ("since=yesterday", "since"),
                                          ("since=2026-13-01", "since")])
def test_api_funnel_bad_query(api, query, field):
    response = api("GET", f"/onboarding/funnel?{query}")
    assert response.status_code == 422 and field in response.get_json()["error"]["fields"]


def test_api_remind_and_resend_welcome(app, api, make, mailbox):
    contact_id, user_id = make.provisioned(email="nudge@example.com")
    response = api("POST", f"/crm/contacts/{contact_id}/remind")
    assert response.status_code == 202 and response.get_json() == {"queued": "welcome"}
    response = api("POST", f"/crm/contacts/{contact_id}/resend-welcome")
    assert response.status_code == 202 and response.get_json() == {"queued": True}
    with app.app_context():
        assert db.session.get(Contact, contact_id).reminders_sent == 1  # the resend is not a reminder
        accounts.set_password(db.session, user_id, NEW_PASSWORD)
    assert api("POST", f"/crm/contacts/{contact_id}/remind").get_json() == {"queued": "reminder"}
    refused = api("POST", f"/crm/contacts/{contact_id}/resend-welcome")
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "password_already_set"


def test_api_remind_refusals(app, api, make):
    lead = make.contact("LEAD")
    response = api("POST", f"/crm/contacts/{lead}/remind")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "not_onboarding"
    response = api("POST", f"/crm/contacts/{lead}/resend-welcome")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "not_provisioned"
    for path in ("/crm/contacts/999999/remind", "/crm/contacts/999999/resend-welcome",
                 "/crm/contacts/99999999999/remind"):
        assert api("POST", path).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(sa.func.count()).select_from(OutboundEmail)) == 0


# --- the pages --------------------------------------------------------------------------------


def test_tracker_page_and_remind_now_inline(app, client, staff, make, auth, mailbox):
    contact_id, user_id = make.provisioned(email="page@example.com")
    set_times(app, contact_id, last_activity_at=now() - 6 * DAY)
    page = HTMLParser(client.get("/crm/onboarding").get_data(as_text=True))
    row = page.css_first(f"#tracker-row-{contact_id}")
    assert row.css_first(".stalled-days").text(strip=True) == "6 days"
    assert row.css_first(".required").text(strip=True) == "0 of 4"
    assert [li.attributes["data-state"] for li in row.css(".task-cells li")] == ["open"] * 6
    # Hovering a day shows its exact time (text: a title attribute holds no markup).
    provisioned = row.css_first(".provisioned time")
    assert provisioned.attributes["title"].endswith("(UTC)") and "<" not in provisioned.attributes["title"]
    assert page.css_first("#funnel .funnel-step[data-key=provisioned]").attributes["data-count"] == "1"

    token = auth.csrf("/crm/onboarding")
    response = client.post(f"/crm/onboarding/{contact_id}/remind", data={"csrf_token": token},
                           headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "feed-changed"
    fragment = row_fragment(response)
    assert fragment.css_first("tr").attributes["id"] == f"tracker-row-{contact_id}"
    assert fragment.css_first(".reminders-sent").text(strip=True) == "1"
    assert "welcome email" in fragment.css_first(".row-notice").text()

    # Resend asks first, in the page's dialog, whose form answers with this row.
    ask = row.css_first("form:has(button.resend-welcome)")
    assert ask.attributes["hx-target"] == "#modal-slot" and "hx-confirm" not in ask.attributes
    dialog = HTMLParser(client.get(ask.attributes["hx-get"], headers={"HX-Request": "true"}).get_data(as_text=True))
    post = dialog.css_first("dialog form[method=post]")
    assert post.attributes["hx-post"] == f"/crm/onboarding/{contact_id}/resend-welcome"
    assert post.attributes["hx-target"] == f"#tracker-row-{contact_id}"
    assert "stops working" in dialog.css_first("dialog .consequences").text()
    response = client.post(post.attributes["hx-post"], data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert "on its way" in row_fragment(response).css_first(".row-notice").text()
    complete(app, user_id, *CLIENT_REQUIRED)
    response = client.post(f"/crm/onboarding/{contact_id}/remind", data={"csrf_token": token},
                           headers={"HX-Request": "true"})
    assert response.status_code == 409
    assert "ACTIVE" in row_fragment(response).css_first(".row-error").text()
    # Without JavaScript: post, redirect, the message flashed.
    response = client.post(f"/crm/onboarding/{contact_id}/remind", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/crm/onboarding")


def test_tracker_filters_and_funnel_form(app, client, staff, make, mailbox):
    make.provisioned(role="partner")
    response = client.get("/crm/onboarding?role=partner&stalled=true", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert HTMLParser(response.get_data(as_text=True)).css_first("#tracker-results") is not None
    assert client.get("/crm/onboarding?status=nope").status_code == 422
    funnel = client.get("/crm/funnel?role=partner", headers={"HX-Request": "true"})
    tree = HTMLParser(funnel.get_data(as_text=True))
    assert tree.css_first("#funnel .funnel-step[data-key=provisioned]").attributes["data-count"] == "1"
    assert " ".join(tree.css_first(".funnel-step .funnel-count").text().split()) == "1 (100%)"
    bad = client.get("/crm/funnel?since=not-a-date", headers={"HX-Request": "true"})
    assert bad.status_code == 422
    assert HTMLParser(bad.get_data(as_text=True)).css_first("#funnel-since-error") is not None
    assert client.get("/crm/funnel").status_code == 200  # a page of its own without JavaScript
    dashboard = HTMLParser(client.get("/dashboard").get_data(as_text=True))
    assert dashboard.css_first("#funnel .funnel-steps") is not None


def test_tracker_is_for_staff_only(app, client, make, auth, mailbox):
    contact_id, user_id = make.provisioned(email="client@example.com")
    with app.app_context():
        accounts.set_password(db.session, user_id, NEW_PASSWORD)
    auth.login("client@example.com", NEW_PASSWORD)
    token = auth.csrf("/dashboard")
    for method, path in [("GET", "/crm/onboarding"), ("GET", "/crm/funnel"),
                         ("POST", f"/crm/onboarding/{contact_id}/remind"),
                         ("POST", f"/crm/onboarding/{contact_id}/resend-welcome")]:
        assert client.open(path, method=method, data={"csrf_token": token}).status_code == 403, path
    with app.app_context():
        assert db.session.get(Contact, contact_id).reminders_sent == 0


# --- a constant number of queries, with 5 or 200 accounts -------------------------------------


def grow(app, n: int, start: int) -> None:
    """``n`` more onboarding accounts, straight into the tables, each with its checklist, some
    tasks done and a welcome email."""
    with app.app_context():
        conn = db.session.connection()
        at = now() - 3 * DAY
        users, contacts, emails = User.__table__, Contact.__table__, OutboundEmail.__table__
        for i in range(start, start + n):
            user_id = conn.execute(users.insert().values(
                email=f"bulk{i}@example.com", name=f"Bulk {i}", role="client", must_change_password=False,
                active=True, session_token=f"bulk-{i}", created_at=at, updated_at=at,
                last_sign_in_at=at if i % 2 else None,
            ).returning(users.c.id)).scalar_one()
            contact_id = conn.execute(contacts.insert().values(
                name=f"Bulk {i}", email=f"bulk{i}@example.com", company="", phone="", role="client",
                status="ACTIVE" if i % 5 == 0 else "ONBOARDING", user_id=user_id, created_at=at, updated_at=at,
                provisioned_at=at - timedelta(hours=i), last_activity_at=at - timedelta(hours=i),
                activated_at=at if i % 5 == 0 else None, reminders_sent=0,
            ).returning(contacts.c.id)).scalar_one()
            conn.execute(sa.insert(OnboardingProgress).from_select(
                ["user_id", "task_id", "completed", "completed_at"],
                select(sa.literal(user_id), OnboardingTask.id,
                       sa.case((OnboardingTask.position <= i % 4, 1), else_=0), sa.literal(at))
                .where(OnboardingTask.role == "client")))
            conn.execute(emails.insert().values(
                kind="welcome", recipient=f"bulk{i}@example.com", subject="Welcome", status="sent", attempts=1,
                created_at=at, next_attempt_at=at, contact_id=contact_id, user_id=user_id))
        db.session.commit()


@pytest.mark.parametrize("path, budget", [
    (f"{API}/onboarding/accounts", 4),
    (f"{API}/onboarding/accounts?status=all&per_page=100", 4),
    (f"{API}/onboarding/accounts?stalled=true&role=client&page=2&per_page=2", 4),
    (f"{API}/onboarding/funnel", 4),
    # The pages' default funnel (three queries) is computed once a minute (tracker.recent_funnel);
    # StatementCounter counts the minute's first view.
    ("/crm/onboarding", 7),
    ("/crm/onboarding?status=all&role=client&stalled=true", 7),
    ("/crm/funnel?role=client", 4),
    ("/dashboard", 8),
])
def test_query_count_is_the_same_with_5_and_200_accounts(app, client, staff, path, budget):
    counter = StatementCounter(app)
    try:
        counts = []
        for size, start in ((5, 0), (195, 5)):
            grow(app, size, start)
            client.get(path)  # warm up
            n, response = counter.run(lambda: client.get(path))
            assert response.status_code == 200, response.get_data(as_text=True)[:300]
            counts.append(n)
        assert counts[0] == counts[1] <= budget, (counts, counter.statements)
    finally:
        counter.close()


def test_tracker_days_are_the_viewers_days(app, client, staff, make, auth):
    contact_id, _ = make.provisioned(email="zone@example.com")
    late = datetime(2026, 1, 15, 23, 30, tzinfo=timezone.utc)  # already the 16th in Tokyo
    set_times(app, contact_id, provisioned_at=late, last_activity_at=late)

    def provisioned(**cookies):
        for name, value in cookies.items():
            client.set_cookie(name, value)
        row = HTMLParser(client.get("/crm/onboarding?status=all").get_data(as_text=True)).css_first(
            f"#tracker-row-{contact_id}")
        time = row.css_first(".provisioned time")
        return time.text(strip=True), time.attributes["title"]

    assert provisioned() == ("Jan 15", "Thu 15 Jan 2026, 23:30 (UTC)")
    assert provisioned(tz="Asia/Tokyo") == ("Jan 16", "Fri 16 Jan 2026, 08:30 (Asia/Tokyo)")
