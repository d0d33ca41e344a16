"""The staff pages under /crm through the test client: guards, CSRF, full pages versus htmx
fragments, inline errors, and "Approve & Create Account"."""

from __future__ import annotations

import threading
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from onboarding_app import accounts
from onboarding_app.extensions import db
from onboarding_app.models import Contact, FeedEvent, OutboundEmail, User
from tests.conftest import USER_PASSWORD, csrf_token_from

HX = {"HX-Request": "true"}


def _contact(app, contact_id: int) -> Contact:
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        db.session.expunge_all()
        return contact


def _count(app, model, *where) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def _is_fragment(body: str) -> bool:
    return "<html" not in body and "<!doctype" not in body.lower()


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
    assert "for staff only" in response.get_data(as_text=True)
    assert _contact(make.app, contact_id).status == "QUALIFIED"


@pytest.mark.parametrize("headers", [{}, HX], ids=["form", "htmx"])
@pytest.mark.parametrize("path", STAFF_POSTS)
def test_posts_without_the_csrf_token_are_refused(client, staff, make, path, headers):
    contact_id = make.contact()
    response = client.post(path.format(id=contact_id), data={"status": "LOST", "name": "X", "email": "x@example.com"},
                           headers=headers)
    assert response.status_code == 400
    assert "form expired" in response.get_data(as_text=True)
    assert _contact(make.app, contact_id).status == "QUALIFIED"
    assert _count(make.app, User) == 1  # only the staff member


def test_unknown_contact_is_a_404_page(client, staff, token):
    assert client.get("/crm/contacts/999").status_code == 404
    response = client.post("/crm/contacts/999/provision", data={"csrf_token": token}, headers=HX)
    assert response.status_code == 404
    assert "Contact 999 does not exist." in response.get_data(as_text=True)


# --- the list ------------------------------------------------------------------------------------


def test_list_full_page_holds_a_plain_get_form_with_search_as_you_type(client, staff, make):
    make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    response = client.get("/crm/contacts")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" in body and 'id="contact-results"' in body
    assert 'method="get" action="/crm/contacts"' in body
    assert 'hx-get="/crm/contacts" hx-trigger="input changed delay:300ms, search"' in body
    assert '<label for="q">Search</label>' in body and '<label for="status">Status</label>' in body
    assert "Ada Lovelace" in body
    assert "HX-Request" in response.headers["Vary"]


def test_list_htmx_gets_the_results_fragment(client, staff, make):
    make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    make.contact("LEAD", name="Grace Hopper", email="grace@example.com")
    response = client.get("/crm/contacts?q=GRACE", headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert _is_fragment(body)
    assert body.strip().startswith('<section id="contact-results"')
    assert "Grace Hopper" in body and "Ada Lovelace" not in body
    assert "HX-Request" in response.headers["Vary"]


def test_list_history_restore_gets_the_full_page(client, staff):
    response = client.get("/crm/contacts?q=x", headers={**HX, "HX-History-Restore-Request": "true"})
    assert "<html" in response.get_data(as_text=True)


def test_list_filters_by_status_and_pages(app, client, staff, make):
    app.config["CONTACTS_PAGE_SIZE"] = 2
    for n in range(3):
        make.contact("LEAD", name=f"Lead {n}")
    make.contact("QUALIFIED", name="Qualified One")
    body = client.get("/crm/contacts?status=LEAD").get_data(as_text=True)
    assert "Lead 2" in body and "Lead 1" in body and "Lead 0" not in body and "Qualified One" not in body
    assert "page 1 of 2" in body and "/crm/contacts?status=LEAD&amp;page=2" in body
    body = client.get("/crm/contacts?status=LEAD&page=2", headers=HX).get_data(as_text=True)
    assert "Lead 0" in body and "Lead 2" not in body and "← Newer" in body


def test_list_with_a_bad_filter_says_so_inline(client, staff):
    response = client.get("/crm/contacts?status=NOPE&page=zero")
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Status: Choose one of" in body and "Page: Must be a whole number." in body
    assert "<html" in body


def test_list_shows_onboarding_progress_of_accounts(client, staff, make):
    make.provisioned()
    body = client.get("/crm/contacts?status=ONBOARDING").get_data(as_text=True)
    assert "0 of 4" in body


# --- new and edit --------------------------------------------------------------------------------


def test_new_contact_form_has_labelled_fields(client, staff):
    body = client.get("/crm/contacts/new").get_data(as_text=True)
    for field, label in [("name", "Name"), ("email", "Email"), ("company", "Company"), ("phone", "Phone"),
                         ("role", "Account role")]:
        assert f'<label for="{field}">{label}</label>' in body


def test_contact_form_states_the_limits_the_rules_enforce(client, staff):
    """The browser is told the same limits the shared rules (and the API's document) check."""

    class Inputs(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.limits: dict[str, str] = {}

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "input" and "maxlength" in attrs:
                self.limits[attrs["name"]] = attrs["maxlength"]

    parser = Inputs()
    parser.feed(client.get("/crm/contacts/new").get_data(as_text=True))
    assert parser.limits == {"name": "200", "email": "254", "company": "200", "phone": "50"}


def test_new_contact_shows_the_service_errors_inline(app, client, staff, token):
    response = client.post("/crm/contacts/new", data={
        "csrf_token": token, "name": "", "email": "not-an-email", "phone": "call me", "role": "admin"})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Nothing was saved" in body
    assert 'id="name-error">This field is required.' in body
    assert 'id="email-error">Enter a valid email address' in body
    assert 'id="phone-error">Use digits' in body
    assert 'id="role-error">Choose one of: client, partner.' in body
    assert 'aria-invalid="true"' in body
    assert 'value="call me"' in body  # what was typed stays
    assert _count(app, Contact) == 0


def test_new_contact_with_a_taken_email_is_refused_inline(app, client, staff, make, token):
    make.contact(email="ada@example.com")
    response = client.post("/crm/contacts/new", data={
        "csrf_token": token, "name": "Another Ada", "email": "ADA@example.com", "role": "client"})
    assert response.status_code == 409
    assert "A contact with the email ada@example.com already exists." in response.get_data(as_text=True)
    assert _count(app, Contact) == 1


def test_new_contact_redirects_to_its_page(app, client, staff, token):
    response = client.post("/crm/contacts/new", data={
        "csrf_token": token, "name": "Ada Lovelace", "email": "Ada@Example.com", "company": "Engines",
        "phone": "+44 20 1234", "role": "partner"})
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    body = page.get_data(as_text=True)
    assert "Ada Lovelace was added as a lead." in body
    assert "ada@example.com" in body and ">LEAD<" in body
    with app.app_context():
        contact = db.session.execute(select(Contact)).scalar_one()
        assert (contact.role, contact.status, contact.owner_id) == ("partner", "LEAD", staff)


def test_edit_contact(app, client, staff, make, token):
    contact_id = make.contact("LEAD", name="Ada")
    form = client.get(f"/crm/contacts/{contact_id}/edit").get_data(as_text=True)
    assert 'value="Ada"' in form and 'name="email"' in form  # no account yet: the email can change
    response = client.post(f"/crm/contacts/{contact_id}/edit", data={
        "csrf_token": token, "name": "Ada Lovelace", "email": "Ada@Engines.example", "company": "Engines",
        "phone": "", "role": "client"})
    assert response.status_code == 302
    contact = _contact(app, contact_id)
    assert (contact.name, contact.email) == ("Ada Lovelace", "ada@engines.example")

    response = client.post(f"/crm/contacts/{contact_id}/edit", data={
        "csrf_token": token, "name": " ", "company": "", "phone": "", "role": "client"})
    assert response.status_code == 422
    assert 'id="name-error">This field is required.' in response.get_data(as_text=True)


class _FieldErrors(HTMLParser):
    """The sentence under each field: the forms macro's ``<small class="field-error" id="NAME-error">``."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, str] = {}
        self._field: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "small" and "field-error" in (attrs.get("class") or "").split():
            self._field = attrs["id"].removesuffix("-error")
            self.errors[self._field] = ""

    def handle_data(self, data):
        if self._field:
            self.errors[self._field] += data

    def handle_endtag(self, tag):
        self._field = None


def field_errors(body: str) -> dict[str, str]:
    parser = _FieldErrors()
    parser.feed(body)
    return parser.errors


def test_edit_form_refuses_what_the_api_refuses(app, client, staff, make, token):
    make.contact("LEAD", email="taken@example.com")
    contact_id = make.contact("LEAD", name="Ada", email="ada@example.com")
    response = client.post(f"/crm/contacts/{contact_id}/edit", data={
        "csrf_token": token, "name": "N" * 201, "email": "ada@", "company": "ok\x00", "phone": "+1", "role": "x"})
    assert response.status_code == 422
    errors = field_errors(response.get_data(as_text=True))
    assert errors.pop("email").startswith("Enter a valid email address")
    assert errors == {"name": "At most 200 characters.", "company": "Contains a character that is not allowed.",
                      "role": "Choose one of: client, partner."}
    response = client.post(f"/crm/contacts/{contact_id}/edit", data={
        "csrf_token": token, "name": "Ada", "email": "TAKEN@example.com", "role": "client"})
    assert response.status_code == 409
    assert field_errors(response.get_data(as_text=True)) == {
        "email": "A contact with the email taken@example.com already exists."}
    assert _contact(app, contact_id).email == "ada@example.com"


def test_email_cannot_change_once_the_account_exists(app, client, staff, make, token):
    contact_id, _ = make.provisioned()
    email = _contact(app, contact_id).email
    form = client.get(f"/crm/contacts/{contact_id}/edit").get_data(as_text=True)
    assert 'name="email"' not in form and "cannot change once the account exists" in form
    response = client.post(f"/crm/contacts/{contact_id}/edit", data={
        "csrf_token": token, "name": "Renamed", "email": "other@example.com", "role": "client"})
    assert response.status_code == 409
    assert field_errors(response.get_data(as_text=True)) == {"email": "The email cannot change once the account exists."}
    assert _contact(app, contact_id).email == email


def test_role_cannot_change_once_the_account_exists(app, client, staff, make, token):
    contact_id, _ = make.provisioned()
    response = client.post(f"/crm/contacts/{contact_id}/edit", data={
        "csrf_token": token, "name": "Contact", "company": "", "phone": "", "role": "partner"})
    assert response.status_code == 409
    assert 'id="role-error">The role cannot change once the account exists.' in response.get_data(as_text=True)
    assert _contact(app, contact_id).role == "client"


# --- a contact's page ----------------------------------------------------------------------------


def test_qualified_contact_page_offers_approve_with_a_confirm(client, staff, make):
    contact_id = make.contact("QUALIFIED", name="Ada Lovelace")
    body = client.get(f"/crm/contacts/{contact_id}").get_data(as_text=True)
    assert f'id="approve-{contact_id}"' in body
    # Asks first: a dialog loaded by htmx, a confirmation page without JavaScript.
    assert f'hx-get="/crm/contacts/{contact_id}/provision"' in body and 'hx-target="#modal-slot"' in body
    assert f'method="get" action="/crm/contacts/{contact_id}/provision"' in body
    assert "hx-confirm" not in body
    assert "Approve &amp; Create Account" in body
    assert ">Back to lead<" in body and ">Mark lost<" in body


@pytest.mark.parametrize("status,offered", [
    ("LEAD", ["Qualify", "Mark lost"]), ("LOST", ["Reopen"]),
])
def test_other_statuses_offer_their_moves_but_no_approve(client, staff, make, status, offered):
    contact_id = make.contact(status)
    body = client.get(f"/crm/contacts/{contact_id}").get_data(as_text=True)
    assert "Approve &amp; Create Account" not in body
    for label in offered:
        assert f">{label}<" in body


def test_provisioned_contact_page_shows_progress_and_welcome_email(client, staff, make, mailbox):
    contact_id, _ = make.provisioned()
    body = client.get(f"/crm/contacts/{contact_id}").get_data(as_text=True)
    assert "Approve &amp; Create Account" not in body
    assert "0 of 4 required done" in body and '<progress value="0" max="4"' in body
    assert 'class="badge email-sent">sent<' in body and "1 attempt" in body
    assert "Resend welcome email" in body and f'hx-get="/crm/contacts/{contact_id}/resend-welcome"' in body


def test_failed_welcome_email_shows_its_error(app, client, staff, make, mailbox):
    mailbox.refuse = True
    contact_id, _ = make.provisioned()
    body = client.get(f"/crm/contacts/{contact_id}").get_data(as_text=True)
    assert 'class="badge email-pending">pending<' in body
    assert "Last error: SMTP" in body


# --- status actions ------------------------------------------------------------------------------


def test_qualify_with_htmx_swaps_the_state_region(app, client, staff, make, token):
    contact_id = make.contact("LEAD", name="Ada Lovelace")
    response = client.post(f"/crm/contacts/{contact_id}/status", data={"csrf_token": token, "status": "QUALIFIED"},
                           headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and _is_fragment(body)
    assert body.strip().startswith('<div id="contact-state"')
    assert ">QUALIFIED<" in body and "Approve &amp; Create Account" in body
    assert _contact(app, contact_id).status == "QUALIFIED"


def test_status_change_without_js_redirects_back(app, client, staff, make, token):
    contact_id = make.contact("QUALIFIED", name="Ada Lovelace")
    response = client.post(f"/crm/contacts/{contact_id}/status", data={"csrf_token": token, "status": "LOST"})
    assert response.status_code == 302 and response.headers["Location"] == f"/crm/contacts/{contact_id}"
    assert "Ada Lovelace is now LOST." in client.get(f"/crm/contacts/{contact_id}").get_data(as_text=True)


def test_invalid_transition_is_shown_inline(app, client, staff, make, token):
    contact_id = make.contact("LEAD")
    response = client.post(f"/crm/contacts/{contact_id}/status", data={"csrf_token": token, "status": "ACTIVE"},
                           headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 409 and _is_fragment(body)
    assert 'id="status-message">A contact in status LEAD cannot be moved to ACTIVE.' in body
    # Without JavaScript: back to the page, the reason flashed there.
    response = client.post(f"/crm/contacts/{contact_id}/status", data={"csrf_token": token, "status": "BOGUS"})
    assert response.status_code == 302
    assert "Choose one of" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert _contact(app, contact_id).status == "LEAD"


# --- approve & create account --------------------------------------------------------------------


def test_approve_with_htmx_swaps_in_the_result(app, client, staff, make, token, mailbox):
    contact_id = make.contact("QUALIFIED", name="Ada Lovelace", email="ada@example.com")
    response = client.post(f"/crm/contacts/{contact_id}/provision", data={"csrf_token": token, "origin": "contact"},
                           headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and _is_fragment(body)
    assert "HX-Request" in response.headers["Vary"]
    assert body.strip().startswith(f'<div id="approve-{contact_id}"')
    assert "Account created for" in body and "ada@example.com" in body
    assert "onboarding 0 of 4 required done" in body
    assert 'class="badge email-sent">sent<' in body
    # The status region follows, out of band.
    assert '<article id="contact-status" aria-labelledby="status-heading" hx-swap-oob="true">' in body
    assert ">ONBOARDING<" in body and 'id="pipeline"' not in body
    assert response.headers["HX-Trigger"] == "feed-changed"
    assert [m["To"] for m in mailbox.messages] == ["ada@example.com"]
    assert _contact(app, contact_id).status == "ONBOARDING"
    with app.app_context():
        event = db.session.execute(select(FeedEvent).where(FeedEvent.type == "onboarding.account.provisioned")).scalar_one()
        assert event.actor_id == staff


def test_approve_again_says_it_is_already_done(app, client, staff, make, token, mailbox):
    contact_id, _ = make.provisioned(email="ada@example.com")
    response = client.post(f"/crm/contacts/{contact_id}/provision", data={"csrf_token": token}, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 409 and _is_fragment(body)
    assert "Already approved: the account ada@example.com exists; nothing was changed." in body
    assert "Approve &amp; Create Account" not in body
    assert "HX-Trigger" not in response.headers
    assert len(mailbox.messages) == 1
    assert _count(app, OutboundEmail) == 1


def test_approve_a_contact_that_is_not_qualified_is_refused_inline(app, client, staff, make, token, mailbox):
    contact_id = make.contact("LEAD", name="Grace Hopper")
    response = client.post(f"/crm/contacts/{contact_id}/provision", data={"csrf_token": token}, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and _is_fragment(body)
    assert 'approve-result">Grace Hopper is LEAD; only a QUALIFIED contact can get an account.' in body
    assert _count(app, User) == 1 and mailbox.messages == []


def test_approve_without_js_redirects_back(app, client, staff, make, token, mailbox):
    contact_id = make.contact("QUALIFIED", email="ada@example.com")
    response = client.post(f"/crm/contacts/{contact_id}/provision", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == f"/crm/contacts/{contact_id}"
    body = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Account created for ada@example.com" in body and "0 of 4 required done" in body
    # A refusal without JS: flashed on the page it came from.
    response = client.post(f"/crm/contacts/{contact_id}/provision", data={"csrf_token": token, "origin": "dashboard"})
    assert response.headers["Location"] == "/dashboard"
    assert "Already approved" in client.get("/dashboard").get_data(as_text=True)


def test_two_staff_approving_at_once_make_one_account(app, make, mailbox):
    make.user("staff", email="sam@example.com", name="Sam")
    make.user("staff", email="kim@example.com", name="Kim")
    contact_id = make.contact("QUALIFIED", email="ada@example.com")
    clients = []
    for email in ("sam@example.com", "kim@example.com"):
        c = app.test_client()
        token = csrf_token_from(c.get("/login").get_data(as_text=True))
        c.post("/login", data={"email": email, "password": "staff-correct-horse-42", "csrf_token": token})
        clients.append((c, csrf_token_from(c.get("/dashboard").get_data(as_text=True))))
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
    loser = next(r for r in responses if r.status_code == 409).get_data(as_text=True)
    assert "Already approved" in loser
    assert _count(app, User, User.email == "ada@example.com") == 1
    assert _count(app, OutboundEmail) == 1 and len(mailbox.messages) == 1


# --- resend the welcome email ------------------------------------------------------------------


def test_resend_welcome_email_with_htmx(app, client, staff, make, token, mailbox):
    contact_id, _ = make.provisioned(email="ada@example.com")
    first = mailbox.temporary_password("ada@example.com")
    response = client.post(f"/crm/contacts/{contact_id}/resend-welcome", data={"csrf_token": token}, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and _is_fragment(body)
    assert body.strip().startswith(f'<div id="account-{contact_id}"')
    assert "A new temporary password was issued for ada@example.com" in body
    assert len(mailbox.to("ada@example.com")) == 2
    assert mailbox.temporary_password("ada@example.com") != first


def test_resend_is_refused_inline_once_the_password_is_set(app, client, staff, make, token, mailbox):
    contact_id, user_id = make.provisioned(email="ada@example.com")
    with app.app_context():
        accounts.set_password(db.session, user_id, "violet-teapot-harbour-19")
    body = client.get(f"/crm/contacts/{contact_id}").get_data(as_text=True)
    assert "Resend welcome email" not in body and "Set by" in body
    response = client.post(f"/crm/contacts/{contact_id}/resend-welcome", data={"csrf_token": token}, headers=HX)
    assert response.status_code == 409
    assert "has already set their own password" in response.get_data(as_text=True)
    assert len(mailbox.messages) == 1


def test_resend_for_a_contact_without_account(client, staff, make, token):
    contact_id = make.contact("LEAD", name="Grace Hopper")
    response = client.post(f"/crm/contacts/{contact_id}/resend-welcome", data={"csrf_token": token}, headers=HX)
    assert response.status_code == 409
    assert "Grace Hopper has no account yet." in response.get_data(as_text=True)
    response = client.post(f"/crm/contacts/{contact_id}/resend-welcome", data={"csrf_token": token})
    assert response.status_code == 302
    assert "Grace Hopper has no account yet." in client.get(response.headers["Location"]).get_data(as_text=True)
