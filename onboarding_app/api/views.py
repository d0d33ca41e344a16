"""JSON API for scripts, ``/api/v1`` (SPEC.md, "HTTP API").

Each handler is checked and documented by ``spec.operation`` (its input and answers are the
models of ``schemas.py``), calls one service, and returns a response model. Refusals are
mapped to ``{"error": {...}}`` once, in ``errors.py``; who the caller is is settled in ``auth.py``.
"""

from __future__ import annotations

from io import BytesIO

from flask import Blueprint, current_app, send_file, url_for

from .. import checklist, checklists, contacts, documents, feed, provisioning, reminders, schemas, tracker, uploads, webhooks
from ..extensions import csrf, db
from ..models import utcnow
from . import errors, parsing, ratelimit
from .auth import admin_only, signed_in, staff_only
from .spec import document, operation

bp = Blueprint("api", __name__)
# The API authenticates bearer requests itself and checks CSRF for cookie-authenticated
# unsafe requests itself (auth.py), so the global automatic check is off here.
csrf.exempt(bp)
ratelimit.register(bp)  # API_RATE_LIMIT per token, user or address
errors.register(bp)

CONTACT = "/crm/contacts/<int:contact_id>"


def _file_urls(contact_id: int | None):
    """Makes an upload's download address (``data.url``) for the contact's account."""
    if contact_id is None:
        return None
    return lambda file_id: url_for("api.download_file", contact_id=contact_id, file_id=file_id)


@bp.get("/crm/contacts")
@staff_only
@operation(422, tags=("crm",), HTTP_200=(schemas.ContactPage, "One page of contacts."))
def list_contacts(user, query: schemas.ContactListQuery):
    """List contacts, newest first, filtered by status and search text.

    Staff and admins only."""
    page = contacts.list_contacts(db.session, **query.filters(current_app.config["CONTACTS_PAGE_SIZE"]))
    return schemas.ContactPage.model_validate(page)


@bp.post("/crm/contacts")
@staff_only
@operation(
    400, 413, 422, tags=("crm",),
    HTTP_201=(schemas.Contact, "The new contact (its URL in `Location`)."),
    HTTP_409=(schemas.Error, "A contact with this email (in any letter case) exists. Code: `email_taken`."),
)
def create_contact(user, json: schemas.ContactCreate):
    """Add a contact; it starts as a LEAD.

    Staff and admins only."""
    contact = contacts.create_contact(db.session, json, actor=user)
    return schemas.Contact.model_validate(contact), 201, {"Location": url_for("api.get_contact", contact_id=contact.id)}


@bp.get(CONTACT)
@staff_only
@operation(404, tags=("crm",), HTTP_200=(schemas.ContactDetail, "The contact."))
def get_contact(user, contact_id: int):
    """One contact, with its onboarding (progress, and each task with its answers) once it has
    an account.

    Staff and admins only."""
    contact = contacts.get_contact(db.session, parsing.contact_id(contact_id))
    body = schemas.ContactDetail.model_validate(contact)
    if contact.user_id is not None:
        state = checklist.onboarding_state(db.session, contact.user_id)
        body.onboarding = schemas.ContactOnboarding(
            required_total=state.required_total, required_completed=state.required_completed,
            complete=state.complete, tasks=[schemas.Task.of(t, _file_urls(contact.id)) for t in state.tasks])
    return body


@bp.get(f"{CONTACT}/files/<int:file_id>")
@signed_in
@operation(404, tags=("crm",), file_types=uploads.CONTENT_TYPES, HTTP_200=(None, "The file's bytes, as an attachment (`Content-Disposition`), "
                                              "with its detected type and `X-Content-Type-Options: nosniff`."))
def download_file(user, contact_id: int, file_id: int):
    """A file the contact's account uploaded for a task.

    Staff, or the account that uploaded it; anyone else gets 404."""
    row = uploads.for_download(db.session, user, parsing.contact_id(contact_id), parsing.file_id(file_id))
    response = send_file(BytesIO(row.content), mimetype=row.content_type, as_attachment=True,
                         download_name=row.original_name, max_age=0, etag=row.sha256, conditional=False)
    response.direct_passthrough = False  # spectree reads the body it checks; it is in memory anyway
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.patch(CONTACT)
@staff_only
@operation(
    400, 404, 413, 422, tags=("crm",),
    HTTP_200=(schemas.Contact, "The contact as it is now."),
    HTTP_409=(schemas.Error, "The status move is not one staff may make, or the role cannot change any more "
                             "(`invalid_transition`); the email belongs to another contact (`email_taken`) or "
                             "cannot change because the account exists (`account_linked`)."),
)
def update_contact(user, contact_id: int, json: schemas.ContactUpdate):
    """Edit a contact's details and/or move its status along the lifecycle.

    Staff and admins only."""
    return schemas.Contact.model_validate(contacts.update_contact(db.session, parsing.contact_id(contact_id), json, actor=user))


@bp.post(f"{CONTACT}/provision")
@staff_only
@operation(
    404, tags=("crm",),
    HTTP_201=(schemas.Provisioned, "This call provisioned the account; the welcome email is on its way."),
    HTTP_400=(schemas.Error, "The contact is not QUALIFIED (or, from a browser, the CSRF token is missing). "
                             "Codes: `not_qualified`, `csrf_failed`."),
    HTTP_409=(schemas.ProvisionConflict, "The contact already has an account (`already_provisioned`, with its "
                                         "`user_id`); an account with its email existed and is now linked "
                                         "(`user_exists`, with its `user_id`); its email belongs to a staff login "
                                         "(`staff_account`, nothing changed) or to another contact's account."),
)
def provision(user, contact_id: int):
    """Create the account of a QUALIFIED contact (or link the existing user with its email).

    Staff and admins only. Idempotent: once the contact has an account, every call answers 409
    with that account's `user_id`."""
    result = provisioning.provision_account(db.session, parsing.contact_id(contact_id), actor=user)
    if result.already_provisioned:
        return schemas.AlreadyProvisioned(
            user_id=result.user.id, email=result.user.email,
            error={"code": "already_provisioned", "message": f"This contact already has the account {result.user.email}."},
        ), 409
    if not result.created:  # an account with that email existed: it is now linked, none was created
        return schemas.AlreadyProvisioned(
            user_id=result.user.id, email=result.user.email,
            error={"code": "user_exists", "message": f"An account for {result.user.email} already existed; it is now "
                                                     "linked to this contact and its onboarding has started."},
        ), 409
    return schemas.Provisioned(user_id=result.user.id, email=result.user.email), 201


@bp.post(f"{CONTACT}/resend-welcome")
@staff_only
@operation(
    400, 404, tags=("crm",),
    HTTP_202=(schemas.Queued, "A fresh welcome email is queued; the old temporary password stopped working."),
    HTTP_409=(schemas.Error, "The contact has no account yet (`not_provisioned`), or its user has set their own "
                             "password (`password_already_set`)."),
)
def resend_welcome(user, contact_id: int):
    """Send the welcome email again with a fresh temporary password.

    Staff and admins only. This is not a reminder: it does not count in `reminders_sent`."""
    provisioning.resend_welcome_email(db.session, parsing.contact_id(contact_id), actor=user)
    return schemas.Queued(queued=True), 202


@bp.post(f"{CONTACT}/remind")
@staff_only
@operation(
    400, 404, tags=("crm",),
    HTTP_202=(schemas.ReminderQueued, "A reminder is queued: what kind of email it is."),
    HTTP_409=(schemas.Error, "The contact is not ONBOARDING. Code: `not_onboarding`."),
)
def remind(user, contact_id: int):
    """Remind one onboarding account now.

    Staff and admins only. Always sends, even past `REMINDER_MAX`; counts in `reminders_sent` and
    restarts the reminder interval. A user who never set their own password gets the welcome email
    again with a fresh credential; anyone else their open required tasks."""
    return schemas.ReminderQueued(queued=reminders.remind_now(db.session, parsing.contact_id(contact_id), actor=user)), 202


@bp.get("/onboarding/accounts")
@staff_only
@operation(422, tags=("onboarding",), HTTP_200=(schemas.TrackerPage, "One page of accounts, most stalled first."))
def list_accounts(user, query: schemas.TrackerQuery):
    """The onboarding tracker: every account with its checklist, last sign-in and activity.

    Staff and admins only. `stalled=true` keeps the accounts without activity for at least
    `REMINDER_AFTER_DAYS` days."""
    config = current_app.config
    page = tracker.list_accounts(db.session, **query.filters(config["TRACKER_PAGE_SIZE"]),
                                 stalled_after_days=config["REMINDER_AFTER_DAYS"])
    return schemas.TrackerPage.model_validate(page)


@bp.get("/onboarding/funnel")
@staff_only
@operation(422, tags=("onboarding",), HTTP_200=(schemas.Funnel, "The cohort's funnel and time to active."))
def funnel(user, query: schemas.FunnelQuery):
    """How far the accounts of a role provisioned since a date got: provisioned, signed in, each
    required task done (in checklist order), ACTIVE; and the median and 90th-percentile hours from
    provisioning to ACTIVE.

    Staff and admins only."""
    return schemas.Funnel.model_validate(tracker.funnel(db.session, **query.filters(utcnow())))


@bp.get("/onboarding")
@signed_in
@operation(tags=("onboarding",), HTTP_200=(schemas.Onboarding, "The checklist and its progress."))
def onboarding(user):
    """The caller's onboarding checklist.

    Any signed-in user."""
    return schemas.Onboarding.of(checklist.onboarding_state(db.session, user.id))


@bp.post("/onboarding/complete/<slug>")
@signed_in
@operation(
    400, 413, 422, tags=("onboarding",), body=(schemas.TaskAnswers, schemas.UploadAnswers),
    HTTP_200=(schemas.TaskCompletion, "The task, and whether onboarding is complete (teammates: `created`, `skipped`)."),
    HTTP_404=(schemas.Error, "The task is not in the caller's checklist. Code: `unknown_task`."),
    HTTP_409=(schemas.Error, "`automatic_task`: a `password` task completes itself when the user sets their own "
                             "password. `stale_version`: the document version is not the current one (the error "
                             "gives `current_version`)."),
)
def complete_task(user, slug: str):
    """Complete a checklist task with what it asks for (its `fields`).

    Any signed-in user. A JSON object for every kind but `upload`, which takes
    `multipart/form-data` with one `file` (PDF, PNG or JPEG, at most `UPLOAD_MAX_BYTES`; more is
    413 `file_too_large`). `password` and `manual` tasks take `{}` or no body. Invalid answers
    are 422 with `fields`, and nothing is stored. Sending a task again replaces its answers;
    completing the last required task makes the contact ACTIVE."""
    result = provisioning.complete_task(db.session, user.id, parsing.task_slug(slug), parsing.answers(),
                                        meta=parsing.request_meta())
    return schemas.TaskCompletion.of(result, _file_urls(result.contact_id))


@bp.post("/onboarding/skip/<slug>")
@signed_in
@operation(
    400, tags=("onboarding",),
    HTTP_200=(schemas.TaskCompletion, "The task (`skipped`), and whether onboarding is complete."),
    HTTP_404=(schemas.Error, "The task is not in the caller's checklist. Code: `unknown_task`."),
    HTTP_409=(schemas.Error, "The task is required. Code: `required_task`."),
)
def skip_task(user, slug: str):
    """Skip an optional checklist task; completing it later un-skips it.

    Any signed-in user. A skipped task counts neither way; skipping a done task changes nothing."""
    result = provisioning.skip_task(db.session, user.id, parsing.task_slug(slug))
    return schemas.TaskCompletion.of(result, _file_urls(result.contact_id))


@bp.get("/documents/<key>")
@signed_in
@operation(404, tags=("documents",), HTTP_200=(schemas.DocumentOut, "The document's current version."))
def get_document(user, key: str):
    """A document users accept (`service-terms`, `partner-agreement`), current version.

    Any signed-in user."""
    return schemas.DocumentOut.of(documents.current(db.session, parsing.document_key(key)))


@bp.post("/documents/<key>/versions")
@admin_only
@operation(
    400, 404, 413, 422, tags=("documents",),
    HTTP_201=(schemas.DocumentVersion, "The new current version."),
)
def publish_document(user, key: str, json: schemas.DocumentVersionCreate):
    """Publish the next version of a document (version 1 for a new key).

    Admins only. Tasks accepted under an older version stay done; users who have not accepted
    yet must accept this one."""
    document = documents.publish(db.session, parsing.document_key(key), json, actor_id=user.id)
    return schemas.DocumentVersion(key=document.key, version=document.version), 201


CHECKLIST = "/checklists/<role>"


@bp.get(CHECKLIST)
@staff_only
@operation(404, tags=("checklists",), HTTP_200=(schemas.Checklist, "Every task of the role, retired ones flagged."))
def get_checklist(user, role: str):
    """A role's checklist as the editor shows it, in order (positions are 1-based).

    Staff and admins."""
    found = checklists.get_checklist(db.session, parsing.checklist_role(role))
    return schemas.Checklist(role=found.role, tasks=[schemas.ChecklistTask.of(t) for t in found.tasks])


@bp.post(f"{CHECKLIST}/tasks")
@admin_only
@operation(
    400, 404, 413, 422, tags=("checklists",),
    HTTP_201=(schemas.ChecklistTask, "The task, last in the checklist."),
    HTTP_409=(schemas.Error, "The checklist has a task with this slug (retired ones too). Code: `slug_taken`."),
)
def add_checklist_task(user, role: str, json: schemas.ChecklistTaskCreate):
    """Add a task at the end of a checklist (409 `slug_taken` when the role has that slug).

    Admins only. A required task gives every account of the role still in ONBOARDING a new
    open task; ACTIVE accounts stay ACTIVE."""
    task = checklists.add_task(db.session, parsing.checklist_role(role), json, actor_id=user.id)
    return schemas.ChecklistTask.of(task), 201


@bp.patch(f"{CHECKLIST}/tasks/<slug>")
@admin_only
@operation(400, 404, 413, 422, tags=("checklists",), HTTP_200=(schemas.ChecklistTask, "The task as it now is."))
def update_checklist_task(user, role: str, slug: str, json: schemas.ChecklistTaskUpdate):
    """Change a task, move it (`position`, 1-based: the rest are renumbered) or retire it.

    Admins only. A task that stops blocking (retired, or no longer required) completes the
    onboarding of every account it was the last one open for."""
    task = checklists.update_task(db.session, parsing.checklist_role(role), parsing.checklist_slug(slug), json,
                                  actor_id=user.id)
    return schemas.ChecklistTask.of(task)


@bp.get("/feed")
@signed_in
@operation(422, tags=("feed",), HTTP_200=(schemas.FeedPage, "One page of events."))
def list_feed(user, query: schemas.FeedQuery):
    """The action feed, newest first.

    Staff see every event; anyone else only the events about their own account."""
    page = feed.list_feed(db.session, user, **query.filters(current_app.config["FEED_PAGE_SIZE"]))
    return schemas.FeedPage.of(page)


WEBHOOK = "/webhooks/<int:endpoint_id>"


@bp.get("/webhooks")
@admin_only
@operation(tags=("webhooks",), HTTP_200=(schemas.WebhookList, "Every endpoint (never their secrets)."))
def list_webhooks(user):
    """The webhook endpoints.

    Admins only."""
    return schemas.WebhookList(items=[schemas.Webhook.of(e) for e in webhooks.list_endpoints(db.session)])


@bp.post("/webhooks")
@admin_only
@operation(400, 413, 422, tags=("webhooks",),
           HTTP_201=(schemas.WebhookCreated, "The endpoint, with its signing secret (shown only now)."))
def create_webhook(user, json: schemas.WebhookCreate):
    """Register an endpoint for feed events, signed per Standard Webhooks.

    Admins only. The URL must resolve to public addresses only (https:// in production)."""
    new = webhooks.create_endpoint(db.session, json, actor=user)
    return schemas.WebhookCreated(**schemas.Webhook.of(new.endpoint).model_dump(), secret=new.secret), 201


@bp.delete(WEBHOOK)
@admin_only
@operation(400, 404, tags=("webhooks",), HTTP_204=None)
def delete_webhook(user, endpoint_id: int):
    """Delete an endpoint and its deliveries; nothing more is sent to it.

    Admins only."""
    webhooks.delete_endpoint(db.session, parsing.endpoint_id(endpoint_id))
    return "", 204


@bp.get(f"{WEBHOOK}/deliveries")
@admin_only
@operation(404, tags=("webhooks",), HTTP_200=(schemas.WebhookDeliveries, "The newest deliveries first."))
def list_webhook_deliveries(user, endpoint_id: int):
    """An endpoint's recent deliveries with their state.

    Admins only."""
    deliveries = webhooks.list_deliveries(db.session, parsing.endpoint_id(endpoint_id))
    return schemas.WebhookDeliveries(items=[schemas.WebhookDelivery.of(d) for d in deliveries])


@bp.post(f"{WEBHOOK}/test")
@admin_only
@operation(400, 404, tags=("webhooks",), HTTP_202=(schemas.Queued, "A `webhook.test` event is on its way."))
def test_webhook(user, endpoint_id: int):
    """Send a `webhook.test` event to this endpoint, whatever it subscribes to.

    Admins only."""
    webhooks.send_test(db.session, parsing.endpoint_id(endpoint_id), actor=user)
    return schemas.Queued(), 202


@bp.get("/openapi.json")
@operation(public=True, tags=("meta",), HTTP_200=(schemas.OpenApiDocument, "The OpenAPI 3.1 document."))
def openapi_document():
    """This document.

    Generated from the same models that check the requests."""
    return document()
