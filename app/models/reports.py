"""Reports (cases) and their append-only history."""

from __future__ import annotations

import enum
import re
from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, query_expression, relationship

from app.extensions import db
from app.models.base import MAX_ID, TimestampMixin, UTCDateTime, utcnow
from app.models.categories import Category
from app.models.grid import Cell
from app.models.users import User


class ReportStatus(str, enum.Enum):
    submitted = "submitted"
    accepted = "accepted"
    rejected = "rejected"
    assigned = "assigned"
    in_progress = "in_progress"
    on_hold = "on_hold"
    resolved = "resolved"
    closed = "closed"
    duplicate = "duplicate"
    cancelled = "cancelled"


# Still in the loop: someone has something to do.
OPEN_STATUSES = frozenset({"submitted", "accepted", "assigned", "in_progress", "on_hold", "resolved"})
# The time-limit clock runs only while the case waits for or is in the hands of its handler.
CLOCK_RUNNING_STATUSES = frozenset({"accepted", "assigned", "in_progress"})
FINAL_STATUSES = frozenset({"rejected", "closed", "duplicate", "cancelled"})
# Handling levels, bottom up; escalation_level indexes this tuple.
ESCALATION_LEVELS = ("grid", "community", "street", "district")
# The traffic light of a running clock: green, yellow (80 % used), red (past the deadline).
SLA_STATES = ("green", "yellow", "red")
# What an assignee acts on: start, resolve, hold/resume. A resolved case waits on someone else's check, so it is
# listed among a worker's tasks only when asked for by status.
TASK_STATUSES = ("assigned", "in_progress", "on_hold")
LISTABLE_TASK_STATUSES = (*TASK_STATUSES, "resolved")


def case_number(case_day: date, report_id: int) -> str:
    """The human case number: day of filing and id, e.g. 202611270000123."""
    # Not f"{case_day:%Y%m%d}": strftime cost 8 us, a tenth of a case's dump on a page.
    return f"{case_day.year:04d}{case_day.month:02d}{case_day.day:02d}{report_id:07d}"


# An id has at most 10 digits (MAX_ID), so no case number is longer than 18.
CASE_NUMBER = re.compile(r"(\d{8})(\d{7,10})")


def parse_case_number(text: str) -> tuple[date, int] | None:
    """(day, id) of a case number as case_number writes it; None for anything else (a date that does not exist,
    an id padded differently)."""
    found = CASE_NUMBER.fullmatch(text)
    if found is None:
        return None
    try:
        day = datetime.strptime(found.group(1), "%Y%m%d").date()
    except ValueError:
        return None
    report_id = int(found.group(2))
    if not 1 <= report_id <= MAX_ID or case_number(day, report_id) != text:
        return None
    return day, report_id


class RoutedBy(str, enum.Enum):
    covers = "covers"
    nearest = "nearest"


class Report(TimestampMixin, db.Model):
    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_cell_created", "cell_id", "created_at"),
        Index("ix_reports_reporter_created", "reporter_id", "created_at"),
        Index("ix_reports_status_deadline", "status", "deadline_at"),
        # The sweep's reminder query: running clocks past their warning mark.
        Index("ix_reports_status_warn", "status", "warn_at"),
        Index("ix_reports_assignee_status", "assignee_id", "status"),
        # Auto-dispatch's last assignment of each candidate worker (app.services.cases.dispatch).
        Index("ix_reports_assignee_assigned", "assignee_id", "assigned_at"),
        # Newest-first spatial pages: a recent window on it meets the spatial index (app.services.geoqueries).
        Index("ix_reports_created_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The local day of filing, fixed at insert; with the id it makes the human case number.
    case_day: Mapped[date] = mapped_column(Date, nullable=False)
    category_id: Mapped[int] = mapped_column(
        ForeignKey("categories.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    reporter_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False)
    cell_id: Mapped[int | None] = mapped_column(ForeignKey("cells.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    address: Mapped[str | None] = mapped_column(String(500))
    # On PostgreSQL also ix_reports_open_category_location, the open cases' own spatial index by category (partial,
    # with btree_gist: a migration's).
    location = mapped_column(Geometry("POINT", srid=4326, spatial_index=True), nullable=False)
    # What the client sent, kept for audit: the stored location is always WGS-84.
    input_crs: Mapped[str] = mapped_column(String(8), nullable=False, default="wgs84")
    input_lon: Mapped[float] = mapped_column(Float, nullable=False)
    input_lat: Mapped[float] = mapped_column(Float, nullable=False)
    routed_by: Mapped[str | None] = mapped_column(String(16))
    routing_distance_m: Mapped[float | None] = mapped_column(Float)
    needs_triage: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, index=True)
    # The deadline of the level now handling the case; escalation replaces it with that level's window.
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When 80 % of the current window is used up (yellow); red once deadline_at has passed.
    warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The case's own due time (limit + holds + extensions), never moved by escalation: on-time statistics use it.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The first due time the case missed, recorded when escalation or an action finds it past due; kept until the
    # case ends (only a return, which restarts the clock, clears it). Lateness not yet recorded is derived from
    # due_at: app.services.cases.sla.late_since.
    late_since: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Lifecycle: who has it, since when, and the clock's inputs, snapshotted at acceptance so that later
    # edits to the category do not move open cases.
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    time_limit_value: Mapped[int | None] = mapped_column(Integer)
    time_limit_unit: Mapped[str | None] = mapped_column(String(16))
    # Approved extensions, in the limit's unit; a pending request waits in extension_requested.
    extension_value: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    extension_requested: Mapped[int | None] = mapped_column(Integer)
    hold_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Time spent on hold, in seconds of the limit's own sense (working seconds for working units).
    held_seconds: Mapped[float] = mapped_column(Float, nullable=False, default=0, server_default="0")
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id", ondelete="RESTRICT"))

    # Escalation: the level and cell now answerable for the case (0 = grid, see ESCALATION_LEVELS).
    escalation_level: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    handling_cell_id: Mapped[int | None] = mapped_column(ForeignKey("cells.id", ondelete="RESTRICT"), index=True)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    critical: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="0")
    # The escalation level at which the assignee was last reminded of a yellow case (once per level).
    reminded_level: Mapped[int | None] = mapped_column(Integer)

    # The reporter's satisfaction with a closed case (1-5), given once.
    rating: Mapped[int | None] = mapped_column(Integer, CheckConstraint("rating BETWEEN 1 AND 5", name="rating"))
    rating_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Open311: what the client sent besides the case itself. Contact fields are personal data.
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="api", server_default="api")
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="RESTRICT"))
    open311_token: Mapped[str | None] = mapped_column(String(36), unique=True, index=True)
    media_url: Mapped[str | None] = mapped_column(String(2000))
    address_id: Mapped[str | None] = mapped_column(String(100))
    zipcode: Mapped[str | None] = mapped_column(String(20))
    attributes: Mapped[dict | None] = mapped_column(JSON)
    contact_email: Mapped[str | None] = mapped_column(String(254))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    contact_first_name: Mapped[str | None] = mapped_column(String(100))
    contact_last_name: Mapped[str | None] = mapped_column(String(100))
    device_id: Mapped[str | None] = mapped_column(String(100))
    account_id: Mapped[str | None] = mapped_column(String(100))

    # Optimistic concurrency: the ETag, raised by every change.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")

    category: Mapped[Category] = relationship(lazy="joined")
    cell: Mapped[Cell | None] = relationship(lazy="joined", foreign_keys=[cell_id])
    handling_cell: Mapped[Cell | None] = relationship(foreign_keys=[handling_cell_id])
    reporter: Mapped[User] = relationship(foreign_keys=[reporter_id])
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])

    # Metres to the point of a `near` query; set only by queries that ask for it.
    distance_m: Mapped[float | None] = query_expression()

    __mapper_args__ = {"version_id_col": version}

    @property
    def case_number(self) -> str:
        """Day of filing and id, e.g. 202611270000123: unique, stable, and needs no second write."""
        return case_number(self.case_day, self.id)


class CaseEvent(db.Model):
    """One row per change of a case; never updated or deleted."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="RESTRICT"), nullable=False, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)

    report: Mapped[Report] = relationship()

    @classmethod
    def of(
        cls,
        report: Report,
        actor: Any,
        action: str,
        from_status: str | None,
        at: datetime,
        *,
        note: str | None = None,
        data: dict | None = None,
    ) -> CaseEvent:
        """The event of `action` on the case, leaving it in its current status: by `actor` (a user), or by the
        system when there is none. The escalation sweep writes the same columns set-based, by INSERT ... SELECT."""
        return cls(
            report=report,
            actor_id=actor.id if actor else None,
            actor_role=actor.role if actor else "system",
            action=action,
            from_status=from_status,
            to_status=report.status,
            note=note,
            data=data,
            created_at=at,
        )


class Notification(db.Model):
    """A message to one user, written in the same transaction as the change that caused it (an outbox)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(JSON)
    # Makes a repeated write of the same notice (a re-run sweep) a no-op: unique when set.
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReportFollower(db.Model):
    """A resident who follows someone else's case: they see its public view and hear when it ends."""

    __tablename__ = "report_followers"
    __table_args__ = (Index("ix_report_followers_user_id_report_id", "user_id", "report_id"),)

    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
