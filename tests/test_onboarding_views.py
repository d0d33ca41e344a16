"""/dashboard (the user's checklist and feed; the staff overview) and "Mark done" through the
test client: guards, CSRF, full pages versus htmx fragments, out-of-band progress, PRG."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from onboarding_app import accounts, checklist, provisioning
from onboarding_app.extensions import db
from onboarding_app.models import Contact, FeedEvent
from tests.answers import form
from tests.conftest import NEW_PASSWORD, USER_PASSWORD, Auth, parse, squash

HX = {"HX-Request": "true"}
CLIENT_TASKS = ["set-password", "complete-profile", "accept-terms", "add-billing-contact",
                "book-kickoff-call", "invite-teammates"]


def _progress(page) -> tuple[str, str, str]:
    """The progress bar's value and max, and the sentence beside it."""
    bar = page.one("#onboarding-progress progress")
    return bar.attributes["value"], bar.attributes["max"], page.text("#onboarding-progress .progress-text")


def _feed(page) -> list[str]:
    return page.texts("#feed ol.feed li .feed-text")


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
    response = client.post("/onboarding/tasks/accept-terms/complete", data={"csrf_token": token, **form("accept-terms")}, headers=HX)
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
        response = client.post(f"/onboarding/tasks/{slug}/complete", data={"csrf_token": token, **form(slug)}, headers=HX)
        assert response.status_code == 404
        assert "There is no task" in parse(response).text("main")


# --- the user's dashboard ------------------------------------------------------------------------


def test_user_dashboard_shows_the_checklist_above_the_feed(client, user):
    response = client.get("/dashboard")
    page = parse(response)
    assert response.status_code == 200 and page.is_document
    assert "HX-Request" in response.headers["Vary"]
    ids = [node.id for node in page.all("main [id]")]  # in document order
    assert ids.index("onboarding-widget") < ids.index("feed")
    assert _progress(page) == ("1", "4", "1 of 4 required done")
    assert [row.id for row in page.all("#onboarding-widget li.task")] == [f"task-{slug}" for slug in CLIENT_TASKS]
    assert page.buttons("#task-set-password") == [] and page.texts("#task-set-password .badge")[-1] == "Done"
    # A data task's form opens in its row ("Fill in"); "Mark done" is for manual tasks.
    assert page.text("#task-complete-profile summary") == "Fill in"
    assert page.buttons("#task-complete-profile") == ["Save profile"]
    assert page.buttons("#task-book-kickoff-call") == ["Mark done", "Skip"]
    assert page.texts("#task-complete-profile .badge") == ["Required", "To do"]
    assert page.texts("#task-invite-teammates .badge") == ["Optional", "To do"]
    form = page.one("#task-accept-terms form")
    assert (form.attributes["method"], form.attributes["action"]) == ("post", "/onboarding/tasks/accept-terms/complete")
    assert form.attributes["hx-post"] == "/onboarding/tasks/accept-terms/complete"
    assert form.attributes["hx-target"] == "#task-accept-terms"
    assert "Tell us your job title" in page.text("#task-complete-profile .task-description")
    assert "Margaret Hamilton completed “Set your password”" in _feed(page)


def test_mark_done_with_htmx_returns_the_row_and_the_progress_out_of_band(app, client, user, token):
    response = client.post("/onboarding/tasks/complete-profile/complete", data={"csrf_token": token, **form("complete-profile")}, headers=HX)
    page = parse(response)
    assert response.status_code == 200 and not page.is_document
    # The row, then the progress bar out of band.
    assert [(n.id, n.attributes.get("hx-swap-oob")) for n in page.top] == [
        ("task-complete-profile", None), ("onboarding-progress", "true")]
    assert page.texts("#task-complete-profile .badge")[-1] == "Done"
    assert page.text("#task-complete-profile summary") == "Edit"
    assert _progress(page) == ("2", "4", "2 of 4 required done")
    assert response.headers["HX-Trigger"] == "feed-changed"
    assert "HX-Retarget" not in response.headers


def test_mark_done_twice_changes_nothing(app, client, user, token):
    client.post("/onboarding/tasks/accept-terms/complete", data={"csrf_token": token, **form("accept-terms")}, headers=HX)
    response = client.post("/onboarding/tasks/accept-terms/complete", data={"csrf_token": token, **form("accept-terms")}, headers=HX)
    assert response.status_code == 200 and "HX-Trigger" not in response.headers
    assert _progress(parse(response)) == ("2", "4", "2 of 4 required done")
    with app.app_context():
        events = db.session.execute(
            select(func.count()).select_from(FeedEvent).where(FeedEvent.type == "onboarding.task.completed")
        ).scalar_one()
        assert events == 2  # set-password and accept-terms, once each


def test_an_optional_task_leaves_the_required_count_alone(client, user, token):
    page = parse(client.post("/onboarding/tasks/invite-teammates/complete", data={"csrf_token": token, **form("invite-teammates")}, headers=HX))
    assert [n.id for n in page.top] == ["task-invite-teammates", "onboarding-progress"]
    assert page.texts("#task-invite-teammates .badge") == ["Optional", "Done"]
    assert _progress(page) == ("1", "4", "1 of 4 required done")


def test_the_last_required_task_swaps_the_widget_for_all_set(app, client, user, token):
    contact_id, _ = user
    for slug in ("complete-profile", "accept-terms"):
        client.post(f"/onboarding/tasks/{slug}/complete", data={"csrf_token": token, **form(slug)}, headers=HX)
    response = client.post("/onboarding/tasks/add-billing-contact/complete", data={"csrf_token": token, **form("add-billing-contact")}, headers=HX)
    page = parse(response)
    assert response.status_code == 200 and not page.is_document
    assert response.headers["HX-Retarget"] == "#onboarding-widget"
    assert response.headers["HX-Reswap"] == "innerHTML"
    assert [n.id for n in page.top] == ["all-set"]
    assert page.text("#all-set h2") == "You're all set" and not page.has("#onboarding-progress")
    # The optional tasks still open stay doable.
    assert [row.id for row in page.all("#all-set li.task")] == ["task-book-kickoff-call", "task-invite-teammates"]
    assert page.buttons("#task-book-kickoff-call") == ["Mark done", "Skip"]
    assert _status(app, contact_id) == "ACTIVE"

    page = parse(client.get("/dashboard"))
    assert page.text("#onboarding-widget #all-set h2") == "You're all set" and not page.has("progress")
    assert _feed(page)[0] == "Margaret Hamilton finished onboarding and is now active"
    # An optional task after that: its row only, no progress bar to update.
    response = client.post("/onboarding/tasks/invite-teammates/complete", data={"csrf_token": token, **form("invite-teammates")}, headers=HX)
    page = parse(response)
    assert "HX-Retarget" not in response.headers
    assert [(n.id, n.attributes.get("hx-swap-oob")) for n in page.top] == [("task-invite-teammates", None)]


def test_staff_see_a_finished_onboarding_on_the_contact_page_and_in_the_feed(app, client, make, auth):
    sam = make.user("staff", email="sam@example.com", name="Sam")
    contact_id = make.contact("QUALIFIED", name="Margaret Hamilton", email="margaret@example.com")
    with app.app_context():
        user_id = provisioning.provision_account(db.session, contact_id, actor=sam).user.id
        accounts.set_password(db.session, user_id, NEW_PASSWORD)
    auth.login("margaret@example.com", NEW_PASSWORD)
    token = auth.csrf("/dashboard")
    for slug in ("complete-profile", "accept-terms", "add-billing-contact"):
        response = client.post(f"/onboarding/tasks/{slug}/complete", data={"csrf_token": token, **form(slug)}, headers=HX)
        assert response.status_code == 200 and response.headers["HX-Trigger"] == "feed-changed"

    staff = Auth(app.test_client())
    assert staff.login("sam@example.com").status_code == 302
    page = parse(staff.client.get(f"/crm/contacts/{contact_id}"))
    assert page.text("#contact-status .badge") == "ACTIVE"
    assert page.text(f"#account-{contact_id} .onboarding-count") == "4 of 4 required done · complete"
    feed = _feed(parse(staff.client.get("/dashboard")))
    assert feed[0] == "Margaret Hamilton finished onboarding and is now active"
    assert "Sam approved Margaret Hamilton; account created" in feed


def test_mark_done_without_js_posts_and_redirects(app, client, user, token):
    contact_id, _ = user
    response = client.post("/onboarding/tasks/complete-profile/complete", data={"csrf_token": token, **form("complete-profile")})
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard#task-complete-profile"
    page = parse(client.get("/dashboard"))
    assert page.flashes() == ["Done: Complete your profile."]
    assert _progress(page) == ("2", "4", "2 of 4 required done")
    for slug in ("accept-terms", "add-billing-contact"):
        client.post(f"/onboarding/tasks/{slug}/complete", data={"csrf_token": token, **form(slug)})
    page = parse(client.get("/dashboard"))
    assert page.text("#onboarding-widget #all-set h2") == "You're all set"
    assert _status(app, contact_id) == "ACTIVE"


def test_a_user_without_a_contact_has_no_checklist(client, make, auth):
    make.user("client", email="solo@example.com", password=USER_PASSWORD)
    auth.login("solo@example.com", USER_PASSWORD)
    page = parse(client.get("/dashboard"))
    assert "There is no onboarding checklist for your account." in page.texts("main > p")
    assert not page.has("#onboarding-widget") and page.has("main #feed")


def test_a_user_sees_only_their_own_feed(client, user, make):
    make.contact("QUALIFIED", name="Somebody Else")
    page = parse(client.get("/dashboard"))
    feed = _feed(page)
    assert feed and all("Margaret Hamilton" in event for event in feed)
    assert "Somebody Else" not in page.text()


# --- the staff dashboard and the feed ------------------------------------------------------------


def test_staff_dashboard_shows_pipeline_waiting_contacts_and_feed(app, client, staff, make):
    ada = make.contact("QUALIFIED", name="Ada Lovelace")
    make.contact("LEAD", name="Grace Hopper")
    make.contact("LOST")
    with app.app_context():
        provisioning.provision_account(db.session, make.contact("QUALIFIED", name="Alan Turing"), actor=staff)
    response = client.get("/dashboard")
    page = parse(response)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert _pipeline(page) == {"LEAD": 1, "QUALIFIED": 1, "ONBOARDING": 1, "ACTIVE": 0, "LOST": 1}
    assert page.texts("#waiting li > div > a") == ["Ada Lovelace"]
    form = page.one(f"#waiting #waiting-{ada} #approve-{ada} form")
    assert form.css_first('input[name="origin"]').attributes["value"] == "dashboard"
    assert form.attributes["hx-get"] == f"/crm/contacts/{ada}/provision"
    assert "Sam Staff approved Alan Turing; account created" in _feed(page)


def test_approve_from_the_dashboard_swaps_the_row_result(app, client, staff, make, auth, mailbox):
    ada = make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    token = auth.csrf("/dashboard")
    response = client.post(f"/crm/contacts/{ada}/provision", data={"csrf_token": token, "origin": "dashboard"},
                           headers=HX)
    page = parse(response)
    assert response.status_code == 200 and not page.is_document
    # The row's approve control showing the result, then the pipeline counts out of band
    # (the dashboard has no status region to update).
    assert [(n.id, n.attributes.get("hx-swap-oob")) for n in page.top] == [(f"approve-{ada}", None), ("pipeline", "true")]
    assert page.text(f"#approve-{ada} .notice") == "Account created for ada@example.com; onboarding 0 of 4 required done."
    assert page.attr(f"#approve-{ada} a", "href") == f"/crm/contacts/{ada}"
    assert _pipeline(page)["QUALIFIED"] == 0 and _pipeline(page)["ONBOARDING"] == 1
    assert response.headers["HX-Trigger"] == "feed-changed"


def _pipeline(page) -> dict[str, int]:
    """The staff dashboard's count per status."""
    return {
        link.css_first(".badge").text(): int(link.css_first("strong").text())
        for link in page.all("#pipeline li a")
    }


def test_feed_pages_with_the_before_cursor(app, client, staff, make):
    app.config["FEED_PAGE_SIZE"] = 2
    for name in ("First", "Second", "Third"):
        make.contact("LEAD", name=name)  # one "added" event each
    page = parse(client.get("/dashboard"))
    assert [text.split(" added ")[-1] for text in _feed(page)] == ["Third", "Second"]
    older = page.one("#feed nav.pager a")
    assert squash(older.text()) == "Older events →"
    assert older.attributes["href"] == older.attributes["hx-get"] + "#feed"
    assert older.attributes["hx-get"].startswith("/dashboard?before=")
    response = client.get(older.attributes["hx-get"], headers=HX)
    fragment = parse(response)
    assert response.status_code == 200 and not fragment.is_document
    assert [n.id for n in fragment.top] == ["feed"]
    assert [text.split(" added ")[-1] for text in _feed(fragment)] == ["First"]
    assert fragment.texts("#feed nav.pager a") == ["← Newest"]
    assert "HX-Request" in response.headers["Vary"]
    no_js = parse(client.get(older.attributes["href"].split("#")[0]))  # no JS: the full page
    assert no_js.is_document and [text.split(" added ")[-1] for text in _feed(no_js)] == ["First"]


def test_feed_with_a_bad_cursor_says_so(client, staff):
    page = parse(client.get("/dashboard?before=abc", headers=HX))
    (alert,) = page.texts('#feed [role="alert"]')
    assert "Must be a whole number." in alert


def test_pages_use_no_inline_style_or_script(client, staff, make):
    contact_id, _ = make.provisioned()
    for path in ("/dashboard", "/crm/contacts", f"/crm/contacts/{contact_id}", "/crm/contacts/new"):
        page = parse(client.get(path))
        assert page.all("[style]") == [] and page.all("style") == []
        scripts = page.all("script")
        assert scripts and all(s.attributes.get("src") and not s.text().strip() for s in scripts)
        # No inline event handlers either (onclick=...): the CSP would refuse them.
        assert [a for n in page.all("*") for a in n.attributes if a.lower().startswith("on")] == []
