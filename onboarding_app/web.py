"""Small helpers the HTML blueprints (crm, onboarding) share: telling an htmx request from a
plain one, marking responses that vary on it, and how pages show a timestamp. (The status of
a domain refusal comes from ``http_errors.status_for``, shared with the API.)"""

from __future__ import annotations

from flask import Response, request


def is_htmx() -> bool:
    """An htmx request that wants a fragment. A history restore (the user pressed Back after
    ``hx-push-url`` and htmx has no snapshot) wants the full page, as a plain GET does."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )


def vary_on_htmx(response: Response) -> Response:
    """One URL, two shapes (full page, fragment): caches must key on HX-Request."""
    response.vary.add("HX-Request")
    return response


def format_when(value) -> str:
    """A timestamp as people read it on a page: ``2026-05-04 14:03 UTC``."""
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M UTC")
