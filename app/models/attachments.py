"""Photos attached to reports: metadata rows; the bytes live in the blob store under their SHA-256."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow
from app.models.users import User


class AttachmentStage(str, enum.Enum):
    """When the photo was taken in the case loop: the problem, the fixed result, the on-site check."""

    before = "before"
    after = "after"
    verify = "verify"


class Attachment(db.Model):
    __tablename__ = "attachments"
    __table_args__ = (
        CheckConstraint("stage IN ('before', 'after', 'verify')", name="stage"),
        CheckConstraint("size_bytes > 0", name="size_positive"),
        Index("ix_attachments_report_id_id", "report_id", "id"),
        # Garbage collection asks which blobs some row still names.
        Index("ix_attachments_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="RESTRICT"), nullable=False)
    uploader_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False)
    stage: Mapped[str] = mapped_column(String(8), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    media_type: Mapped[str] = mapped_column(String(32), nullable=False)
    original_name: Mapped[str | None] = mapped_column(String(200))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)

    uploader: Mapped[User] = relationship()
