"""The DomainError family: each error a request may meet, as its status, stable code and title."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"
    # Most errors undo the request's work; a few (a detected token replay) must keep what they wrote.
    keeps_changes = False

    def __init__(
        self, detail: str | None = None, *, code: str | None = None, status: int | None = None, **extra: Any
    ) -> None:
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


class Open311BadRequest(DomainError):
    status = 400
    code = "open311_bad_request"
    title = "Invalid Open311 request"


class CalendarYearUnavailable(DomainError):
    status = 404
    code = "calendar_year_unavailable"
    title = "The holiday library has no data for that year"
