"""The widget's inline forms (one partial per kind) through the test client: a valid submit
swaps the row and the progress bar, an invalid one swaps the form back with each message next
to its field, without JavaScript the same forms post and redirect (or show the page again);
staff see the answers on the contact page; times follow the profile's zone."""

from __future__ import annotations

from io import BytesIO

import pytest
from selectolax.lexbor import LexborHTMLParser as HTMLParser
from sqlalchemy import select

from onboarding_app import accounts, provisioning
from onboarding_app.extensions import db
from onboarding_app.models import OnboardingProgress, User

from . import answers
from .conftest import NEW_PASSWORD, STAFF_PASSWORD

HX = {"HX-Request": "true"}


@pytest.fixture
def signed_in(app, make, auth):
    """A provisioned account with its own password, signed in: (contact_id, user_id, csrf token)."""

    def sign_in(role="client", email="margaret@example.com"):
        contact_id = make.contact("QUALIFIED", role=role, email=email, name="Margaret Hamilton")
        with app.app_context():
            user_id = provisioning.provision_account(db.session, contact_id).user.id
            accounts.set_password(db.session, user_id, NEW_PASSWORD)
        assert auth.login(email, NEW_PASSWORD).status_code == 302
        return contact_id, user_id, auth.csrf("/account/password")

    return sign_in


def _row(html: str, slug: str):
    node = HTMLParser(html).css_first(f"#task-{slug}")
    assert node is not None, html[:500]
    return node


def test_a_data_task_row_opens_its_form(client, signed_in):
    signed_in()
    page = client.get("/dashboard").get_data(as_text=True)
    profile = _row(page, "complete-profile")
    summary = profile.css_first("details > summary")
    assert summary.text(strip=True) == "Fill in"
    form = profile.css_first("form")
    assert form.attributes["hx-post"] == "/onboarding/tasks/complete-profile/complete"
    assert form.attributes["hx-target"] == "#task-complete-profile"
    labels = {label.text(strip=True).replace("(optional)", "").strip() for label in form.css("label")}
    assert {"Full name", "Company", "Time zone", "Phone", "Job title"} <= labels
    zones = [o.attributes["value"] for o in form.css("select[name=timezone] option")]
    assert "Europe/Paris" in zones and "America/Argentina/Buenos_Aires" in zones
    terms = _row(page, "accept-terms")
    assert "The service" in terms.css_first(".document-text").text() and terms.css_first("input[name=version]")
    # Optional open tasks can be skipped; required ones cannot.
    assert _row(page, "invite-teammates").css_first("form[action$='/skip'] button").text(strip=True) == "Skip"
    assert _row(page, "accept-terms").css_first("form[action$='/skip']") is None


def test_an_invalid_submit_swaps_the_form_back_with_its_messages(app, client, signed_in):
    _, user_id, token = signed_in()
    response = client.post("/onboarding/tasks/complete-profile/complete", headers=HX, data={
        "csrf_token": token, "name": "", "company": "Apollo", "timezone": "Mars/Base", "phone": "", "job_title": ""})
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#task-complete-profile-form"
    assert response.headers["HX-Reswap"] == "outerHTML"
    tree = HTMLParser(response.get_data(as_text=True))
    wrapper = tree.css_first("#task-complete-profile-form")
    assert wrapper is not None and "open" in wrapper.css_first("details").attributes
    name = tree.css_first("#task-complete-profile-name")
    assert name.attributes["aria-invalid"] == "true" and "autofocus" in name.attributes
    assert tree.css_first("#task-complete-profile-name-error").text(strip=True) == "This field is required."
    assert "time zone" in tree.css_first("#task-complete-profile-timezone-error").text().lower()
    assert tree.css_first("#task-complete-profile-company").attributes["value"] == "Apollo"  # kept
    with app.app_context():
        progress = db.session.execute(select(OnboardingProgress).join(OnboardingProgress.task).where(
            OnboardingProgress.user_id == user_id)).scalars().all()
        assert not any(p.data for p in progress)


def test_a_valid_submit_swaps_the_row_to_done_with_the_progress_out_of_band(app, client, signed_in):
    _, user_id, token = signed_in()
    response = client.post("/onboarding/tasks/complete-profile/complete", headers=HX,
                           data={"csrf_token": token, **answers.form("complete-profile")})
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "feed-changed"
    tree = HTMLParser(response.get_data(as_text=True))
    row = tree.css_first("#task-complete-profile")
    assert row.css_first(".badge.state-done").text(strip=True) == "Done"
    assert row.css_first("details > summary").text(strip=True) == "Edit"
    assert "Apollo Software" in row.css_first(".task-answers").text()
    assert tree.css_first("#onboarding-progress").attributes["hx-swap-oob"] == "true"
    assert "2 of 4 required done" in tree.css_first("#onboarding-progress").text()
    with app.app_context():
        assert db.session.get(User, user_id).timezone == "Europe/Paris"


def test_times_are_shown_in_the_profiles_zone(app, client, signed_in):
    _, _, token = signed_in()
    client.post("/onboarding/tasks/complete-profile/complete", data={"csrf_token": token, **answers.form("complete-profile")})
    page = client.get("/dashboard").get_data(as_text=True)
    shown = _row(page, "complete-profile").css_first(".task-meta time")
    assert shown.attributes["title"].endswith("(Europe/Paris)"), shown.attributes


def test_without_javascript_forms_post_and_redirect_or_show_their_messages(app, client, signed_in):
    _, _, token = signed_in()
    refused = client.post("/onboarding/tasks/add-billing-contact/complete",
                          data={"csrf_token": token, "billing_name": "AP", "billing_email": "nope"})
    assert refused.status_code == 422
    tree = HTMLParser(refused.get_data(as_text=True))
    assert tree.css_first("h1") is not None  # the whole dashboard
    assert "valid email" in tree.css_first("#task-add-billing-contact-billing_email-error").text()
    done = client.post("/onboarding/tasks/add-billing-contact/complete",
                       data={"csrf_token": token, **answers.form("add-billing-contact")})
    assert done.status_code == 302 and done.headers["Location"] == "/dashboard#task-add-billing-contact"
    stale = client.post("/onboarding/tasks/accept-terms/complete",
                        data={"csrf_token": token, "accept": "true", "version": "7"})
    assert stale.status_code == 409
    assert "not the current one" in HTMLParser(stale.get_data(as_text=True)).css_first(
        "#task-accept-terms-form").text()


def test_skip_through_the_widget(app, client, signed_in):
    _, _, token = signed_in()
    response = client.post("/onboarding/tasks/invite-teammates/skip", data={"csrf_token": token}, headers=HX)
    assert response.status_code == 200
    row = HTMLParser(response.get_data(as_text=True)).css_first("#task-invite-teammates")
    assert row.css_first(".badge.state-skipped").text(strip=True) == "Skipped"
    assert row.css_first("form[action$='/skip']") is None
    refused = client.post("/onboarding/tasks/accept-terms/skip", data={"csrf_token": token}, headers=HX)
    assert refused.status_code == 409 and "required" in refused.get_data(as_text=True)


def test_upload_through_the_widget_and_staff_see_every_answer(app, client, make, auth, signed_in):
    contact_id, user_id, token = signed_in("partner", "pam@example.com")
    bad = client.post("/onboarding/tasks/upload-tax-form/complete", headers=HX, content_type="multipart/form-data",
                      data={"csrf_token": token, "file": (BytesIO(b"MZ\x90\x00"), "w9.pdf")})
    assert bad.status_code == 422 and "PDF, PNG or JPEG" in bad.get_data(as_text=True)
    for slug in ("upload-tax-form", "sign-partner-agreement", "complete-profile"):
        response = client.post(f"/onboarding/tasks/{slug}/complete", headers=HX, content_type="multipart/form-data",
                               data={"csrf_token": token, **answers.form(slug)})
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
    # A teammate invited by a client shows "invited by" on their contact page.
    _, _, client_token = None, None, None
    auth.logout()
    make.user("staff", email="sam@example.com", name="Sam Staff")
    auth.login("sam@example.com", STAFF_PASSWORD)
    page = client.get(f"/crm/contacts/{contact_id}").get_data(as_text=True)
    answers_node = HTMLParser(page).css_first("#answers")
    text = answers_node.text()
    assert "Katherine Johnson" in text and "Accepted version 1" in text and "Europe/Paris" in text
    link = answers_node.css_first("a[download]")
    assert link.text(strip=True) == "w9.pdf"
    download = client.get(link.attributes["href"])
    assert download.status_code == 200 and download.data == answers.PDF
    assert download.headers["X-Content-Type-Options"] == "nosniff"


def test_invited_contacts_name_who_invited_them(app, client, make, auth, signed_in):
    _, user_id, token = signed_in()
    client.post("/onboarding/tasks/invite-teammates/complete",
                data={"csrf_token": token, "emails": "dev@apollo.example, ops@apollo.example"})
    auth.logout()
    make.user("staff", email="sam@example.com", name="Sam Staff")
    auth.login("sam@example.com", STAFF_PASSWORD)
    with app.app_context():
        from onboarding_app.models import Contact

        invited = db.session.execute(select(Contact.id).where(Contact.email == "dev@apollo.example")).scalar_one()
    page = HTMLParser(client.get(f"/crm/contacts/{invited}").get_data(as_text=True))
    assert "Margaret Hamilton" in page.css_first(".invited-by").text()
    assert page.css_first("#approve-" + str(invited)) is not None or "Approve" in page.body.text()


def test_an_oversized_upload_is_refused_next_to_the_field(app, client, signed_in):
    app.config["UPLOAD_MAX_BYTES"] = 1024
    _, _, token = signed_in("partner", "pam@example.com")
    for size in (2048, 200_000):  # past UPLOAD_MAX_BYTES; past the multipart body limit too
        response = client.post("/onboarding/tasks/upload-tax-form/complete", headers=HX,
                               content_type="multipart/form-data",
                               data={"csrf_token": token, "file": (BytesIO(answers.PDF + b"0" * size), "big.pdf")})
        assert response.status_code == 413
        tree = HTMLParser(response.get_data(as_text=True))
        assert "larger than 1 KiB" in tree.css_first("#task-upload-tax-form-file-error").text()


def test_a_file_larger_than_max_content_length_but_within_the_upload_limit_is_taken(app, client, signed_in):
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, UPLOAD_MAX_BYTES=256 * 1024)
    _, _, token = signed_in("partner", "pam@example.com")
    response = client.post("/onboarding/tasks/upload-tax-form/complete", headers=HX, content_type="multipart/form-data",
                           data={"csrf_token": token, "file": (BytesIO(answers.PDF + b"0" * 150_000), "big.pdf")})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    # A form post anywhere else keeps MAX_CONTENT_LENGTH.
    response = client.post("/onboarding/tasks/invite-teammates/skip", content_type="multipart/form-data",
                           data={"csrf_token": token, "pad": "x" * 100_000})
    assert response.status_code == 413
