"""The OpenAPI 3.1 document of ``/api/v1``, written by hand next to the handlers it describes.

Tests validate it (openapi-spec-validator), check that it names every API route and no other,
and fuzz the API against it (schemathesis), so it cannot drift far from the code.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from ..contacts import MAX_PER_PAGE, MAX_QUERY_LENGTH
from ..feed import MAX_LIMIT
from ..models import ACCOUNT_ROLES, CONTACT_STATUSES
from .parsing import MAX_ID

PREFIX = "/api/v1"
JSON = "application/json"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> dict[str, str]:
    return _ref("schemas", name)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _object(properties: dict[str, Any], required: list[str] | None = None, *, closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    if closed:
        schema["additionalProperties"] = False
    return schema


TIMESTAMP = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC."}
NULLABLE_ID = {"type": ["integer", "null"]}
TEXT_200 = {"type": "string", "maxLength": 200}


def _contact_schema(with_onboarding: bool) -> dict[str, Any]:
    properties = {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "email": {"type": "string"},
        "company": {"type": "string"},
        "phone": {"type": "string"},
        "role": {"type": "string", "enum": list(ACCOUNT_ROLES)},
        "status": {"type": "string", "enum": list(CONTACT_STATUSES)},
        "user_id": {**NULLABLE_ID, "description": "The contact's account, once provisioned."},
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    }
    required = list(properties)
    if with_onboarding:
        properties["onboarding"] = {
            **_schema("RequiredProgress"),
            "description": "Present once the contact has an account.",
        }
    return _object(properties, required)


SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": _object(
                {
                    "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$",
                             "description": "Stable, snake_case: for scripts."},
                    "message": {"type": "string", "description": "A sentence for people."},
                    "fields": {"type": "object", "additionalProperties": {"type": "string"},
                               "description": "422 only: what is wrong with each field."},
                },
                ["code", "message"],
                closed=False,
            )
        },
        closed=False,
    ),
    "ValidationError": {
        "allOf": [
            _schema("Error"),
            {"type": "object", "properties": {"error": {"type": "object", "required": ["fields"]}}},
        ]
    },
    "Contact": _contact_schema(with_onboarding=False),
    "ContactDetail": _contact_schema(with_onboarding=True),
    "RequiredProgress": _object(
        {
            "required_total": {"type": "integer", "minimum": 0},
            "required_completed": {"type": "integer", "minimum": 0},
            "complete": {"type": "boolean"},
        }
    ),
    "ContactPage": _object(
        {
            "items": {"type": "array", "items": _schema("Contact")},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1},
            "total": {"type": "integer", "minimum": 0},
        }
    ),
    "ContactCreate": _object(
        {
            "name": {**TEXT_200, "minLength": 1},
            "email": {"type": "string", "maxLength": 254, "format": "email",
                      "description": "Unique in the CRM whatever its letter case; stored lower-case."},
            "company": {**TEXT_200},
            "phone": {"type": "string", "maxLength": 50, "pattern": r"^[0-9+().\-\s/x]*$"},
            "role": {"type": "string", "enum": list(ACCOUNT_ROLES), "default": "client"},
        },
        ["name", "email"],
    ),
    "ContactUpdate": _object(
        {
            "name": {**TEXT_200, "minLength": 1},
            "company": {**TEXT_200},
            "phone": {"type": "string", "maxLength": 50, "pattern": r"^[0-9+().\-\s/x]*$"},
            "role": {"type": "string", "enum": list(ACCOUNT_ROLES),
                     "description": "Cannot change once the account exists (409 invalid_transition)."},
            "status": {"type": "string", "enum": list(CONTACT_STATUSES),
                       "description": "Staff moves only: LEAD→QUALIFIED, QUALIFIED→LEAD, LEAD/QUALIFIED→LOST, "
                                      "LOST→LEAD. Any other move is 409 invalid_transition."},
        },
        [],
    ),
    "Provisioned": _object({"user_id": {"type": "integer"}, "email": {"type": "string"}}),
    "AlreadyProvisioned": _object(
        {
            "user_id": {"type": "integer", "description": "The account the contact already has."},
            "email": {"type": "string"},
            "error": _object({"code": {"const": "already_provisioned"}, "message": {"type": "string"}}),
        }
    ),
    "Task": _object(
        {
            "slug": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "required": {"type": "boolean"},
            "position": {"type": "integer"},
            "completed": {"type": "boolean"},
            "completed_at": {"anyOf": [TIMESTAMP, {"type": "null"}]},
        }
    ),
    "Onboarding": _object(
        {
            "tasks": {"type": "array", "items": _schema("Task")},
            "required_total": {"type": "integer", "minimum": 0},
            "required_completed": {"type": "integer", "minimum": 0},
            "complete": {"type": "boolean"},
            "status": {"type": ["string", "null"], "enum": [*CONTACT_STATUSES, None],
                       "description": "The status of the user's contact; null for a user without one."},
        }
    ),
    "TaskCompletion": _object(
        {
            "task": _schema("Task"),
            "complete": {"type": "boolean", "description": "Every required task is done."},
            "status": {"type": ["string", "null"], "enum": [*CONTACT_STATUSES, None]},
        }
    ),
    "FeedEvent": _object(
        {
            "id": {"type": "integer"},
            "type": {"type": "string", "examples": ["onboarding.account.provisioned"]},
            "created_at": TIMESTAMP,
            "actor_id": {**NULLABLE_ID, "description": "Null for the system."},
            "contact_id": NULLABLE_ID,
            "user_id": NULLABLE_ID,
            "data": {"type": "object"},
        }
    ),
    "FeedPage": _object(
        {
            "items": {"type": "array", "items": _schema("FeedEvent")},
            "next_before": {**NULLABLE_ID, "description": "Pass as `before` for the next page; null on the last."},
        }
    ),
}


def _error(description: str, codes: list[str]) -> dict[str, Any]:
    return _json(_schema("Error"), f"{description} Codes: {', '.join(f'`{c}`' for c in codes)}.")


RESPONSES: dict[str, Any] = {
    "BadRequest": _error("The body is not a JSON object, or a signed-in browser sent no valid CSRF token.",
                         ["malformed_json", "bad_request", "csrf_failed"]),
    "Unauthorized": {
        **_error("No credentials, or a bearer token that is unknown or revoked.", ["unauthorized", "invalid_token"]),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "Forbidden": _error("The caller's role may not do this, or the caller must set their own password first.",
                        ["forbidden", "password_change_required"]),
    "NotFound": _error("No such thing.", ["not_found"]),
    "InvalidFields": _json(_schema("ValidationError"), "Invalid fields or filters; `fields` says what is wrong. "
                                                       "Code: `invalid_fields`."),
    "PayloadTooLarge": _error("The body is larger than the server accepts.", ["payload_too_large"]),
    "RateLimited": {
        **_error("Too many requests for this token (or user, or address).", ["rate_limited"]),
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
    "InternalError": _error("Something failed on the server; nothing was changed.", ["internal_error"]),
}


def _responses(success: dict[str, Any], *errors: str, public: bool = False) -> dict[str, Any]:
    """The success responses, the errors named, and those every route can answer."""
    result = dict(success)
    common = [] if public else ["401", "403"]
    names = {"400": "BadRequest", "401": "Unauthorized", "403": "Forbidden", "404": "NotFound",
             "413": "PayloadTooLarge", "422": "InvalidFields"}
    for status in sorted({*errors, *common}):
        if status not in result:
            result[status] = _ref("responses", names[status])
    result["429"] = _ref("responses", "RateLimited")
    result["500"] = _ref("responses", "InternalError")
    return dict(sorted(result.items()))


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


CONTACT_ID = {
    "name": "contact_id", "in": "path", "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}
STAFF = "Staff only (role `staff` or `admin`)."


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": _schema(schema)}}}


PATHS: dict[str, Any] = {
    "/crm/contacts": {
        "get": {
            "operationId": "listContacts",
            "tags": ["crm"],
            "summary": "List contacts, newest first.",
            "description": STAFF,
            "parameters": [
                _query("status", {"type": "string", "enum": list(CONTACT_STATUSES)}, "Only contacts in this status."),
                _query("q", {"type": "string", "maxLength": MAX_QUERY_LENGTH},
                       "Part of the name, email or company, in any letter case."),
                _query("page", {"type": "integer", "minimum": 1, "maximum": 100_000, "default": 1}, "From 1."),
                _query("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": 25},
                       "Page size."),
            ],
            "responses": _responses({"200": _json(_schema("ContactPage"), "One page of contacts.")}, "422"),
        },
        "post": {
            "operationId": "createContact",
            "tags": ["crm"],
            "summary": "Add a contact; it starts as a LEAD.",
            "description": STAFF,
            "requestBody": _body("ContactCreate"),
            "responses": _responses(
                {
                    "201": {**_json(_schema("Contact"), "The new contact."),
                            "headers": {"Location": {"description": "The contact's URL.",
                                                     "schema": {"type": "string"}}}},
                    "409": _error("A contact with this email (in any letter case) exists.", ["email_taken"]),
                },
                "400", "413", "422",
            ),
        },
    },
    "/crm/contacts/{contact_id}": {
        "parameters": [CONTACT_ID],
        "get": {
            "operationId": "getContact",
            "tags": ["crm"],
            "summary": "One contact, with its onboarding progress once it has an account.",
            "description": STAFF,
            "responses": _responses({"200": _json(_schema("ContactDetail"), "The contact.")}, "404"),
        },
        "patch": {
            "operationId": "updateContact",
            "tags": ["crm"],
            "summary": "Edit a contact's details and/or move its status along the lifecycle.",
            "description": STAFF,
            "requestBody": _body("ContactUpdate"),
            "responses": _responses(
                {
                    "200": _json(_schema("Contact"), "The contact as it is now."),
                    "409": _error("The status move is not one staff may make, or the role cannot change any more.",
                                  ["invalid_transition"]),
                },
                "400", "404", "413", "422",
            ),
        },
    },
    "/crm/contacts/{contact_id}/provision": {
        "parameters": [CONTACT_ID],
        "post": {
            "operationId": "provisionAccount",
            "tags": ["crm"],
            "summary": "Create the account of a QUALIFIED contact (or link the existing user with its email).",
            "description": STAFF + " Idempotent: once the contact has an account, every call answers 409 with "
                                   "that account's `user_id`.",
            "responses": _responses(
                {
                    "201": _json(_schema("Provisioned"), "This call provisioned the account; the welcome email "
                                                         "is on its way."),
                    "400": _error("The contact is not QUALIFIED (or, from a browser, the CSRF token is missing).",
                                  ["not_qualified", "csrf_failed"]),
                    "409": _json({"anyOf": [_schema("AlreadyProvisioned"), _schema("Error")]},
                                 "The contact already has an account (`already_provisioned`, with its `user_id`), "
                                 "or its email belongs to another contact's account (`conflict`)."),
                },
                "404",
            ),
        },
    },
    "/onboarding": {
        "get": {
            "operationId": "getOnboarding",
            "tags": ["onboarding"],
            "summary": "The caller's onboarding checklist.",
            "description": "Any signed-in user.",
            "responses": _responses({"200": _json(_schema("Onboarding"), "The checklist and its progress.")}),
        },
    },
    "/onboarding/complete/{slug}": {
        "parameters": [
            {"name": "slug", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"},
             "description": "A task of the caller's checklist, e.g. `accept-terms`."},
        ],
        "post": {
            "operationId": "completeTask",
            "tags": ["onboarding"],
            "summary": "Mark a checklist task done; repeating it changes nothing.",
            "description": "Any signed-in user. Completing the last required task makes the contact ACTIVE.",
            "responses": _responses(
                {
                    "200": _json(_schema("TaskCompletion"), "The task, and whether onboarding is complete."),
                    "404": _error("The task is not in the caller's checklist.", ["unknown_task"]),
                    "409": _error("`set-password` completes itself when the user sets their own password.",
                                  ["automatic_task"]),
                },
                "400",
            ),
        },
    },
    "/feed": {
        "get": {
            "operationId": "listFeed",
            "tags": ["feed"],
            "summary": "The action feed, newest first.",
            "description": "Staff see every event; anyone else only the events about their own account.",
            "parameters": [
                _query("type", {"type": "string", "maxLength": 64}, "Only events of this type."),
                _query("before", {"type": "integer", "minimum": 1, "maximum": 2**62},
                       "Only events older than this id: the `next_before` of the previous page."),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 20},
                       "Page size."),
            ],
            "responses": _responses({"200": _json(_schema("FeedPage"), "One page of events.")}, "422"),
        },
    },
    "/openapi.json": {
        "get": {
            "operationId": "getOpenApi",
            "tags": ["meta"],
            "summary": "This document.",
            "security": [],
            "responses": _responses({"200": _json({"type": "object"}, "The OpenAPI 3.1 document.")}, public=True),
        },
    },
}


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Onboarding API",
            "version": "1.0.0",
            "description": (
                "Turn qualified CRM contacts into accounts and follow their onboarding. JSON in, JSON out. "
                "Authenticate with `Authorization: Bearer <token>` (`flask --app wsgi tokens create EMAIL`), "
                "or with the browser session, whose unsafe requests then need the `X-CSRFToken` header. "
                'Every error is `{"error": {"code", "message"}}`.'
            ),
        },
        "paths": {PREFIX + path: item for path, item in PATHS.items()},
        "components": {
            "schemas": SCHEMAS,
            "responses": RESPONSES,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "A token from `flask --app wsgi tokens create EMAIL`."},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "session",
                                  "description": "The browser session after /login; unsafe methods also need "
                                                 "the X-CSRFToken header."},
            },
        },
        "security": [{"bearerAuth": []}, {"sessionCookie": []}],
    }


def document() -> dict[str, Any]:
    """A fresh copy, so nobody can change the cached one."""
    return copy.deepcopy(_document())
