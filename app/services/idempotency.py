"""Idempotency keys: claim one for the running transaction, find or store its response, purge expired ones."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select

from app.dialect import locks
from app.errors import (
    IdempotencyKeyReused,
    IdempotencyRequestInProgress,
    InvalidIdempotencyKey,
)
from app.extensions import db
from app.lib.i18n import tr
from app.models import IdempotencyKey
from app.models.base import utcnow

KEY_PATTERN = re.compile(r"[\x20-\x7e]{1,255}")
# What a replay must repeat besides status and body; per-response headers (rate limits, dates) are made afresh.
STORED_HEADERS = ("Content-Type", "Content-Location", "ETag", "Last-Modified", "Link", "Location")


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise InvalidIdempotencyKey(tr("Send a key of 1 to 255 printable ASCII characters, such as a UUID."))
    return key


def fingerprint(method: str, path: str, query_string: bytes, body: bytes) -> str:
    """SHA-256 (hex) over the request's method, path, query string and raw body bytes."""
    digest = hashlib.sha256()
    # Each part is length-prefixed, so no two different requests can run together into the same bytes.
    for part in (method.encode(), path.encode(), query_string, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def canonical_form(form, files) -> bytes:
    """Fields and files of a form body in a fixed order, files by name and content hash, as JSON bytes."""
    parts = [["field", name, value] for name, value in form.items(multi=True)]
    for name, upload in files.items(multi=True):
        digest = hashlib.sha256()
        read = functools.partial(upload.stream.read, 1 << 16)
        for chunk in iter(read, b""):
            digest.update(chunk)
        upload.stream.seek(0)
        parts.append(["file", name, upload.filename or "", digest.hexdigest()])
    return json.dumps(sorted(parts), ensure_ascii=False).encode()


def _lock_id(scope: str, key: str) -> int:
    """A signed 64-bit lock name for the key of a scope ("user:<id>", "api_key:<hash>")."""
    digest = hashlib.sha256(f"idempotency:{scope}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def hold_on_host(scope: str, key: str) -> Callable[[], None]:
    """Before the database: hold the caller's key on this host, or IdempotencyRequestInProgress at once.

    Needed where the database itself would make the retry wait rather than answer (locks.try_host_lock);
    returns the release, which the request calls when it has ended."""
    release = locks.try_host_lock(os.path.join(current_app.instance_path, "locks"), _lock_id(scope, key))
    if release is None:
        raise IdempotencyRequestInProgress(
            tr("The first request with this Idempotency-Key has not finished; retry when it has.")
        )
    return release


def claim(user_id: int, key: str, request_fingerprint: str) -> IdempotencyKey | None:
    """Hold the user's key until this transaction ends; the stored response when the request was answered.

    IdempotencyRequestInProgress while another transaction holds the key; IdempotencyKeyReused when the
    stored response answered another request. An expired response is deleted: the key is fresh again."""
    if not locks.try_transaction_lock(_lock_id(f"user:{user_id}", key)):
        raise IdempotencyRequestInProgress(
            tr("The first request with this Idempotency-Key has not finished; retry when it has.")
        )
    stored = db.session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    ).one_or_none()
    if stored is None:
        return None
    if stored.expires_at <= utcnow():
        db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == stored.id))
        return None
    if stored.fingerprint != request_fingerprint:
        raise IdempotencyKeyReused(
            tr("This key answered a request with another method, path or body; use a new key for a new request.")
        )
    return stored


def store(user_id: int, key: str, request_fingerprint: str, status_code: int, headers, body: bytes) -> None:
    """Keep the response in the transaction of the work it reports, so both are committed or neither is."""
    now = utcnow()
    db.session.add(
        IdempotencyKey(
            user_id=user_id,
            key=key,
            fingerprint=request_fingerprint,
            status_code=status_code,
            headers={name: headers[name] for name in STORED_HEADERS if name in headers},
            body=body,
            created_at=now,
            expires_at=now + timedelta(seconds=current_app.config["IDEMPOTENCY_TTL_S"]),
        )
    )
    db.session.flush()


def purge_expired(now: datetime, limit: int) -> int:
    """Delete up to `limit` keys expired at `now`; rows another purge holds are passed over."""
    batch = locks.claim(
        select(IdempotencyKey.id)
        .where(IdempotencyKey.expires_at <= now)
        .order_by(IdempotencyKey.expires_at)
        .limit(limit)
    )
    result = db.session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.id.in_(batch.scalar_subquery())),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount
