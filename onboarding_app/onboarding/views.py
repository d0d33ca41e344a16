"""The dashboard: a provisioned user's onboarding checklist above their action feed, or the
staff overview (pipeline, contacts waiting for approval, the whole feed); and "Mark done".

htmx requests get fragments: the feed alone when paging it, a task row (with the progress bar
out of band) after "Mark done", or the "You're all set" message once the last required task is
done. Without JavaScript the same forms post and redirect back to the dashboard.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request, url_for
from flask_login import current_user, login_required

from .. import checklist, contacts, feed, provisioning
from ..errors import AutomaticTask, ValidationFailed
from ..crm.views import funnel_context
from ..extensions import db
from ..http_errors import status_for
from ..schemas import FeedQuery, check
from ..web import FEED_CHANGED, is_htmx, register_page_blueprint, respond

bp = Blueprint("onboarding", __name__)
bp.add_app_template_global(feed.describe, "describe_event")
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


@bp.get("/dashboard")
@login_required
def dashboard():
    """``HX-Request`` (paging the feed) gets the feed section alone."""
    events, feed_error = _feed_page()
    context = {"events": events, "feed_error": feed_error, "before": request.args.get("before")}
    if is_htmx():
        return respond("onboarding/_feed.html", **context)
    if current_user.is_staff:
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
        template = "onboarding/staff_dashboard.html"
    else:
        has_checklist = current_user.contact is not None
        context["state"] = checklist.onboarding_state(db.session, current_user.id) if has_checklist else None
        template = "onboarding/dashboard.html"
    return render_template(template, **context)


@bp.post("/onboarding/tasks/<slug>/complete")
@login_required
def complete_task(slug: str):
    """Mark one checklist task done. htmx gets that row back (and the progress bar out of
    band), or, when this finished the last required task, "You're all set" for the widget."""
    dashboard_url = url_for(".dashboard")
    try:
        done = provisioning.complete_task(db.session, current_user.id, slug)
    except AutomaticTask as exc:
        state = checklist.onboarding_state(db.session, current_user.id)
        return respond(
            "onboarding/_task_row.html", redirect_to=dashboard_url, message=(exc.message, "error"),
            status=status_for(exc), item=state.task(slug), row_error=exc.message,
            announce=exc.message, focus=f"#task-{slug} .inline-error",
        )
    finished = done.complete and done.changed and done.task.task.required
    message = None
    if done.changed:
        message = ("You're all set: every required task is done." if finished else f"Done: {done.task.task.title}.",
                   "success")
    headers = {"HX-Trigger": FEED_CHANGED} if done.changed else {}  # the feed section reloads itself
    if not is_htmx():
        return respond("onboarding/_task_update.html", redirect_to=dashboard_url + f"#task-{slug}", message=message)
    state = checklist.onboarding_state(db.session, current_user.id)
    title = done.task.task.title
    if finished:
        headers.update({"HX-Retarget": "#onboarding-widget", "HX-Reswap": "innerHTML"})
        return respond(
            "onboarding/_all_set.html", headers=headers, state=state, focus="#all-set-heading",
            announce=f"{title}: done. You're all set: all {state.required_total} required tasks are done.",
        )
    progress = f"{state.required_completed} of {state.required_total} required done."
    return respond(
        "onboarding/_task_update.html", headers=headers,
        announce=f"{title}: done. {progress}" if done.changed else f"{title} was already done. {progress}",
        focus=_next_focus(state, slug),
        item=state.task(slug), state=state, progress_oob=not state.complete,
    )


def _next_focus(state, slug: str) -> str:
    """Where focus goes after a task is done: the next open task's control (after this one,
    else the first open one), else the task just done."""
    tasks = [item.task.slug for item in state.tasks]
    open_ = {item.task.slug for item in state.tasks if not item.completed and item.task.slug != "set-password"}
    start = tasks.index(slug) if slug in tasks else 0
    for candidate in tasks[start + 1:] + tasks[:start]:
        if candidate in open_:
            return f"#task-{candidate} button"
    return f"#task-{slug}-title"
