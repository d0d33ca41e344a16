"""The dashboard: a provisioned user's onboarding checklist above their action feed, or the
staff overview (pipeline, contacts waiting for approval, the whole feed); completing a task
(its inline form, or "Mark done") and skipping an optional one.

htmx requests get fragments: the feed alone when paging it, a task row (with the progress bar
out of band) after a valid submit or a skip, the task's form with its messages after an
invalid one, or the "You're all set" message once the last required task is done. Without
JavaScript the same forms post and redirect back to the dashboard (or show it again with the
form's messages).
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from flask_login import current_user, login_required

from .. import checklist, contacts, documents, feed, provisioning, uploads
from ..crm.views import funnel_context
from ..errors import AutomaticTask, Conflict, FileTooLarge, StaleVersion, ValidationFailed
from ..extensions import db
from ..http_errors import status_for
from ..schemas import COMMON_TIMEZONES, FeedQuery, check, timezone_names
from ..task_kinds import RequestMeta, action_url, kind_of
from ..web import FEED_CHANGED, is_htmx, register_page_blueprint, respond

bp = Blueprint("onboarding", __name__)
bp.add_app_template_global(feed.describe, "describe_event")
bp.add_app_template_global(kind_of, "task_kind")
bp.add_app_template_global(action_url, "task_link")
bp.add_app_template_filter(documents.render, "markdown")


@bp.app_context_processor
def timezone_choices():
    return {"common_timezones": COMMON_TIMEZONES, "all_timezones": timezone_names,
            "upload_limit": uploads.describe_size(uploads.max_bytes())}
# Every route here answers htmx with a fragment and a plain request with a page or redirect.
register_page_blueprint(bp)

WAITING_PAGE_SIZE = 10  # contacts waiting for approval per page of the staff dashboard


def _feed_page():
    """The feed page asked for by ``?before=`` (the id cursor), newest first."""
    size = current_app.config["FEED_PAGE_SIZE"]
    try:
        query = check(FeedQuery, {"before": request.args.get("before", "")})
    except ValidationFailed as exc:
        return feed.list_feed(db.session, current_user, limit=size), " ".join(exc.fields.values())
    return feed.list_feed(db.session, current_user, **query.filters(size)), None


def _user_dashboard(**extra):
    """The signed-in user's dashboard context: checklist and feed."""
    events, feed_error = _feed_page()
    has_checklist = current_user.contact is not None
    state = checklist.onboarding_state(db.session, current_user.id) if has_checklist else None
    return {"events": events, "feed_error": feed_error, "before": request.args.get("before"), "state": state, **extra}


@bp.get("/dashboard")
@login_required
def dashboard():
    """``HX-Request`` (paging the feed) gets the feed section alone."""
    if not is_htmx() and not current_user.is_staff:
        return render_template("onboarding/dashboard.html", **_user_dashboard())
    events, feed_error = _feed_page()
    context = {"events": events, "feed_error": feed_error, "before": request.args.get("before")}
    if is_htmx():
        return respond("onboarding/_feed.html", **context)
    raw = request.args.get("waiting_page", "")
    waiting_page = min(int(raw), 100_000) if raw.isdigit() and int(raw) >= 1 else 1
    context.update(
        pipeline=contacts.pipeline_counts(db.session),
        # Oldest first: the contact that has waited longest since it became QUALIFIED.
        waiting=contacts.list_contacts(
            db.session, status="QUALIFIED", order="waiting", page=waiting_page, per_page=WAITING_PAGE_SIZE
        ),
        **funnel_context({}),
    )
    return render_template("onboarding/staff_dashboard.html", **context)


def _refused_form(slug: str, exc, fields: dict[str, str], submitted: dict):
    """An invalid submit: htmx gets the task's form back (with each message next to its field,
    the values sent kept, focus on the first field refused); a plain post gets the dashboard
    with that form open."""
    state = checklist.onboarding_state(db.session, current_user.id)
    item = state.task(slug)
    values = {k: v for k, v in submitted.items() if isinstance(v, str)}
    form = {slug: {"errors": fields, "values": values, "open": True,
                   "message": None if isinstance(exc, ValidationFailed) and exc.fields else exc.message}}
    status = status_for(exc)
    if is_htmx():
        first = next(iter(fields), None)
        return respond(
            kind_of(item.task).form, status=status, item=item, task_form=form,
            headers={"HX-Retarget": f"#task-{slug}-form", "HX-Reswap": "outerHTML"},
            announce=f"{item.task.title}: " + (" ".join(fields.values()) if fields else exc.message),
            focus=f"#task-{slug}-{first}" if first else f"#task-{slug}-form .inline-error",
        )
    return respond(kind_of(item.task).form, "onboarding/dashboard.html", status=status,
                   task_form=form, **_user_dashboard())


def _field_errors(exc) -> dict[str, str]:
    if isinstance(exc, ValidationFailed):
        return exc.fields
    if isinstance(exc, StaleVersion):
        return {"version": exc.message}
    if isinstance(exc, FileTooLarge):
        return {"file": exc.message}
    return {}


def _row_refused(slug: str, exc):
    """A refusal about the task itself (it completes itself, it cannot be skipped): its row
    with the message."""
    state = checklist.onboarding_state(db.session, current_user.id)
    return respond(
        "onboarding/_task_row.html", redirect_to=url_for(".dashboard"), message=(exc.message, "error"),
        status=status_for(exc), item=state.task(slug), row_error=exc.message,
        announce=exc.message, focus=f"#task-{slug} .inline-error",
    )


def _task_changed(done, slug: str, verb: str):
    """A task done or skipped: htmx gets its row (and the progress bar out of band), or "You're
    all set" once the last required task is done; a plain post goes back to the dashboard."""
    dashboard_url = url_for(".dashboard")
    title = done.task.task.title
    finished = done.complete and done.changed and done.task.task.required
    message = None
    if done.changed:
        message = ("You're all set: every required task is done." if finished else f"{verb}: {title}.", "success")
    elif verb == "Done" and done.task.data is not None:
        message = (f"Saved: {title}.", "success")
    headers = {"HX-Trigger": FEED_CHANGED} if done.changed else {}  # the feed section reloads itself
    if not is_htmx():
        return respond("onboarding/_task_update.html", redirect_to=dashboard_url + f"#task-{slug}", message=message)
    state = checklist.onboarding_state(db.session, current_user.id)
    if finished:
        headers.update({"HX-Retarget": "#onboarding-widget", "HX-Reswap": "innerHTML"})
        return respond(
            "onboarding/_all_set.html", headers=headers, state=state, focus="#all-set-heading",
            announce=f"{title}: done. You're all set: all {state.required_total} required tasks are done.",
        )
    progress = f"{state.required_completed} of {state.required_total} required done."
    if done.changed:
        said = f"{title}: {verb.lower()}. {progress}"
    elif done.task.data is not None:
        said = f"{title}: saved. {progress}"
    else:
        said = f"{title} was already {'done' if verb == 'Done' else 'skipped'}. {progress}"
    return respond(
        "onboarding/_task_update.html", headers=headers, announce=said, focus=_next_focus(state, slug),
        item=state.task(slug), state=state, progress_oob=not state.complete,
    )


def _next_focus(state, slug: str) -> str:
    """Where focus goes after a task is done or skipped: the next open task's control (after
    this one, else the first open one), else the task just changed."""
    tasks = [item.task.slug for item in state.tasks]
    open_ = {item.task.slug for item in state.tasks
             if not item.completed and not item.skipped and not kind_of(item.task).automatic}
    start = tasks.index(slug) if slug in tasks else 0
    for candidate in tasks[start + 1:] + tasks[:start]:
        if candidate in open_:
            return f"#task-{candidate} .task-control"
    return f"#task-{slug}-title"


@bp.post("/onboarding/tasks/<slug>/complete")
@login_required
def complete_task(slug: str):
    """Complete one checklist task with its form's answers ("Mark done" sends none)."""
    submitted: dict = {}
    try:
        try:
            submitted = uploads.form_answers(request)
        except RequestEntityTooLarge:  # a body past the upload limit, refused before it was read
            raise FileTooLarge(f"The file is larger than {uploads.describe_size(uploads.max_bytes())}; "
                               "upload a smaller one.") from None
        done = provisioning.complete_task(
            db.session, current_user.id, slug, submitted,
            meta=RequestMeta(ip=request.remote_addr, user_agent=request.user_agent.string or None),
        )
    except AutomaticTask as exc:
        return _row_refused(slug, exc)
    except (ValidationFailed, StaleVersion, FileTooLarge) as exc:
        return _refused_form(slug, exc, _field_errors(exc), submitted)
    return _task_changed(done, slug, "Done")


@bp.post("/onboarding/tasks/<slug>/skip")
@login_required
def skip_task(slug: str):
    """Skip an optional task: htmx gets its row back (and the progress bar out of band)."""
    try:
        done = provisioning.skip_task(db.session, current_user.id, slug)
    except Conflict as exc:  # RequiredTask
        return _row_refused(slug, exc)
    return _task_changed(done, slug, "Skipped")
