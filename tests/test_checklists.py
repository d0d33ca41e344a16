"""The checklist editor (SPEC.md, "Checklist editor"): the service, its API routes and page."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from onboarding_app import checklists, feed
from onboarding_app.errors import NotFound, SlugTaken, ValidationFailed
from onboarding_app.extensions import db
from onboarding_app.models import Contact, FeedEvent, OnboardingProgress, OnboardingTask

from .conftest import parse
from .test_tracker import CLIENT_REQUIRED, complete

API = "/api/v1"
CLIENT_SEEDED = ["set-password", "complete-profile", "accept-terms", "add-billing-contact",
                 "book-kickoff-call", "invite-teammates"]
NEW = {"slug": "security-review", "title": "Pass the security review", "kind": "manual", "required": True}


def slugs(app, role: str = "client") -> list[str]:
    with app.app_context():
        return [t.slug for t in checklists.get_checklist(db.session, role).tasks]


def positions(app, role: str = "client") -> list[int]:
    with app.app_context():
        return [t.position for t in checklists.get_checklist(db.session, role).tasks]


def status_of(app, contact_id: int) -> str:
    with app.app_context():
        return db.session.get(Contact, contact_id).status


def completed_events(app, user_id: int) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(FeedEvent).where(
            FeedEvent.type == feed.EVENT_COMPLETED, FeedEvent.user_id == user_id)).scalar_one()


def open_rows(app, user_id: int, slug: str) -> list[int]:
    with app.app_context():
        return list(db.session.execute(
            select(OnboardingProgress.completed).join(OnboardingTask)
            .where(OnboardingProgress.user_id == user_id, OnboardingTask.slug == slug)).scalars())


# --- the service ------------------------------------------------------------------------------


def test_the_seeded_checklist_in_order_1_based(app):
    assert slugs(app) == CLIENT_SEEDED
    assert positions(app) == list(range(1, 7))
    with app.app_context():
        with pytest.raises(NotFound):
            checklists.get_checklist(db.session, "staff")


def test_adding_a_task_appends_it(app):
    with app.app_context():
        task = checklists.add_task(db.session, "client", {**NEW, "description": "Ask security.",
                                                          "action_url": "https://example.com/review"})
        assert (task.position, task.kind, task.required, task.action_url) == (7, "manual", True, "https://example.com/review")
    assert slugs(app)[-1] == "security-review"
    assert "security-review" not in slugs(app, "partner")


@pytest.mark.parametrize(("change", "field"), [
    ({"kind": "dance"}, "kind"),
    ({"title": "   "}, "title"),
    ({"action_url": "javascript:alert(1)"}, "action_url"),
    ({"action_url": "ftp://example.com/x"}, "action_url"),
    ({"slug": "Not A Slug"}, "slug"),
    ({"kind": "terms"}, "document"),
    ({"kind": "terms", "document": "no-such-document"}, "document"),
    ({"document": "service-terms"}, "document"),
])
def test_a_bad_task_is_refused_and_nothing_changes(app, change, field):
    with app.app_context():
        with pytest.raises(ValidationFailed) as refused:
            checklists.add_task(db.session, "client", {**NEW, **change})
        assert field in refused.value.fields
    assert slugs(app) == CLIENT_SEEDED


def test_a_terms_task_names_an_existing_document(app):
    with app.app_context():
        task = checklists.add_task(db.session, "partner", {**NEW, "kind": "terms", "document": "service-terms"})
        assert task.document_key == "service-terms"


def test_a_taken_slug_is_a_conflict(app):
    with app.app_context():
        with pytest.raises(SlugTaken):
            checklists.add_task(db.session, "client", {**NEW, "slug": "accept-terms"})
    assert slugs(app) == CLIENT_SEEDED


def test_moving_a_task_renumbers_the_rest(app):
    with app.app_context():
        checklists.update_task(db.session, "client", "invite-teammates", {"position": 1})
    assert slugs(app) == ["invite-teammates", *CLIENT_SEEDED[:5]]
    assert positions(app) == list(range(1, 7))
    with app.app_context():
        checklists.update_task(db.session, "client", "invite-teammates", {"position": 6})
        checklists.update_task(db.session, "client", "set-password", {"position": 3})
    assert slugs(app) == ["complete-profile", "accept-terms", "set-password", "add-billing-contact",
                          "book-kickoff-call", "invite-teammates"]


def checklist_events(app) -> list[tuple[str, int | None, dict, str]]:
    """Checklist feed events, oldest first: (type, actor, data, the feed's sentence)."""
    with app.app_context():
        events = db.session.execute(select(FeedEvent).where(FeedEvent.type.like("checklist.%"))
                                    .order_by(FeedEvent.id)).scalars().all()
        return [(e.type, e.actor_id, e.payload, feed.describe(e)) for e in events]


def test_every_checklist_change_is_a_feed_event_naming_who_and_what(app, make):
    admin_id = make.user("admin", email="ada.admin@example.com", name="Ada Admin")
    with app.app_context():
        checklists.add_task(db.session, "client", NEW, actor_id=admin_id)
        checklists.update_task(db.session, "client", "security-review", {"position": 2}, actor_id=admin_id)
        checklists.update_task(db.session, "client", "security-review",
                               {"title": "Pass the audit", "required": False}, actor_id=admin_id)
        checklists.update_task(db.session, "client", "security-review", {"retired": True}, actor_id=admin_id)
        checklists.update_task(db.session, "client", "security-review", {"retired": False}, actor_id=admin_id)
        # Nothing different: no event.
        checklists.update_task(db.session, "client", "security-review", {"title": "Pass the audit"}, actor_id=admin_id)
    events = checklist_events(app)
    assert [(t, actor) for t, actor, _, _ in events] == [
        ("checklist.task.added", admin_id)] + [("checklist.task.changed", admin_id)] * 4
    assert [sentence for *_, sentence in events] == [
        "Ada Admin added “Pass the security review” to the client checklist",
        "Ada Admin moved “Pass the security review” to position 2 of the client checklist",
        "Ada Admin edited “Pass the audit” on the client checklist (title, required)",
        "Ada Admin retired “Pass the audit” on the client checklist",
        "Ada Admin brought back “Pass the audit” on the client checklist",
    ]
    added, moved = events[0][2], events[1][2]
    assert added == {"role": "client", "slug": "security-review", "title": "Pass the security review",
                     "kind": "manual", "required": True}
    assert moved["fields"] == ["position"] and moved["position"] == 2  # the others renumbered are not its changes


def test_a_refused_checklist_change_writes_no_event(app):
    with app.app_context():
        with pytest.raises(SlugTaken):
            checklists.add_task(db.session, "client", {**NEW, "slug": "accept-terms"})
        with pytest.raises(ValidationFailed):
            checklists.update_task(db.session, "client", "accept-terms", {"position": 7})
    assert checklist_events(app) == []


@pytest.mark.parametrize("change", [{"position": 0}, {"position": 7}, {"title": ""}, {"action_url": "mailto:x@y.z"},
                                    {"required": None}, {"colour": "red"}])
def test_a_bad_update_is_refused_and_nothing_changes(app, change):
    with app.app_context():
        with pytest.raises(ValidationFailed):
            checklists.update_task(db.session, "client", "accept-terms", change)
    assert slugs(app) == CLIENT_SEEDED


def test_updating_an_unknown_task_is_not_found(app):
    with app.app_context():
        with pytest.raises(NotFound):
            checklists.update_task(db.session, "client", "sign-partner-agreement", {"title": "x"})


def test_a_required_task_added_later_opens_a_row_for_onboarding_accounts_only(app, make):
    _, onboarding_id = make.provisioned()
    active_contact, active_id = make.provisioned()
    complete(app, active_id, *CLIENT_REQUIRED)
    assert status_of(app, active_contact) == "ACTIVE"
    _, partner_id = make.provisioned(role="partner")
    with app.app_context():
        checklists.add_task(db.session, "client", NEW)
    assert open_rows(app, onboarding_id, "security-review") == [0]
    assert open_rows(app, active_id, "security-review") == []
    assert open_rows(app, partner_id, "security-review") == []
    assert status_of(app, active_contact) == "ACTIVE"


def test_an_optional_task_added_later_opens_no_row(app, make):
    _, user_id = make.provisioned()
    with app.app_context():
        checklists.add_task(db.session, "client", {**NEW, "required": False})
    assert open_rows(app, user_id, "security-review") == []


def test_retiring_a_blocking_task_completes_those_it_was_blocking_once(app, make):
    blocked_contact, blocked_id = make.provisioned()
    complete(app, blocked_id, "set-password", "complete-profile", "accept-terms")
    other_contact, other_id = make.provisioned()  # still has other required tasks open
    with app.app_context():
        task = checklists.update_task(db.session, "client", "add-billing-contact", {"retired": True})
        assert task.retired_at is not None
    assert status_of(app, blocked_contact) == "ACTIVE"
    assert completed_events(app, blocked_id) == 1
    assert status_of(app, other_contact) == "ONBOARDING"
    with app.app_context():  # retiring again changes nothing and completes no one twice
        checklists.update_task(db.session, "client", "add-billing-contact", {"retired": True})
    assert completed_events(app, blocked_id) == 1
    assert "add-billing-contact" in slugs(app)  # the editor still lists it, flagged


def test_a_task_made_optional_completes_those_it_was_blocking(app, make):
    contact_id, user_id = make.provisioned()
    complete(app, user_id, "set-password", "complete-profile", "accept-terms")
    with app.app_context():
        checklists.update_task(db.session, "client", "add-billing-contact", {"required": False})
    assert status_of(app, contact_id) == "ACTIVE"
    assert completed_events(app, user_id) == 1


def test_bringing_back_a_required_task_reopens_rows_for_onboarding_accounts(app, make):
    with app.app_context():
        checklists.add_task(db.session, "client", {**NEW, "required": False})
        checklists.update_task(db.session, "client", "security-review", {"retired": True})
    _, user_id = make.provisioned()  # provisioned while retired: no row for it
    assert open_rows(app, user_id, "security-review") == []
    with app.app_context():
        checklists.update_task(db.session, "client", "security-review", {"retired": False, "required": True,
                                                                         "title": "Security review"})
    assert open_rows(app, user_id, "security-review") == [0]


# --- the API ----------------------------------------------------------------------------------


@pytest.fixture
def admin_api(client, app, make):
    from .test_api import Api, token_for

    make.user("admin", email="root@example.com")
    return Api(client, token_for(app, "root@example.com"))


@pytest.fixture
def staff_api(client, app, make):
    from .test_api import Api, token_for

    make.user("staff", email="plain@example.com")
    return Api(client, token_for(app, "plain@example.com"))


def test_api_lists_a_checklist_for_staff(staff_api):
    body = staff_api.get("/checklists/partner").get_json()
    assert body["role"] == "partner"
    terms = body["tasks"][1]
    assert terms == {"slug": "sign-partner-agreement", "title": "Sign the partner agreement", "description": terms["description"],
                     "kind": "terms", "required": True, "position": 2, "action_url": None,
                     "document": "partner-agreement", "retired": False}
    assert staff_api.get("/checklists/staff").status_code == 404


def test_api_adds_moves_and_retires_a_task(admin_api, app):
    created = admin_api.post("/checklists/client/tasks", {**NEW, "action_url": "https://example.com/r"})
    assert created.status_code == 201
    assert created.get_json()["position"] == 7 and created.get_json()["document"] is None
    assert admin_api.post("/checklists/client/tasks", NEW).get_json()["error"]["code"] == "slug_taken"
    moved = admin_api("PATCH", "/checklists/client/tasks/security-review", {"position": 2})
    assert moved.status_code == 200 and moved.get_json()["position"] == 2
    assert slugs(app)[:3] == ["set-password", "security-review", "complete-profile"]
    retired = admin_api("PATCH", "/checklists/client/tasks/security-review", {"retired": True})
    assert retired.get_json()["retired"] is True


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("POST", "/checklists/client/tasks", {**NEW, "kind": "dance"}, 422),
    ("POST", "/checklists/client/tasks", {**NEW, "title": ""}, 422),
    ("POST", "/checklists/client/tasks", {**NEW, "action_url": "javascript:alert(1)"}, 422),
    ("POST", "/checklists/staff/tasks", NEW, 404),
    ("PATCH", "/checklists/client/tasks/accept-terms", {"position": 99}, 422),
    ("PATCH", "/checklists/client/tasks/no-such-task", {"title": "x"}, 404),
    ("PATCH", "/checklists/client/tasks/Bad_Slug", {"title": "x"}, 404),
])
def test_api_refusals_change_nothing(admin_api, app, method, path, body, status):
    from .test_api import assert_error, snapshot

    before = snapshot(app)
    assert_error(admin_api(method, path, body), status)
    assert snapshot(app) == before


def test_api_staff_may_not_edit(staff_api, app):
    from .test_api import assert_error, snapshot

    before = snapshot(app)
    assert_error(staff_api.post("/checklists/client/tasks", NEW), 403, "forbidden")
    assert_error(staff_api("PATCH", "/checklists/client/tasks/accept-terms", {"retired": True}), 403, "forbidden")
    assert snapshot(app) == before


# --- the page ---------------------------------------------------------------------------------


@pytest.fixture
def admin(make, auth):
    user_id = make.user("admin", email="ann@example.com", name="Ann Admin")
    assert auth.login("ann@example.com").status_code == 302
    return user_id


def htmx_post(client, auth, path, data):
    token = auth.csrf("/crm/checklists/client")
    return client.post(path, data={**data, "csrf_token": token}, headers={"HX-Request": "true"})


def row_slugs(html) -> list[str]:
    return [row.attributes["data-slug"] for row in html.all("tr.checklist-task")]


def test_staff_see_the_checklist_read_only(client, staff):
    response = client.get("/crm/checklists/partner")
    assert response.status_code == 200
    html = parse(response)
    assert row_slugs(html) == ["set-password", "sign-partner-agreement", "upload-tax-form", "complete-profile",
                               "partner-portal-tour"]
    assert not html.has("#add-task") and not html.has("button.retire")
    assert client.get("/crm/checklists/nobody").status_code == 404


def test_the_tracker_links_to_the_checklists(client, staff):
    html = parse(client.get("/crm/onboarding"))
    links = [a.attributes["href"] for a in html.all(".checklist-links a")]
    assert links == ["/crm/checklists/client", "/crm/checklists/partner"]


def test_staff_cannot_edit_and_nothing_changes(client, auth, staff, app):
    before = slugs(app)
    assert htmx_post(client, auth, "/crm/checklists/client/tasks", {**NEW, "required": "on"}).status_code == 403
    assert htmx_post(client, auth, "/crm/checklists/client/tasks/accept-terms/move", {"position": "1"}).status_code == 403
    assert htmx_post(client, auth, "/crm/checklists/client/tasks/accept-terms/retire", {"retired": "true"}).status_code == 403
    assert slugs(app) == before


def test_an_admin_adds_moves_and_retires_through_htmx(client, auth, admin, app):
    page = parse(client.get("/crm/checklists/client"))
    assert page.has("#add-task") and page.has("#add-task [name=csrf_token]")
    added = htmx_post(client, auth, "/crm/checklists/client/tasks",
                      {"title": "Security review", "slug": "security-review", "kind": "manual", "required": "on"})
    assert added.status_code == 201 and "HX-Trigger-After-Settle" in added.headers
    assert row_slugs(parse(added))[-1] == "security-review"
    moved = htmx_post(client, auth, "/crm/checklists/client/tasks/security-review/move", {"position": "6"})
    assert moved.status_code == 200
    assert row_slugs(parse(moved))[5:] == ["security-review", "invite-teammates"]
    retired = htmx_post(client, auth, "/crm/checklists/client/tasks/security-review/retire", {"retired": "true"})
    html = parse(retired)
    assert html.text("#task-row-security-review .state") == "Retired" and html.has("#task-row-security-review button.restore")
    assert "retired" in html.text("#checklist-message")
    assert [(t, data["fields"] if "fields" in data else None) for t, _, data, _ in checklist_events(app)] == [
        ("checklist.task.added", None), ("checklist.task.changed", ["position"]),
        ("checklist.task.changed", ["retired"])]
    feed_page = parse(client.get("/dashboard"))
    assert "moved “Security review” to position 6 of the client checklist" in feed_page.text("#feed")


def test_an_invalid_task_shows_its_errors_next_to_the_fields(client, auth, admin, app):
    response = htmx_post(client, auth, "/crm/checklists/client/tasks",
                         {"title": "", "slug": "x", "kind": "manual", "action_url": "javascript:alert(1)"})
    assert response.status_code == 422
    html = parse(response)
    assert html.field_error("task-title") and html.field_error("task-action_url")
    taken = htmx_post(client, auth, "/crm/checklists/client/tasks", {"title": "T", "slug": "accept-terms", "kind": "manual"})
    assert taken.status_code == 409 and "already has" in parse(taken).field_error("task-slug")
    assert slugs(app) == CLIENT_SEEDED
    assert htmx_post(client, auth, "/crm/checklists/client/tasks/accept-terms/move", {"position": "0"}).status_code == 422
    assert htmx_post(client, auth, "/crm/checklists/client/tasks/nothing/move", {"position": "1"}).status_code == 404
    assert slugs(app) == CLIENT_SEEDED


def test_a_plain_post_redirects_back(client, auth, admin, app):
    token = auth.csrf("/crm/checklists/client")
    response = client.post("/crm/checklists/client/tasks/invite-teammates/move", data={"position": "1", "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/crm/checklists/client")
    assert slugs(app)[0] == "invite-teammates"


def test_the_editor_page_and_a_move_take_a_bounded_number_of_queries(app, client, auth, admin, make):
    from .test_query_budget import StatementCounter

    for _ in range(3):
        make.provisioned()
    counter = StatementCounter(app)
    try:
        client.get("/crm/checklists/client")  # warm up
        n, response = counter.run(lambda: client.get("/crm/checklists/client"))
        assert response.status_code == 200 and n <= 4, counter.statements
        with app.app_context():
            for i in range(10):  # a longer checklist costs no more
                checklists.add_task(db.session, "client", {**NEW, "slug": f"extra-{i}", "required": False})
        assert counter.run(lambda: client.get("/crm/checklists/client"))[0] == n
        token = auth.csrf("/crm/checklists/client")
        moved, response = counter.run(lambda: client.post(
            "/crm/checklists/client/tasks/extra-9/move", data={"position": "1", "csrf_token": token},
            headers={"HX-Request": "true"}))
        assert response.status_code == 200 and moved <= 12, counter.statements
    finally:
        counter.close()


# --- publishing a document version from the editor ------------------------------------------------


def test_admin_previews_then_publishes_a_new_terms_version(app, make, client, auth):
    from onboarding_app import documents as documents_service

    from .conftest import parse

    make.user("admin", email="root@example.com")
    auth.login("root@example.com")
    page = parse(client.get("/crm/checklists/client"))
    link = page.one('a[href="/crm/checklists/client/documents/service-terms"]')
    assert link.text(strip=True) == "Publish a new version"
    form_page = parse(client.get(link.attributes["href"]))
    token = form_page.attr('#main input[name="csrf_token"]', "value")
    body = "# Terms v2\n\nBe nice.\n\n<script>alert(1)</script> [x](javascript:alert(1))"
    preview = client.post("/crm/checklists/client/documents/service-terms",
                          data={"csrf_token": token, "title": "Service terms", "body_markdown": body, "action": "preview"})
    shown = parse(preview)
    assert preview.status_code == 200 and "Be nice." in shown.text("#document-preview")
    assert not shown.has("#document-preview script") and not shown.has('#document-preview a[href^="javascript"]')
    with app.app_context():
        assert documents_service.current(db.session, "service-terms").version == 1  # a preview publishes nothing

    refused = client.post("/crm/checklists/client/documents/service-terms",
                          data={"csrf_token": token, "title": "", "body_markdown": body, "action": "publish"})
    assert refused.status_code == 422 and parse(refused).has("#document-title-error")
    published = client.post("/crm/checklists/client/documents/service-terms",
                            data={"csrf_token": token, "title": "Service terms", "body_markdown": body, "action": "publish"})
    assert published.status_code == 302
    with app.app_context():
        assert documents_service.current(db.session, "service-terms").version == 2


def test_staff_cannot_publish_a_document(app, make, client, auth):
    make.user("staff", email="sam@example.com")
    auth.login("sam@example.com")
    assert client.get("/crm/checklists/client/documents/service-terms").status_code == 403
    token = auth.csrf("/dashboard")
    response = client.post("/crm/checklists/client/documents/service-terms",
                           data={"csrf_token": token, "title": "X", "body_markdown": "Y", "action": "publish"})
    assert response.status_code == 403


def test_admin_edits_a_task_on_its_page_with_errors_next_to_fields(app, make, client, auth):
    make.user("admin", email="root@example.com")
    auth.login("root@example.com")
    editor = parse(client.get("/crm/checklists/client"))
    edit_url = editor.attr('a[aria-label="Edit Book your kickoff call"]', "href")
    page = parse(client.get(edit_url))
    token = page.attr('#main input[name="csrf_token"]', "value")
    assert page.attr("#edit-title", "value") == "Book your kickoff call"

    refused = client.post(edit_url, data={"csrf_token": token, "title": "", "description": "x",
                                          "action_url": "ftp://nope"})
    form = parse(refused)
    assert refused.status_code == 422 and form.has("#edit-title-error") and form.has("#edit-action_url-error")
    with app.app_context():
        task = db.session.execute(select(OnboardingTask).where(OnboardingTask.slug == "book-kickoff-call",
                                                                OnboardingTask.role == "client")).scalar_one()
        assert task.title == "Book your kickoff call"  # nothing saved

    saved = client.post(edit_url, data={"csrf_token": token, "title": "Book the kickoff call",
                                        "description": "30 minutes with us.", "action_url": "https://cal.example.com/x"})
    assert saved.status_code == 302
    with app.app_context():
        task = db.session.execute(select(OnboardingTask).where(OnboardingTask.slug == "book-kickoff-call",
                                                                OnboardingTask.role == "client")).scalar_one()
        assert (task.title, task.action_url, task.required) == ("Book the kickoff call", "https://cal.example.com/x", False)
    assert client.get("/crm/checklists/client/tasks/no-such-task/edit").status_code == 404
