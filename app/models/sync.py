"""The change log the sync feed reads: one row per write to a case, a case event or a notification."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime

CASE, EVENT, NOTIFICATION = "case", "event", "notification"


class SyncChange(db.Model):
    """Written only by database triggers on reports, case_events and notifications (see the migration), so
    set-based statements and any future write path are logged too; never written through the ORM."""

    __tablename__ = "sync_changes"
    __table_args__ = (
        Index("ix_sync_changes_position", "xid", "seq"),
        # Cases and events are found through the reader's visible reports, notifications through the reader.
        Index(
            "ix_sync_changes_report_position",
            "report_id",
            "xid",
            "seq",
            postgresql_where=text("report_id IS NOT NULL"),
            sqlite_where=text("report_id IS NOT NULL"),
        ),
        Index(
            "ix_sync_changes_user_position",
            "user_id",
            "xid",
            "seq",
            postgresql_where=text("user_id IS NOT NULL"),
            sqlite_where=text("user_id IS NOT NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    # PostGIS: partitioned by UTC month of changed_at, so the table's primary key is (seq, changed_at) there
    # (migration 5920be478a5d); seq still comes from one sequence and stays unique.
    # SQLite: INTEGER PRIMARY KEY AUTOINCREMENT, so a seq is never handed out twice, even after pruning.
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # The writing transaction (app.dialect.sync_log.sync_xid_default); the feed's position is (xid, seq).
    xid: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(12), nullable=False)
    entity_id: Mapped[int] = mapped_column(Integer, nullable=False)
    # Set for cases and events (the case they belong to), NULL for notifications.
    report_id: Mapped[int | None] = mapped_column(Integer)
    # Set for notifications (their recipient), NULL otherwise.
    user_id: Mapped[int | None] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )
