"""Report categories (Open311 service codes) and their time limits."""

from __future__ import annotations

import enum

from sqlalchemy import JSON, Boolean, CheckConstraint, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import TimestampMixin


class LimitUnit(str, enum.Enum):
    """How a time limit counts: calendar hours or minutes, or working time (hours, or days of a standard workday)."""

    hours = "hours"
    # Calendar minutes: for a demo category whose escalation shows within minutes, and for true emergencies.
    minutes = "minutes"
    working_hours = "working_hours"
    working_days = "working_days"


# The units that count working time only (app.services.calendar.worktime).
WORKING_UNITS = frozenset({LimitUnit.working_hours.value, LimitUnit.working_days.value})
# Seconds in one of each calendar unit; these count every second, day and night.
CALENDAR_UNIT_SECONDS = {LimitUnit.hours.value: 3600.0, LimitUnit.minutes.value: 60.0}
_UNITS_SQL = "(" + ", ".join(f"'{unit.value}'" for unit in LimitUnit) + ")"


class Category(TimestampMixin, db.Model):
    __tablename__ = "categories"
    __table_args__ = (
        CheckConstraint("time_limit_value > 0", name="time_limit_positive"),
        CheckConstraint(f"time_limit_unit IN {_UNITS_SQL}", name="time_limit_unit"),
        CheckConstraint("escalation_window_value > 0", name="escalation_window_positive"),
        CheckConstraint(f"escalation_window_unit IN {_UNITS_SQL}", name="escalation_window_unit"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    group: Mapped[str] = mapped_column("group_name", String(100), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[str | None] = mapped_column(String(500))
    time_limit_value: Mapped[int] = mapped_column(Integer, nullable=False)
    time_limit_unit: Mapped[str] = mapped_column(String(16), nullable=False, default=LimitUnit.hours.value)
    # The time each higher level gets once a case is escalated to it.
    escalation_window_value: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    escalation_window_unit: Mapped[str] = mapped_column(
        String(16), nullable=False, default=LimitUnit.working_days.value, server_default=LimitUnit.working_days.value
    )
    # Residents' reports are accepted without a supervisor's review.
    auto_accept: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="0")
    # Accepted cases go to a worker of the cell at once (issue 5's rule); off: they wait for a supervisor.
    auto_dispatch: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, server_default="1")
    # Grid workers may accept and assign cases of this category in their own cells.
    self_handling: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="0")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # New reports are offered the open cases of this category within this many metres (0: none).
    duplicate_radius_m: Mapped[int] = mapped_column(
        Integer,
        CheckConstraint("duplicate_radius_m BETWEEN 0 AND 5000", name="duplicate_radius_m"),
        nullable=False,
        default=250,
        server_default="250",
    )
    # Resolving a case of this category needs an "after" photo on it (处理反馈 with a photo).
    requires_after_photo: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="0")
    # Its cases show everyone their description, exact point and after photos (app.services.public_view).
    public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="0")
    # Open311 attribute definitions (service definition): [{code, datatype, required, values, ...}].
    attributes: Mapped[list | None] = mapped_column(JSON)
