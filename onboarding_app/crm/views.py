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

from .. import checklist, contacts, feed, outbox, provisioning, reminders, tracker
from ..auth.decorators import staff_required
from ..errors import Conflict, DomainError, NotQualified, ValidationFailed
from ..extensions import db
from ..models import ACCOUNT_ROLES, CONTACT_STATUSES, Contact, OutboundEmail, User, utcnow
from ..http_errors import status_for
from ..schemas import ContactListQuery, FeedQuery, FunnelQuery, TrackerQuery, check
from ..web import FEED_CHANGED, Confirmation, confirm, is_htmx, register_page_blueprint, respond
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


TIMELINE_SIZE = 20  # events per page of a contact's timeline


@bp.app_context_processor
def crm_helpers():
    return {"status_actions": STATUS_ACTIONS, "contact_statuses": CONTACT_STATUSES, "can_delete": contacts.can_delete}


@dataclass(frozen=True)
class Account:
    """What a contact's page shows about its account."""

    user: User
    progress: checklist.RequiredProgress
    email: OutboundEmail | None
    tasks: list[checklist.TaskState] = ()  # each task with the answers it collected


def _account(contact: Contact, *, answers: bool = False) -> Account | None:
    """Read the account's progress (with every task's answers when ``answers``) and its latest
    welcome email (two reads, no writes)."""
    if contact.user_id is None:
        return None
    if answers:
        state = checklist.onboarding_state(db.session, contact.user_id)
        progress, tasks = state.progress, state.tasks
    else:
        progress, tasks = checklist.required_progress(db.session, [contact.user_id])[contact.user_id], []
    return Account(contact.user, progress, outbox.latest_welcome_email(db.session, contact.id), tasks)


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
    found = f"{page.total} contact{'' if page.total == 1 else 's'} found"
    return respond(
        "crm/_contact_results.html", "crm/contacts.html", status=422 if errors else 200,
        announce=" ".join(errors.values()) if errors else found,
        page=page, progress=progress, errors=errors, q=args.get("q", ""), status_filter=args.get("status", ""),
    )


# --- new and edit ------------------------------------------------------------------------------


def _contact_form(form, contact: Contact | None, save, saved: str):
    """The new and edit forms: the service checks the values (the same rules as the API);
    its refusals are shown next to their fields, a success goes to the contact's page."""
    field_errors: dict[str, str] = {}
    status = 200
    if form.validate_on_submit():
        try:
            contact = save(form.values())
        except ValidationFailed as exc:
            field_errors, status = exc.fields, 422
        except Conflict as exc:  # EmailTaken, AccountLinked, InvalidTransition (the role is fixed)
            field_errors, status = {exc.details.get("field", "name"): exc.message}, 409
        else:
            flash(saved.format(name=contact.name), "success")
            return redirect(url_for(".contact", contact_id=contact.id))
    elif form.is_submitted():
        status = 422
    return render_template("crm/contact_form.html", form=form, field_errors=field_errors, contact=contact), status


@bp.route("/contacts/new", methods=["GET", "POST"])
@staff_required
def new_contact():
    return _contact_form(NewContactForm(), None, lambda values: contacts.create_contact(
        db.session, values, actor=_actor()), "{name} was added as a lead.")


@bp.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
@staff_required
def edit_contact(contact_id: int):
    contact = contacts.get_contact(db.session, contact_id)
    return _contact_form(ContactForm(obj=contact), contact, lambda values: contacts.update_contact(
        db.session, contact_id, values, actor=_actor()), "{name} was saved.")


# --- a contact's page and its actions ------------------------------------------------------


@bp.get("/contacts/<int:contact_id>")
@staff_required
def contact(contact_id: int):
    """The contact's page; htmx (the timeline paging or reloading itself) gets the timeline."""
    contact = contacts.get_contact(db.session, contact_id)
    before = request.args.get("before")
    try:
        cursor = check(FeedQuery, {"before": before or ""}).before
    except ValidationFailed:  # a bad cursor: the newest events
        cursor = before = None
    timeline = feed.list_feed(db.session, _actor(), contact_id=contact_id, before=cursor, limit=TIMELINE_SIZE)
    context = {"contact": contact, "timeline": timeline, "before": before}
    if is_htmx():
        return respond("crm/_timeline.html", **context)
    return render_template("crm/contact.html", account=_account(contact, answers=True), **context)


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
    notice = None if error else f"{contact.name} is now {contact.status}."
    return respond(
        "crm/_contact_state.html", redirect_to=url_for(".contact", contact_id=contact_id), status=status,
        message=(error, "error") if error else (notice, "success"),
        headers=None if error else {"HX-Trigger": FEED_CHANGED},  # the timeline reloads itself
        announce=error or notice, focus="#status-message",
        contact=contact, account=_account(contact), status_error=error, status_notice=notice,
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
    notice = error or (
        f"{'Account created for' if result.created else 'Linked to the existing account'} {result.user.email}; "
        "the welcome email is on its way.")
    return respond(
        "crm/_approve_response.html", redirect_to=back, status=status,
        message=(notice, "error" if error else "success"),
        announce=notice, focus=f"#approve-{contact_id} .approve-result",
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
        what = "set-password link" if current_app.config["WELCOME_CREDENTIAL"] == "link" else "temporary password"
        notice = f"A new {what} was issued for {user.email}; the old one no longer works."
    contact = contacts.get_contact(db.session, contact_id)
    return respond(
        "crm/_account.html", redirect_to=url_for(".contact", contact_id=contact_id), status=status,
        message=(error, "error") if error else (notice, "success"),
        headers=None if error else {"HX-Trigger": FEED_CHANGED},
        announce=error or notice, focus=f"#account-{contact_id} .resend-result",
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
        announce=notice, focus=f"#account-{contact_id} .resend-result",
        contact=contact, account=_account(contact), resend_notice=notice,
    )


# --- confirmations (a dialog with htmx, a page without) --------------------------------------


@bp.get("/contacts/<int:contact_id>/provision")
@staff_required
def confirm_provision(contact_id: int):
    """Approve & Create Account, asked first: the contact's name and what will happen."""
    contact = contacts.get_contact(db.session, contact_id)
    origin = "dashboard" if request.args.get("origin") == "dashboard" else "contact"
    refusal = None
    if contact.user_id is not None:
        refusal = f"{contact.name} already has an account ({contact.user.email}); nothing to approve."
    elif contact.status != "QUALIFIED":
        refusal = f"{contact.name} is {contact.status} now; only a QUALIFIED contact can be approved."
    return confirm(Confirmation(
        title=f"Approve {contact.name}?",
        lead=f"Approving {contact.name} ({contact.email}) will:",
        consequences=(
            f"create a {contact.role} account for {contact.email} with a temporary password,",
            "set up their onboarding checklist and move the contact to ONBOARDING,",
            f"email {contact.email} the welcome email with the temporary password.",
        ),
        action=url_for(".provision", contact_id=contact_id), target=f"#approve-{contact_id}",
        hidden={"origin": origin}, button="Approve & Create Account", refusal=refusal,
        cancel_url=url_for("onboarding.dashboard") if origin == "dashboard" else url_for(".contact", contact_id=contact_id),
    ))


@bp.get("/contacts/<int:contact_id>/resend-welcome")
@staff_required
def confirm_resend_welcome(contact_id: int):
    """Resend the welcome email, asked first; from the contact page, or from a tracker row
    (``?origin=tracker``), whose row the answer replaces."""
    contact = contacts.get_contact(db.session, contact_id)
    from_tracker = request.args.get("origin") == "tracker"
    refusal = None
    if contact.user_id is None:
        refusal = f"{contact.name} has no account yet."
    elif not contact.user.must_change_password:
        refusal = f"{contact.name} has already set a password of their own; there is nothing to resend."
    return confirm(Confirmation(
        title=f"Resend the welcome email to {contact.name}?",
        consequences=(
            f"A new temporary password is emailed to {contact.user.email if contact.user else contact.email}.",
            "The temporary password sent before stops working at once.",
        ),
        action=url_for(".tracker_resend_welcome" if from_tracker else ".resend_welcome", contact_id=contact_id),
        target=f"#tracker-row-{contact_id}" if from_tracker else f"#account-{contact_id}",
        button="Resend welcome email", refusal=refusal,
        cancel_url=url_for(".tracker") if from_tracker else url_for(".contact", contact_id=contact_id),
    ))


@bp.route("/contacts/<int:contact_id>/delete", methods=["GET", "POST"])
@staff_required
def delete_contact(contact_id: int):
    """GET asks (dialog or page); POST deletes a LEAD or LOST contact without an account and
    goes back to the list."""
    contact = contacts.get_contact(db.session, contact_id)
    back = url_for(".contact", contact_id=contact_id)
    if request.method == "GET":
        refusal = None if contacts.can_delete(contact) else (
            f"{contact.name} cannot be deleted: only a lead or a lost contact without an account can be.")
        return confirm(Confirmation(
            title=f"Delete {contact.name}?",
            consequences=(
                f"{contact.name} ({contact.email}) is removed from the CRM; this cannot be undone.",
                "Their past events stay in the action feed.",
            ),
            action=url_for(".delete_contact", contact_id=contact_id), button="Delete contact", danger=True,
            refusal=refusal, cancel_url=back,
        ))
    try:
        name = contacts.delete_contact(db.session, contact_id, actor=_actor())
    except Conflict as exc:  # NotDeletable
        flash(exc.message, "error")
        return redirect(back)
    flash(f"{name} was deleted.", "success")
    return redirect(url_for(".contacts"))
# --- the onboarding tracker and the funnel ------------------------------------------------


def _funnel_from(args) -> tuple[tracker.Funnel | None, dict[str, str], dict[str, str]]:
    """The funnel asked for by ``role`` and ``since`` (the client role and the last 30 days
    when left out: that cohort, which every dashboard and tracker view shows, is the one
    shared for a minute), the values to show in its form, and what is wrong with them."""
    values = {"role": args.get("role", ""), "since": args.get("since", "")}
    try:
        query = check(FunnelQuery, {k: v for k, v in values.items() if k in args})
    except ValidationFailed as exc:
        return None, values, exc.fields
    compute = tracker.funnel if query.since else tracker.recent_funnel
    result = compute(db.session, **query.filters(utcnow()))
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
    result = context["funnel"]
    announce = (f"Funnel for {result.role}: {result.steps[0].count} provisioned." if result is not None
                else "The funnel's filters are invalid.")
    return respond("crm/_funnel.html", "crm/funnel.html", status=422 if context["funnel_errors"] else 200,
                   announce=announce, **context)


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
        return respond("crm/_tracker_results.html", status=422 if errors else 200,
                       announce=f"{page.total} account{'' if page.total == 1 else 's'} found.", **context)
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
        "crm/_tracker_row.html", redirect_to=url_for(".tracker"), status=status, announce=notice or error,
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
from . import checklist_views  # noqa: E402,F401  (the /crm/checklists routes)
