"""What the HTML blueprints (crm, onboarding) share: ``respond`` answers htmx with a partial
and anything else with a page or a redirect; ``Vary: HX-Request``; how pages show a
timestamp. (The status of a domain refusal comes from ``http_errors.status_for``.)"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request

from .errors import NotFound

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
    **context,
) -> Response:
    """One URL, two shapes. An htmx request gets ``partial`` rendered with ``status`` and
    ``headers``. Any other request gets ``page`` rendered, or, for a form post, ``message``
    (text, category) flashed and a redirect to ``redirect_to`` (post/redirect/get)."""
    if is_htmx() or (page is None and redirect_to is None):
        response = current_app.make_response((render_template(partial, **context), status))
        response.headers.update(headers or {})
        return response
    if message is not None:
        flash(*message)
    if redirect_to is not None:
        return redirect(redirect_to)
    return current_app.make_response((render_template(page, **context), status))


def vary_on_htmx(response: Response) -> Response:
    """One URL, two shapes (full page, fragment): caches must key on HX-Request."""
    response.vary.add("HX-Request")
    return response


def format_when(value) -> str:
    """A timestamp as people read it on a page: ``2026-05-04 14:03 UTC``."""
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M UTC")


def register_page_blueprint(bp: Blueprint) -> None:
    """What every HTML blueprint (crm, onboarding) shares: the ``when`` filter, ``Vary:
    HX-Request`` on every response (one URL, two shapes), and a domain ``NotFound`` (an unknown
    contact id or task) answered with the app's 404 page."""
    bp.add_app_template_filter(format_when, "when")
    bp.after_request(vary_on_htmx)

    @bp.errorhandler(NotFound)
    def not_found(exc: NotFound):
        return render_template("errors/error.html", status=404, message=exc.message), 404
