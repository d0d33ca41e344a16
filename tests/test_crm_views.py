"""The staff pages under /crm through the test client: guards, CSRF, full pages versus htmx
fragments, inline errors, and "Approve & Create Account"."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from onboarding_app import accounts
from onboarding_app.extensions import db
from onboarding_app.models import Contact, FeedEvent, OutboundEmail, User
from tests.conftest import USER_PASSWORD, csrf_token_from, parse, squash

HX = {"HX-Request": "true"}


def _contact(app, contact_id: int) -> Contact:
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        db.session.expunge_all()
        return contact


def _count(app, model, *where) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


@pytest.fixture
def token(staff, auth):
    return auth.csrf("/dashboard")


# --- guards and CSRF -----------------------------------------------------------------------------

STAFF_GETS = [
    "/crm/contacts", "/crm/contacts/new", "/crm/contacts/{id}", "/crm/contacts/{id}/edit",
    "/crm/contacts/{id}/provision", "/crm/contacts/{id}/resend-welcome", "/crm/contacts/{id}/delete",
]
STAFF_POSTS = [
    "/crm/contacts/new", "/crm/contacts/{id}/edit", "/crm/contacts/{id}/status",
    "/crm/contacts/{id}/provision", "/crm/contacts/{id}/resend-welcome", "/crm/contacts/{id}/delete",
]


@pytest.mark.parametrize("path", STAFF_GETS)
def test_anonymous_get_is_sent_to_sign_in(client, make, path):
    response = client.get(path.format(id=make.contact()))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("path", STAFF_POSTS)
def test_anonymous_post_is_sent_to_sign_in(client, make, auth, path):
    contact_id = make.contact()
    response = client.post(path.format(id=contact_id), data={"csrf_token": auth.csrf("/login"), "status": "LOST"})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert _contact(make.app, contact_id).status == "QUALIFIED"


@pytest.mark.parametrize("method,path", [("GET", p) for p in STAFF_GETS] + [("POST", p) for p in STAFF_POSTS])
def test_a_client_user_gets_403(client, make, auth, method, path):
    contact_id = make.contact()
    make.user("client", email="client@example.com", password=USER_PASSWORD)
    assert auth.login("client@example.com", USER_PASSWORD).status_code == 302
    data = {"csrf_token": auth.csrf("/dashboard"), "status": "LOST"}
    response = client.open(path.format(id=contact_id), method=method, data=data if method == "POST" else None)
    assert response.status_code == 403
    assert "for staff only" in parse(response).text("main")
    assert _contact(make.app, contact_id).status == "QUALIFIED"


@pytest.mark.parametrize("headers", [{}, HX], ids=["form", "htmx"])
@pytest.mark.parametrize("path", STAFF_POSTS)
def test_posts_without_the_csrf_token_are_refused(client, staff, make, path, headers):
    contact_id = make.contact()
    response = client.post(path.format(id=contact_id), data={"status": "LOST", "name": "X", "email": "x@example.com"},
                           headers=headers)
    assert response.status_code == 400
    assert "form expired" in parse(response).text()
    assert _contact(make.app, contact_id).status == "QUALIFIED"
    assert _count(make.app, User) == 1  # only the staff member


def test_unknown_contact_is_a_404_page(client, staff, token):
    assert client.get("/crm/contacts/999").status_code == 404
    response = client.post("/crm/contacts/999/provision", data={"csrf_token": token}, headers=HX)
    assert response.status_code == 404
    assert "Contact 999 does not exist." in parse(response).text()


# --- the list ------------------------------------------------------------------------------------


def test_list_full_page_holds_a_plain_get_form_with_search_as_you_type(client, staff, make):
    make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    response = client.get("/crm/contacts")
    page = parse(response)
    assert response.status_code == 200
    assert page.is_document and page.has("main #contact-results")
    form = page.one("form.filters")
    assert (form.attributes["method"], form.attributes["action"]) == ("get", "/crm/contacts")
    search = page.one("form.filters input#q")
    assert search.attributes["name"] == "q"
    assert search.attributes["hx-get"] == "/crm/contacts"
    assert search.attributes["hx-trigger"] == "input changed delay:300ms, search"
    assert search.attributes["hx-target"] == "#contact-results"
    assert page.label("q") == "Search" and page.label("status") == "Status"
    assert page.one("form.filters select#status").attributes["name"] == "status"
    assert page.texts("#contact-results tbody td:first-child a") == ["Ada Lovelace"]
    assert "HX-Request" in response.headers["Vary"]


def test_list_htmx_gets_the_results_fragment(client, staff, make):
    make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    make.contact("LEAD", name="Grace Hopper", email="grace@example.com")
    response = client.get("/crm/contacts?q=GRACE", headers=HX)
    page = parse(response)
    assert response.status_code == 200
    assert not page.is_document
    assert [(n.tag, n.id) for n in page.top] == [("section", "contact-results")]
    assert page.texts("#contact-results tbody td:first-child a") == ["Grace Hopper"]
    assert "HX-Request" in response.headers["Vary"]


def test_list_history_restore_gets_the_full_page(client, staff):
    response = client.get("/crm/contacts?q=x", headers={**HX, "HX-History-Restore-Request": "true"})
    page = parse(response)
    assert page.is_document and page.has("main #contact-results")


def test_list_filters_by_status_and_pages(app, client, staff, make):
    app.config["CONTACTS_PAGE_SIZE"] = 2
    for n in range(3):
        make.contact("LEAD", name=f"Lead {n}")
    make.contact("QUALIFIED", name="Qualified One")
    page = parse(client.get("/crm/contacts?status=LEAD"))
    assert page.texts("#contact-results tbody td:first-child a") == ["Lead 2", "Lead 1"]
    assert "page 1 of 2" in page.text("#contact-results .result-count")
    pager = page.all("#contact-results nav.pager a")
    assert [(squash(a.text()), a.attributes["href"]) for a in pager] == [
        ("Older →", "/crm/contacts?status=LEAD&page=2")]
    page = parse(client.get("/crm/contacts?status=LEAD&page=2", headers=HX))
    assert page.texts("#contact-results tbody td:first-child a") == ["Lead 0"]
    assert page.texts("#contact-results nav.pager a") == ["← Newer"]


def test_list_with_a_bad_filter_says_so_inline(client, staff):
    response = client.get("/crm/contacts?status=NOPE&page=zero")
    page = parse(response)
    assert response.status_code == 422
    (alert,) = page.texts("#contact-results .inline-error")
    assert "Status: Choose one of" in alert and "Page: Must be a whole number." in alert
    assert page.is_document


def test_list_shows_onboarding_progress_of_accounts(client, staff, make):
    make.provisioned()
    page = parse(client.get("/crm/contacts?status=ONBOARDING"))
    (row,) = page.all("#contact-results tbody tr")
    assert squash(row.css("td")[-1].text()) == "0 of 4"


# --- new and edit --------------------------------------------------------------------------------


def test_new_contact_form_has_labelled_fields(client, staff):
    page = parse(client.get("/crm/contacts/new"))
    for field, label in [("name", "Name"), ("email", "Email"), ("company", "Company"), ("phone", "Phone"),
                         ("role", "Account role")]:
        assert page.label(field) == label
        assert page.one(f"main form #{field}").attributes["name"] == field


def test_contact_form_states_the_limits_the_rules_enforce(client, staff):
    """The browser is told the same limits the shared rules (and the API's document) check."""

    page = parse(client.get("/crm/contacts/new"))
    limits = {field.attributes["name"]: field.attributes["maxlength"] for field in page.all("main form input[maxlength]")}
    assert limits == {"name": "200", "email": "254", "company": "200", "phone": "50"}


def test_new_contact_shows_the_service_errors_inline(app, client, staff, token):
    response = client.post("/crm/contacts/new", data={
        "csrf_token": token, "name": "", "email": "not-an-email", "phone": "call me", "role": "admin"})
    page = parse(response)
    assert response.status_code == 422
    assert "Nothing was saved" in " ".join(page.alerts())
    assert page.field_error("name") == "This field is required."
    assert page.field_error("email").startswith("Enter a valid email address")
    assert page.field_error("phone").startswith("Use digits")
    assert page.field_error("role") == "Choose one of: client, partner."
    assert not page.has("#company[aria-invalid]")
    assert page.attr("#phone", "value") == "call me"  # what was typed stays
    assert _count(app, Contact) == 0


def test_new_contact_with_a_taken_email_is_refused_inline(app, client, staff, make, token):
    make.contact(email="ada@example.com")
    response = client.post("/crm/contacts/new", data={
        "csrf_token": token, "name": "Another Ada", "email": "ADA@example.com", "role": "client"})
    assert response.status_code == 409
    assert parse(response).field_error("email") == "A contact with the email ada@example.com already exists."
    assert _count(app, Contact) == 1


def test_new_contact_redirects_to_its_page(app, client, staff, token):
    response = client.post("/crm/contacts/new", data={
        "csrf_token": token, "name": "Ada Lovelace", "email": "Ada@Example.com", "company": "Engines",
        "phone": "+44 20 1234", "role": "partner"})
    assert response.status_code == 302
    page = parse(client.get(response.headers["Location"]))
    assert page.flashes() == ["Ada Lovelace was added as a lead."]
    assert page.text("h1") == "Ada Lovelace"
    assert "ada@example.com" in page.texts(".details dd")
    assert page.text("#contact-status .badge") == "LEAD"
    with app.app_context():
        contact = db.session.execute(select(Contact)).scalar_one()
        assert (contact.role, contact.status, contact.owner_id) == ("partner", "LEAD", staff)


def test_edit_contact(app, client, staff, make, token):
    contact_id = make.contact("LEAD", name="Ada")
    form = parse(client.get(f"/crm/contacts/{contact_id}/edit"))
    assert form.attr("#name", "value") == "Ada"
    assert form.attr("main form #email", "name") == "email"  # no account yet: the email can change
    response = client.post(f"/crm/contacts/{contact_id}/edit", data={
        "csrf_token": token, "name": "Ada Lovelace", "email": "Ada@Engines.example", "company": "Engines",
        "phone": "", "role": "client"})
    assert response.status_code == 302
    contact = _contact(app, contact_id)
    assert (contact.name, contact.email) == ("Ada Lovelace", "ada@engines.example")

    response = client.post(f"/crm/contacts/{contact_id}/edit", data={
        "csrf_token": token, "name": " ", "company": "", "phone": "", "role": "client"})
    assert response.status_code == 422
    assert parse(response).field_error("name") == "This field is required."


def test_edit_form_refuses_what_the_api_refuses(app, client, staff, make, token):
    make.contact("LEAD", email="taken@example.com")
    contact_id = make.contact("LEAD", name="Ada", email="ada@example.com")
    response = client.post(f"/crm/contacts/{contact_id}/edit", data={
        "csrf_token": token, "name": "N" * 201, "email": "ada@", "company": "ok\x00", "phone": "+1", "role": "x"})
    assert response.status_code == 422
    errors = parse(response).field_errors()
    assert errors.pop("email").startswith("Enter a valid email address")
    assert errors == {"name": "At most 200 characters.", "company": "Contains a character that is not allowed.",
                      "role": "Choose one of: client, partner."}
    response = client.post(f"/crm/contacts/{contact_id}/edit", data={
        "csrf_token": token, "name": "Ada", "email": "TAKEN@example.com", "role": "client"})
    assert response.status_code == 409
    assert parse(response).field_errors() == {"email": "A contact with the email taken@example.com already exists."}
    assert _contact(app, contact_id).email == "ada@example.com"


def test_email_cannot_change_once_the_account_exists(app, client, staff, make, token):
    contact_id, _ = make.provisioned()
    email = _contact(app, contact_id).email
    form = parse(client.get(f"/crm/contacts/{contact_id}/edit"))
    assert not form.has('main form [name="email"]')
    assert "cannot change once the account exists" in form.text("main form")
    response = client.post(f"/crm/contacts/{contact_id}/edit", data={
        "csrf_token": token, "name": "Renamed", "email": "other@example.com", "role": "client"})
    assert response.status_code == 409
    assert parse(response).field_errors() == {"email": "The email cannot change once the account exists."}
    assert _contact(app, contact_id).email == email


def test_role_cannot_change_once_the_account_exists(app, client, staff, make, token):
    contact_id, _ = make.provisioned()
    response = client.post(f"/crm/contacts/{contact_id}/edit", data={
        "csrf_token": token, "name": "Contact", "company": "", "phone": "", "role": "partner"})
    assert response.status_code == 409
    assert parse(response).field_error("role") == "The role cannot change once the account exists."
    assert _contact(app, contact_id).role == "client"


# --- a contact's page ----------------------------------------------------------------------------


def test_qualified_contact_page_offers_approve_with_a_confirm(client, staff, make):
    contact_id = make.contact("QUALIFIED", name="Ada Lovelace")
    page = parse(client.get(f"/crm/contacts/{contact_id}"))
    # Asks first: a dialog loaded by htmx, a confirmation page without JavaScript.
    form = page.one(f"#approve-{contact_id} form")
    assert form.attributes["hx-get"] == form.attributes["action"] == f"/crm/contacts/{contact_id}/provision"
    assert form.attributes["method"] == "get" and form.attributes["hx-target"] == "#modal-slot"
    assert not page.has("[hx-confirm]")
    assert page.buttons(f"#approve-{contact_id}") == ["Approve & Create Account"]
    assert page.buttons("#contact-status") == ["Back to lead", "Mark lost"]


@pytest.mark.parametrize("status,offered", [
    ("LEAD", ["Qualify", "Mark lost"]), ("LOST", ["Reopen"]),
])
def test_other_statuses_offer_their_moves_but_no_approve(client, staff, make, status, offered):
    contact_id = make.contact(status)
    page = parse(client.get(f"/crm/contacts/{contact_id}"))
    assert "Approve & Create Account" not in page.buttons()
    assert page.buttons("#contact-status") == offered


def test_provisioned_contact_page_shows_progress_and_welcome_email(client, staff, make, mailbox):
    contact_id, _ = make.provisioned()
    page = parse(client.get(f"/crm/contacts/{contact_id}"))
    account = f"#account-{contact_id}"
    assert "Approve & Create Account" not in page.buttons()
    assert page.text(f"{account} .onboarding-count") == "0 of 4 required done"
    progress = page.one(f"{account} progress")
    assert (progress.attributes["value"], progress.attributes["max"]) == ("0", "4")
    assert page.text(f"{account} .welcome-email .badge.email-sent") == "sent"
    assert "1 attempt" in page.text(f"{account} .welcome-email")
    assert page.buttons(account) == ["Resend welcome email"]
    assert page.attr(f"{account} form", "hx-get") == f"/crm/contacts/{contact_id}/resend-welcome"


def test_failed_welcome_email_shows_its_error(app, client, staff, make, mailbox):
    mailbox.refuse = True
    contact_id, _ = make.provisioned()
    page = parse(client.get(f"/crm/contacts/{contact_id}"))
    assert page.text(f"#account-{contact_id} .welcome-email .badge.email-pending") == "pending"
    assert page.text(f"#account-{contact_id} .welcome-email .inline-error").startswith("Last error: SMTP")


# --- status actions ------------------------------------------------------------------------------


def test_qualify_with_htmx_swaps_the_state_region(app, client, staff, make, token):
    contact_id = make.contact("LEAD", name="Ada Lovelace")
    response = client.post(f"/crm/contacts/{contact_id}/status", data={"csrf_token": token, "status": "QUALIFIED"},
                           headers=HX)
    page = parse(response)
    assert response.status_code == 200 and not page.is_document
    assert [n.id for n in page.top] == ["contact-state"]
    assert page.text("#contact-status .badge") == "QUALIFIED"
    assert page.buttons(f"#approve-{contact_id}") == ["Approve & Create Account"]
    assert _contact(app, contact_id).status == "QUALIFIED"


def test_status_change_without_js_redirects_back(app, client, staff, make, token):
    contact_id = make.contact("QUALIFIED", name="Ada Lovelace")
    response = client.post(f"/crm/contacts/{contact_id}/status", data={"csrf_token": token, "status": "LOST"})
    assert response.status_code == 302 and response.headers["Location"] == f"/crm/contacts/{contact_id}"
    page = parse(client.get(f"/crm/contacts/{contact_id}"))
    assert page.flashes() == ["Ada Lovelace is now LOST."]
    assert page.text("#contact-status .badge") == "LOST"


def test_invalid_transition_is_shown_inline(app, client, staff, make, token):
    contact_id = make.contact("LEAD")
    response = client.post(f"/crm/contacts/{contact_id}/status", data={"csrf_token": token, "status": "ACTIVE"},
                           headers=HX)
    page = parse(response)
    assert response.status_code == 409 and not page.is_document
    assert page.text("#status-message") == "A contact in status LEAD cannot be moved to ACTIVE."
    # Without JavaScript: back to the page, the reason flashed there.
    response = client.post(f"/crm/contacts/{contact_id}/status", data={"csrf_token": token, "status": "BOGUS"})
    assert response.status_code == 302
    (flash,) = parse(client.get(response.headers["Location"])).flashes()
    assert "Choose one of" in flash
    assert _contact(app, contact_id).status == "LEAD"


# --- approve & create account --------------------------------------------------------------------


def test_approve_with_htmx_swaps_in_the_result(app, client, staff, make, token, mailbox):
    contact_id = make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    response = client.post(f"/crm/contacts/{contact_id}/provision", data={"csrf_token": token, "origin": "contact"},
                           headers=HX)
    page = parse(response)
    assert response.status_code == 200 and not page.is_document
    assert "HX-Request" in response.headers["Vary"]
    # The approve control showing the result, then the status region out of band.
    assert [(n.id, n.attributes.get("hx-swap-oob")) for n in page.top] == [
        (f"approve-{contact_id}", None), ("contact-status", "true")]
    notice = page.text(f"#approve-{contact_id} .notice")
    assert notice == "Account created for ada@example.com; onboarding 0 of 4 required done."
    assert page.text(f"#account-{contact_id} .welcome-email .badge.email-sent") == "sent"
    assert page.text("#contact-status .badge") == "ONBOARDING" and not page.has("#pipeline")
    assert response.headers["HX-Trigger"] == "feed-changed"
    assert [m["To"] for m in mailbox.messages] == ["ada@example.com"]
    assert _contact(app, contact_id).status == "ONBOARDING"
    with app.app_context():
        event = db.session.execute(select(FeedEvent).where(FeedEvent.type == "onboarding.account.provisioned")).scalar_one()
        assert event.actor_id == staff


def test_approve_again_says_it_is_already_done(app, client, staff, make, token, mailbox):
    contact_id, _ = make.provisioned(email="ada@example.com")
    response = client.post(f"/crm/contacts/{contact_id}/provision", data={"csrf_token": token}, headers=HX)
    page = parse(response)
    assert response.status_code == 409 and not page.is_document
    assert page.texts(".inline-error.approve-result") == [
        "Already approved: the account ada@example.com exists; nothing was changed."]
    assert "Approve & Create Account" not in page.buttons()
    assert "HX-Trigger" not in response.headers
    assert len(mailbox.messages) == 1
    assert _count(app, OutboundEmail) == 1


def test_approve_a_contact_that_is_not_qualified_is_refused_inline(app, client, staff, make, token, mailbox):
    contact_id = make.contact("LEAD", name="Grace Hopper")
    response = client.post(f"/crm/contacts/{contact_id}/provision", data={"csrf_token": token}, headers=HX)
    page = parse(response)
    assert response.status_code == 400 and not page.is_document
    assert page.text(f"#approve-{contact_id} .inline-error.approve-result") == (
        "Grace Hopper is LEAD; only a QUALIFIED contact can get an account.")
    assert _count(app, User) == 1 and mailbox.messages == []


def test_approve_without_js_redirects_back(app, client, staff, make, token, mailbox):
    contact_id = make.contact("QUALIFIED", email="ada@example.com")
    response = client.post(f"/crm/contacts/{contact_id}/provision", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == f"/crm/contacts/{contact_id}"
    page = parse(client.get(response.headers["Location"]))
    (flash,) = page.flashes()
    assert flash.startswith("Account created for ada@example.com")
    assert page.text(f"#account-{contact_id} .onboarding-count") == "0 of 4 required done"
    # A refusal without JS: flashed on the page it came from.
    response = client.post(f"/crm/contacts/{contact_id}/provision", data={"csrf_token": token, "origin": "dashboard"})
    assert response.headers["Location"] == "/dashboard"
    (flash,) = parse(client.get("/dashboard")).flashes()
    assert flash.startswith("Already approved")


def test_two_staff_approving_at_once_make_one_account(app, make, mailbox):
    make.user("staff", email="sam@example.com", name="Sam")
    make.user("staff", email="kim@example.com", name="Kim")
    contact_id = make.contact("QUALIFIED", email="ada@example.com")
    clients = []
    for email in ("sam@example.com", "kim@example.com"):
        c = app.test_client()
        token = csrf_token_from(c.get("/login"))
        c.post("/login", data={"email": email, "password": "staff-correct-horse-42", "csrf_token": token})
        clients.append((c, csrf_token_from(c.get("/dashboard"))))
    barrier, responses = threading.Barrier(2), []

    def approve(c, token):
        barrier.wait()
        responses.append(c.post(f"/crm/contacts/{contact_id}/provision", data={"csrf_token": token}, headers=HX))

    threads = [threading.Thread(target=approve, args=pair) for pair in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.status_code for r in responses) == [200, 409]
    loser = parse(next(r for r in responses if r.status_code == 409))
    (alert,) = loser.texts(".inline-error.approve-result")
    assert alert.startswith("Already approved")
    assert _count(app, User, User.email == "ada@example.com") == 1
    assert _count(app, OutboundEmail) == 1 and len(mailbox.messages) == 1


# --- resend the welcome email ------------------------------------------------------------------


def test_resend_welcome_email_with_htmx(app, client, staff, make, token, mailbox):
    contact_id, _ = make.provisioned(email="ada@example.com")
    first = mailbox.temporary_password("ada@example.com")
    response = client.post(f"/crm/contacts/{contact_id}/resend-welcome", data={"csrf_token": token}, headers=HX)
    page = parse(response)
    assert response.status_code == 200 and not page.is_document
    assert [n.id for n in page.top] == [f"account-{contact_id}"]
    assert page.text(f"#account-{contact_id} .notice.resend-result").startswith(
        "A new temporary password was issued for ada@example.com")
    assert len(mailbox.to("ada@example.com")) == 2
    assert mailbox.temporary_password("ada@example.com") != first


def test_resend_is_refused_inline_once_the_password_is_set(app, client, staff, make, token, mailbox):
    contact_id, user_id = make.provisioned(email="ada@example.com")
    with app.app_context():
        accounts.set_password(db.session, user_id, "violet-teapot-harbour-19")
    page = parse(client.get(f"/crm/contacts/{contact_id}"))
    assert page.buttons(f"#account-{contact_id}") == []
    assert "Set by" in page.text(f"#account-{contact_id} .details")
    response = client.post(f"/crm/contacts/{contact_id}/resend-welcome", data={"csrf_token": token}, headers=HX)
    assert response.status_code == 409
    (alert,) = parse(response).texts(f"#account-{contact_id} .inline-error.resend-result")
    assert "has already set their own password" in alert
    assert len(mailbox.messages) == 1


def test_resend_for_a_contact_without_account(client, staff, make, token):
    contact_id = make.contact("LEAD", name="Grace Hopper")
    response = client.post(f"/crm/contacts/{contact_id}/resend-welcome", data={"csrf_token": token}, headers=HX)
    assert response.status_code == 409
    assert parse(response).texts(".inline-error.resend-result") == ["Grace Hopper has no account yet."]
    response = client.post(f"/crm/contacts/{contact_id}/resend-welcome", data={"csrf_token": token})
    assert response.status_code == 302
    assert parse(client.get(response.headers["Location"])).flashes() == [
        "Grace Hopper has no account yet."]
