"""Accounts, workers' cell assignments and duty log, and login sessions with their rotating refresh tokens."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.lib.i18n import DEFAULT_LANGUAGE
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
        CheckConstraint("language IN ('zh-CN', 'en')", name="language"),
        Index("uq_users_username_lower", text("lower(username)"), unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # The language (app.lib.i18n.LANGUAGES) the user's notifications are written in.
    language: Mapped[str] = mapped_column(
        String(8), nullable=False, default=DEFAULT_LANGUAGE, server_default=DEFAULT_LANGUAGE
    )
    # A supervisor oversees the subtree under this cell.
    cell_id: Mapped[int | None] = mapped_column(ForeignKey("cells.id", ondelete="RESTRICT"), index=True)

    cell: Mapped[Cell | None] = relationship()

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}>"


class Duty(str, enum.Enum):
    primary = "primary"
    backup = "backup"


class WorkerCell(db.Model):
    """An assignment: a worker serves a grid cell as primary or backup from valid_from to valid_to (inclusive)."""

    __tablename__ = "worker_cells"
    __table_args__ = (
        CheckConstraint("duty IN ('primary', 'backup')", name="duty"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_range"),
        Index("ix_worker_cells_user_id_cell_id", "user_id", "cell_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    cell_id: Mapped[int] = mapped_column(ForeignKey("cells.id", ondelete="RESTRICT"), nullable=False, index=True)
    duty: Mapped[str] = mapped_column(String(8), nullable=False, default=Duty.primary.value)
    # Local calendar days (TIMEZONE), both ends included; no valid_to means open-ended.
    valid_from: Mapped[date] = mapped_column(Date, nullable=False)
    valid_to: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)

    user: Mapped[User] = relationship()
    cell: Mapped[Cell] = relationship()


class DutyLog(db.Model):
    """Append-only: each time a worker goes on or off duty, and where (WGS-84)."""

    __tablename__ = "duty_log"
    __table_args__ = (Index("ix_duty_log_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    on_duty: Mapped[bool] = mapped_column(Boolean, nullable=False)
    lon: Mapped[float] = mapped_column(Float, nullable=False)
    lat: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class AuthSession(db.Model):
    """One login: every refresh token rotated from it, and the access tokens it issued, share its id."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(db.Model):
    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True, nullable=False
    )
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # Set once, atomically, when the token is exchanged; a second exchange is a replay (past the grace window).
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The jti of the token it was exchanged for, set with used_at: a repeat within the grace window gets
    # that token's pair again instead of tripping the replay detection.
    replaced_by: Mapped[str | None] = mapped_column(String(36))
