"""The DomainError family and the one handler that writes every error as RFC 7807 problem+json."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from marshmallow import Schema, fields
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from app.extensions import db

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"
OPEN311_PREFIX = "/open311/"


class ProblemSchema(Schema):
    """RFC 7807 problem details, as every error answers.

    The members after `instance` are our extension members (RFC 7807 section 3.2), each present only on the
    problems that carry it. Every member an error may carry is declared here: the document stays closed to
    others, so the fuzz (tests/test_fuzz.py) catches a new one that nobody documented."""

    type = fields.String(metadata={"description": "URI reference naming the problem type"})
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    code = fields.String(metadata={"description": "Stable machine-readable code"})
    instance = fields.String(metadata={"description": "The request path"})
    errors = fields.Raw(metadata={"description": "validation_failed and the like: the fields in error, each with "
                                                 "its messages; a grid import: its bad features"})
    action = fields.String(metadata={"description": "transition_not_allowed: the action refused"})
    case_status = fields.String(metadata={"description": "transition_not_allowed: the case's status, which the "
                                                         "action may not leave from"})


class DomainError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"
    # Most errors undo the request's work; a few (a detected token replay) must keep what they wrote.
    keeps_changes = False

    def __init__(self, detail: str | None = None, *, code: str | None = None,
                 status: int | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code:
            self.code = code
        if status:
            self.status = status
        self.extra = extra


class ValidationFailed(DomainError):
    status = 422
    code = "validation_failed"
    title = "The request did not pass validation"

    def __init__(self, detail: str | None = None, *, errors: Any = None, **kw: Any) -> None:
        super().__init__(detail, errors=errors or {}, **kw)


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class InvalidToken(Unauthorized):
    code = "invalid_token"
    title = "The token is missing, malformed, expired or revoked"


class TokenReplayed(InvalidToken):
    code = "token_reused"
    keeps_changes = True


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    title = "Wrong username or password"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Not allowed for this account"


class NotFound(DomainError):
    status = 404
    code = "not_found"
    title = "No such resource"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "The request conflicts with the current state"


class TransitionNotAllowed(Conflict):
    code = "transition_not_allowed"
    title = "The case's status does not allow this action"


class VersionRequired(DomainError):
    status = 428
    code = "if_match_required"
    title = "Send If-Match with the case's current ETag"


class VersionMismatch(DomainError):
    status = 412
    code = "version_mismatch"
    title = "The case has changed since it was read"


class Unrouted(NotFound):
    code = "unrouted"
    title = "The location lies in no grid cell"


class InvalidIdempotencyKey(DomainError):
    code = "invalid_idempotency_key"
    title = "The Idempotency-Key header must be 1 to 255 printable ASCII characters"


class IdempotencyKeyReused(DomainError):
    status = 422
    code = "idempotency_key_reused"
    title = "This Idempotency-Key was already used for a different request"


class IdempotencyRequestInProgress(Conflict):
    code = "idempotency_request_in_progress"
    title = "A request with this Idempotency-Key is still being processed"


class MalformedJSON(DomainError):
    code = "malformed_json"
    title = "The request body is not valid JSON"


class MalformedForm(DomainError):
    code = "malformed_form"
    title = "The form body could not be read"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported Media Type"


class UnsupportedImage(UnsupportedMediaType):
    code = "unsupported_image_type"
    title = "The file is not a JPEG, PNG or WebP image"
class InvalidCursor(DomainError):
    code = "invalid_cursor"
    title = "The cursor is not one this service handed out"


# Stable codes for the HTTP errors raised by Flask, Werkzeug and webargs.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


def problem_response(status: int, code: str, title: str, detail: str,
                     extra: dict[str, Any] | None = None,
                     headers: dict[str, str] | None = None) -> Response:
    if request and request.path.startswith(OPEN311_PREFIX):
        # Open311 clients parse their own error form; every error under its prefix speaks it.
        from app.api.open311 import error_response
        return error_response(status, detail, headers)
    body: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.path if request else None,
    }
    if extra:
        body.update({k: _with_text_keys(v) for k, v in extra.items() if v is not None})
    resp = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def _with_text_keys(value: Any) -> Any:
    """Error maps as JSON objects: marshmallow keys list items by int, and a form part without a name by None;
    mixed with text keys they would break the sorted dump and turn the answer itself into a 500."""
    if isinstance(value, dict):
        return {("null" if key is None else str(key)): _with_text_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_text_keys(item) for item in value]
    return value


def _rollback() -> None:
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - a broken connection must not mask the original error
        log.exception("rollback failed")


def _flatten_webargs_messages(messages: Any) -> Any:
    # webargs nests errors by location ({"json": {...}}); clients only care about the fields.
    if isinstance(messages, dict) and len(messages) == 1:
        (location, inner), = messages.items()
        if location in {"json", "query", "path", "form", "files", "headers", "view_args", "json_or_form"}:
            return inner
    return messages


def handle_domain_error(err: DomainError) -> Response:
    if err.keeps_changes:
        db.session.commit()
    else:
        _rollback()
    headers = {"WWW-Authenticate": 'Bearer realm="grid-api"'} if err.status == 401 else None
    return problem_response(err.status, err.code, err.title, err.detail, err.extra, headers)


def handle_http_exception(err: HTTPException) -> Response:
    _rollback()
    status = err.code or 500
    code = HTTP_CODES.get(status, f"http_{status}")
    extra: dict[str, Any] = {}
    detail = err.description or err.name
    data = getattr(err, "data", None) or {}
    messages = data.get("messages")
    if messages is not None:
        if status == 400 and "Invalid JSON body" in json.dumps(messages):
            code, detail = "malformed_json", "The request body is not valid JSON."
        else:
            extra["errors"] = _flatten_webargs_messages(messages)
            detail = "One or more fields are invalid; see errors."
    if status == 413:
        detail = "The request body is larger than this endpoint accepts."
    if status == 429:
        detail = f"Too many requests: the limit is {err.description}. Try again later."
    headers = dict(data.get("headers") or {})
    if status == 405 and getattr(err, "valid_methods", None):
        headers["Allow"] = ", ".join(err.valid_methods)
    return problem_response(status, code, err.name, detail, extra, headers)


def handle_integrity_error(err: IntegrityError) -> Response:
    # A unique or foreign-key race that the services' checks could not see.
    _rollback()
    # Only the first line: PostgreSQL's DETAIL line repeats the conflicting values (a phone number, say).
    log.info("integrity error turned into 409: %s", str(err.orig).split("\n", 1)[0])
    return problem_response(409, "conflict", "Conflict",
                            "The change conflicts with existing data (a concurrent request may have made it first).")


def handle_stale_data(err: StaleDataError) -> Response:
    # The version-checked UPDATE found the row already moved on: a concurrent request won the race.
    _rollback()
    log.info("stale version turned into 412: %s", err)
    return problem_response(412, VersionMismatch.code, VersionMismatch.title,
                            "Another change to the case was saved first; read it again and retry.")


def handle_operational_error(err: OperationalError) -> Response:
    _rollback()
    log.exception("database unavailable")
    return problem_response(503, "database_unavailable", "Service unavailable",
                            "The database did not answer; try again shortly.",
                            headers={"Retry-After": "5"})


def handle_unexpected(err: Exception) -> Response:
    if isinstance(err, HTTPException):
        return handle_http_exception(err)
    _rollback()
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem_response(500, "internal_error", "Internal server error",
                            "An unexpected error occurred; it has been logged.")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(IntegrityError, handle_integrity_error)
    app.register_error_handler(OperationalError, handle_operational_error)
    app.register_error_handler(StaleDataError, handle_stale_data)
    app.register_error_handler(Exception, handle_unexpected)
