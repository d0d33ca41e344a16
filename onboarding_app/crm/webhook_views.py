"""Admin pages for webhooks (``/crm/webhooks``): the endpoints with their recent deliveries
(status, attempts, last error), adding one (its secret shown once), a test event, deleting
one. Each view calls one function of ``webhooks`` and renders."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import webhooks
from ..auth.decorators import admin_required
from ..errors import ValidationFailed
from ..extensions import db
from .views import bp

RECENT_DELIVERIES = 10


def _page(status: int = 200, **context):
    endpoints = webhooks.list_endpoints(db.session)
    deliveries = webhooks.recent_deliveries(db.session, [e.id for e in endpoints], limit=RECENT_DELIVERIES)
    context.setdefault("field_errors", {})
    context.setdefault("values", {"url": "", "events": [], "description": ""})
    return render_template(
        "crm/webhooks.html", endpoints=endpoints, deliveries=deliveries,
        event_types=webhooks.known_event_types(), **context,
    ), status


@bp.get("/webhooks")
@admin_required
def webhooks_page():
    return _page()


@bp.post("/webhooks")
@admin_required
def add_webhook():
    values = {
        "url": request.form.get("url", ""),
        "events": request.form.getlist("events"),
        "description": request.form.get("description", ""),
    }
    try:
        new = webhooks.create_endpoint(db.session, values, actor=current_user)
    except ValidationFailed as exc:
        # A list's item ("events.0") is shown next to the list.
        return _page(422, field_errors={name.split(".")[0]: text for name, text in exc.fields.items()}, values=values)
    return _page(201, new_secret=new.secret, new_endpoint=new.endpoint)


@bp.post("/webhooks/<int:endpoint_id>/test")
@admin_required
def test_webhook(endpoint_id: int):
    webhooks.send_test(db.session, endpoint_id, actor=current_user)
    flash("A webhook.test event is on its way; its delivery shows below.", "success")
    return redirect(url_for(".webhooks_page") + f"#endpoint-{endpoint_id}")


@bp.post("/webhooks/<int:endpoint_id>/delete")
@admin_required
def delete_webhook(endpoint_id: int):
    webhooks.delete_endpoint(db.session, endpoint_id)
    flash("The endpoint was deleted; nothing more is sent to it.", "success")
    return redirect(url_for(".webhooks_page"))
