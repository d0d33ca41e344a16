"""Input no route should ever see, refused once for the whole app (SPEC.md, "Bad input never
makes a 500"):

- a path id larger than the database's INTEGER holds (``/crm/contacts/2147483648``): 404,
  like any unknown address, before the database is asked an out-of-range question;
- a NUL character in a page's path or in any query string (PostgreSQL cannot compare with
  it, and no parameter needs it): 404 / 422 before any view runs. Form fields and JSON bodies
  are refused field by field by their schemas;
- ``X-Forwarded-*`` headers, believed only from ``TRUSTED_PROXIES`` proxies (Werkzeug's
  ProxyFix; with 0 they are ignored and the client address is the socket's).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template, request
from werkzeug.middleware.proxy_fix import ProxyFix

MAX_ID = 2**31 - 1  # the largest value an INTEGER primary key holds, on both databases


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


NUL_MESSAGE = "Contains a NUL character, which no field accepts."


def nul_fields() -> dict[str, str]:
    """The query parameters holding a NUL character. (Form fields and JSON bodies are read by
    their schemas, which refuse it next to the field: schemas.py, auth/forms.py.)"""
    fields = {name: NUL_MESSAGE for name, values in request.args.lists() if _has_nul([name, values])}
    return {name.replace("\x00", "?"): message for name, message in fields.items()}


def register(app: Flask) -> None:
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops)

    @app.before_request
    def refuse_impossible_input():
        """A NUL in the path, or a path id no row can have, names nothing that exists (404);
        a NUL in a field is 422 naming it."""
        api = request.path.startswith("/api/")
        too_big = any(isinstance(v, int) and not 0 <= v <= MAX_ID for v in (request.view_args or {}).values())
        # The API reads its own path values (api/parsing.py: an impossible slug is the
        # domain's unknown_task), so only the pages need this check.
        if too_big or ("\x00" in request.path and not api):
            if api:
                from .http_errors import error_response

                return error_response(404, "not_found", "There is nothing at this address.")
            return render_template("errors/error.html", status=404, message="There is nothing at this address."), 404
        fields = nul_fields()
        if not fields:
            return None
        if api:
            from .http_errors import error_response

            return error_response(422, "invalid_fields", "Some fields are invalid.", fields=fields)
        message = " ".join(f"{name}: {problem}" for name, problem in fields.items())
        return render_template("errors/error.html", status=422, message=message), 422
