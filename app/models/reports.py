"""Reports (cases) and their append-only history."""
from __future__ import annotations

import enum
from datetime import date, datetime

from geoalchemy2 import Geometry
from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import TimestampMixin, UTCDateTime, utcnow
from app.models.categories import Category
from app.models.grid import Cell
from app.models.users import User


class ReportStatus(str, enum.Enum):
    submitted = "submitted"
    accepted = "accepted"


class RoutedBy(str, enum.Enum):
    covers = "covers"
    nearest = "nearest"


class Report(TimestampMixin, db.Model):
    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_cell_created", "cell_id", "created_at"),
        Index("ix_reports_reporter_created", "reporter_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The local day of filing, fixed at insert; with the id it makes the human case number.
    case_day: Mapped[date] = mapped_column(Date, nullable=False)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id", ondelete="RESTRICT"),
                                             nullable=False, index=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False)
    cell_id: Mapped[int | None] = mapped_column(ForeignKey("cells.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    address: Mapped[str | None] = mapped_column(String(500))
    location = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=False)
    # What the client sent, kept for audit: the stored location is always WGS-84.
    input_crs: Mapped[str] = mapped_column(String(8), nullable=False, default="wgs84")
    input_lon: Mapped[float] = mapped_column(Float, nullable=False)
    input_lat: Mapped[float] = mapped_column(Float, nullable=False)
    routed_by: Mapped[str | None] = mapped_column(String(16))
    routing_distance_m: Mapped[float | None] = mapped_column(Float)
    needs_triage: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, index=True)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    category: Mapped[Category] = relationship(lazy="joined")
    cell: Mapped[Cell | None] = relationship(lazy="joined")
    reporter: Mapped[User] = relationship()

    @property
    def case_number(self) -> str:
        """Day of filing and id, e.g. 202611270000123: unique, stable, and needs no second write."""
        return f"{self.case_day:%Y%m%d}{self.id:07d}"


class CaseEvent(db.Model):
    """One row per change of a case; never updated or deleted."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="RESTRICT"), nullable=False,
                                           index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)

    report: Mapped[Report] = relationship()
