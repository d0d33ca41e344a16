"""/dashboard (the user's checklist and feed; the staff overview) and "Mark done" through the
test client: guards, CSRF, full pages versus htmx fragments, out-of-band progress, PRG."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from onboarding_app import accounts, checklist, provisioning
from onboarding_app.extensions import db
from onboarding_app.models import Contact, FeedEvent
from tests.conftest import NEW_PASSWORD, USER_PASSWORD

HX = {"HX-Request": "true"}


def _is_fragment(body: str) -> bool:
    return "<html" not in body and "<!doctype" not in body.lower()


@pytest.fixture
def user(app, make, auth):
    """A provisioned client who has set their own password, signed in. Returns (contact_id, user_id)."""
    contact_id = make.contact("QUALIFIED", name="Margaret Hamilton", email="margaret@example.com")
    with app.app_context():
        user_id = provisioning.provision_account(db.session, contact_id).user.id
        accounts.set_password(db.session, user_id, NEW_PASSWORD)
    assert auth.login("margaret@example.com", NEW_PASSWORD).status_code == 302
    return contact_id, user_id


@pytest.fixture
def token(auth):
    return auth.csrf("/account/password")


def _status(app, contact_id: int) -> str:
    with app.app_context():
        return db.session.get(Contact, contact_id).status


# --- guards and CSRF -----------------------------------------------------------------------------


def test_anonymous_is_sent_to_sign_in(client, auth):
    assert client.get("/dashboard").headers["Location"].startswith("/login")
    response = client.post("/onboarding/tasks/accept-terms/complete", data={"csrf_token": auth.csrf("/login")})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_temporary_password_leads_to_the_password_page_first(app, client, make, auth, mailbox):
    contact_id, user_id = make.provisioned(email="ada@example.com")
    auth.login("ada@example.com", mailbox.temporary_password("ada@example.com"))
    assert client.get("/dashboard").headers["Location"] == "/account/password"
    token = auth.csrf("/account/password")
    response = client.post("/onboarding/tasks/accept-terms/complete", data={"csrf_token": token}, headers=HX)
    assert response.headers["Location"] == "/account/password"
    with app.app_context():
        assert checklist.onboarding_state(db.session, user_id).required_completed == 0


@pytest.mark.parametrize("headers", [{}, HX], ids=["form", "htmx"])
def test_mark_done_without_the_csrf_token_is_refused(app, client, user, headers):
    response = client.post("/onboarding/tasks/accept-terms/complete", headers=headers)
    assert response.status_code == 400
    with app.app_context():
        assert checklist.onboarding_state(db.session, user[1]).task("accept-terms").completed is False


def test_unknown_task_is_a_404(client, user, token):
    for slug in ("no-such-task", "upload-tax-form"):  # the second is a partner task
        response = client.post(f"/onboarding/tasks/{slug}/complete", data={"csrf_token": token}, headers=HX)
        assert response.status_code == 404
        assert "There is no task" in response.get_data(as_text=True)


# --- the user's dashboard ------------------------------------------------------------------------


def test_user_dashboard_shows_the_checklist_above_the_feed(client, user):
    response = client.get("/dashboard")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in body
    assert "HX-Request" in response.headers["Vary"]
    assert body.index('id="onboarding-widget"') < body.index('id="feed"')
    assert '<progress value="1" max="4"' in body and "1 of 4 required done" in body
    for slug in ("set-password", "complete-profile", "accept-terms", "add-billing-contact",
                 "book-kickoff-call", "invite-teammates"):
        assert f'<li id="task-{slug}"' in body
    rows = dict(re.findall(r'<li id="task-([a-z-]+)"(.*?)</li>', body, re.S))
    assert "Mark done" not in rows["set-password"] and ">Done<" in rows["set-password"]
    assert "Mark done" in rows["complete-profile"] and ">Required<" in rows["complete-profile"]
    assert ">Optional<" in rows["invite-teammates"]
    assert 'hx-post="/onboarding/tasks/accept-terms/complete" hx-target="#task-accept-terms"' in rows["accept-terms"]
    assert 'method="post" action="/onboarding/tasks/accept-terms/complete"' in rows["accept-terms"]
    assert "Tell us your job title" in rows["complete-profile"]  # the description
    assert "Margaret Hamilton completed “Set your password”" in body  # the feed


def test_mark_done_with_htmx_returns_the_row_and_the_progress_out_of_band(app, client, user, token):
    response = client.post("/onboarding/tasks/complete-profile/complete", data={"csrf_token": token}, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and _is_fragment(body)
    assert body.strip().startswith('<li id="task-complete-profile"')
    assert ">Done<" in body and "Mark done" not in body.split("</li>")[0]
    assert '<div id="onboarding-progress" class="onboarding-progress" hx-swap-oob="true">' in body
    assert '<progress value="2" max="4"' in body and "2 of 4 required done" in body
    assert response.headers["HX-Trigger"] == "feed-changed"
    assert "HX-Retarget" not in response.headers


def test_mark_done_twice_changes_nothing(app, client, user, token):
    client.post("/onboarding/tasks/accept-terms/complete", data={"csrf_token": token}, headers=HX)
    response = client.post("/onboarding/tasks/accept-terms/complete", data={"csrf_token": token}, headers=HX)
    assert response.status_code == 200 and "HX-Trigger" not in response.headers
    assert "2 of 4 required done" in response.get_data(as_text=True)
    with app.app_context():
        events = db.session.execute(
            select(func.count()).select_from(FeedEvent).where(FeedEvent.type == "onboarding.task.completed")
        ).scalar_one()
        assert events == 2  # set-password and accept-terms, once each


def test_an_optional_task_leaves_the_required_count_alone(client, user, token):
    body = client.post("/onboarding/tasks/invite-teammates/complete", data={"csrf_token": token},
                       headers=HX).get_data(as_text=True)
    assert body.strip().startswith('<li id="task-invite-teammates"') and "1 of 4 required done" in body


def test_the_last_required_task_swaps_the_widget_for_all_set(app, client, user, token):
    contact_id, _ = user
    for slug in ("complete-profile", "accept-terms"):
        client.post(f"/onboarding/tasks/{slug}/complete", data={"csrf_token": token}, headers=HX)
    response = client.post("/onboarding/tasks/add-billing-contact/complete", data={"csrf_token": token}, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and _is_fragment(body)
    assert response.headers["HX-Retarget"] == "#onboarding-widget"
    assert response.headers["HX-Reswap"] == "innerHTML"
    assert "You're all set" in body and 'id="onboarding-progress"' not in body
    # The optional tasks still open stay doable.
    assert '<li id="task-book-kickoff-call"' in body and "Mark done" in body
    assert _status(app, contact_id) == "ACTIVE"

    page = client.get("/dashboard").get_data(as_text=True)
    assert "You're all set" in page and "<progress" not in page
    assert "Margaret Hamilton finished onboarding and is now active" in page
    # An optional task after that: its row only, no progress bar to update.
    response = client.post("/onboarding/tasks/invite-teammates/complete", data={"csrf_token": token}, headers=HX)
    body = response.get_data(as_text=True)
    assert "HX-Retarget" not in response.headers and "hx-swap-oob" not in body


def test_mark_done_without_js_posts_and_redirects(app, client, user, token):
    contact_id, _ = user
    response = client.post("/onboarding/tasks/complete-profile/complete", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard#task-complete-profile"
    body = client.get("/dashboard").get_data(as_text=True)
    assert "Done: Complete your profile." in body and "2 of 4 required done" in body
    for slug in ("accept-terms", "add-billing-contact"):
        client.post(f"/onboarding/tasks/{slug}/complete", data={"csrf_token": token})
    body = client.get("/dashboard").get_data(as_text=True)
    assert "You're all set" in body
    assert _status(app, contact_id) == "ACTIVE"


def test_a_user_without_a_contact_has_no_checklist(client, make, auth):
    make.user("client", email="solo@example.com", password=USER_PASSWORD)
    auth.login("solo@example.com", USER_PASSWORD)
    body = client.get("/dashboard").get_data(as_text=True)
    assert "There is no onboarding checklist for your account." in body
    assert 'id="feed"' in body


def test_a_user_sees_only_their_own_feed(client, user, make):
    make.contact("QUALIFIED", name="Somebody Else")
    body = client.get("/dashboard").get_data(as_text=True)
    assert "Somebody Else" not in body


# --- the staff dashboard and the feed ------------------------------------------------------------


def test_staff_dashboard_shows_pipeline_waiting_contacts_and_feed(app, client, staff, make):
    ada = make.contact("QUALIFIED", name="Ada Lovelace")
    make.contact("LEAD", name="Grace Hopper")
    make.contact("LOST")
    with app.app_context():
        provisioning.provision_account(db.session, make.contact("QUALIFIED", name="Alan Turing"), actor=staff)
    response = client.get("/dashboard")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    pipeline = body[body.index('id="pipeline"'):body.index('id="waiting"')]
    counts = dict((s, int(n)) for n, s in re.findall(r"<strong>(\d+)</strong> <span class=\"badge status-(\w+)\"", pipeline))
    assert counts == {"LEAD": 1, "QUALIFIED": 1, "ONBOARDING": 1, "ACTIVE": 0, "LOST": 1}
    waiting = body[body.index('id="waiting"'):body.index('id="feed"')]
    assert "Ada Lovelace" in waiting and "Grace Hopper" not in waiting and "Alan Turing" not in waiting
    assert f'id="approve-{ada}"' in waiting and 'name="origin" value="dashboard"' in waiting
    assert f'hx-get="/crm/contacts/{ada}/provision"' in waiting
    assert "Sam Staff approved Alan Turing; account created" in body


def test_approve_from_the_dashboard_swaps_the_row_result(app, client, staff, make, auth, mailbox):
    ada = make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    token = auth.csrf("/dashboard")
    response = client.post(f"/crm/contacts/{ada}/provision", data={"csrf_token": token, "origin": "dashboard"},
                           headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and _is_fragment(body)
    assert "Account created for" in body and "ada@example.com" in body and "0 of 4 required done" in body
    assert f'href="/crm/contacts/{ada}"' in body
    assert 'id="contact-status"' not in body  # the dashboard has no status region to update
    # The pipeline counts follow, out of band.
    assert '<ul id="pipeline" class="pipeline" hx-swap-oob="true">' in body
    assert '<strong>0</strong> <span class="badge status-QUALIFIED">' in body
    assert '<strong>1</strong> <span class="badge status-ONBOARDING">' in body
    assert response.headers["HX-Trigger"] == "feed-changed"


def test_feed_pages_with_the_before_cursor(app, client, staff, make):
    app.config["FEED_PAGE_SIZE"] = 2
    for name in ("First", "Second", "Third"):
        make.contact("LEAD", name=name)  # one "added" event each
    body = client.get("/dashboard").get_data(as_text=True)
    assert body.index("added Third") < body.index("added Second") and "added First" not in body
    older = re.search(r'href="(/dashboard\?before=\d+)#feed" hx-get="(/dashboard\?before=\d+)"', body)
    assert older
    response = client.get(older.group(2), headers=HX)
    fragment = response.get_data(as_text=True)
    assert response.status_code == 200 and _is_fragment(fragment)
    assert fragment.strip().startswith('<section id="feed"')
    assert "added First" in fragment and "added Third" not in fragment and "← Newest" in fragment
    assert "HX-Request" in response.headers["Vary"]
    assert "added First" in client.get(older.group(1)).get_data(as_text=True)  # no JS: full page


def test_feed_with_a_bad_cursor_says_so(client, staff):
    body = client.get("/dashboard?before=abc", headers=HX).get_data(as_text=True)
    assert "Must be a whole number." in body


def test_pages_use_no_inline_style_or_script(client, staff, make):
    contact_id, _ = make.provisioned()
    for path in ("/dashboard", "/crm/contacts", f"/crm/contacts/{contact_id}", "/crm/contacts/new"):
        body = client.get(path).get_data(as_text=True)
        assert " style=" not in body and "<style" not in body
        assert not re.search(r"<script(?![^>]*\bsrc=)", body)
