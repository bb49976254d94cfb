"""Login sessions: issuing, rotating and revoking tokens, and resolving the caller of a request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update

from app.auth import tokens
from app.auth.passwords import verify_password
from app.errors import InvalidCredentials, InvalidToken, TokenReplayed
from app.extensions import db
from app.lib.i18n import tr
from app.models import AuthSession, RefreshToken, User
from app.models.base import utcnow
from app.services import versions


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


def find_user_by_username(username: str) -> User | None:
    return db.session.scalars(select(User).where(func.lower(User.username) == username.strip().lower())).first()


def _pair(user_id: int, session_id: str, refresh_jti: str, issued_at: datetime) -> TokenPair:
    """The token pair a refresh token row stands for: HS256 over the same claims gives the same bytes, so the
    row (its jti and issue time) re-creates the pair exactly."""
    cfg = current_app.config
    refresh_token, _, _ = tokens.encode(
        tokens.REFRESH, user_id, session_id, issued_at, cfg["REFRESH_TOKEN_TTL_S"], jti=refresh_jti
    )
    access, _, _ = tokens.encode(
        tokens.ACCESS, user_id, session_id, issued_at, cfg["ACCESS_TOKEN_TTL_S"], jti=tokens.access_jti(refresh_jti)
    )
    return TokenPair(access_token=access, refresh_token=refresh_token, expires_in=int(cfg["ACCESS_TOKEN_TTL_S"]))


def _issue(user: User, session: AuthSession, jti: str | None = None) -> TokenPair:
    # Whole seconds, as the tokens' iat carries it: the stored issued_at then re-creates the same pair.
    now = utcnow().replace(microsecond=0)
    jti = jti or tokens.new_jti()
    # A rotated refresh token never outlives the login it descends from.
    refresh_exp = min(now + timedelta(seconds=current_app.config["REFRESH_TOKEN_TTL_S"]), session.expires_at)
    db.session.add(RefreshToken(jti=jti, session_id=session.id, issued_at=now, expires_at=refresh_exp))
    db.session.flush()
    return _pair(user.id, session.id, jti, now)


def login(username: str, password: str) -> TokenPair:
    user = find_user_by_username(username)
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        raise InvalidCredentials(tr("Wrong username or password."))
    session = AuthSession(
        id=str(uuid.uuid4()),
        user_id=user.id,
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


def revoke_user_sessions(user_id: int, reason: str, *, keep: str | None = None) -> None:
    """End every login of the user but `keep` (a session id): their access and refresh tokens are refused from
    the next request on."""
    stmt = (
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )
    if keep is not None:
        stmt = stmt.where(AuthSession.id != keep)
    db.session.execute(stmt)
    db.session.flush()


def _live_session_and_user(session_id: str, user_id: int) -> tuple[AuthSession, User]:
    row = db.session.execute(
        select(AuthSession, User)
        .join(User, User.id == AuthSession.user_id)
        .where(AuthSession.id == session_id, User.id == user_id)
    ).first()
    if row is None:
        raise InvalidToken(tr("The token's session does not exist."))
    session, user = row
    _check_live(session.revoked_at, session.expires_at, user)
    return session, user


def _check_live(revoked_at, expires_at, user: User) -> None:
    if revoked_at is not None:
        raise InvalidToken(tr("The session has been signed out or revoked."), code="token_revoked")
    if expires_at <= utcnow():
        raise InvalidToken(tr("The session has expired; sign in again."), code="token_expired")
    if not user.active:
        raise InvalidToken(tr("The account is deactivated."), code="account_inactive")


def refresh(refresh_token: str) -> TokenPair:
    claims = tokens.decode(refresh_token, tokens.REFRESH)
    successor = tokens.new_jti()
    # Claim the token atomically: of two concurrent exchanges exactly one sees a row updated. On PostgreSQL
    # the other's UPDATE waits for the row lock, then finds the row used (and its successor, committed with
    # it); on SQLite the other's transaction cannot begin before the first has committed.
    claimed = db.session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.jti == claims["jti"], RefreshToken.session_id == claims["sid"], RefreshToken.used_at.is_(None)
        )
        .values(used_at=utcnow(), replaced_by=successor)
    ).rowcount
    if claimed != 1:
        return _repeat_or_revoke(claims)
    session, user = _live_session_and_user(claims["sid"], int(claims["sub"]))
    return _issue(user, session, successor)


def _repeat_or_revoke(claims: dict) -> TokenPair:
    """A refresh token that was exchanged already: a repeat within the grace window gets the first exchange's
    pair again (two tabs, a retry after a lost answer); any other use means the token leaked."""
    known = db.session.execute(
        select(RefreshToken.session_id, RefreshToken.used_at, RefreshToken.replaced_by).where(
            RefreshToken.jti == claims["jti"]
        )
    ).first()
    if known is None:
        raise InvalidToken(tr("Unknown refresh token."))
    grace_s = current_app.config["REFRESH_REUSE_GRACE_S"]
    if (
        grace_s > 0
        and known.replaced_by is not None
        and known.used_at is not None
        and utcnow() - known.used_at <= timedelta(seconds=grace_s)
    ):
        successor = db.session.execute(
            select(RefreshToken.jti, RefreshToken.issued_at, RefreshToken.used_at).where(
                RefreshToken.jti == known.replaced_by, RefreshToken.session_id == known.session_id
            )
        ).first()
        # Only while the successor is the login's newest token: once it was exchanged in turn, handing it
        # out again would give a dead token, and a repeat so late in the chain is not a retry.
        if successor is not None and successor.used_at is None:
            session, user = _live_session_and_user(known.session_id, int(claims["sub"]))
            return _pair(user.id, session.id, successor.jti, successor.issued_at)
    # A replayed refresh token means it leaked: end the whole login it came from.
    _revoke_session(known.session_id, "refresh_reuse")
    db.session.flush()
    raise TokenReplayed(tr("This refresh token was already used; every token of its login is now revoked."))


def logout(refresh_token: str) -> None:
    claims = tokens.decode(refresh_token, tokens.REFRESH)
    known = db.session.get(RefreshToken, claims["jti"])
    if known is None or known.session_id != claims["sid"]:
        raise InvalidToken(tr("Unknown refresh token."))
    _revoke_session(known.session_id, "logout")
    db.session.flush()


def caller_for_access_token(access_token: str) -> tuple[User, str]:
    """The user of a live login and the id of that login (the token's sid)."""
    claims = tokens.decode(access_token, tokens.ACCESS)
    session_id, user_id = claims["sid"], int(claims["sub"])
    # Live logins by session id: (user id, the login's expiry, the user's columns), in each worker's own cache; the
    # auth version (moved by any change to users or auth_sessions) empties every worker's on its next request.
    live = versions.cache(versions.AUTH)
    known = live.get(session_id)
    if known is not None and known[0] == user_id and known[1] > utcnow():
        return versions.attach(User, known[2]), session_id
    # The version before the rows: a revocation committed in between drops the entry at the next request.
    version = versions.current_version(versions.AUTH)
    row = db.session.execute(
        select(User, AuthSession.revoked_at, AuthSession.expires_at)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(AuthSession.id == session_id, User.id == user_id)
    ).first()
    if row is None:
        raise InvalidToken(tr("The token's session does not exist."))
    user, revoked_at, expires_at = row
    _check_live(revoked_at, expires_at, user)
    live.put(session_id, (user.id, expires_at, versions.snapshot(user)), version)
    return user, session_id
