"""The request's life, top to bottom: open, authenticate, parse, run, commit or roll back, answer any error."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, current_app, json, request
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from app.api import idempotency
from app.api.headers import set_security_headers
from app.api.inputs import check_inputs, check_query_names
from app.dialect.engine import mark_read_request
from app.errors import DomainError, UnsupportedMediaType, VersionMismatch
from app.extensions import db
from app.lib import i18n
from app.lib.i18n import Message, tr
from app.schemas.common import PROBLEM_MIMETYPE
from app.services.health import is_database_unavailable

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD"})
JSON_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Where register_error_form keeps each app's forms (app.extensions, so two apps never share them).
ERROR_FORMS = "boundary.error_forms"


def install(app: Flask) -> None:
    """Register the request's life on the app. In the order a request meets it:

    1. open_request (before_request): the view's body limit, 415 for a body that is not JSON, the input rules
       (app/api/inputs.py: readable text, no undeclared query parameter on /api/v1), a read request (GET, HEAD)
       marked as one (app.dialect.engine: no transaction on PostgreSQL, no statement that writes), and on
       SpatiaLite the host hold of an Idempotency-Key.
    2.-4. authenticate, parse, run: the view's own decorators, outermost first: @auth_required, @idempotent
       (answers a replay; stores a 2xx answer in the request's transaction), flask-smorest's arguments and
       response. Their order is checked here, once, by check_view_decorators.
    5. commit: GridApp.dispatch_request, when a write is answered below 400; an error's handler rolls back
       (or commits what a DomainError with keeps_changes wrote: a detected token replay).
    6. any error: one handler per kind, each through problem_response (problem+json, or a prefix's own form).
    7. close_response (after_request, every answer): roll back leftovers, security headers, no type on 204/304.
    8. close_request (teardown): release the Idempotency-Key's host hold.
    """
    if not isinstance(app, GridApp):
        raise TypeError("The request commits in GridApp.dispatch_request: create the app as a boundary.GridApp.")
    check_view_decorators(app)
    app.before_request(open_request)
    for error, handler in ERROR_HANDLERS:
        app.register_error_handler(error, handler)
    app.after_request(close_response)
    # Flask runs after_request functions last-registered first: at the head of the list this one runs after
    # every other, flask-limiter's header stamp included.
    app.after_request_funcs.setdefault(None, []).insert(0, retry_after_only_when_waiting)
    app.teardown_request(close_request)


# ---- Markers: what a view needs from the boundary, carried by the view itself --------------------------------------
# A marker may sit anywhere among the view's decorators: functools.wraps copies it out to the function Flask calls.


def body_limit(limit: str | Callable[[Mapping[str, Any]], int]) -> Callable[[Callable], Callable]:
    """The view's body may be larger than MAX_CONTENT_LENGTH: a config value's name, or a function of the config."""

    def mark(view: Callable) -> Callable:
        view.body_limit = limit
        return view

    return mark


def accepts_multipart(view: Callable) -> Callable:
    """The view takes a body that is not JSON (multipart/form-data) and judges its type itself."""
    view.accepts_multipart = True
    return view


def view_handler() -> Callable | None:
    """The function that answers this request, the view or its MethodView's method (HEAD falls back to GET).

    None when no route matched, or when Flask answers itself (an automatic OPTIONS of a MethodView)."""
    view = current_app.view_functions.get(request.endpoint)
    view_class = getattr(view, "view_class", None)
    if view_class is None:
        return view
    handler = getattr(view_class, request.method.lower(), None)
    if handler is None and request.method == "HEAD":
        handler = getattr(view_class, "get", None)
    return handler


# ---- 1. Open: before the view, before anything reads the body ------------------------------------------------------


def open_request() -> None:
    """before_request: the body's size and type, one set of input rules, and the SpatiaLite Idempotency-Key hold."""
    handler = view_handler()
    limit = getattr(handler, "body_limit", None)
    if limit is not None:
        config = current_app.config
        request.max_content_length = config[limit] if isinstance(limit, str) else limit(config)
    if not getattr(handler, "accepts_multipart", False) and _has_a_body_not_json():
        raise UnsupportedMediaType(tr("Send the body as application/json."))
    check_inputs()
    check_query_names(handler)
    if request.method in READ_METHODS:
        mark_read_request()
    if request.method == "POST" and getattr(handler, "idempotent", False):
        # Before authentication queries: on SpatiaLite that first statement would queue behind a request still
        # running with the same key, and the retry would replay instead of hearing 409.
        idempotency.hold_before_auth()


def _has_a_body_not_json() -> bool:
    return (
        request.method in JSON_BODY_METHODS
        and request.path.startswith("/api/")
        and bool(request.content_length or request.headers.get("Transfer-Encoding"))
        and not request.is_json
    )


# ---- 2.-4. Authenticate, parse, run: the view's decorators, outermost first ----------------------------------------
#   @auth_required(...)   the caller (Open311: api_key_required): 401 or 403 before anything is parsed
#   @idempotent           a stored answer replays here; the view's 2xx answer is stored in the request's transaction
#   @blp.arguments(...)   parse and validate with marshmallow: 422
#   @blp.response(...)    run the view and dump its answer


def check_view_decorators(app: Flask) -> None:
    """At start: every @idempotent view in the order above, or the app does not start."""
    for endpoint, view in app.view_functions.items():
        view_class = getattr(view, "view_class", None)
        handlers = [getattr(view_class, method.lower()) for method in view_class.methods] if view_class else [view]
        for handler in handlers:
            check_idempotent_position(handler, endpoint)


def check_idempotent_position(handler: Callable, name: str) -> None:
    """@idempotent directly under the decorator that authenticates, above flask-smorest's, else TypeError.

    Above authentication it has no caller to scope the key to; under flask-smorest it would fingerprint a body
    already parsed and store an answer that is not the final one."""
    layers = [handler]
    while hasattr(layers[-1], "__wrapped__"):
        layers.append(layers[-1].__wrapped__)
    # A marker is copied outwards, so the innermost layer that carries it is the decorator's own.
    own = _innermost(layers, "idempotent")
    if own is None:
        return
    if _innermost(layers, "authenticates") != own - 1:
        raise TypeError(f"{name}: put @idempotent directly under the decorator that authenticates (@auth_required).")
    if any(_defined_in(layer).startswith(("flask_smorest.", "webargs.")) for layer in layers[:own]):
        raise TypeError(f"{name}: put @idempotent above flask-smorest's decorators.")


def _innermost(layers: list[Callable], marker: str) -> int | None:
    return max((i for i, layer in enumerate(layers) if getattr(layer, marker, False)), default=None)


def _defined_in(layer: Callable) -> str:
    # The module a wrapper's code was written in: functools.wraps copies __module__ from the view, not __globals__.
    return getattr(layer, "__globals__", {}).get("__name__", "")


# ---- 5. Commit, or roll back ---------------------------------------------------------------------------------------


class GridApp(Flask):
    """Flask with one transaction per request, committed where the view's errors are still handled."""

    def dispatch_request(self):
        response = self.make_response(super().dispatch_request())
        # Committing here rather than in after_request lets a failing commit (a unique race, say)
        # reach the registered error handlers and become a proper problem+json.
        if request.method in WRITE_METHODS and response.status_code < 400:
            db.session.commit()
        return response


def _rollback() -> None:
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - a broken connection must not mask the original error
        log.exception("rollback failed")


# ---- 6. Any error: problem+json (RFC 7807), or the form a path prefix registered -----------------------------------

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


# Their titles and default details in the catalogue: the titles are werkzeug's own names, so English reads as before.
HTTP_TITLES = {
    400: tr("Bad Request"),
    401: tr("Unauthorized"),
    403: tr("Forbidden"),
    404: tr("Not Found"),
    405: tr("Method Not Allowed"),
    406: tr("Not Acceptable"),
    409: tr("Conflict"),
    413: tr("Request Entity Too Large"),
    415: tr("Unsupported Media Type"),
    422: tr("Unprocessable Entity"),
    429: tr("Too Many Requests"),
    500: tr("Internal Server Error"),
    503: tr("Service Unavailable"),
}
HTTP_DETAILS = {
    400: tr("The request could not be understood."),
    401: tr("Sign in first."),
    403: tr("Your account may not do this."),
    404: tr("Nothing is found at this URL."),
    405: tr("This URL does not take that method; see the Allow header."),
    406: tr("This URL cannot answer in a type the Accept header asks for."),
    409: tr("The request conflicts with the current state."),
    415: tr("This URL does not take a body of that media type."),
    422: tr("The request did not pass validation."),
    500: tr("An unexpected error occurred; it has been logged."),
    503: tr("The service is unavailable; try again shortly."),
}


def request_language() -> str:
    """The language of this request's texts: the best of its Accept-Language we write, else zh-CN."""
    return i18n.negotiate(request.headers.get("Accept-Language")) if request else i18n.DEFAULT_LANGUAGE


def register_error_form(app: Flask, prefix: str, render: Callable[[int, str, dict[str, str] | None], Response]) -> None:
    """Every error under the path prefix is written by render(status, detail, headers) instead of as problem+json."""
    app.extensions.setdefault(ERROR_FORMS, []).append((prefix, render))


def problem_response(
    status: int,
    code: str,
    title: Message | str,
    detail: Message | str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """problem+json with title, detail and every message inside `extra` in the request's language; `code` stays."""
    language = request_language()
    headers = {**(headers or {}), "Content-Language": language, "Vary": "Accept-Language"}
    if request:
        for prefix, render in current_app.extensions.get(ERROR_FORMS, ()):
            if request.path.startswith(prefix):
                # Clients under this prefix parse their own error form (Open311's).
                return render(status, i18n.render(detail, language), headers)
    body: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": i18n.render(title, language),
        "status": status,
        "detail": i18n.render(detail, language),
        "code": code,
        "instance": request.path if request else None,
    }
    if extra:
        body.update({k: _with_text_keys(i18n.render(v, language)) for k, v in extra.items() if v is not None})
    resp = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    for name, value in headers.items():
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


def _flatten_webargs_messages(messages: Any) -> Any:
    # webargs nests errors by location ({"json": {...}}); clients only care about the fields.
    if isinstance(messages, dict) and len(messages) == 1:
        ((location, inner),) = messages.items()
        if location in {"json", "query", "path", "form", "files", "headers", "view_args", "json_or_form"}:
            return inner
    return messages


def handle_domain_error(err: DomainError) -> Response:
    if err.keeps_changes:
        db.session.commit()
    else:
        _rollback()
    headers = {"WWW-Authenticate": 'Bearer realm="grid-api"'} if err.status == 401 else {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    return problem_response(err.status, err.code, err.title, err.detail, err.extra, headers)


def handle_http_exception(err: HTTPException) -> Response:
    _rollback()
    status = err.code or 500
    code = HTTP_CODES.get(status, f"http_{status}")
    extra: dict[str, Any] = {}
    # werkzeug's own description of the status is replaced by ours, in the catalogue; a raiser's own stays.
    default = not err.description or err.description == type(err).description
    detail: Message | str = HTTP_DETAILS.get(status, err.name) if default else err.description
    data = getattr(err, "data", None) or {}
    messages = data.get("messages")
    if messages is not None:
        if status == 400 and "Invalid JSON body" in json.dumps(messages):
            code, detail = "malformed_json", tr("The request body is not valid JSON.")
        else:
            extra["errors"] = _flatten_webargs_messages(messages)
            detail = tr("One or more fields are invalid; see errors.")
    if status == 413:
        detail = tr("The request body is larger than this endpoint accepts.")
    if status == 429:
        detail = tr("Too many requests: the limit is {limit}. Try again later.", limit=err.description)
    headers = dict(data.get("headers") or {})
    if status == 405 and getattr(err, "valid_methods", None):
        headers["Allow"] = ", ".join(err.valid_methods)
    return problem_response(status, code, _title_of(code) or HTTP_TITLES.get(status, err.name), detail, extra, headers)


@functools.cache
def _domain_titles() -> dict[str, Message]:
    """code -> title of the DomainError family (one title per code there)."""
    titles: dict[str, Message] = {}
    pending = [DomainError]
    while pending:
        cls = pending.pop()
        titles.setdefault(cls.code, cls.title)
        pending.extend(cls.__subclasses__())
    return titles


def _title_of(code: str) -> Message | None:
    """One problem type, one title (RFC 7807 3.1): a code the DomainError family names keeps that title, whether a
    service raised it or werkzeug, webargs or the limiter did."""
    return _domain_titles().get(code)


def handle_integrity_error(err: IntegrityError) -> Response:
    # A unique or foreign-key race that the services' checks could not see.
    _rollback()
    # Only the first line: PostgreSQL's DETAIL line repeats the conflicting values (a phone number, say).
    log.info("integrity error turned into 409: %s", str(err.orig).split("\n", 1)[0])
    return problem_response(
        409,
        "conflict",
        HTTP_TITLES[409],
        tr("The change conflicts with existing data (a concurrent request may have made it first)."),
    )


def handle_stale_data(err: StaleDataError) -> Response:
    # The version-checked UPDATE found the row already moved on: a concurrent request won the race.
    _rollback()
    log.info("stale version turned into 412: %s", err)
    return problem_response(
        412,
        VersionMismatch.code,
        VersionMismatch.title,
        tr("Another change to the case was saved first; read it again and retry."),
    )


def handle_database_unavailable(err: Exception) -> Response:
    """503 with Retry-After: the database is restarting, unreachable or out of connections; a retry will do."""
    _rollback()
    # One line, no traceback: an outage would otherwise flood the log with one stack per request.
    log.warning("database unavailable on %s %s: %s", request.method, request.path, type(err).__name__)
    return problem_response(
        503,
        "database_unavailable",
        HTTP_TITLES[503],
        tr("The database did not answer; try again shortly."),
        headers={"Retry-After": "5"},
    )


def handle_dbapi_error(err: DBAPIError) -> Response:
    # A connection the server closed under us (a restart) surfaces as InterfaceError or as a DBAPIError that
    # SQLAlchemy marks connection_invalidated; anything else from the driver is a bug, not an outage.
    if is_database_unavailable(err):
        return handle_database_unavailable(err)
    return handle_unexpected(err)


def handle_unexpected(err: Exception) -> Response:
    if isinstance(err, HTTPException):
        return handle_http_exception(err)
    _rollback()
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem_response(500, "internal_error", HTTP_TITLES[500], HTTP_DETAILS[500])


# Flask picks the handler of the error's nearest class, so Exception catches only what nothing else does.
ERROR_HANDLERS: tuple[tuple[type[Exception], Callable[[Any], Response]], ...] = (
    (DomainError, handle_domain_error),
    (HTTPException, handle_http_exception),
    (IntegrityError, handle_integrity_error),
    (OperationalError, handle_database_unavailable),
    (DBAPIError, handle_dbapi_error),
    (PoolTimeout, handle_database_unavailable),
    (StaleDataError, handle_stale_data),
    (Exception, handle_unexpected),
)


# ---- 7. Close: every answer, errors and static files included ------------------------------------------------------


def close_response(response: Response) -> Response:
    """after_request: nothing left open, the security headers (app/api/headers.py), no type for no content."""
    # A read-only request or a refused write leaves its transaction open; it must not reach the next request.
    # A connection lost meanwhile must not turn the answer already made (a 503, say) into a 500.
    _rollback()
    set_security_headers(response)
    # A 204 or 304 has no content to describe (RFC 9110), and the API document declares none for them.
    if response.status_code in (204, 304):
        response.headers.pop("Content-Type", None)
    return response


def retry_after_only_when_waiting(response: Response) -> Response:
    """flask-limiter stamps its window's Retry-After on every answer of a limited route; only an answer that asks
    the client to wait may carry one (RFC 9110 10.2.3), or an app that honours it would pause after a sign-in."""
    if response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response


# ---- 8. Teardown: the answer is out, whatever happened -------------------------------------------------------------


def close_request(_exc: BaseException | None = None) -> None:
    """teardown_request: the next request with this Idempotency-Key may run (the SpatiaLite host hold)."""
    idempotency.release_after_request()
