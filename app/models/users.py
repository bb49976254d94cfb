"""Accounts, the cells a worker serves, and login sessions with their rotating refresh tokens."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import TimestampMixin, UTCDateTime, utcnow
from app.models.grid import Cell


class Role(str, enum.Enum):
    resident = "resident"
    worker = "worker"
    supervisor = "supervisor"
    admin = "admin"


class User(TimestampMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('resident', 'worker', 'supervisor', 'admin')", name="role"),
        Index("uq_users_username_lower", text("lower(username)"), unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # A supervisor oversees the subtree under this cell.
    cell_id: Mapped[int | None] = mapped_column(ForeignKey("cells.id", ondelete="RESTRICT"), index=True)

    cell: Mapped[Cell | None] = relationship()
    served_cells: Mapped[list[Cell]] = relationship(secondary="worker_cells", order_by=Cell.code,
                                                    viewonly=True)

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}>"


class WorkerCell(db.Model):
    """A grid cell a worker serves."""

    __tablename__ = "worker_cells"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    cell_id: Mapped[int] = mapped_column(ForeignKey("cells.id", ondelete="RESTRICT"), primary_key=True,
                                         index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class AuthSession(db.Model):
    """One login: every refresh token rotated from it, and the access tokens it issued, share its id."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True,
                                         nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(db.Model):
    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("auth_sessions.id", ondelete="CASCADE"),
                                            index=True, nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # Set once, atomically, when the token is exchanged; a second exchange is a replay.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
