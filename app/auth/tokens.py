"""JWT access and refresh tokens: HS256 pinned, every registered claim required."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
from flask import current_app

from app.errors import InvalidToken
from app.lib.i18n import tr

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud", "jti", "typ"]
ACCESS = "access"
REFRESH = "refresh"


# Access token ids are derived from the refresh token issued with them (uuid5 in this namespace), so a stored
# refresh token row names its whole pair and the pair can be handed out again byte for byte.
ACCESS_JTI_NAMESPACE = uuid.UUID("6f1d2a3c-8b4e-4f5a-9c7d-0e2b4a6c8d1f")


def new_jti() -> str:
    return str(uuid.uuid4())


def access_jti(refresh_jti: str) -> str:
    return str(uuid.uuid5(ACCESS_JTI_NAMESPACE, refresh_jti))


def encode(
    typ: str, user_id: int, session_id: str, issued_at: datetime, ttl_s: int, jti: str | None = None
) -> tuple[str, str, datetime]:
    cfg = current_app.config
    expires_at = issued_at + timedelta(seconds=ttl_s)
    jti = jti or new_jti()
    claims = {
        "iss": cfg["JWT_ISSUER"],
        "aud": cfg["JWT_AUDIENCE"],
        "sub": str(user_id),
        "iat": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": jti,
        "typ": typ,
        "sid": session_id,
    }
    return jwt.encode(claims, cfg["JWT_SECRET"], algorithm=ALGORITHM), jti, expires_at


# Tokens this worker has verified, by the settings they were verified with and the token's exact text: the same
# text verifies the same way again, so only its expiry is checked anew. Why: PyJWT's checks of one access token
# (each character of three segments, the HMAC, the JSON, every claim) cost about as much as a report's read from
# the database, on every request. Bounded: emptied when full.
_VERIFIED: dict[tuple[str, str, str, str], dict[str, Any]] = {}
VERIFIED_UP_TO = 4096


def _verified_claims(token: str, cfg) -> dict[str, Any]:
    key = (cfg["JWT_SECRET"], cfg["JWT_AUDIENCE"], cfg["JWT_ISSUER"], token)
    claims = _VERIFIED.get(key)
    # PyJWT's own rule: expired once exp <= now (no leeway).
    if claims is not None and claims["exp"] > time.time():
        return claims
    claims = jwt.decode(
        token,
        cfg["JWT_SECRET"],
        algorithms=[ALGORITHM],
        audience=cfg["JWT_AUDIENCE"],
        issuer=cfg["JWT_ISSUER"],
        options={"require": REQUIRED_CLAIMS},
    )
    if len(_VERIFIED) >= VERIFIED_UP_TO:
        _VERIFIED.clear()
    _VERIFIED[key] = claims
    return claims


def decode(token: str, expected_typ: str) -> dict[str, Any]:
    cfg = current_app.config
    try:
        claims = dict(_verified_claims(token, cfg))
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken(tr("The token has expired."), code="token_expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken(tr("The token is not valid: {reason}.", reason=str(exc))) from exc
    if claims.get("typ") != expected_typ:
        raise InvalidToken(
            tr("A {token_type} token is required here.", token_type=expected_typ), code="wrong_token_type"
        )
    if not isinstance(claims.get("sid"), str) or not str(claims.get("sub", "")).isdigit():
        raise InvalidToken(tr("The token's subject or session is malformed."))
    return claims
