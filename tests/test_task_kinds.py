"""Tasks that check themselves (SPEC.md, round 2): each kind through the JSON API and its
services, on SQLite and PostgreSQL. Valid answers, every invalid case (422 with ``fields``, 409,
413) storing nothing, resubmission replacing answers, skip rules, completion."""

from __future__ import annotations

from io import BytesIO

import pytest
from sqlalchemy import func, select, update

from onboarding_app import accounts, documents, provisioning
from onboarding_app.extensions import db
from onboarding_app.models import (
    Contact,
    Document,
    FeedEvent,
    OnboardingProgress,
    OnboardingTask,
    UploadedFile,
    User,
    utcnow,
)

from . import answers
from .conftest import USER_PASSWORD
from .test_api import Api, Member, assert_error, token_for

LONG = "x" * 201


def stored(app) -> dict:
    """Everything a completion may write: "nothing stored" compares two of these."""
    with app.app_context():
        s = db.session
        return {
            "progress": s.execute(select(OnboardingProgress.id, OnboardingProgress.completed, OnboardingProgress.completed_at,
                                         OnboardingProgress.skipped_at, OnboardingProgress.data)
                                  .order_by(OnboardingProgress.id)).all(),
            "users": s.execute(select(User.id, User.name, User.timezone).order_by(User.id)).all(),
            "contacts": s.execute(select(Contact.id, Contact.name, Contact.company, Contact.phone, Contact.status,
                                         Contact.invited_by_id).order_by(Contact.id)).all(),
            "files": s.execute(select(UploadedFile.id, UploadedFile.sha256).order_by(UploadedFile.id)).all(),
            "events": s.scalar(select(func.count()).select_from(FeedEvent)),
            "documents": s.scalar(select(func.count()).select_from(Document)),
        }


def _member(app, make, client, role: str, email: str) -> tuple[Member, Api]:
    contact_id, user_id = make.provisioned(role, email=email)
    with app.app_context():
        accounts.set_password(db.session, user_id, USER_PASSWORD)
    member = Member(contact_id, user_id, email, token_for(app, email))
    return member, Api(client, member.token)


@pytest.fixture
def client_member(app, make, client):
    return _member(app, make, client, "client", "ada@example.com")


@pytest.fixture
def partner_member(app, make, client):
    return _member(app, make, client, "partner", "pam@example.com")


@pytest.fixture
def staff_api(app, make, client) -> Api:
    make.user("staff", email="ops@example.com", name="Olive Ops")
    return Api(client, token_for(app, "ops@example.com"))


@pytest.fixture
def admin_api(app, make, client) -> Api:
    make.user("admin", email="boss@example.com", name="Ada Admin")
    return Api(client, token_for(app, "boss@example.com"))


def _task(body: dict, slug: str) -> dict:
    return next(t for t in body["tasks"] if t["slug"] == slug)


def _refused(app, call, status: int, code: str, fields: set[str] | None = None) -> dict:
    before = stored(app)
    error = assert_error(call(), status, code)
    if fields is not None:
        assert set(error["fields"]) == fields, error
        assert all(error["fields"].values())
    assert stored(app) == before
    return error


# --- the checklist describes each task --------------------------------------------------------


def test_the_checklist_says_what_each_task_takes(client_member, partner_member, app):
    _, api = client_member
    body = api.get("/onboarding").get_json()
    kinds = {t["slug"]: t["kind"] for t in body["tasks"]}
    assert kinds == {"set-password": "password", "complete-profile": "profile", "accept-terms": "terms",
                     "add-billing-contact": "billing", "book-kickoff-call": "manual", "invite-teammates": "teammates"}
    fields = {t["slug"]: {(f["name"], f["type"], f["required"]) for f in t["fields"]} for t in body["tasks"]}
    assert fields["set-password"] == set() and fields["book-kickoff-call"] == set()
    assert fields["complete-profile"] == {("name", "string", True), ("company", "string", True),
                                          ("timezone", "string", True), ("phone", "string", False),
                                          ("job_title", "string", False)}
    assert fields["accept-terms"] == {("accept", "boolean", True), ("version", "integer", True),
                                      ("signature", "string", False)}
    assert ("billing_email", "email", True) in fields["add-billing-contact"]
    assert fields["invite-teammates"] == {("emails", "array", True)}
    terms = _task(body, "accept-terms")
    assert terms["document"] == {"key": "service-terms", "version": 1, "title": "Service terms"}
    assert terms["data"] is None and terms["skipped"] is False

    _, partner_api = partner_member
    body = partner_api.get("/onboarding").get_json()
    agreement = _task(body, "sign-partner-agreement")
    assert ("signature", "string", True) in {(f["name"], f["type"], f["required"]) for f in agreement["fields"]}
    assert agreement["document"]["key"] == "partner-agreement"
    assert _task(body, "upload-tax-form")["fields"] == [{"name": "file", "type": "file", "required": True}]


def test_kickoff_links_to_the_booking_page(app, make, client):
    app.config["KICKOFF_BOOKING_URL"] = "https://cal.example.com/kickoff"
    _, api = _member(app, make, client, "client", "kim@example.com")
    assert _task(api.get("/onboarding").get_json(), "book-kickoff-call")["action_url"] == "https://cal.example.com/kickoff"


# --- password and manual ------------------------------------------------------------------------


def test_password_task_answers_200_once_done_and_409_before(app, make, client, client_member):
    _, api = client_member
    assert api.post("/onboarding/complete/set-password").status_code == 200
    _, user_id = make.provisioned("client", email="tom@example.com")
    with app.app_context(), pytest.raises(provisioning.AutomaticTask):
        provisioning.complete_task(db.session, user_id, "set-password")


def test_manual_task_takes_nothing(app, client_member):
    _, api = client_member
    _refused(app, lambda: api.post("/onboarding/complete/book-kickoff-call", {"note": "hi"}), 422, "invalid_fields",
             {"note"})
    assert api.post("/onboarding/complete/book-kickoff-call", {}).status_code == 200


# --- profile ---------------------------------------------------------------------------------------


def test_profile_writes_the_user_and_the_contact(app, client_member):
    member, api = client_member
    response = api.post("/onboarding/complete/complete-profile", answers.PROFILE)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["task"]["completed"] is True and body["task"]["data"] == answers.PROFILE
    with app.app_context():
        user = db.session.get(User, member.user_id)
        contact = db.session.get(Contact, member.contact_id)
        assert (user.name, user.timezone) == ("Margaret Hamilton", "Europe/Paris")
        assert (contact.name, contact.company, contact.phone) == ("Margaret Hamilton", "Apollo Software",
                                                                  "+1 617 555 0100")
    assert _task(api.get("/onboarding").get_json(), "complete-profile")["data"]["job_title"] == answers.PROFILE["job_title"]


@pytest.mark.parametrize("change, field", [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": LONG}, "name"),
    ({"company": ""}, "company"),
    ({"company": LONG}, "company"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"timezone": ""}, "timezone"),
    ({"phone": "call me maybe"}, "phone"),
    ({"job_title": LONG}, "job_title"),
    ({"name": 42}, "name"),
    ({"nickname": "Maggie"}, "nickname"),
])
def test_profile_refuses_bad_fields_and_stores_nothing(app, client_member, change, field):
    _, api = client_member
    _refused(app, lambda: api.post("/onboarding/complete/complete-profile", {**answers.PROFILE, **change}),
             422, "invalid_fields", {field})


def test_sending_the_profile_again_replaces_it_and_it_stays_done(app, client_member):
    member, api = client_member
    first = api.post("/onboarding/complete/complete-profile", answers.PROFILE).get_json()
    again = api.post("/onboarding/complete/complete-profile", {**answers.PROFILE, "timezone": "Asia/Tokyo",
                                                               "job_title": ""}).get_json()
    assert again["task"]["completed_at"] == first["task"]["completed_at"]
    assert again["task"]["data"]["timezone"] == "Asia/Tokyo" and again["task"]["data"]["job_title"] == ""
    with app.app_context():
        assert db.session.get(User, member.user_id).timezone == "Asia/Tokyo"
        completed = db.session.scalar(select(func.count()).select_from(FeedEvent).where(
            FeedEvent.type == "onboarding.task.completed", FeedEvent.payload["slug"].as_string() == "complete-profile"))
        assert completed == 1


# --- terms -----------------------------------------------------------------------------------------


def test_the_terms_are_readable_and_sanitized(client_member, admin_api):
    _, api = client_member
    body = api.get("/documents/service-terms").get_json()
    assert (body["key"], body["version"], body["title"]) == ("service-terms", 1, "Service terms")
    assert "<h4>1. The service</h4>" in body["body_html"] and "<strong>yours</strong>" in body["body_html"]
    hostile = ("# Hi\n\n<script>alert(1)</script>\n\n[click](javascript:alert(1)) "
               "<img src=x onerror=alert(1)> [ok](https://example.com)")
    assert admin_api.post("/documents/service-terms/versions", {"title": "Service terms", "body_markdown": hostile}
                          ).status_code == 201
    html = api.get("/documents/service-terms").get_json()["body_html"]
    assert "<script" not in html and 'href="javascript' not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;img" in html  # raw HTML is shown as text
    assert 'href="https://example.com"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert_error(api.get("/documents/no-such-document"), 404)


def test_accepting_the_terms_records_version_time_address_and_agent(app, client_member):
    member, api = client_member
    response = api.post("/onboarding/complete/accept-terms", {"accept": True, "version": 1},
                        headers={"User-Agent": "TermsBot/1.0"}, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["task"]["data"]
    assert (data["version"], data["document_key"], data["ip"], data["user_agent"]) == (
        1, "service-terms", "203.0.113.9", "TermsBot/1.0")
    assert data["accepted_at"] and "signature" not in data


@pytest.mark.parametrize("body, fields", [
    ({"version": 1}, {"accept"}),
    ({"accept": False, "version": 1}, {"accept"}),
    ({"accept": True}, {"version"}),
    ({"accept": True, "version": "one"}, {"version"}),
    ({"accept": True, "version": 0}, {"version"}),
    ({"accept": "maybe", "version": 1}, {"accept"}),
])
def test_terms_refuse_bad_fields(app, client_member, body, fields):
    _, api = client_member
    _refused(app, lambda: api.post("/onboarding/complete/accept-terms", body), 422, "invalid_fields", fields)


def test_a_version_that_is_not_current_is_409_and_an_accepted_one_stays_done(app, client_member, admin_api, make,
                                                                             client):
    _, api = client_member
    assert api.post("/onboarding/complete/accept-terms", {"accept": True, "version": 1}).status_code == 200
    published = admin_api.post("/documents/service-terms/versions", {"title": "Service terms",
                                                                      "body_markdown": "## New terms\n\nShorter."})
    assert published.status_code == 201 and published.get_json() == {"key": "service-terms", "version": 2}
    terms = _task(api.get("/onboarding").get_json(), "accept-terms")
    assert terms["completed"] is True and terms["data"]["version"] == 1 and terms["document"]["version"] == 2

    _, other = _member(app, make, client, "client", "bob@example.com")
    error = _refused(app, lambda: other.post("/onboarding/complete/accept-terms", {"accept": True, "version": 1}),
                     409, "stale_version")
    assert error["current_version"] == 2
    assert other.post("/onboarding/complete/accept-terms", {"accept": True, "version": 2}).status_code == 200


def test_only_admins_publish_and_the_fields_are_checked(app, admin_api, staff_api, client_member):
    _, member_api = client_member
    body = {"title": "Partner agreement", "body_markdown": "Text."}
    assert_error(staff_api.post("/documents/partner-agreement/versions", body), 403, "forbidden")
    assert_error(member_api.post("/documents/partner-agreement/versions", body), 403, "forbidden")
    _refused(app, lambda: admin_api.post("/documents/partner-agreement/versions", {"title": "", "body_markdown": ""}),
             422, "invalid_fields", {"title", "body_markdown"})
    with app.app_context():
        document = documents.publish(db.session, "partner-agreement", body, actor_id=None)
        assert document.version == 2
        assert documents.current(db.session, "partner-agreement").body_markdown == "Text."


def test_the_partner_agreement_needs_a_signature(app, partner_member):
    _, api = partner_member
    _refused(app, lambda: api.post("/onboarding/complete/sign-partner-agreement", {"accept": True, "version": 1}),
             422, "invalid_fields", {"signature"})
    _refused(app, lambda: api.post("/onboarding/complete/sign-partner-agreement",
                                   {"accept": True, "version": 1, "signature": LONG}), 422, "invalid_fields", {"signature"})
    body = api.post("/onboarding/complete/sign-partner-agreement", answers.api("sign-partner-agreement")["json"]).get_json()
    assert body["task"]["data"]["signature"] == "Katherine Johnson"


# --- billing ---------------------------------------------------------------------------------------


def test_billing_contact(app, client_member):
    _, api = client_member
    body = api.post("/onboarding/complete/add-billing-contact", answers.BILLING).get_json()
    assert body["task"]["data"] == {**answers.BILLING, "billing_email": "ap@apollo.example"}
    again = api.post("/onboarding/complete/add-billing-contact",
                     {"billing_name": "Finance", "billing_email": "FINANCE@Apollo.example"}).get_json()
    assert again["task"]["data"] == {"billing_name": "Finance", "billing_email": "finance@apollo.example",
                                     "address": "", "vat_id": ""}


@pytest.mark.parametrize("change, field", [
    ({"billing_name": ""}, "billing_name"),
    ({"billing_email": "not-an-email"}, "billing_email"),
    ({"billing_email": ""}, "billing_email"),
    ({"address": "a" * 501}, "address"),
    ({"vat_id": "GB<script>"}, "vat_id"),
])
def test_billing_refuses_bad_fields(app, client_member, change, field):
    _, api = client_member
    _refused(app, lambda: api.post("/onboarding/complete/add-billing-contact", {**answers.BILLING, **change}),
             422, "invalid_fields", {field})


# --- teammates -------------------------------------------------------------------------------------


def test_teammates_become_qualified_contacts_of_the_company(app, client_member, make, staff_api):
    member, api = client_member
    make.contact("LEAD", email="known@example.com")
    response = api.post("/onboarding/complete/invite-teammates",
                        {"emails": ["Grace@Example.com", "known@example.com", "grace@example.com", "alan@example.com"]})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["created"] == ["grace@example.com", "alan@example.com"] and body["skipped"] == ["known@example.com"]
    assert body["complete"] is False and body["status"] == "ONBOARDING"
    with app.app_context():
        invited = db.session.execute(select(Contact).where(Contact.invited_by_id == member.user_id)
                                     .order_by(Contact.email)).scalars().all()
        company = db.session.get(Contact, member.contact_id).company
        assert [(c.email, c.status, c.role, c.company) for c in invited] == [
            ("alan@example.com", "QUALIFIED", "client", company), ("grace@example.com", "QUALIFIED", "client", company)]
        grace = invited[1].id
    waiting = staff_api.get("/crm/contacts?status=QUALIFIED").get_json()["items"]
    assert {"alan@example.com", "grace@example.com"} <= {c["email"] for c in waiting}
    # Sent again: nobody is created twice.
    again = api.post("/onboarding/complete/invite-teammates", {"emails": ["grace@example.com"]}).get_json()
    assert again["created"] == [] and again["skipped"] == ["grace@example.com"]
    assert again["task"]["data"]["emails"] == ["grace@example.com"]
    assert grace


@pytest.mark.parametrize("emails, sentence", [
    ([], "at least one"),
    ([f"p{i}@example.com" for i in range(21)], "at most 20"),
    (["ada@example.com"], "your own address"),
    (["friend@example.com", "ADA@example.com"], "your own address"),
    (["friend@example.com", "not an email"], "not a valid email"),
    ("friend@example.com", None),  # a JSON string is split like the form's text: accepted
])
def test_teammates_refusals(app, client_member, emails, sentence):
    _, api = client_member
    if sentence is None:
        assert api.post("/onboarding/complete/invite-teammates", {"emails": emails}).status_code == 200
        return
    error = _refused(app, lambda: api.post("/onboarding/complete/invite-teammates", {"emails": emails}),
                     422, "invalid_fields", {"emails"})
    assert sentence in error["fields"]["emails"].lower()


# --- upload ----------------------------------------------------------------------------------------


def _upload(api: Api, content: bytes, filename: str = "w9.pdf", **kwargs):
    return api.post("/onboarding/complete/upload-tax-form", data={"file": (BytesIO(content), filename)},
                    content_type="multipart/form-data", **kwargs)


def test_an_upload_is_stored_and_served_to_its_owner_and_staff_only(app, make, client, partner_member, staff_api):
    member, api = partner_member
    response = _upload(api, answers.PDF, "../../Form W-9 (2026)\x07.PDF")
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["task"]["data"]
    assert (data["filename"], data["content_type"], data["size"]) == ("Form W-9 (2026).pdf", "application/pdf",
                                                                      len(answers.PDF))
    assert data["url"] == f"/api/v1/crm/contacts/{member.contact_id}/files/{data['file_id']}"
    for who in (api, staff_api):
        download = who.get(data["url"].removeprefix("/api/v1"))
        assert download.status_code == 200 and download.data == answers.PDF
        assert download.mimetype == "application/pdf"
        assert download.headers["X-Content-Type-Options"] == "nosniff"
        assert download.headers["Content-Disposition"].startswith("attachment;")
        assert "Form W-9 (2026).pdf" in download.headers["Content-Disposition"]
    _, stranger = _member(app, make, client, "partner", "eve@example.com")
    assert_error(stranger.get(data["url"].removeprefix("/api/v1")), 404)
    assert_error(stranger.get(f"/crm/contacts/{member.contact_id + 1}/files/{data['file_id']}"), 404)
    assert_error(staff_api.get(f"/crm/contacts/{member.contact_id}/files/999999"), 404)


def test_sending_another_file_replaces_the_first(app, partner_member):
    _, api = partner_member
    first = _upload(api, answers.PDF).get_json()["task"]["data"]
    second = _upload(api, answers.PNG, "scan.png").get_json()["task"]["data"]
    assert second["content_type"] == "image/png" and second["filename"] == "scan.png"
    with app.app_context():
        rows = db.session.execute(select(UploadedFile.id, UploadedFile.content)).all()
        assert [(row.id, bytes(row.content)) for row in rows] == [(second["file_id"], answers.PNG)]
    assert first["content_type"] == "application/pdf"
    assert _upload(api, answers.JPEG, "photo").get_json()["task"]["data"]["filename"] == "photo.jpg"


@pytest.mark.parametrize("content, filename", [
    (b"MZ\x90\x00\x03" + b"\x00" * 64, "invoice.pdf"),  # a renamed executable
    (b"#!/bin/sh\nrm -rf /\n", "tax.png"),
    (b"<html><script>alert(1)</script></html>", "form.jpg"),
    (b"", "empty.pdf"),
])
def test_uploads_are_judged_by_their_content(app, partner_member, content, filename):
    _, api = partner_member
    _refused(app, lambda: _upload(api, content, filename), 422, "invalid_fields", {"file"})


def test_an_upload_without_a_file_or_as_json_is_refused(app, partner_member):
    _, api = partner_member
    _refused(app, lambda: api.post("/onboarding/complete/upload-tax-form", data={"other": "x"},
                                   content_type="multipart/form-data"), 422, "invalid_fields", {"file"})
    _refused(app, lambda: api.post("/onboarding/complete/upload-tax-form", {"file": "JVBERi0="}),
             422, "invalid_fields", {"file"})


def test_a_session_upload_past_max_content_length_passes_the_csrf_check(app, client, auth, partner_member):
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, UPLOAD_MAX_BYTES=256 * 1024)
    member, _ = partner_member
    assert auth.login(member.email, USER_PASSWORD).status_code == 302
    token = auth.csrf("/account/password")
    response = client.post("/api/v1/onboarding/complete/upload-tax-form", headers={"X-CSRFToken": token},
                           content_type="multipart/form-data",
                           data={"file": (BytesIO(answers.PDF + b"0" * 150_000), "big.pdf")})
    assert response.status_code == 200, response.get_json()


def test_an_oversized_file_is_413_file_too_large(app, partner_member):
    app.config["UPLOAD_MAX_BYTES"] = 1024
    _, api = partner_member
    _refused(app, lambda: _upload(api, answers.PDF + b"0" * 1024), 413, "file_too_large")
    # Past the multipart limit too, refused before it is read.
    _refused(app, lambda: _upload(api, answers.PDF + b"0" * 200_000), 413, "file_too_large")
    assert _upload(api, answers.PDF).status_code == 200


# --- skip, retire, completion ------------------------------------------------------------------


def test_skip_rules(app, client_member):
    member, api = client_member
    _refused(app, lambda: api.post("/onboarding/skip/accept-terms"), 409, "required_task")
    assert_error(api.post("/onboarding/skip/no-such-task"), 404, "unknown_task")
    body = api.post("/onboarding/skip/invite-teammates").get_json()
    assert body["task"]["skipped"] is True and body["task"]["completed"] is False
    before = stored(app)
    assert api.post("/onboarding/skip/invite-teammates").get_json()["task"]["skipped"] is True
    assert stored(app) == before  # twice: nothing more
    checklist = api.get("/onboarding").get_json()
    assert _task(checklist, "invite-teammates")["skipped"] is True and checklist["required_completed"] == 1
    # Completing it later un-skips it.
    done = api.post("/onboarding/complete/invite-teammates", {"emails": ["pal@example.com"]}).get_json()
    assert done["task"]["completed"] is True and done["task"]["skipped"] is False
    # Skipping a done task changes nothing.
    before = stored(app)
    assert api.post("/onboarding/skip/invite-teammates").get_json()["task"]["completed"] is True
    assert stored(app) == before
    with app.app_context():
        skips = db.session.scalar(select(func.count()).select_from(FeedEvent).where(
            FeedEvent.type == "onboarding.task.skipped"))
        assert skips == 1


def test_the_last_required_data_task_completes_onboarding(app, partner_member, staff_api):
    member, api = partner_member
    for slug in ("sign-partner-agreement", "complete-profile"):
        body = api.post(f"/onboarding/complete/{slug}", answers.api(slug)["json"]).get_json()
        assert body["complete"] is False
    assert api.post("/onboarding/skip/partner-portal-tour").get_json()["complete"] is False
    last = _upload(api, answers.PDF).get_json()
    assert (last["complete"], last["status"]) == (True, "ACTIVE")
    detail = staff_api.get(f"/crm/contacts/{member.contact_id}").get_json()
    tasks = {t["slug"]: t for t in detail["onboarding"]["tasks"]}
    assert tasks["upload-tax-form"]["data"]["url"].endswith(f"/files/{tasks['upload-tax-form']['data']['file_id']}")
    assert tasks["sign-partner-agreement"]["data"]["signature"] == "Katherine Johnson"
    assert tasks["partner-portal-tour"]["skipped"] is True
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(FeedEvent).where(
            FeedEvent.type == "onboarding.completed")) == 1


def test_a_retired_task_leaves_the_checklist_and_stops_counting(app, client_member):
    member, api = client_member
    with app.app_context():
        db.session.execute(update(OnboardingTask).where(OnboardingTask.role == "client",
                                                        OnboardingTask.slug == "add-billing-contact")
                           .values(retired_at=utcnow()))
        db.session.commit()
    body = api.get("/onboarding").get_json()
    assert "add-billing-contact" not in {t["slug"] for t in body["tasks"]} and body["required_total"] == 3
    assert_error(api.post("/onboarding/complete/add-billing-contact", answers.BILLING), 404, "unknown_task")
    for slug in ("complete-profile", "accept-terms"):
        result = api.post(f"/onboarding/complete/{slug}", answers.api(slug)["json"]).get_json()
    assert (result["complete"], result["status"]) == (True, "ACTIVE")


def test_services_refuse_before_writing(app, client_member):
    member, _ = client_member
    before = stored(app)
    with app.app_context():
        with pytest.raises(provisioning.ValidationFailed if hasattr(provisioning, "ValidationFailed") else Exception):
            provisioning.complete_task(db.session, member.user_id, "complete-profile", {"name": ""})
    assert stored(app) == before


def test_the_tracker_shows_a_skipped_task_and_leaves_out_retired_ones(app, client_member, staff_api):
    member, api = client_member
    api.post("/onboarding/skip/invite-teammates")
    with app.app_context():
        db.session.execute(update(OnboardingTask).where(OnboardingTask.role == "client",
                                                        OnboardingTask.slug == "book-kickoff-call")
                           .values(retired_at=utcnow()))
        db.session.commit()
    [row] = staff_api.get("/onboarding/accounts").get_json()["items"]
    cells = {t["slug"]: t for t in row["tasks"]}
    assert cells["invite-teammates"]["skipped"] is True and cells["invite-teammates"]["completed"] is False
    assert "book-kickoff-call" not in cells
