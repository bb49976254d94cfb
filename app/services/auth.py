"""Login sessions: issuing, rotating and revoking tokens, and resolving the caller of a request."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update

from app.auth import tokens
from app.auth.passwords import verify_password
from app.errors import InvalidCredentials, InvalidToken, TokenReplayed
from app.extensions import db
from app.models import AuthSession, RefreshToken, User
from app.models.base import utcnow


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


def find_user_by_username(username: str) -> User | None:
    return db.session.scalars(
        select(User).where(func.lower(User.username) == username.strip().lower())
    ).first()


def _issue(user: User, session: AuthSession) -> TokenPair:
    cfg = current_app.config
    now = utcnow()
    refresh, jti, refresh_exp = tokens.encode(tokens.REFRESH, user.id, session.id, now,
                                              cfg["REFRESH_TOKEN_TTL_S"])
    # A rotated refresh token never outlives the login it descends from.
    refresh_exp = min(refresh_exp, session.expires_at)
    db.session.add(RefreshToken(jti=jti, session_id=session.id, issued_at=now, expires_at=refresh_exp))
    access, _, _ = tokens.encode(tokens.ACCESS, user.id, session.id, now, cfg["ACCESS_TOKEN_TTL_S"])
    db.session.flush()
    return TokenPair(access_token=access, refresh_token=refresh,
                     expires_in=int(cfg["ACCESS_TOKEN_TTL_S"]))


def login(username: str, password: str) -> TokenPair:
    user = find_user_by_username(username)
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        raise InvalidCredentials("Wrong username or password.")
    session = AuthSession(
        id=str(uuid.uuid4()), user_id=user.id,
        expires_at=utcnow() + timedelta(seconds=current_app.config["REFRESH_TOKEN_TTL_S"]),
    )
    db.session.add(session)
    db.session.flush()
    return _issue(user, session)


def _revoke_session(session_id: str, reason: str) -> None:
    db.session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )


def revoke_user_sessions(user_id: int, reason: str) -> None:
    """End every login of the user: their access and refresh tokens are refused from the next request on."""
    db.session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )
    db.session.flush()


def _live_session_and_user(session_id: str, user_id: int) -> tuple[AuthSession, User]:
    row = db.session.execute(
        select(AuthSession, User).join(User, User.id == AuthSession.user_id)
        .where(AuthSession.id == session_id, User.id == user_id)
    ).first()
    if row is None:
        raise InvalidToken("The token's session does not exist.")
    session, user = row
    _check_live(session.revoked_at, session.expires_at, user)
    return session, user


def _check_live(revoked_at, expires_at, user: User) -> None:
    if revoked_at is not None:
        raise InvalidToken("The session has been signed out or revoked.", code="token_revoked")
    if expires_at <= utcnow():
        raise InvalidToken("The session has expired; sign in again.", code="token_expired")
    if not user.active:
        raise InvalidToken("The account is deactivated.", code="account_inactive")


def refresh(refresh_token: str) -> TokenPair:
    claims = tokens.decode(refresh_token, tokens.REFRESH)
    # Claim the token atomically: of two concurrent exchanges exactly one sees a row updated.
    claimed = db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.jti == claims["jti"], RefreshToken.session_id == claims["sid"],
               RefreshToken.used_at.is_(None))
        .values(used_at=utcnow())
    ).rowcount
    if claimed != 1:
        known = db.session.get(RefreshToken, claims["jti"])
        if known is None:
            raise InvalidToken("Unknown refresh token.")
        # A replayed refresh token means it leaked: end the whole login it came from.
        _revoke_session(known.session_id, "refresh_reuse")
        db.session.flush()
        raise TokenReplayed("This refresh token was already used; every token of its login is now revoked.")
    session, user = _live_session_and_user(claims["sid"], int(claims["sub"]))
    return _issue(user, session)


def logout(refresh_token: str) -> None:
    claims = tokens.decode(refresh_token, tokens.REFRESH)
    known = db.session.get(RefreshToken, claims["jti"])
    if known is None or known.session_id != claims["sid"]:
        raise InvalidToken("Unknown refresh token.")
    _revoke_session(known.session_id, "logout")
    db.session.flush()


def user_for_access_token(access_token: str) -> User:
    claims = tokens.decode(access_token, tokens.ACCESS)
    # Runs on every request: one query, one entity; the session's state comes back as plain columns.
    row = db.session.execute(
        select(User, AuthSession.revoked_at, AuthSession.expires_at)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(AuthSession.id == claims["sid"], User.id == int(claims["sub"]))
    ).first()
    if row is None:
        raise InvalidToken("The token's session does not exist.")
    user, revoked_at, expires_at = row
    _check_live(revoked_at, expires_at, user)
    return user
