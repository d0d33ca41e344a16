"""JSON API for scripts, ``/api/v1`` (SPEC.md, "HTTP API").

Each handler parses its input, calls one service, and returns JSON. Refusals are mapped to
``{"error": {...}}`` once, in ``errors.py``; who the caller is is settled in ``auth.py``.
"""

from flask import Blueprint, current_app, request, url_for

from .. import checklist, contacts, feed, provisioning
from ..extensions import csrf, db, limiter
from . import errors, openapi, parsing, serializers
from .auth import rate_limit_key, rate_limit_value, signed_in, staff_only

bp = Blueprint("api", __name__)

# The API authenticates bearer requests itself and checks CSRF for cookie-authenticated
# unsafe requests itself (auth.py), so the global automatic check is off here.
csrf.exempt(bp)
limiter.shared_limit(rate_limit_value, scope="api", key_func=rate_limit_key)(bp)
errors.register(bp)

CONTACT = "/crm/contacts/<int:contact_id>"


@bp.get("/crm/contacts")
@staff_only
def list_contacts(user):
    args = request.args
    filters = contacts.parse_listing(
        args.get("status"), args.get("q"), args.get("page"), args.get("per_page"),
        default_per_page=current_app.config["CONTACTS_PAGE_SIZE"],
    )
    return serializers.contact_page(contacts.list_contacts(db.session, **filters))


@bp.post("/crm/contacts")
@staff_only
def create_contact(user):
    contact = contacts.create_contact(db.session, parsing.json_object(), actor=user)
    return serializers.contact(contact), 201, {"Location": url_for("api.get_contact", contact_id=contact.id)}


@bp.get(CONTACT)
@staff_only
def get_contact(user, contact_id: int):
    contact = contacts.get_contact(db.session, parsing.contact_id(contact_id))
    progress = None
    if contact.user_id is not None:
        progress = checklist.required_progress(db.session, [contact.user_id])[contact.user_id]
    return serializers.contact(contact, progress)


@bp.patch(CONTACT)
@staff_only
def update_contact(user, contact_id: int):
    contact = contacts.update_contact(db.session, parsing.contact_id(contact_id), parsing.json_object(), actor=user)
    return serializers.contact(contact)


@bp.post(f"{CONTACT}/provision")
@staff_only
def provision(user, contact_id: int):
    result = provisioning.provision_account(db.session, parsing.contact_id(contact_id), actor=user)
    body = {"user_id": result.user.id, "email": result.user.email}
    if result.already_provisioned:
        return {**body, "error": {"code": "already_provisioned",
                                  "message": f"This contact already has the account {result.user.email}."}}, 409
    return body, 201


@bp.get("/onboarding")
@signed_in
def onboarding(user):
    return serializers.onboarding(checklist.onboarding_state(db.session, user.id))


@bp.post("/onboarding/complete/<slug>")
@signed_in
def complete_task(user, slug: str):
    return serializers.completion(provisioning.complete_task(db.session, user.id, parsing.task_slug(slug)))


@bp.get("/feed")
@signed_in
def list_feed(user):
    args = request.args
    query = feed.parse_feed_query(
        args.get("type"), args.get("before"), args.get("limit"),
        default_limit=current_app.config["FEED_PAGE_SIZE"],
    )
    return serializers.feed_page(feed.list_feed(db.session, user, **query))


@bp.get("/openapi.json")
def openapi_document():
    return openapi.document()
