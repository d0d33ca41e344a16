"""Small helpers the HTML blueprints (crm, onboarding) share: telling an htmx request from a
plain one, and the one mapping from a domain refusal to an HTTP status for inline errors."""

from __future__ import annotations

from flask import Response, request

from .errors import Conflict, DomainError, NotFound, ValidationFailed


def is_htmx() -> bool:
    """An htmx request that wants a fragment. A history restore (the user pressed Back after
    ``hx-push-url`` and htmx has no snapshot) wants the full page, as a plain GET does."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )


def refusal_status(exc: DomainError) -> int:
    """The status an inline refusal is answered with. static/app.js lets htmx swap 400, 409
    and 422, so the message shows where the control was."""
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, ValidationFailed):
        return 422
    if isinstance(exc, Conflict):
        return 409
    return 400  # NotQualified and any other refusal of a request that cannot work as sent


def vary_on_htmx(response: Response) -> Response:
    """One URL, two shapes (full page, fragment): caches must key on HX-Request."""
    response.vary.add("HX-Request")
    return response


def format_when(value) -> str:
    """A timestamp as people read it on a page: ``2026-05-04 14:03 UTC``."""
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M UTC")
