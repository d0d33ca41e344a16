"""The JSON API, /api/v1 (SPEC.md, "HTTP API"): one test or more per row of the table, the
401/403 matrix over every route, bad input that must write nothing, sessions vs bearer tokens."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlalchemy import func, select

from onboarding_app import accounts, contacts, webhooks
from onboarding_app.extensions import db
from onboarding_app.models import (
    ApiToken, Contact, FeedEvent, OnboardingProgress, OnboardingTask, OutboundEmail, User, WebhookEndpoint,
)

from . import answers
from .conftest import USER_PASSWORD

API = "/api/v1"
CONTACT_KEYS = {"id", "name", "email", "company", "phone", "role", "status", "user_id", "created_at", "updated_at"}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

# Every API route but openapi.json, with a request that would succeed for the right caller.
# (test_route_tables_cover_every_api_rule keeps this list complete.)
STAFF_ROUTES = [
    ("GET", "/crm/contacts", None),
    ("POST", "/crm/contacts", {"name": "Grace Hopper", "email": "grace@example.com"}),
    ("GET", "/crm/contacts/{contact_id}", None),
    ("PATCH", "/crm/contacts/{contact_id}", {"status": "LOST"}),
    ("POST", "/crm/contacts/{contact_id}/provision", None),
    ("POST", "/crm/contacts/{contact_id}/resend-welcome", None),
    ("POST", "/crm/contacts/{contact_id}/remind", None),
    ("GET", "/onboarding/accounts", None),
    ("GET", "/onboarding/funnel", None),
    ("GET", "/checklists/client", None),
]
# These act on an account: the matrix gives them a provisioned contact.
ACCOUNT_ROUTES = ("/resend-welcome", "/remind")
USER_ROUTES = [
    ("GET", "/onboarding", None),
    ("POST", "/onboarding/complete/book-kickoff-call", None),
    ("POST", "/onboarding/skip/invite-teammates", None),
    ("GET", "/documents/service-terms", None),
    ("GET", "/feed", None),
]
ADMIN_ROUTES = [
    ("GET", "/webhooks", None),
    ("POST", "/webhooks", {"url": "http://127.0.0.1:9/hooks", "events": ["*"]}),
    ("GET", "/webhooks/{endpoint_id}/deliveries", None),
    ("POST", "/webhooks/{endpoint_id}/test", None),
    ("DELETE", "/webhooks/{endpoint_id}", None),
    ("POST", "/checklists/client/tasks", {"slug": "security-review", "title": "Security review", "kind": "manual",
                                          "required": True}),
    ("PATCH", "/checklists/client/tasks/accept-terms", {"position": 1}),
]
# Admins only (tests/test_task_kinds.py covers who may publish), and the owner-or-staff
# download (tests/test_task_kinds.py): here for the credentials matrix.
OTHER_ROUTES = [
    ("POST", "/documents/service-terms/versions", {"title": "Service terms", "body_markdown": "New."}),
    ("GET", "/crm/contacts/{contact_id}/files/1", None),
]
ALL_ROUTES = STAFF_ROUTES + USER_ROUTES + ADMIN_ROUTES + OTHER_ROUTES


def _route_id(route) -> str:
    return f"{route[0]} {route[1]}"


# --- helpers -----------------------------------------------------------------------------------


def token_for(app, email: str) -> str:
    with app.app_context():
        _, token = accounts.create_api_token(db.session, email)
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Api:
    """The test client with a bearer token on every request."""

    def __init__(self, client, token: str | None) -> None:
        self.client = client
        self.token = token

    def __call__(self, method: str, path: str, body=None, *, headers=None, **kwargs):
        headers = {**(bearer(self.token) if self.token else {}), **(headers or {})}
        if body is not None:
            kwargs["json"] = body
        return self.client.open(API + path, method=method, headers=headers, **kwargs)

    def get(self, path, **kwargs):
        return self("GET", path, **kwargs)

    def post(self, path, body=None, **kwargs):
        return self("POST", path, body, **kwargs)

    def patch(self, path, body=None, **kwargs):
        return self("PATCH", path, body, **kwargs)

    def delete(self, path, **kwargs):
        return self("DELETE", path, **kwargs)


@dataclass
class Member:
    contact_id: int
    user_id: int
    email: str
    token: str


def snapshot(app) -> dict:
    """Row counts, plus every contact and user as it stands: "nothing written" compares two."""
    with app.app_context():
        counts = {
            model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
            for model in (Contact, User, FeedEvent, OutboundEmail, OnboardingProgress, ApiToken, WebhookEndpoint,
                          OnboardingTask)
        }
        rows = db.session.execute(
            select(Contact.id, Contact.name, Contact.email, Contact.company, Contact.phone, Contact.role,
                   Contact.status, Contact.user_id, Contact.updated_at).order_by(Contact.id)
        ).all()
        users = db.session.execute(
            select(User.id, User.email, User.role, User.password_hash, User.must_change_password).order_by(User.id)
        ).all()
        done = db.session.execute(
            select(OnboardingProgress.id, OnboardingProgress.completed).order_by(OnboardingProgress.id)
        ).all()
        tasks = db.session.execute(
            select(OnboardingTask.id, OnboardingTask.title, OnboardingTask.position, OnboardingTask.required,
                   OnboardingTask.retired_at).order_by(OnboardingTask.id)
        ).all()
        return {"counts": counts, "contacts": rows, "users": users, "progress": done, "tasks": tasks}


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert set(error) >= {"code", "message"}
    assert re.fullmatch(r"[a-z][a-z0-9_]*", error["code"])
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    assert "Traceback" not in response.get_data(as_text=True)
    return error


@pytest.fixture
def staff_token(app, make) -> str:
    make.user("staff", email="ops@example.com", name="Olive Ops")
    return token_for(app, "ops@example.com")


@pytest.fixture
def api(client, staff_token) -> Api:
    """The API as a staff script sees it."""
    return Api(client, staff_token)


@pytest.fixture
def member(app, make) -> Member:
    """A provisioned client who has set a password of their own, with an API token."""
    contact_id, user_id = make.provisioned("client", email="ada@example.com")
    with app.app_context():
        accounts.set_password(db.session, user_id, USER_PASSWORD)
    return Member(contact_id, user_id, "ada@example.com", token_for(app, "ada@example.com"))


@pytest.fixture
def member_api(client, member) -> Api:
    return Api(client, member.token)


# --- GET /crm/contacts ---------------------------------------------------------------------------


def test_list_contacts_newest_first_with_total_and_pages(api, make):
    ids = [make.contact("LEAD") for _ in range(5)]
    response = api.get("/crm/contacts?per_page=2&page=2")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"items", "page", "per_page", "total"}
    assert (body["page"], body["per_page"], body["total"]) == (2, 2, 5)
    assert [c["id"] for c in body["items"]] == sorted(ids, reverse=True)[2:4]
    assert all(set(c) == CONTACT_KEYS for c in body["items"])


def test_list_contacts_default_page(api, make, app):
    make.contact("LEAD")
    body = api.get("/crm/contacts").get_json()
    assert (body["page"], body["per_page"], body["total"]) == (1, app.config["CONTACTS_PAGE_SIZE"], 1)


def test_list_contacts_filters_by_status(api, make):
    lead = make.contact("LEAD")
    qualified = make.contact("QUALIFIED")
    lost = make.contact("LOST")
    assert [c["id"] for c in api.get("/crm/contacts?status=QUALIFIED").get_json()["items"]] == [qualified]
    assert [c["id"] for c in api.get("/crm/contacts?status=LOST").get_json()["items"]] == [lost]
    assert [c["id"] for c in api.get("/crm/contacts?status=LEAD").get_json()["items"]] == [lead]


def test_list_contacts_searches_name_email_and_company(api, app):
    with app.app_context():
        contacts.create_contact(db.session, {"name": "Ada Lovelace", "email": "ada@analytical.example",
                                             "company": "Analytical Engines"})
        contacts.create_contact(db.session, {"name": "Charles Babbage", "email": "cb@difference.example"})
    for q in ["lovelace", "LOVELACE", "ada@ana", "analytical eng"]:
        items = api.get("/crm/contacts", query_string={"q": q}).get_json()["items"]
        assert [c["name"] for c in items] == ["Ada Lovelace"], q


def test_list_contacts_search_text_is_only_text(api, make, app):
    make.contact("LEAD")
    for q in ["'; DROP TABLE contacts; --", "%", "_", "\\", "Zoë 🚀 日本", "' OR '1'='1"]:
        response = api.get("/crm/contacts", query_string={"q": q})
        assert response.status_code == 200, q
        assert response.get_json()["items"] == [], q
    assert snapshot(app)["counts"]["contacts"] == 1


BAD_LISTING_FILTERS = [
        ({"status": "BOGUS"}, "status"),
        ({"status": "lead"}, "status"),
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "abc"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"per_page": "1000000"}, "per_page"),
        ({"per_page": "0"}, "per_page"),
        ({"q": "x" * 201}, "q"),
        ({"q": "a\x00b"}, "q"),
]


def test_list_contacts_bad_filter_is_422(api):
    for query, field in BAD_LISTING_FILTERS:
        error = assert_error(api.get("/crm/contacts", query_string=query), 422, "invalid_fields")
        assert field in error["fields"], query


# --- POST /crm/contacts ---------------------------------------------------------------------------


def test_create_contact_is_a_lead(api, app, staff_token):
    response = api.post("/crm/contacts", {"name": " Grace Hopper ", "email": "Grace@Example.COM",
                                          "company": "Navy", "phone": "+1 (555) 010-0000"})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == CONTACT_KEYS
    assert body["name"] == "Grace Hopper"
    assert body["email"] == "grace@example.com"
    assert (body["company"], body["phone"], body["role"]) == ("Navy", "+1 (555) 010-0000", "client")
    assert body["status"] == "LEAD" and body["user_id"] is None
    assert response.headers["Location"].endswith(f"/api/v1/crm/contacts/{body['id']}")
    assert ISO_UTC.match(body["created_at"]) and ISO_UTC.match(body["updated_at"])
    datetime.fromisoformat(body["created_at"])
    with app.app_context():
        contact = db.session.get(Contact, body["id"])
        assert contact.owner.email == "ops@example.com"
        event = db.session.execute(select(FeedEvent).where(FeedEvent.contact_id == contact.id)).scalar_one()
        assert event.type == "crm.contact.created" and event.actor.email == "ops@example.com"


def test_create_partner_contact(api):
    body = api.post("/crm/contacts", {"name": "Pat Partner", "email": "pat@example.com", "role": "partner"}).get_json()
    assert body["role"] == "partner"


def test_create_contact_keeps_unicode_and_sql_looking_text_as_text(api, app):
    texts = ["Zoë Ångström-Łukasiewicz 日本 🚀", "Robert'); DROP TABLE contacts;--", "<script>alert(1)</script>"]
    for n, text in enumerate(texts):
        response = api.post("/crm/contacts", {"name": text, "email": f"odd{n}@example.com", "company": text})
        assert response.status_code == 201
        contact_id = response.get_json()["id"]
        body = api.get(f"/crm/contacts/{contact_id}").get_json()
        assert body["name"] == text and body["company"] == text
    assert snapshot(app)["counts"]["contacts"] == len(texts)


def test_create_contact_with_a_taken_email_is_409(api, make, app):
    make.contact("LEAD", email="ada@example.com")
    before = snapshot(app)
    for email in ["ada@example.com", "ADA@EXAMPLE.COM", "Ada@Example.com", "  ada@example.com "]:
        assert_error(api.post("/crm/contacts", {"name": "Ada Again", "email": email}), 409, "email_taken")
    assert snapshot(app) == before


INVALID_CREATES = [
        ({"email": "x@example.com"}, "name"),
        ({"name": "X"}, "email"),
        ({"name": "", "email": "x@example.com"}, "name"),
        ({"name": "   ", "email": "x@example.com"}, "name"),
        ({"name": "X", "email": "not-an-email"}, "email"),
        ({"name": "X", "email": "x@example.com\x00"}, "email"),
        ({"name": 123, "email": "x@example.com"}, "name"),
        ({"name": ["X"], "email": "x@example.com"}, "name"),
        ({"name": {"first": "X"}, "email": "x@example.com"}, "name"),
        ({"name": "X", "email": 42}, "email"),
        ({"name": "X", "email": "x@example.com", "company": True}, "company"),
        ({"name": "X" * 10_000, "email": "x@example.com"}, "name"),
        ({"name": "X", "email": ("x" * 300) + "@example.com"}, "email"),
        ({"name": "X", "email": "x@example.com", "company": "C" * 201}, "company"),
        ({"name": "X", "email": "x@example.com", "phone": "call me maybe"}, "phone"),
        ({"name": "X", "email": "x@example.com", "role": "admin"}, "role"),
        ({"name": "X", "email": "x@example.com", "role": ["client"]}, "role"),
        ({"name": "X", "email": "x@example.com", "status": "ACTIVE"}, "status"),
        ({"name": "X", "email": "x@example.com", "user_id": 1}, "user_id"),
        ({"name": "X", "email": "x@example.com", "is_admin": True}, "is_admin"),
        ({"name": "Nul\x00byte", "email": "x@example.com"}, "name"),
]


def test_create_contact_with_invalid_fields_is_422_and_writes_nothing(api, app):
    before = snapshot(app)
    for body, field in INVALID_CREATES:
        error = assert_error(api.post("/crm/contacts", body), 422, "invalid_fields")
        assert field in error["fields"] and error["fields"][field], body
    assert snapshot(app) == before


NOT_JSON_OBJECTS = [
        (b'{"name": "X", "email": ', "application/json", "malformed_json"),
        (b"", "application/json", "malformed_json"),
        (b"{'name': 'X'}", "application/json", "malformed_json"),
        (b"\xff\xfe\xfa", "application/json", "malformed_json"),
        (b'{"name": "\\ud800", "email": "x@example.com"}', "application/json", "malformed_json"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "malformed_json"),
        (b'[{"name": "X", "email": "x@example.com"}]', "application/json", "bad_request"),
        (b'"a string"', "application/json", "bad_request"),
        (b"null", "application/json", "bad_request"),
        (b"42", "application/json", "bad_request"),
        (b"name=X&email=x%40example.com", "application/x-www-form-urlencoded", "malformed_json"),
        (b'{"name": "X", "email": "x@example.com"}', "text/plain", "malformed_json"),
]


def test_create_contact_with_a_body_that_is_not_a_json_object_is_400(api, app):
    before = snapshot(app)
    for data, content_type, code in NOT_JSON_OBJECTS:
        response = api("POST", "/crm/contacts", data=data, headers={"Content-Type": content_type})
        assert_error(response, 400, code)
    assert snapshot(app) == before


def test_body_over_the_size_limit_is_413(api, app):
    before = snapshot(app)
    body = json.dumps({"name": "X" * (app.config["MAX_CONTENT_LENGTH"] + 1), "email": "x@example.com"})
    response = api("POST", "/crm/contacts", data=body, headers={"Content-Type": "application/json"})
    assert_error(response, 413, "payload_too_large")
    assert snapshot(app) == before


# --- GET /crm/contacts/<id> -----------------------------------------------------------------------


def test_get_contact(api, make):
    contact_id = make.contact("QUALIFIED", email="lin@example.com")
    body = api.get(f"/crm/contacts/{contact_id}").get_json()
    assert set(body) == CONTACT_KEYS  # no onboarding before the account exists
    assert (body["id"], body["email"], body["status"]) == (contact_id, "lin@example.com", "QUALIFIED")


def test_get_provisioned_contact_shows_onboarding_progress(api, member):
    body = api.get(f"/crm/contacts/{member.contact_id}").get_json()
    assert set(body) == CONTACT_KEYS | {"onboarding"}
    assert body["user_id"] == member.user_id and body["status"] == "ONBOARDING"
    # set-password was completed when the member set their own password.
    onboarding = body["onboarding"]
    assert {k: v for k, v in onboarding.items() if k != "tasks"} == {
        "required_total": 4, "required_completed": 1, "complete": False}
    assert [(t["slug"], t["completed"]) for t in onboarding["tasks"]][:2] == [
        ("set-password", True), ("complete-profile", False)]


def test_get_unknown_contact_is_404(api, make):
    make.contact("LEAD")
    for contact_id in ["999", "0", "-1", "abc", "1.5", "1e3", "99999999999999999999", "2147483648", "%20", "1%00"]:
        assert_error(api.get(f"/crm/contacts/{contact_id}"), 404, "not_found")


# --- PATCH /crm/contacts/<id> ---------------------------------------------------------------------


def test_update_contact_details(api, make, app):
    contact_id = make.contact("LEAD")
    response = api.patch(f"/crm/contacts/{contact_id}", {"name": "New Name", "company": "New Co",
                                                          "phone": "+44 20 7946 0000", "role": "partner"})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == CONTACT_KEYS
    assert (body["name"], body["company"], body["phone"], body["role"]) == (
        "New Name", "New Co", "+44 20 7946 0000", "partner")
    with app.app_context():
        assert db.session.get(Contact, contact_id).name == "New Name"


@pytest.mark.parametrize(
    "start, moves",
    [
        ("LEAD", ["QUALIFIED", "LEAD", "LOST", "LEAD"]),
        ("QUALIFIED", ["LOST"]),
    ],
)
def test_update_contact_moves_status_along_the_lifecycle(api, make, start, moves):
    contact_id = make.contact(start)
    for status in moves:
        response = api.patch(f"/crm/contacts/{contact_id}", {"status": status})
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["status"] == status


def test_update_with_an_empty_object_changes_nothing(api, make, app):
    contact_id = make.contact("LEAD")
    before = snapshot(app)
    assert api.patch(f"/crm/contacts/{contact_id}", {}).status_code == 200
    assert snapshot(app) == before


def test_update_contact_refuses_moves_off_the_lifecycle(api, make, app):
    refused = {"LEAD": ["ONBOARDING", "ACTIVE"], "QUALIFIED": ["ONBOARDING", "ACTIVE"],
               "LOST": ["QUALIFIED", "ONBOARDING", "ACTIVE"]}
    ids = {start: make.contact(start) for start in refused}
    before = snapshot(app)
    for start, targets in refused.items():
        for status in targets:
            response = api.patch(f"/crm/contacts/{ids[start]}", {"status": status})
            assert_error(response, 409, "invalid_transition")
    assert snapshot(app) == before


def test_update_provisioned_contact_refuses_status_and_role_changes(api, member, app):
    before = snapshot(app)
    for body in [{"status": "LEAD"}, {"status": "LOST"}, {"status": "QUALIFIED"}, {"role": "partner"}]:
        assert_error(api.patch(f"/crm/contacts/{member.contact_id}", body), 409, "invalid_transition")
    assert snapshot(app) == before


INVALID_UPDATES = [
        ({"email": "not-an-email"}, "email"),
        ({"email": None}, "email"),
        ({"status": "bogus"}, "status"),
        ({"status": 1}, "status"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"name": 3.14}, "name"),
        ({"company": "C" * 100_000}, "company"),
        ({"phone": "<script>"}, "phone"),
        ({"role": "staff"}, "role"),
        ({"owner_id": 1}, "owner_id"),
        ({"id": 5}, "id"),
        ({"name": "Fine", "status": "QUALIFIED", "colour": "red"}, "colour"),  # all or nothing
]


def test_update_contact_email_while_no_account_is_linked(api, make, app):
    contact_id = make.contact("QUALIFIED", email="old@example.com")
    response = api.patch(f"/crm/contacts/{contact_id}", {"email": " New.Address@Example.COM "})
    assert response.status_code == 200
    assert response.get_json()["email"] == "new.address@example.com"
    with app.app_context():
        assert db.session.get(Contact, contact_id).email == "new.address@example.com"
        event = db.session.execute(select(FeedEvent).where(FeedEvent.type == "crm.contact.updated")).scalar_one()
        assert event.payload["fields"] == ["email"]


def test_update_contact_email_to_another_contacts_email_is_409(api, make, app):
    make.contact("LEAD", email="taken@example.com")
    contact_id = make.contact("LEAD", email="mine@example.com")
    before = snapshot(app)
    for email in ["taken@example.com", "TAKEN@Example.com"]:
        assert_error(api.patch(f"/crm/contacts/{contact_id}", {"email": email, "name": "Renamed"}), 409, "email_taken")
    assert snapshot(app) == before


def test_update_contact_email_once_the_account_exists_is_409(api, member, app):
    before = snapshot(app)
    error = assert_error(api.patch(f"/crm/contacts/{member.contact_id}", {"email": "elsewhere@example.com"}),
                         409, "account_linked")
    assert "email" in error["message"]
    assert snapshot(app) == before
    # Sending the address it already has (in any letter case) changes nothing and is fine.
    response = api.patch(f"/crm/contacts/{member.contact_id}", {"email": member.email.upper(), "company": "Kept"})
    assert response.status_code == 200
    assert (response.get_json()["email"], response.get_json()["company"]) == (member.email, "Kept")


def test_update_contact_with_invalid_fields_is_422_and_writes_nothing(api, make, app):
    contact_id = make.contact("LEAD")
    before = snapshot(app)
    for body, field in INVALID_UPDATES:
        error = assert_error(api.patch(f"/crm/contacts/{contact_id}", body), 422, "invalid_fields")
        assert field in error["fields"], body
    assert snapshot(app) == before


def test_update_contact_with_a_bad_body_is_400(api, make, app):
    contact_id = make.contact("LEAD")
    before = snapshot(app)
    for data in [b"not json", b"[]", b'"LOST"', b""]:
        response = api("PATCH", f"/crm/contacts/{contact_id}", data=data,
                       headers={"Content-Type": "application/json"})
        assert_error(response, 400)
    assert snapshot(app) == before


def test_update_unknown_contact_is_404(api, app):
    before = snapshot(app)
    for contact_id in ["999", "abc", "-3", "4294967296"]:
        assert_error(api.patch(f"/crm/contacts/{contact_id}", {"name": "X"}), 404, "not_found")
    assert snapshot(app) == before


# --- POST /crm/contacts/<id>/provision ------------------------------------------------------------


def test_provision_creates_the_account(api, make, app, mailbox):
    contact_id = make.contact("QUALIFIED", email="nia@example.com")
    response = api.post(f"/crm/contacts/{contact_id}/provision")
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"user_id", "email"}
    assert body["email"] == "nia@example.com"
    with app.app_context():
        user = db.session.get(User, body["user_id"])
        assert (user.email, user.role, user.must_change_password) == ("nia@example.com", "client", True)
        assert db.session.get(Contact, contact_id).status == "ONBOARDING"
        event = db.session.execute(
            select(FeedEvent).where(FeedEvent.type == "onboarding.account.provisioned")).scalar_one()
        assert event.actor.email == "ops@example.com"
    assert len(mailbox.to("nia@example.com")) == 1
    onboarding = api.get(f"/crm/contacts/{contact_id}").get_json()["onboarding"]
    assert (onboarding["required_total"], onboarding["required_completed"], onboarding["complete"]) == (4, 0, False)


def test_provision_again_is_409_with_the_same_user_and_writes_nothing(api, make, app, mailbox):
    contact_id = make.contact("QUALIFIED", email="nia@example.com")
    user_id = api.post(f"/crm/contacts/{contact_id}/provision").get_json()["user_id"]
    before = snapshot(app)
    for _ in range(2):
        response = api.post(f"/crm/contacts/{contact_id}/provision")
        assert_error(response, 409, "already_provisioned")
        body = response.get_json()
        assert (body["user_id"], body["email"]) == (user_id, "nia@example.com")
    assert snapshot(app) == before
    assert len(mailbox.to("nia@example.com")) == 1


def test_seed_t3_provision_answers_409_user_exists_when_an_account_existed(api, make, app, mailbox):
    """Seed T3: 409 with the existing user_id; the account is linked and onboarding starts."""
    existing = make.user("client", email="kim@example.com", password=USER_PASSWORD)
    contact_id = make.contact("QUALIFIED", email="kim@example.com")
    users_before = snapshot(app)["counts"]["users"]
    response = api.post(f"/crm/contacts/{contact_id}/provision")
    error = assert_error(response, 409, "user_exists")
    assert error["message"]
    body = response.get_json()
    assert (body["user_id"], body["email"]) == (existing, "kim@example.com")
    assert snapshot(app)["counts"]["users"] == users_before
    with app.app_context():
        user = db.session.get(User, existing)
        assert user.must_change_password is False
        contact = db.session.get(Contact, contact_id)
        assert (contact.user_id, contact.status) == (existing, "ONBOARDING")
        progress = db.session.execute(
            select(func.count()).select_from(OnboardingProgress).where(OnboardingProgress.user_id == existing)
        ).scalar_one()
        assert progress > 0  # the checklist exists
    assert "Temporary password" not in mailbox.text(mailbox.to("kim@example.com")[-1])
    # Again: already_provisioned, with the same user_id, and nothing new.
    again = api.post(f"/crm/contacts/{contact_id}/provision")
    assert_error(again, 409, "already_provisioned")
    assert again.get_json()["user_id"] == existing
    assert len(mailbox.to("kim@example.com")) == 1


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_staff_takeover_by_provisioning_is_refused_409_staff_account(api, make, app, mailbox, role):
    staff_id = make.user(role, email="boss@example.com")
    contact_id = make.contact("QUALIFIED", email="boss@example.com")
    before = snapshot(app)
    assert_error(api.post(f"/crm/contacts/{contact_id}/provision"), 409, "staff_account")
    assert snapshot(app) == before  # nothing changed: no link, no checklist, no email, no event
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        assert (contact.user_id, contact.status) == (None, "QUALIFIED")
        assert db.session.get(User, staff_id).contact is None
    assert mailbox.to("boss@example.com") == []


def test_provision_called_at_once_by_several_scripts_makes_one_account(app, staff_token, make, mailbox):
    contact_id = make.contact("QUALIFIED", email="race@example.com")
    barrier = threading.Barrier(4)

    def call():
        client = app.test_client()
        barrier.wait()
        return client.post(f"{API}/crm/contacts/{contact_id}/provision", headers=bearer(staff_token))

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: call(), range(4)))
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    assert len({r.get_json()["user_id"] for r in responses}) == 1
    counts = snapshot(app)["counts"]
    assert (counts["users"], counts["outbound_emails"]) == (2, 1)  # the staff member and the new account
    assert len(_event_ids(app, type="onboarding.account.provisioned")) == 1
    assert len(mailbox.to("race@example.com")) == 1


def test_provision_a_contact_that_is_not_qualified_is_400(api, make, app):
    ids = [make.contact("LEAD"), make.contact("LOST")]
    before = snapshot(app)
    for contact_id in ids:
        assert_error(api.post(f"/crm/contacts/{contact_id}/provision"), 400, "not_qualified")
    assert snapshot(app) == before


def test_provision_unknown_contact_is_404(api, app):
    before = snapshot(app)
    for contact_id in ["999", "abc", "-1", "99999999999"]:
        assert_error(api.post(f"/crm/contacts/{contact_id}/provision"), 404, "not_found")
    assert snapshot(app) == before


def test_script_session_create_qualify_provision_read_checklist(api, app, client, mailbox):
    """The README's curl session, step by step."""
    contact = api.post("/crm/contacts", {"name": "Ada Lovelace", "email": "ada@example.com"}).get_json()
    assert api.patch(f"/crm/contacts/{contact['id']}", {"status": "QUALIFIED"}).get_json()["status"] == "QUALIFIED"
    account = api.post(f"/crm/contacts/{contact['id']}/provision").get_json()
    detail = api.get(f"/crm/contacts/{contact['id']}").get_json()
    assert detail["user_id"] == account["user_id"] and detail["status"] == "ONBOARDING"
    with app.app_context():
        accounts.set_password(db.session, account["user_id"], USER_PASSWORD)
    checklist = Api(client, token_for(app, "ada@example.com")).get("/onboarding").get_json()
    assert [t["slug"] for t in checklist["tasks"]][:2] == ["set-password", "complete-profile"]


# --- GET /onboarding, POST /onboarding/complete/<slug> ---------------------------------------------


def test_onboarding_checklist(member_api):
    response = member_api.get("/onboarding")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"tasks", "required_total", "required_completed", "complete", "status"}
    assert [t["slug"] for t in body["tasks"]] == [
        "set-password", "complete-profile", "accept-terms", "add-billing-contact", "book-kickoff-call",
        "invite-teammates"]
    task = body["tasks"][0]
    assert set(task) == {"slug", "title", "description", "required", "position", "completed", "completed_at",
                         "kind", "skipped", "action_url", "fields", "data", "document"}
    assert task["completed"] is True and ISO_UTC.match(task["completed_at"])
    assert [t["required"] for t in body["tasks"]] == [True, True, True, True, False, False]
    assert all(t["completed"] is False and t["completed_at"] is None for t in body["tasks"][1:])
    assert (body["required_total"], body["required_completed"], body["complete"], body["status"]) == (
        4, 1, False, "ONBOARDING")


def test_partner_checklist(app, make, client):
    _, user_id = make.provisioned("partner", email="pam@example.com")
    with app.app_context():
        accounts.set_password(db.session, user_id, USER_PASSWORD)
    body = Api(client, token_for(app, "pam@example.com")).get("/onboarding").get_json()
    assert [t["slug"] for t in body["tasks"]] == [
        "set-password", "sign-partner-agreement", "upload-tax-form", "complete-profile", "partner-portal-tour"]


def test_staff_without_a_checklist_get_an_empty_one(api):
    body = api.get("/onboarding").get_json()
    assert body == {"tasks": [], "required_total": 0, "required_completed": 0, "complete": True, "status": None}


def test_complete_task_is_idempotent(member_api, app):
    response = member_api.post("/onboarding/complete/book-kickoff-call")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"task", "complete", "status"}
    assert body["task"]["slug"] == "book-kickoff-call" and body["task"]["completed"] is True
    assert (body["complete"], body["status"]) == (False, "ONBOARDING")
    before = snapshot(app)
    again = member_api.post("/onboarding/complete/book-kickoff-call")
    assert again.status_code == 200
    assert again.get_json() == body
    assert snapshot(app) == before


def test_completing_every_required_task_makes_the_contact_active(member_api, api, member, app):
    for slug in ("complete-profile", "accept-terms"):
        assert member_api.post(f"/onboarding/complete/{slug}", **answers.api(slug)).get_json()["complete"] is False
    last = member_api.post("/onboarding/complete/add-billing-contact", **answers.api("add-billing-contact")).get_json()
    assert (last["complete"], last["status"]) == (True, "ACTIVE")
    checklist = member_api.get("/onboarding").get_json()
    assert (checklist["complete"], checklist["required_completed"], checklist["status"]) == (True, 4, "ACTIVE")
    contact = api.get(f"/crm/contacts/{member.contact_id}").get_json()
    assert contact["status"] == "ACTIVE"
    onboarding = contact["onboarding"]
    assert {k: onboarding[k] for k in ("required_total", "required_completed", "complete")} == {
        "required_total": 4, "required_completed": 4, "complete": True}
    assert [t["slug"] for t in onboarding["tasks"]][:4] == [
        "set-password", "complete-profile", "accept-terms", "add-billing-contact"]
    assert onboarding["tasks"][3]["data"]["billing_email"] == "ap@apollo.example"
    # An optional task afterwards changes nothing about completion, and no second event is written.
    assert member_api.post("/onboarding/complete/invite-teammates",
                           **answers.api("invite-teammates")).get_json()["status"] == "ACTIVE"
    with app.app_context():
        assert db.session.scalar(
            select(func.count()).select_from(FeedEvent).where(FeedEvent.type == "onboarding.completed")) == 1


def test_complete_unknown_task_is_404(member_api, app):
    before = snapshot(app)
    for slug in ["no-such-task", "sign-partner-agreement", "ACCEPT-TERMS", "accept_terms", "x" * 300,
                 "accept-terms%00", "%F0%9F%9A%80", "'%20OR%201=1--", "-"]:
        assert_error(member_api.post(f"/onboarding/complete/{slug}"), 404, "unknown_task")
    assert snapshot(app) == before


def test_set_password_task_completes_itself(app, make, client):
    """A user with a temporary password is stopped before any task (403), like the HTML pages do."""
    _, user_id = make.provisioned("client", email="tom@example.com")
    token = token_for(app, "tom@example.com")
    before = snapshot(app)
    for method, path in (("GET", "/onboarding"), ("POST", "/onboarding/complete/set-password"),
                         ("POST", "/onboarding/complete/accept-terms"), ("GET", "/feed")):
        assert_error(Api(client, token)(method, path), 403, "password_change_required")
    assert snapshot(app) == before


# --- GET /feed -----------------------------------------------------------------------------------------


def _event_ids(app, **where) -> list[int]:
    with app.app_context():
        query = select(FeedEvent.id).order_by(FeedEvent.id.desc())
        for key, value in where.items():
            query = query.where(getattr(FeedEvent, key) == value)
        return list(db.session.scalars(query))


def test_feed_newest_first_for_staff(api, member, make, app):
    make.contact("LEAD")
    response = api.get("/feed?limit=100")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"items", "next_before"} and body["next_before"] is None
    assert [e["id"] for e in body["items"]] == _event_ids(app)
    event = body["items"][0]
    assert set(event) == {"id", "type", "created_at", "actor_id", "contact_id", "user_id", "data"}
    assert event["type"] == "crm.contact.created" and ISO_UTC.match(event["created_at"])
    assert isinstance(event["data"], dict)
    types = {e["type"] for e in body["items"]}
    assert {"crm.contact.created", "onboarding.account.provisioned", "account.password.changed"} <= types


def test_feed_pages_with_the_before_cursor(api, make, app):
    for _ in range(4):
        make.contact("QUALIFIED")  # two events each
    seen, before = [], None
    while True:
        query = {"limit": 3} | ({"before": before} if before else {})
        body = api.get("/feed", query_string=query).get_json()
        assert len(body["items"]) <= 3
        seen += [e["id"] for e in body["items"]]
        before = body["next_before"]
        if before is None:
            break
        assert before == body["items"][-1]["id"]
    assert seen == _event_ids(app) and len(seen) == 8


def test_feed_filters_by_type(api, make, app):
    make.contact("QUALIFIED")
    make.contact("LEAD")
    items = api.get("/feed?type=crm.contact.status_changed").get_json()["items"]
    assert [e["id"] for e in items] == _event_ids(app, type="crm.contact.status_changed")
    assert len(items) == 1
    assert api.get("/feed?type=no.such.type").get_json() == {"items": [], "next_before": None}


def test_feed_shows_others_only_their_own_events(member_api, member, make, app):
    make.provisioned("client", email="other@example.com")  # events of another account
    make.contact("LEAD")
    items = member_api.get("/feed?limit=100").get_json()["items"]
    assert items and [e["id"] for e in items] == _event_ids(app, user_id=member.user_id)
    assert all(e["user_id"] == member.user_id for e in items)
    assert len(_event_ids(app)) > len(items)


BAD_FEED_QUERIES = [({"before": "abc"}, "before"), ({"before": "-1"}, "before"), ({"before": "0"}, "before"),
     ({"before": str(2**70)}, "before"), ({"limit": "0"}, "limit"), ({"limit": "1000000"}, "limit"),
     ({"limit": "ten"}, "limit"), ({"type": "t" * 65}, "type"), ({"type": "a\x00b"}, "type")]


def test_feed_bad_query_is_422(api):
    for query, field in BAD_FEED_QUERIES:
        error = assert_error(api.get("/feed", query_string=query), 422, "invalid_fields")
        assert field in error["fields"], query


# --- who may call what: the 401/403 matrix ---------------------------------------------------------


@pytest.fixture
def route_args(make, app):
    """Fill a route's path: a QUALIFIED contact for the staff routes, an endpoint for the
    admin routes."""
    contact_id = make.contact("QUALIFIED", email="target@example.com")
    app.config["WEBHOOK_ALLOW_PRIVATE_HOSTS"] = True
    with app.app_context():
        endpoint_id = webhooks.create_endpoint(db.session, {"url": "http://127.0.0.1:9/x", "events": ["*"]}).endpoint.id
    return lambda path: path.format(contact_id=contact_id, endpoint_id=endpoint_id)


@pytest.fixture
def revoked_token(app, make) -> str:
    make.user("admin", email="former@example.com")
    token = token_for(app, "former@example.com")
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))
        accounts.revoke_api_token(db.session, token_id)
    return token


@pytest.mark.parametrize("route", ALL_ROUTES, ids=_route_id)
def test_every_route_refuses_a_caller_without_valid_credentials(client, app, route, route_args, revoked_token):
    method, path, body = route
    before = snapshot(app)
    credentials = {
        "none": {},
        "revoked token": bearer(revoked_token),
        "unknown token": bearer("onb_not-a-real-token"),
        "empty bearer": {"Authorization": "Bearer "},
        "other scheme": {"Authorization": "Basic c2FtOnB3"},
    }
    for name, headers in credentials.items():
        response = client.open(API + route_args(path), method=method, headers=headers, json=body)
        error = assert_error(response, 401)
        assert error["code"] == ("unauthorized" if name == "none" else "invalid_token"), name
        assert "Location" not in response.headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert snapshot(app) == before


@pytest.mark.parametrize("route", STAFF_ROUTES, ids=_route_id)
def test_staff_routes_refuse_a_user_token(client, app, route, route_args, member):
    method, path, body = route
    before = snapshot(app)
    response = Api(client, member.token)(method, route_args(path), body)
    assert_error(response, 403, "forbidden")
    assert snapshot(app) == before


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_staff_routes_accept_staff_and_admin_tokens(client, app, make, role):
    make.user(role, email=f"{role}-x@example.com")
    api = Api(client, token_for(app, f"{role}-x@example.com"))
    for method, path, body in STAFF_ROUTES:
        contact_id = make.provisioned()[0] if path.endswith(ACCOUNT_ROUTES) else make.contact("QUALIFIED")
        response = api(method, path.format(contact_id=contact_id), body)
        assert response.status_code in (200, 201, 202), (method, path, response.get_json())


def test_user_routes_accept_any_signed_in_user(member_api):
    for method, path, body in USER_ROUTES:
        assert member_api(method, path, body).status_code == 200, path


def test_an_inactive_users_token_stops_working(client, app, staff_token):
    api = Api(client, staff_token)
    assert api.get("/crm/contacts").status_code == 200
    with app.app_context():
        user = db.session.execute(select(User).where(User.email == "ops@example.com")).scalar_one()
        accounts.set_active(db.session, user.id, False)
    assert_error(api.get("/crm/contacts"), 401, "invalid_token")


def test_a_token_works_until_revoked_at_once(runner, client, app, make):
    make.user("staff", email="cli@example.com")
    result = runner.invoke(args=["tokens", "create", "cli@example.com"])
    assert result.exit_code == 0
    token = result.output.strip().splitlines()[-1]
    api = Api(client, token)
    assert api.get("/crm/contacts").status_code == 200
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))
    assert runner.invoke(args=["tokens", "revoke", str(token_id)]).exit_code == 0
    assert_error(api.get("/crm/contacts"), 401, "invalid_token")


def test_last_used_at_is_kept_without_a_write_per_request(client, app, staff_token):
    api = Api(client, staff_token)
    api.get("/crm/contacts")
    with app.app_context():
        first = db.session.scalar(select(ApiToken.last_used_at))
    assert first is not None
    api.get("/feed")
    with app.app_context():
        assert db.session.scalar(select(ApiToken.last_used_at)) == first


def test_openapi_document_needs_no_credentials(client):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200 and response.get_json()["openapi"] == "3.1.0"


# --- bearer tokens vs the browser session -----------------------------------------------------------


def test_bearer_requests_get_no_cookie_and_need_no_csrf_token(api, make):
    contact_id = make.contact("QUALIFIED")
    for method, path, body, status in [
        ("GET", "/crm/contacts", None, 200),
        ("POST", "/crm/contacts", {"name": "No Cookie", "email": "nc@example.com"}, 201),
        ("PATCH", f"/crm/contacts/{contact_id}", {"company": "Cookieless"}, 200),
        ("POST", f"/crm/contacts/{contact_id}/provision", None, 201),
        ("GET", "/feed", None, 200),
        ("GET", "/nope", None, 404),
    ]:
        response = api(method, path, body)
        assert response.status_code == status, path
        assert "Set-Cookie" not in response.headers, path


def test_session_user_can_read_the_api(client, staff, make):
    make.contact("LEAD")
    response = client.get(f"{API}/crm/contacts")
    assert response.status_code == 200 and response.get_json()["total"] == 1


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=_route_id)
def test_admin_routes_refuse_staff_and_accept_admins(client, app, make, route, route_args):
    method, path, body = route
    make.user("staff", email="plain-staff@example.com")
    make.user("admin", email="root@example.com")
    path = route_args(path)
    staff_api, admin_api = Api(client, token_for(app, "plain-staff@example.com")), Api(client, token_for(app, "root@example.com"))
    before = snapshot(app)
    assert_error(staff_api(method, path, body), 403, "forbidden")
    assert snapshot(app) == before
    response = admin_api(method, path, body)
    assert response.status_code in (200, 201, 202, 204), response.get_json()


def test_webhook_api_creates_lists_and_deletes_an_endpoint(client, app, make):
    make.user("admin", email="root@example.com")
    api = Api(client, token_for(app, "root@example.com"))
    app.config["WEBHOOK_ALLOW_PRIVATE_HOSTS"] = True
    created = api.post("/webhooks", {"url": "http://127.0.0.1:9/in", "events": ["onboarding.completed"],
                                     "description": "CRM sync"})
    assert created.status_code == 201
    body = created.get_json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["onboarding.completed"] and body["active"]
    listed = api.get("/webhooks").get_json()["items"]
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    assert api.post(f"/webhooks/{body['id']}/test").status_code == 202
    deliveries = api.get(f"/webhooks/{body['id']}/deliveries").get_json()["items"]
    assert deliveries[0]["event_type"] == "webhook.test" and deliveries[0]["attempts"] == 1
    assert deliveries[0]["status"] == "pending" and deliveries[0]["last_error"]  # nothing listens on port 9
    assert api.delete(f"/webhooks/{body['id']}").status_code == 204
    for method, path in (("DELETE", ""), ("GET", "/deliveries"), ("POST", "/test")):
        assert_error(api(method, f"/webhooks/{body['id']}{path}"), 404)
    assert_error(api.get("/webhooks/99999999999/deliveries"), 404)


@pytest.mark.parametrize("body", [
    {"url": "http://127.0.0.1:9/x", "events": ["*"]},  # private, not allowed here
    {"url": "ftp://example.org/x", "events": ["*"]},
    {"url": "https://93.184.215.14/x", "events": "onboarding.completed"},
    {"url": "https://93.184.215.14/x", "events": []},
    {"url": "https://93.184.215.14/x", "events": ["no.such.event"]},
    {"url": "https://93.184.215.14/x", "events": ["*"], "secret": "mine"},
    {"url": 5, "events": ["*"]},
    {"events": ["*"]},
])
def test_webhook_api_refuses_bad_endpoints_and_stores_nothing(client, app, make, body):
    make.user("admin", email="root@example.com")
    api = Api(client, token_for(app, "root@example.com"))
    before = snapshot(app)
    response = api.post("/webhooks", body)
    error = assert_error(response, 422, "invalid_fields")
    assert error["fields"]
    assert snapshot(app) == before
    assert api.get("/webhooks").get_json()["items"] == []


def test_cookie_only_unsafe_request_without_csrf_token_is_refused(client, app, staff, route_args):
    before = snapshot(app)
    for method, path, body in STAFF_ROUTES:
        if method == "GET":
            continue
        response = client.open(API + route_args(path), method=method, json=body)
        assert_error(response, 400, "csrf_failed")
        response = client.open(API + route_args(path), method=method, json=body, headers={"X-CSRFToken": "forged"})
        assert_error(response, 400, "csrf_failed")
    assert snapshot(app) == before


def test_cookie_request_with_the_csrf_token_is_accepted(client, app, staff, auth):
    token = auth.csrf("/account/password")
    response = client.post(f"{API}/crm/contacts", json={"name": "Real", "email": "real@example.com"},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 201


def test_cookie_only_task_completion_needs_the_csrf_token(client, app, member, auth):
    assert auth.login(member.email, USER_PASSWORD).status_code == 302
    before = snapshot(app)
    assert_error(client.post(f"{API}/onboarding/complete/book-kickoff-call"), 400, "csrf_failed")
    assert snapshot(app) == before
    token = auth.csrf("/account/password")
    response = client.post(f"{API}/onboarding/complete/book-kickoff-call", headers={"X-CSRFToken": token})
    assert response.status_code == 200


def test_session_user_of_another_role_gets_403_on_staff_routes(client, member, auth):
    auth.login(member.email, USER_PASSWORD)
    assert_error(client.get(f"{API}/crm/contacts"), 403, "forbidden")


def test_session_user_with_a_temporary_password_must_change_it_first(client, make, auth, mailbox):
    make.provisioned("client", email="tess@example.com")
    auth.login("tess@example.com", mailbox.temporary_password("tess@example.com"))
    assert_error(client.get(f"{API}/onboarding"), 403, "password_change_required")


# --- errors answered as JSON everywhere under /api --------------------------------------------------------


def test_routing_404_is_json(client):
    for path in ["/api/v1/nope", "/api/v2/crm/contacts", "/api", "/api/", "/api/v1/crm/contacts/1/nope"]:
        assert_error(client.get(path), 404, "not_found")


def test_wrong_method_is_405_json_with_allow(api):
    for method, path in [("DELETE", "/crm/contacts"), ("PUT", "/crm/contacts/1"), ("GET", "/crm/contacts/1/provision"),
                         ("POST", "/feed"), ("DELETE", "/openapi.json")]:
        response = api(method, path)
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["Allow"]


def test_rate_limit_is_429_json_per_token(app, client, staff_token, make):
    make.user("staff", email="other-ops@example.com")
    other = token_for(app, "other-ops@example.com")
    app.config["API_RATE_LIMIT"] = "3 per minute"
    api = Api(client, staff_token)
    for _ in range(3):
        assert api.get("/feed").status_code == 200
    response = api.get("/feed")
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    assert_error(api.post("/crm/contacts", {"name": "X", "email": "x@example.com"}), 429, "rate_limited")
    assert snapshot(app)["counts"]["contacts"] == 0
    assert Api(client, other).get("/feed").status_code == 200  # another token has its own budget


def test_rate_limit_headers_count_down_with_one_storage_call_per_request(app, client, staff_token, monkeypatch):
    from onboarding_app.extensions import limiter

    app.config["API_RATE_LIMIT"] = "5 per minute"
    calls = []
    incr = limiter.storage.incr
    monkeypatch.setattr(limiter.storage, "incr", lambda *a, **k: calls.append(a[0]) or incr(*a, **k))
    api = Api(client, staff_token)
    remaining = [api.get("/feed").headers["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["4", "3", "2"]
    assert api.get("/feed").headers["X-RateLimit-Limit"] == "5"
    assert len(calls) == 4 and len(set(calls)) == 1  # one counter, one increment per request


def test_rate_limit_off_with_ratelimit_enabled_0(app, client, staff_token):
    app.config["API_RATE_LIMIT"] = "1 per minute"
    app.config["RATELIMIT_ENABLED"] = False
    api = Api(client, staff_token)
    assert [api.get("/feed").status_code for _ in range(3)] == [200, 200, 200]


def test_unexpected_error_is_500_json_and_rolls_back(api, app, monkeypatch):
    def broken(session, **kwargs):
        session.add(Contact(name="Half", email="half@example.com"))
        session.flush()
        raise RuntimeError("secret internals")

    monkeypatch.setattr(contacts, "list_contacts", broken)
    response = api.get("/crm/contacts")
    assert_error(response, 500, "internal_error")
    assert "secret internals" not in response.get_data(as_text=True)
    assert snapshot(app)["counts"]["contacts"] == 0


def test_route_tables_cover_every_api_rule(app):
    """The matrices above cover every API route (openapi.json is public)."""
    rules = {
        (method, re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules() if rule.rule.startswith(API)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    def pattern(path: str) -> str:
        path = re.sub(r"/onboarding/(complete|skip)/[a-z-]+$", r"/onboarding/\1/{slug}", path)
        path = re.sub(r"/documents/[a-z-]+", "/documents/{key}", path)
        path = re.sub(r"/checklists/[a-z]+", "/checklists/{role}", path)
        path = re.sub(r"/tasks/[a-z-]+$", "/tasks/{slug}", path)
        return re.sub(r"/files/1$", "/files/{file_id}", path)

    tabled = {(m, API + pattern(p)) for m, p, _ in ALL_ROUTES}
    assert rules == tabled | {("GET", f"{API}/openapi.json")}
