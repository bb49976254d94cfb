"""Patrol check-ins: the GPS points a grid worker's phone records on patrol, routed to the cell they fall in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, utcnow


@dataclass(frozen=True)
class PatrolPoint:
    """One point of a batch that passed the shape checks; `index` is its place in the batch."""

    index: int
    time: datetime
    lon: float
    lat: float
    crs: str
    accuracy: float | None


def reason(field: str, code: str, message: str) -> dict[str, str]:
    return {"field": field, "code": code, "message": message}


class PatrolCheckin(db.Model):
    """One GPS point; append-only. A phone is at one place at one instant, so (user, recorded_at) is its key and
    a re-sent point is skipped rather than stored twice."""

    __tablename__ = "patrol_checkins"
    __table_args__ = (
        UniqueConstraint("user_id", "recorded_at", name="uq_patrol_checkins_user_id_recorded_at"),
        # Coverage reads one cell's points of one day.
        Index("ix_patrol_checkins_cell_recorded", "cell_id", "recorded_at"),
    )

    # PostGIS: bigint, and partitioned by UTC day of recorded_at, so the table's primary key is (id, recorded_at)
    # there (migration 5920be478a5d); ids still come from one sequence. SQLite keeps a plain table.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    # None: the point lay in no grid cell and none was within ROUTING_MAX_DISTANCE_M.
    cell_id: Mapped[int | None] = mapped_column(ForeignKey("cells.id", ondelete="RESTRICT"))
    # The phone's clock; received_at is the server's, when the batch arrived.
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    location = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=False)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    # What the phone sent, kept for audit: location is always WGS-84.
    input_crs: Mapped[str] = mapped_column(String(8), nullable=False)
    input_lon: Mapped[float] = mapped_column(Float, nullable=False)
    input_lat: Mapped[float] = mapped_column(Float, nullable=False)
