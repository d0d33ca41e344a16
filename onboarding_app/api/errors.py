"""The API's one mapping from refusals to ``{"error": {"code", "message"}}`` responses.

Domain errors come from the services; ``ApiError`` is what the API itself refuses (no
credentials, wrong role, a body that is not a JSON object). Routing 404/405, 413, 429 and
unexpected exceptions are answered at app level (``http_errors.py``), JSON under ``/api``.
"""

from __future__ import annotations

from flask import Blueprint

from ..errors import DomainError, ValidationFailed
from ..http_errors import error_response, status_for


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def register(bp: Blueprint) -> None:
    @bp.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        extra = {"fields": exc.fields} if isinstance(exc, ValidationFailed) else {}
        extra.update({name: exc.details[name] for name in exc.public if name in exc.details})
        return error_response(status_for(exc), exc.code, exc.message, **extra)

    @bp.errorhandler(ApiError)
    def api_error(exc: ApiError):
        response, status = error_response(exc.status, exc.code, exc.message)
        response.headers.update(exc.headers)
        return response, status
