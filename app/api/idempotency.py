"""`@idempotent`: a POST that honours an optional Idempotency-Key header, so a client may retry it safely.

Usage: put it directly under `@auth_required(...)`, above the flask-smorest decorators, so it knows the
user and sees the final Response (and reads the raw body before anything parses it); the app does not start
otherwise (`check_view_decorators` in app/api/boundary.py)::

    @auth_required(Role.worker)
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(SomeIn)
    @blp.response(201, SomeOut)
    def post(self, data): ...

Semantics (draft-ietf-httpapi-idempotency-key-header, as Stripe runs it): keys belong to the user; a key
is 1..255 printable ASCII characters, else 400 `invalid_idempotency_key`. A 2xx response is stored in the
request's own transaction, so it exists exactly when the work was committed, for IDEMPOTENCY_TTL_S. A retry
with the same key, method, path, query and body gets it back (status, body, ETag/Location...) with
`Idempotent-Replayed: true` and changes nothing; another request under that key is 422
`idempotency_key_reused`; a retry while the first still runs is 409 `idempotency_request_in_progress`
(PostGIS: an advisory lock in the transaction; SpatiaLite: a host lock taken before the request's first
statement, `hold_before_auth`, since that statement would wait for the single writer). Error responses are not
stored: every error rolls its work back, so the key stays free and a corrected request may use it again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from copy import deepcopy

from flask import Response, current_app, g, request

from app.api.access import current_user
from app.auth import tokens
from app.errors import InvalidToken
from app.services import idempotency
from app.services.people.api_keys import hash_key

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
FORM_MIMETYPES = {"multipart/form-data", "application/x-www-form-urlencoded"}

_PARAMETER_DOC = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Optional, unique per request (a UUID): a retry with the same key and body gets the first "
    f"2xx response again with `{REPLAYED_HEADER}: true`, and changes nothing. 400 "
    "invalid_idempotency_key; 422 idempotency_key_reused (another request used the key); 409 "
    "idempotency_request_in_progress (the first has not finished). Kept IDEMPOTENCY_TTL_S (24 hours).",
}


def _body() -> bytes:
    """The request body as the fingerprint sees it.

    A form body is reduced to its fields and each file's name and SHA-256: a client that rebuilds an upload for
    its retry draws a new multipart boundary, and the retry must still match; and a form may already have been
    parsed (the Open311 rate limit reads api_key), which leaves no raw bytes to read. Any other body counts
    byte for byte; get_data caches the bytes, so the body parsers that run next read them again."""
    if request.mimetype in FORM_MIMETYPES:
        return idempotency.canonical_form(request.form, request.files)
    return request.get_data()


def _caller_scope() -> str | None:
    """Who the key belongs to, from the credentials alone (no database): the token's user or the API key.

    None when the token is not valid: authentication refuses the request next, and no key is held."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        try:
            return f"user:{tokens.decode(token.strip(), tokens.ACCESS)['sub']}"
        except InvalidToken:
            return None
    api_key = request.values.get("api_key")
    return f"api_key:{hash_key(api_key)}" if api_key else None


def hold_before_auth() -> None:
    """Before the view (the boundary calls it for a POST to an @idempotent view): hold a sent key on this host.

    On SpatiaLite the first statement of a request waits for the single writer, so a retry of a request still
    running would wait and replay; holding the key first answers it 409, as on PostGIS."""
    key = request.headers.get(HEADER)
    if key is None:
        return
    scope = _caller_scope()
    if scope is not None:
        g.idempotency_release = idempotency.hold_on_host(scope, idempotency.check_key(key))


def release_after_request(_exc: BaseException | None = None) -> None:
    release = g.pop("idempotency_release", None)
    if release is not None:
        release()


def idempotent(view: Callable) -> Callable:
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        key = idempotency.check_key(key)
        user_id = current_user().id
        fingerprint = idempotency.fingerprint(request.method, request.path, request.query_string, _body())
        stored = idempotency.claim(user_id, key, fingerprint)
        if stored is not None:
            replay = Response(stored.body, status=stored.status_code, headers=stored.headers)
            replay.headers[REPLAYED_HEADER] = "true"
            return replay
        response = current_app.make_response(view(*args, **kwargs))
        if 200 <= response.status_code < 300:
            idempotency.store(user_id, key, fingerprint, response.status_code, response.headers, response.get_data())
        return response

    wrapper.idempotent = True
    # functools.wraps shared the view's doc dict; the copy keeps the header out of other operations' docs.
    wrapper._apidoc = deepcopy(getattr(view, "_apidoc", {}))
    wrapper._apidoc.setdefault("arguments", {}).setdefault("parameters", []).append(_PARAMETER_DOC)
    return wrapper
