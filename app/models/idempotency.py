"""Responses stored under a client's Idempotency-Key, so that a retried POST is answered without being redone."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, utcnow


class IdempotencyKey(db.Model):
    """One finished request: its fingerprint and the 2xx response it got, until expires_at.

    A row is written in the transaction of the work it answers, so it exists exactly when that work
    was committed. A request still running has no row; it holds a lock instead (spatial.try_transaction_lock),
    which the database frees on commit, rollback or a dropped connection, so a crash leaves nothing stuck.
    unique(user_id, key) is the backstop: two transactions can never both store an answer for one key."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_id_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    # SHA-256 (hex) of method, path with query string and raw body.
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    status_code: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False)
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)

    def __repr__(self) -> str:
        return f"<IdempotencyKey user={self.user_id} {self.key!r} {self.status_code}>"
