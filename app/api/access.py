"""Who is calling: the bearer token resolved to a user, and the role checks every view declares."""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import g, request

from app.api.observe import note_caller
from app.errors import Forbidden, InvalidToken, Unauthorized
from app.lib.i18n import tr
from app.models import Role, User
from app.services.people.sessions import caller_for_access_token


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthorized(tr("Send 'Authorization: Bearer <access_token>'."), code="missing_token")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken(tr("The Authorization header must be 'Bearer <access_token>'."))
    return token.strip()


def current_user() -> User:
    return g.current_user


def current_session_id() -> str:
    """The login (auth session) the request's access token belongs to."""
    return g.current_session_id


def auth_required(*roles: Role | str) -> Callable:
    """Require a valid access token; with roles, also one of them."""
    allowed: set[str] = {r.value if isinstance(r, Role) else r for r in roles}

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user, session_id = caller_for_access_token(_bearer_token())
            g.current_user, g.current_session_id = user, session_id
            note_caller(user)
            if allowed and user.role not in allowed:
                raise Forbidden(tr("This action needs one of the roles: {roles}.", roles=", ".join(sorted(allowed))))
            return view(*args, **kwargs)

        # Read by the boundary's check of @idempotent's place (app/api/boundary.py).
        wrapper.authenticates = True
        return wrapper

    return decorator
