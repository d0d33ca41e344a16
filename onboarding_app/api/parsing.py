"""Reading what the schemas cannot: the raw JSON body (before ``spec.py`` checks its fields)
and the values in a path."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from ..errors import NotFound, UnknownTask
from ..schemas import fits_path
from ..task_kinds import RequestMeta
from ..uploads import form_answers
from .errors import ApiError

def _check_text(value: Any) -> None:
    """Every string must be encodable as UTF-8 (JSON allows lone surrogates; databases don't)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying what is wrong with it."""
    if not request.is_json:
        raise ApiError(400, "malformed_json", "Send a JSON object with Content-Type: application/json.")
    raw = request.get_data(cache=True)  # 413 when larger than MAX_CONTENT_LENGTH
    try:
        data = json.loads(raw)
        _check_text(data)
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        raise ApiError(400, "malformed_json", "The body is not valid JSON (UTF-8).") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "The body must be a JSON object.")
    return data


def contact_id(value: int) -> int:
    """An id outside the rule (say, past what an INTEGER column holds) cannot exist: unknown,
    without asking the database an out-of-range question."""
    if not fits_path("contact_id", value):
        raise NotFound(f"Contact {value} does not exist.")
    return value


def endpoint_id(value: int) -> int:
    if not fits_path("endpoint_id", value):
        raise NotFound(f"Webhook endpoint {value} does not exist.")
    return value


def task_slug(slug: str) -> str:
    """A slug that could be in a checklist; anything else cannot be, so it is unknown."""
    if not fits_path("slug", slug):
        raise UnknownTask("There is no such task in your checklist.", slug=slug[:64])
    return slug


def file_id(value: int) -> int:
    if not fits_path("file_id", value):
        raise NotFound(f"File {value} does not exist.")
    return value


def document_key(value: str) -> str:
    if not fits_path("key", value):
        raise NotFound("There is no such document.")
    return value


def answers() -> dict[str, Any] | None:
    """A task's answers: a JSON object, or a ``multipart/form-data`` body (its file as an
    ``IncomingFile``); no body at all is None (a task that takes nothing)."""
    if request.mimetype == "multipart/form-data":
        return form_answers(request)
    if not request.content_length and not request.get_data(cache=True):
        return None
    return json_object()


def request_meta() -> RequestMeta:
    """Who sent this request: the client's address (as ``TRUSTED_PROXIES`` allows) and agent."""
    return RequestMeta(ip=request.remote_addr, user_agent=request.user_agent.string or None)


def checklist_role(value: str) -> str:
    if not fits_path("role", value):
        raise NotFound("There is no such checklist.")
    return value


def checklist_slug(slug: str) -> str:
    """A task slug in a checklist; anything else cannot be one, so it is unknown."""
    if not fits_path("slug", slug):
        raise NotFound("There is no such task in this checklist.", slug=slug[:64])
    return slug
