"""HTTP errors answered once for the whole app: JSON under /api, HTML pages elsewhere."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from .errors import Conflict, DomainError, FileTooLarge, InvalidCredentials, NotFound, ValidationFailed
from .extensions import db

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_fields",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def error_response(status: int, code: str | None = None, message: str | None = None, **extra):
    """``{"error": {"code", "message", ...}}`` with the given status: the API's one error shape."""
    body = {"code": code or _CODES.get(status, "error"), "message": message or "The request failed."}
    body.update(extra)
    return jsonify(error=body), status


def status_for(exc: DomainError) -> int:
    """The HTTP status of a domain refusal, for the API and the pages alike."""
    if isinstance(exc, ValidationFailed):
        return 422
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, InvalidCredentials):
        return 401
    if isinstance(exc, FileTooLarge):
        return 413
    return 400  # NotQualified and any other request that cannot work as sent


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/api"


def _message(exc: HTTPException) -> str:
    if exc.code == 429:
        return f"Too many requests ({exc.description}). Try again shortly."
    if exc.code == 405:
        return f"{request.method} is not allowed here."
    if exc.code == 404:
        return "There is nothing at this address."
    if exc.code == 413:
        return "The request body is too large."
    return exc.description or exc.name


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        app.logger.warning("CSRF refusal on %s %s: %s", request.method, request.path, exc.description)
        if wants_json():
            return error_response(400, "csrf_failed", "The CSRF token is missing or invalid.")
        return render_template("errors/error.html", status=400,
                               message="The form expired or was not sent from this site. Go back, reload and try again."), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        if wants_json():
            code = _CODES.get(status)
            if status == 413 and request.mimetype == "multipart/form-data":
                code = FileTooLarge.code  # an upload past MAX_CONTENT_LENGTH
            body, status = error_response(status, code, _message(exc))
            # Keep the headers werkzeug set (Allow on 405, Retry-After on 429).
            for name, value in exc.get_headers():
                if name.lower() != "content-type":
                    body.headers[name] = value
            return body, status
        return render_template("errors/error.html", status=status, message=_message(exc)), status

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_error(exc)
        db.session.rollback()
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return error_response(500, "internal_error", "Something went wrong on our side; nothing was changed.")
        return render_template("errors/error.html", status=500,
                               message="Something went wrong on our side; nothing was changed."), 500
