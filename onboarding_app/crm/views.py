"""Staff pages for CRM contacts: the list, the forms, a contact's page with its status actions,
"Approve & Create Account" and the account's onboarding and welcome email.

Every view parses the request, calls one service (``contacts`` or ``provisioning``) and renders.
A refusal from a service is shown where the control was: htmx requests get the partial with
the message (400/409/422, which static/app.js swaps); plain form posts are redirected back
with the message flashed, or re-render the form with its errors inline.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import checklist, contacts, outbox, provisioning, reminders, tracker
from ..auth.decorators import staff_required
from ..errors import Conflict, DomainError, EmailTaken, NotQualified, ValidationFailed
from ..extensions import db
from ..models import ACCOUNT_ROLES, CONTACT_STATUSES, Contact, OutboundEmail, User, utcnow
from ..http_errors import status_for
from ..schemas import ContactListQuery, FunnelQuery, TrackerQuery, check
from ..web import FEED_CHANGED, is_htmx, register_page_blueprint, respond
from .forms import ContactForm, NewContactForm

bp = Blueprint("crm", __name__)
# Every route here answers htmx with a fragment and a plain request with a page or redirect.
register_page_blueprint(bp)

# The staff status actions, in the order they are offered: (target status, button label).
STATUS_ACTIONS = {
    "LEAD": [("QUALIFIED", "Qualify"), ("LOST", "Mark lost")],
    "QUALIFIED": [("LEAD", "Back to lead"), ("LOST", "Mark lost")],
    "LOST": [("LEAD", "Reopen")],
}


@bp.app_context_processor
def crm_helpers():
    return {"status_actions": STATUS_ACTIONS, "contact_statuses": CONTACT_STATUSES}


@dataclass(frozen=True)
class Account:
    """What a contact's page shows about its account."""

    user: User
    progress: checklist.RequiredProgress
    email: OutboundEmail | None


def _account(contact: Contact) -> Account | None:
    """Read the account's progress and its latest welcome email (two reads, no writes)."""
    if contact.user_id is None:
        return None
    progress = checklist.required_progress(db.session, [contact.user_id])[contact.user_id]
    return Account(contact.user, progress, outbox.latest_welcome_email(db.session, contact.id))


def _actor() -> User:
    return current_user._get_current_object()


# --- the list ----------------------------------------------------------------------------------


@bp.get("/contacts", endpoint="contacts")
@staff_required
def contacts_page():
    """The list with status filter, search and pages; ``HX-Request`` gets the results alone."""
    args = request.args
    errors: dict[str, str] = {}
    try:
        query = check(ContactListQuery, args.to_dict())
    except ValidationFailed as exc:
        errors = exc.fields
        page, progress = contacts.ContactPage([], 1, 1, 0), {}
    else:
        page = contacts.list_contacts(db.session, **query.filters(current_app.config["CONTACTS_PAGE_SIZE"]))
        progress = checklist.required_progress(db.session, [c.user_id for c in page.items if c.user_id])
    return respond(
        "crm/_contact_results.html", "crm/contacts.html", status=422 if errors else 200,
        page=page, progress=progress, errors=errors, q=args.get("q", ""), status_filter=args.get("status", ""),
    )


# --- new and edit ------------------------------------------------------------------------------


@bp.route("/contacts/new", methods=["GET", "POST"])
@staff_required
def new_contact():
    form = NewContactForm()
    field_errors: dict[str, str] = {}
    status = 200
    if form.validate_on_submit():
        try:
            contact = contacts.create_contact(db.session, form.values(), actor=_actor())
        except ValidationFailed as exc:
            field_errors, status = exc.fields, 422
        except EmailTaken as exc:
            field_errors, status = {"email": exc.message}, 409
        else:
            flash(f"{contact.name} was added as a lead.", "success")
            return redirect(url_for(".contact", contact_id=contact.id))
    elif form.is_submitted():
        status = 422
    return render_template("crm/contact_form.html", form=form, field_errors=field_errors, contact=None), status


@bp.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
@staff_required
def edit_contact(contact_id: int):
    contact = contacts.get_contact(db.session, contact_id)
    form = ContactForm(obj=contact)
    field_errors: dict[str, str] = {}
    status = 200
    if form.validate_on_submit():
        try:
            contact = contacts.update_contact(db.session, contact_id, form.values(), actor=_actor())
        except ValidationFailed as exc:
            field_errors, status = exc.fields, 422
        except Conflict as exc:  # InvalidTransition: the role is fixed once the account exists
            field_errors, status = {exc.details.get("field", "name"): exc.message}, 409
        else:
            flash(f"{contact.name} was saved.", "success")
            return redirect(url_for(".contact", contact_id=contact.id))
    elif form.is_submitted():
        status = 422
    return render_template("crm/contact_form.html", form=form, field_errors=field_errors, contact=contact), status


# --- a contact's page and its actions ------------------------------------------------------


@bp.get("/contacts/<int:contact_id>")
@staff_required
def contact(contact_id: int):
    contact = contacts.get_contact(db.session, contact_id)
    return render_template("crm/contact.html", contact=contact, account=_account(contact))


def _message(exc: DomainError) -> str:
    if isinstance(exc, ValidationFailed):
        return " ".join(exc.fields.values()) or exc.message
    return exc.message


@bp.post("/contacts/<int:contact_id>/status")
@staff_required
def change_status(contact_id: int):
    """Qualify, Back to lead, Mark lost, Reopen. htmx gets the contact's state region back."""
    error, status = None, 200
    try:
        contact = contacts.change_status(db.session, contact_id, request.form.get("status", ""), actor=_actor())
    except (ValidationFailed, Conflict) as exc:  # an unknown status, InvalidTransition
        error, status = _message(exc), status_for(exc)
        contact = contacts.get_contact(db.session, contact_id)
    return respond(
        "crm/_contact_state.html", redirect_to=url_for(".contact", contact_id=contact_id), status=status,
        message=(error, "error") if error else (f"{contact.name} is now {contact.status}.", "success"),
        contact=contact, account=_account(contact), status_error=error,
        status_notice=None if error else f"Moved to {contact.status}.",
    )


@bp.post("/contacts/<int:contact_id>/provision")
@staff_required
def provision(contact_id: int):
    """Approve & Create Account. htmx gets the approve control back showing the result (or the
    refusal) in place; from the contact page the status region is updated out of band."""
    origin = "dashboard" if request.form.get("origin") == "dashboard" else "contact"
    back = url_for("onboarding.dashboard") if origin == "dashboard" else url_for(".contact", contact_id=contact_id)
    result, error, status = None, None, 200
    try:
        result = provisioning.provision_account(db.session, contact_id, actor=current_user.id)
    except (NotQualified, Conflict) as exc:
        error, status = exc.message, status_for(exc)
    if result is not None and result.already_provisioned:
        # Someone else approved it first (or this is a repeat): nothing new was made.
        error, status = f"Already approved: the account {result.user.email} exists; nothing was changed.", 409
    changed = result is not None and not result.already_provisioned
    contact = contacts.get_contact(db.session, contact_id)
    return respond(
        "crm/_approve_response.html", redirect_to=back, status=status,
        message=(error, "error") if error else (
            f"Account created for {result.user.email}; the welcome email is on its way.", "success"),
        # The dashboard's feed reloads itself after a change.
        headers={"HX-Trigger": FEED_CHANGED} if changed else None,
        contact=contact, account=_account(contact), origin=origin, result=result, approve_error=error,
        pipeline=contacts.pipeline_counts(db.session) if changed and origin == "dashboard" and is_htmx() else None,
    )


@bp.post("/contacts/<int:contact_id>/resend-welcome")
@staff_required
def resend_welcome(contact_id: int):
    """Issue a fresh temporary password and send the welcome email again."""
    notice, error, status = None, None, 200
    try:
        user = provisioning.resend_welcome_email(db.session, contact_id, actor=current_user.id)
    except Conflict as exc:  # NotProvisioned, PasswordAlreadySet
        error, status = exc.message, status_for(exc)
    else:
        notice = f"A new temporary password was issued for {user.email}; the old one no longer works."
    contact = contacts.get_contact(db.session, contact_id)
    return respond(
        "crm/_account.html", redirect_to=url_for(".contact", contact_id=contact_id), status=status,
        message=(error, "error") if error else (notice, "success"),
        contact=contact, account=_account(contact), resend_notice=notice, resend_error=error,
    )


@bp.post("/contacts/<int:contact_id>/emails/<int:email_id>/retry")
@staff_required
def retry_email(contact_id: int, email_id: int):
    """Retry now: a failed (or waiting) email of this contact is handed to the worker again."""
    email = outbox.retry_now(db.session, contact_id, email_id)
    contact = contacts.get_contact(db.session, contact_id)
    notice = "Sent." if email.status == "sent" else "Handed to the worker; it will be sent shortly."
    return respond(
        "crm/_account.html", redirect_to=url_for(".contact", contact_id=contact_id), message=(notice, "success"),
        contact=contact, account=_account(contact), resend_notice=notice,
    )

# --- the onboarding tracker and the funnel ------------------------------------------------


def _funnel_from(args) -> tuple[tracker.Funnel | None, dict[str, str], dict[str, str]]:
    """The funnel asked for by ``role`` and ``since`` (the client role and the last 30 days
    when left out), the values to show in its form, and what is wrong with them."""
    values = {"role": args.get("role", ""), "since": args.get("since", "")}
    try:
        query = check(FunnelQuery, {k: v for k, v in values.items() if k in args})
    except ValidationFailed as exc:
        return None, values, exc.fields
    result = tracker.funnel(db.session, **query.filters(utcnow()))
    return result, {"role": result.role, "since": values["since"]}, {}


def funnel_context(args) -> dict:
    """What ``_funnel.html`` needs (the staff dashboard includes it too)."""
    result, values, errors = _funnel_from(args)
    return {"funnel": result, "funnel_values": values, "funnel_errors": errors, "account_roles": ACCOUNT_ROLES}


@bp.get("/funnel")
@staff_required
def funnel():
    """The funnel alone: htmx gets the partial (its role/since form), a plain GET a page."""
    context = funnel_context(request.args)
    return respond("crm/_funnel.html", "crm/funnel.html", status=422 if context["funnel_errors"] else 200, **context)


def _tracker_page(args) -> tuple[tracker.TrackerPage, dict[str, str]]:
    try:
        query = check(TrackerQuery, {k: v for k, v in args.items() if k in ("status", "role", "stalled", "page")})
    except ValidationFailed as exc:
        return tracker.TrackerPage([], 1, 1, 0), exc.fields
    config = current_app.config
    return tracker.list_accounts(db.session, **query.filters(config["TRACKER_PAGE_SIZE"]),
                                 stalled_after_days=config["REMINDER_AFTER_DAYS"]), {}


@bp.get("/onboarding", endpoint="tracker")
@staff_required
def tracker_page():
    """Every account onboarding, most stalled first, with the funnel. ``HX-Request`` (the
    filters, the pages) gets the results alone."""
    args = request.args
    page, errors = _tracker_page(args)
    filters = {"status": args.get("status", "ONBOARDING"), "role": args.get("role", ""),
               "stalled": args.get("stalled", "") in ("true", "on", "1")}
    context = {"page": page, "errors": errors, "filters": filters, "account_roles": ACCOUNT_ROLES,
               "stalled_after_days": current_app.config["REMINDER_AFTER_DAYS"]}
    if is_htmx():
        return respond("crm/_tracker_results.html", status=422 if errors else 200, **context)
    return render_template("crm/onboarding.html", **{**context, **funnel_context({})}), 422 if errors else 200


def _tracker_action(contact_id: int, action) -> object:
    """Run a row's action and answer with that row, saying what happened (or why not)."""
    notice, error, status = None, None, 200
    try:
        notice = action()
    except Conflict as exc:  # NotOnboarding, PasswordAlreadySet, NotProvisioned
        error, status = exc.message, status_for(exc)
    row = tracker.account_row(db.session, contact_id)
    return respond(
        "crm/_tracker_row.html", redirect_to=url_for(".tracker"), status=status,
        message=(error, "error") if error else (notice, "success"),
        headers={"HX-Trigger": FEED_CHANGED} if notice else None,
        row=row, row_notice=notice, row_error=error, stalled_after_days=current_app.config["REMINDER_AFTER_DAYS"],
    )


@bp.post("/onboarding/<int:contact_id>/remind")
@staff_required
def tracker_remind(contact_id: int):
    """Remind now: always sends; the row comes back with its count."""

    def remind() -> str:
        kind = reminders.remind_now(db.session, contact_id, actor=current_user.id)
        return "Reminder sent: " + ("the welcome email with a fresh sign-in." if kind == "welcome"
                                    else "their open tasks with a link.")

    return _tracker_action(contact_id, remind)


@bp.post("/onboarding/<int:contact_id>/resend-welcome")
@staff_required
def tracker_resend_welcome(contact_id: int):
    """Resend welcome from the tracker (not a reminder): the row comes back."""

    def resend() -> str:
        user = provisioning.resend_welcome_email(db.session, contact_id, actor=current_user.id)
        return f"A new welcome email is on its way to {user.email}; the old password no longer works."

    return _tracker_action(contact_id, resend)


from . import webhook_views  # noqa: E402,F401  (the /crm/webhooks routes, on this blueprint)
