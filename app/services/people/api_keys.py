"""API keys: issue (the key is shown once), list, revoke, and authenticate by constant-time hash comparison."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Select, func, select

from app.errors import Forbidden, NotFound
from app.extensions import db
from app.lib.i18n import tr
from app.models import ApiKey, Role, User
from app.models.base import utcnow

KEY_PREFIX = "g311_"
PREFIX_LENGTH = 8
# Not an Argon2 hash, so no password ever verifies against it: the key's account cannot sign in.
UNUSABLE_PASSWORD = "!api-key-account"


@dataclass(frozen=True)
class IssuedKey:
    """A new key with its plain text, which exists only in this answer; reads through to the row otherwise."""

    api_key: ApiKey
    key: str

    def __getattr__(self, name: str):
        return getattr(self.api_key, name)


def hash_key(key: str) -> str:
    # The keys are 256 random bits: a fast hash is enough, no salt or stretching needed.
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(name: str, created_by: User | None = None) -> IssuedKey:
    """A new key and the resident account its reports are filed as (username open311:<prefix>)."""
    while True:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        prefix = key[len(KEY_PREFIX) : len(KEY_PREFIX) + PREFIX_LENGTH]
        # Usernames are unique whatever the case; prefixes are case-sensitive.
        taken = db.session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix)) or db.session.scalar(
            select(User.id).where(func.lower(User.username) == f"open311:{prefix}".lower())
        )
        if not taken:
            break
    user = User(
        username=f"open311:{prefix}",
        password_hash=UNUSABLE_PASSWORD,
        role=Role.resident.value,
        display_name=name,
        active=False,
    )
    api_key = ApiKey(
        name=name, prefix=prefix, key_hash=hash_key(key), user=user, created_by_id=created_by.id if created_by else None
    )
    db.session.add_all([user, api_key])
    db.session.flush()
    return IssuedKey(api_key, key)


def keys_query() -> Select:
    return select(ApiKey).order_by(ApiKey.id)


def get_key(key_id: int) -> ApiKey:
    api_key = db.session.get(ApiKey, key_id)
    if api_key is None:
        raise NotFound(tr("No API key with id {key_id}.", key_id=key_id), code="api_key_not_found")
    return api_key


def revoke_key(api_key: ApiKey) -> ApiKey:
    """Revoking twice keeps the first revocation time."""
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        db.session.flush()
    return api_key


def authenticate(key: str | None, *, stamp_use: bool = True) -> ApiKey:
    """The live key matching `key`, its last use stamped (a read stamps nothing: it writes nothing); anything else is
    403 (Open311 says so)."""
    if not key:
        raise Forbidden(tr("Send api_key in the query string or the form body."), code="api_key_missing")
    candidate = None
    if key.startswith(KEY_PREFIX):
        prefix = key[len(KEY_PREFIX) : len(KEY_PREFIX) + PREFIX_LENGTH]
        candidate = db.session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    # Compare against a hash even when no row matched, so the answer takes the same time.
    stored = candidate.key_hash if candidate is not None else hash_key("")
    if not hmac.compare_digest(stored, hash_key(key)) or candidate is None or candidate.revoked_at is not None:
        raise Forbidden(tr("The api_key is not valid or has been revoked."), code="api_key_invalid")
    if stamp_use:
        candidate.last_used_at = utcnow()
    return candidate
