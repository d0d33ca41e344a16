"""The API's contract in one object: spectree checks each request against the models of
``schemas.py`` and generates the OpenAPI 3.1 document (``/api/v1/openapi.json``) from the same
models and routes, so the document cannot drift from what the handlers accept and answer.

Refused input is mapped here, once: a body that is not a JSON object is 400
(``parsing.json_object``); a field or filter that breaks a rule is ``ValidationFailed``, which
``errors.py`` answers as 422 ``invalid_fields`` with its ``fields``, like every domain refusal.
"""

from __future__ import annotations

from typing import Any, Callable

from spectree import Response, SpecTree
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin
from spectree.utils import get_multidict_items

from ..schemas import PATH_RULES, Error, InvalidFields, check
from .parsing import json_object


class _Plugin(FlaskPlugin):
    """spectree's Flask plugin, reading input our way: the body must be a JSON object (whatever
    the Content-Type claims), and a refusal is the domain's ``ValidationFailed``."""

    def request_validation(self, request, query, json, form, headers, cookies):
        if headers or cookies:
            raise TypeError("the API validates query strings and JSON bodies only")
        if form is not None:
            # A body documented both as JSON and as multipart (a task's answers): which model
            # checks it depends on the task, so the view reads and checks it itself.
            request.context = Context(query=None, json=None, form=None, headers=None, cookies=None)
            return
        request.context = Context(
            query=check(query, get_multidict_items(request.args, query)) if query else None,
            json=check(json, json_object()) if json else None,
            form=None,
            headers=None,
            cookies=None,
        )

    def parse_path(self, route, path_parameter_descriptions):
        """Document each path value with its rule (``schemas.PATH_RULES``)."""
        path, parameters = super().parse_path(route, path_parameter_descriptions)
        for parameter in parameters:
            if parameter["name"] in PATH_RULES:
                parameter["schema"] = PATH_RULES[parameter["name"]].json_schema()
                parameter["description"] = parameter["schema"].pop("description", "")
        return path, parameters


spec = SpecTree(
    backend=_Plugin,
    mode="strict",  # only the routes decorated below; the HTML pages are no part of it
    page_templates={},  # no documentation pages: the document alone, at /api/v1/openapi.json
    title="Onboarding API",
    version="1.0.0",
    description=(
        "Turn qualified CRM contacts into accounts and follow their onboarding. JSON in, JSON out. "
        "Authenticate with `Authorization: Bearer <token>` (`flask --app wsgi tokens create EMAIL`), "
        "or with the browser session, whose unsafe requests then need the `X-CSRFToken` header. "
        'Every error is `{"error": {"code", "message"}}`.'
    ),
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    validation_error_model=InvalidFields,
    security_schemes=[
        {"name": "bearerAuth", "data": {
            "type": "http", "scheme": "bearer",
            "description": "A token from `flask --app wsgi tokens create EMAIL`."}},
        {"name": "sessionCookie", "data": {
            "type": "apiKey", "field_in": "cookie", "name": "session",
            "description": "The browser session after /login; unsafe methods also need the X-CSRFToken header."}},
    ],
    security=[{"bearerAuth": []}, {"sessionCookie": []}],
)

# The refusals any operation may answer, with the codes a script can expect.
_REFUSALS = {
    400: "The body is not a JSON object, or a signed-in browser sent no valid CSRF token. "
         "Codes: `malformed_json`, `bad_request`, `csrf_failed`.",
    401: "No credentials, or a bearer token that is unknown or revoked (see `WWW-Authenticate`). "
         "Codes: `unauthorized`, `invalid_token`.",
    403: "The caller's role may not do this, or the caller must set their own password first. "
         "Codes: `forbidden`, `password_change_required`.",
    404: "No such thing. Code: `not_found`.",
    413: "The body is larger than the server accepts. Code: `payload_too_large` (`file_too_large` for an upload).",
    422: "Invalid fields or filters; `fields` says what is wrong with each. Code: `invalid_fields`.",
    429: "Too many requests for this token (or user, or address); see `Retry-After`. Code: `rate_limited`.",
    500: "Something failed on the server; nothing was changed. Code: `internal_error`.",
}

def _operation_id(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


# Operations whose 200 is a file, not JSON: operation id -> the media types it may have.
_FILE_ANSWERS: dict[str, tuple[str, ...]] = {}


def operation(*refusals: int, tags: tuple[str, ...], public: bool = False, body: tuple[Any, Any] | None = None,
              file_types: tuple[str, ...] = (), **answers: Any) -> Callable:
    """Validate a view's input and document it. ``answers`` are ``HTTP_200=(Model, "what it
    is")``; ``refusals`` the statuses the route adds to those every operation may answer
    (429, 500, and 401/403 unless ``public``), each with the ``Error`` shape.

    ``body=(JsonModel, FormModel)`` documents a body sent either as JSON or as
    ``multipart/form-data``; the view then reads and checks it itself (``parsing.answers``).
    ``file_types`` documents a 200 that is a file of one of these media types (``HTTP_200``
    then names no model).

    Use it below the auth decorator, so that 401/403 come before any check of the input.
    """
    statuses = {*refusals, 429, 500} | (set() if public else {401, 403})
    for status in sorted(statuses):
        answers.setdefault(f"HTTP_{status}", (InvalidFields if status == 422 else Error, _REFUSALS[status]))

    def decorate(view: Callable) -> Callable:
        if file_types:
            _FILE_ANSWERS[_operation_id(view.__name__)] = file_types
        extra = {"json": body[0], "form": body[1]} if body else {}
        return spec.validate(
            resp=Response(**answers),
            **extra,
            tags=tags,
            security={} if public else None,
            operation_id=_operation_id(view.__name__),
            # spectree documents its validation error under this status; our refusals are
            # mapped above, so point it at a status documented already when 422 is not one.
            validation_error_status=422 if 422 in statuses else 500,
        )(view)

    return decorate


def document() -> dict[str, Any]:
    """The OpenAPI document (generated once, from the app's routes, on first use). A file
    answer is documented as binary content of its media types (spectree documents models only)."""
    generated = spec.spec
    for item in generated["paths"].values():
        for operation_ in item.values():
            types = _FILE_ANSWERS.get(operation_.get("operationId"))
            if types and "content" not in operation_["responses"]["200"]:
                operation_["responses"]["200"]["content"] = {
                    media: {"schema": {"type": "string", "format": "binary"}} for media in types}
    return generated
