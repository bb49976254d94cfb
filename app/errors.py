"""The DomainError family: each error a request may meet, as its status, stable code and title."""

from __future__ import annotations

from typing import Any

from app.lib.i18n import Message, tr


class DomainError(Exception):
    """An error with its stable code. Title and detail are catalogue messages (tr(), app/lib/i18n.py): the
    boundary renders them in the request's Accept-Language; str() of the error is the English detail."""

    status = 400
    code = "bad_request"
    title: Message = tr("Bad request")
    # Most errors undo the request's work; a few (a detected token replay) must keep what they wrote.
    keeps_changes = False
    # Seconds a client should wait before retrying, sent as Retry-After (a backing service that is down).
    retry_after: int | None = None

    def __init__(
        self, detail: Message | None = None, *, code: str | None = None, status: int | None = None, **extra: Any
    ) -> None:
        self.detail = detail or self.title
        super().__init__(str(self.detail))
        if code:
            self.code = code
        if status:
            self.status = status
        self.extra = extra


class ValidationFailed(DomainError):
    status = 422
    code = "validation_failed"
    title = tr("The request did not pass validation")

    def __init__(self, detail: Message | None = None, *, errors: Any = None, **kw: Any) -> None:
        super().__init__(detail, errors=errors or {}, **kw)


class AttributeRejected(ValidationFailed):
    """An answer to a category's Open311 attributes refused (app.services.cases.attributes); Open311 answers it
    as its own 400 with the same detail."""

    def __init__(self, attributes: str | list[str], detail: Message) -> None:
        names = [attributes] if isinstance(attributes, str) else attributes
        super().__init__(detail, errors={"attributes": {name: [detail] for name in names}})


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    title = tr("Authentication required")


class InvalidToken(Unauthorized):
    code = "invalid_token"
    title = tr("The token is missing, malformed, expired or revoked")


class TokenReplayed(InvalidToken):
    code = "token_reused"
    keeps_changes = True


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    title = tr("Wrong username or password")


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = tr("Not allowed for this account")


class NotFound(DomainError):
    status = 404
    code = "not_found"
    title = tr("No such resource")


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = tr("The request conflicts with the current state")


class TransitionNotAllowed(Conflict):
    code = "transition_not_allowed"
    title = tr("The case's status does not allow this action")


class VersionRequired(DomainError):
    status = 428
    code = "if_match_required"
    title = tr("Send If-Match with the case's current ETag")


class VersionMismatch(DomainError):
    status = 412
    code = "version_mismatch"
    title = tr("The case has changed since it was read")


class Unrouted(NotFound):
    code = "unrouted"
    title = tr("The location lies in no grid cell")


class InvalidIdempotencyKey(DomainError):
    code = "invalid_idempotency_key"
    title = tr("The Idempotency-Key header must be 1 to 255 printable ASCII characters")


class IdempotencyKeyReused(DomainError):
    status = 422
    code = "idempotency_key_reused"
    title = tr("This Idempotency-Key was already used for a different request")


class IdempotencyRequestInProgress(Conflict):
    code = "idempotency_request_in_progress"
    title = tr("A request with this Idempotency-Key is still being processed")


class MalformedJSON(DomainError):
    code = "malformed_json"
    title = tr("The request body is not valid JSON")


class MalformedForm(DomainError):
    code = "malformed_form"
    title = tr("The form body could not be read")


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"
    title = tr("Payload too large")


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"
    title = tr("Unsupported Media Type")


class UnsupportedImage(UnsupportedMediaType):
    code = "unsupported_image_type"
    title = tr("The file is not a JPEG, PNG or WebP image")


class InvalidCursor(DomainError):
    code = "invalid_cursor"
    title = tr("The cursor is not one this service handed out")


class Open311BadRequest(DomainError):
    status = 400
    code = "open311_bad_request"
    title = tr("Invalid Open311 request")


class CalendarYearUnavailable(DomainError):
    status = 404
    code = "calendar_year_unavailable"
    title = tr("The holiday library has no data for that year")


class StorageUnavailable(DomainError):
    """The photo store (an S3-compatible object store) did not answer or refused the request."""

    status = 503
    code = "storage_unavailable"
    title = tr("The photo store is unavailable")
    retry_after = 5

    def __init__(self, detail: Message | None = None, **kw: Any) -> None:
        super().__init__(detail or tr("The photo store did not answer; try again shortly."), **kw)
