"""What the HTML blueprints (crm, onboarding) share: ``respond`` answers htmx with a partial
and anything else with a page or a redirect, and tells the page what to announce and where
focus goes after the swap; ``Vary: HX-Request``; how pages show a time (in the viewer's zone,
relative, with the exact time on hover). (The status of a domain refusal comes from
``http_errors.status_for``.)"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_datetime, format_timedelta
from flask import Blueprint, Response, current_app, flash, redirect, render_template, request
from flask_login import current_user
from markupsafe import Markup, escape

from .errors import NotFound
from .models import utcnow

# htmx event after a change the feed shows: the feed section (_feed.html) fetches itself again.
FEED_CHANGED = "feed-changed"


def external_url(endpoint: str, **values) -> str:
    """An absolute URL under ``APP_BASE_URL``, for links that leave the request (emails)."""
    base = urlsplit(current_app.config["APP_BASE_URL"])
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "http"
    )
    return adapter.build(endpoint, values, force_external=True)


def is_htmx() -> bool:
    """An htmx request that wants a fragment. A history restore (the user pressed Back after
    ``hx-push-url`` and htmx has no snapshot) wants the full page, as a plain GET does."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )


def respond(
    partial: str,
    page: str | None = None,
    /,
    *,
    redirect_to: str | None = None,
    message: tuple[str, str] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    announce: str | None = None,
    focus: str | None = None,
    **context,
) -> Response:
    """One URL, two shapes. An htmx request gets ``partial`` rendered with ``status`` and
    ``headers``; after the swap the page's live region says ``announce`` and the keyboard
    focus moves to the element ``focus`` selects (static/app.js). Any other request gets
    ``page`` rendered, or, for a form post, ``message`` (text, category) flashed and a
    redirect to ``redirect_to`` (post/redirect/get)."""
    if is_htmx() or (page is None and redirect_to is None):
        response = current_app.make_response((render_template(partial, **context), status))
        response.headers.update(headers or {})
        if announce or focus:
            response.headers["HX-Trigger-After-Settle"] = after_swap(announce, focus)
        return response
    if message is not None:
        flash(*message)
    if redirect_to is not None:
        return redirect(redirect_to)
    return current_app.make_response((render_template(page, **context), status))


@dataclass(frozen=True)
class Confirmation:
    """What a confirm dialog (templates/_confirm_dialog.html) or, without JavaScript, its page
    (templates/confirm.html) says: what will happen, and the form that makes it happen.
    ``target`` is where the htmx answer of ``action`` goes (None: a plain post and redirect).
    ``refusal`` replaces the question when the action is no longer possible."""

    title: str
    action: str
    button: str
    cancel_url: str
    lead: str = ""
    consequences: tuple[str, ...] = ()
    target: str | None = None
    hidden: dict[str, str] = field(default_factory=dict)
    danger: bool = False
    refusal: str | None = None


def confirm(confirmation: Confirmation) -> Response:
    """The dialog to htmx (into #modal-slot), the confirmation page to anyone else."""
    return respond("_confirm_dialog.html", "confirm.html", confirm=confirmation)


def vary_on_htmx(response: Response) -> Response:
    """One URL, two shapes (full page, fragment): caches must key on HX-Request."""
    response.vary.add("HX-Request")
    return response


# The htmx event static/app.js listens for after a swap: {"message": ..., "focus": ...}.
ANNOUNCE_EVENT = "onb:announce"


def after_swap(announce: str | None, focus: str | None) -> str:
    """The ``HX-Trigger-After-Settle`` value for an announcement and a focus target. JSON
    with \\u escapes, so names with accents travel in an ASCII header."""
    return json.dumps({ANNOUNCE_EVENT: {"target": "body", "message": announce or "", "focus": focus or ""}})


# --- times in the viewer's zone ------------------------------------------------------------------

# Parsed once: given a locale's name, Babel parses it again on every call.
LOCALE = Locale.parse("en")
# The browser's IANA zone, written by static/app.js (cookie: nothing to post, and the very
# first signed-in page after /login already has it). A user's profile zone wins over it.
TIMEZONE_COOKIE = "tz"
_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")


def zone_named(name: str | None) -> ZoneInfo | None:
    """The zone of an IANA name, or None for anything else (unknown, malformed, too long)."""
    if not name or len(name) > 64 or not _ZONE_NAME.match(name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def viewer_zone() -> ZoneInfo:
    """The signed-in user's profile zone, else the browser's (cookie), else UTC."""
    zone = request.environ.get("onboarding.viewer_zone")  # once per request
    if zone is None:
        profile = current_user.timezone if current_user and current_user.is_authenticated else None
        zone = zone_named(profile) or zone_named(request.cookies.get(TIMEZONE_COOKIE)) or ZoneInfo("UTC")
        request.environ["onboarding.viewer_zone"] = zone
    return zone


@lru_cache(maxsize=4096)
def exact_time(value: datetime, zone: ZoneInfo) -> str:
    """``Mon 4 May 2026, 23:03 (Asia/Tokyo)``. Kept once made: it depends on the instant and
    the zone alone, and a page shows the same times view after view (the feed, the tracker)."""
    return f"{format_datetime(value, 'EEE d MMM y, HH:mm', tzinfo=zone, locale=LOCALE)} ({zone.key})"


def relative_time(value: datetime, now: datetime) -> str:
    """``3 days ago``, ``in 2 hours``, ``just now``."""
    delta = value - now
    if abs(delta) < timedelta(seconds=45):
        return "just now"
    return format_timedelta(delta, add_direction=True, locale=LOCALE)


def _aware(value: datetime) -> datetime:
    """The database's naive UTC times as aware ones."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _time_element(value: datetime, text: str, *, relative: bool = False) -> Markup:
    """``relative``: the text is ``relative_time``'s, which static/app.js keeps current while
    the page stays open (``data-relative``)."""
    exact = escape(exact_time(value, viewer_zone()))
    marker = " data-relative" if relative else ""
    return Markup(f'<time datetime="{value.isoformat()}" title="{exact}"{marker}>{escape(text)}</time>')


def format_when(value: datetime | None) -> Markup:
    """A time on a page: ``<time datetime="2026-05-04T14:03:00+00:00" title="Mon 4 May 2026,
    23:03 (Asia/Tokyo)">3 days ago</time>``, in the viewer's zone."""
    if value is None:
        return Markup("")
    value = _aware(value)
    return _time_element(value, relative_time(value, utcnow()), relative=True)


def format_day(value: datetime | None) -> Markup:
    """A day in a table (the tracker's), the viewer's day: ``<time datetime="2026-05-04T14:03:00+00:00"
    title="Mon 4 May 2026, 23:03 (Asia/Tokyo)">May 4</time>``."""
    if value is None:
        return Markup("")
    value = _aware(value)
    return _time_element(value, value.astimezone(viewer_zone()).strftime("%b %-d"))


CELL_MARKS = {"done": "✓", "skipped": "–", "open": "○"}


def format_task_cells(cells) -> Markup:
    """A tracker row's task cells (``tracker.TaskCell``), the ``<li>`` of its checklist: each
    says its task and state twice, as a tooltip with the exact time and to screen readers with
    the relative one. Built here, not in the template: a tracker page has 150 of them, and the
    template's work per cell was the largest part of the page's CPU."""
    zone, now, items = viewer_zone(), utcnow(), []
    for cell in cells:
        state, title = cell.state, escape(cell.title)
        optional = "" if cell.required else " (optional)"
        at = _aware(cell.completed_at) if cell.completed_at else None
        tooltip = f"{title}: {state}{' ' + escape(exact_time(at, zone)) if at else ''}{optional}"
        when = " " + _time_element(at, relative_time(at, now), relative=True) if at else ""
        spoken = f"{title}: {state}{when}{optional}"
        items.append(
            f'<li class="task-cell cell-{state}{" cell-required" if cell.required else ""}" '
            f'data-slug="{escape(cell.slug)}" data-state="{state}" title="{tooltip}">'
            f'<span aria-hidden="true">{CELL_MARKS[state]}</span><span class="visually-hidden">{spoken}</span></li>'
        )
    return Markup("".join(items))


def format_waited(value: datetime | None) -> str:
    """How long since ``value``: ``3 days``."""
    if value is None:
        return ""
    return format_timedelta(utcnow() - value, locale=LOCALE)


def register_page_blueprint(bp: Blueprint) -> None:
    """What every HTML blueprint (crm, onboarding) shares: the ``when`` filter, ``Vary:
    HX-Request`` on every response (one URL, two shapes), and a domain ``NotFound`` (an unknown
    contact id or task) answered with the app's 404 page."""
    bp.add_app_template_filter(format_when, "when")
    bp.add_app_template_filter(format_day, "day")
    bp.add_app_template_filter(format_waited, "waited")
    bp.add_app_template_filter(format_task_cells, "task_cells")
    bp.after_request(vary_on_htmx)

    @bp.errorhandler(NotFound)
    def not_found(exc: NotFound):
        return render_template("errors/error.html", status=404, message=exc.message), 404
