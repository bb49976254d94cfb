"""The work calendar's per-date overrides of the weekly working hours: public holidays and make-up working days."""

from __future__ import annotations

import enum
from datetime import date

from sqlalchemy import CheckConstraint, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import TimestampMixin


class DayKind(str, enum.Enum):
    workday = "workday"
    holiday = "holiday"


class DaySource(str, enum.Enum):
    library = "library"
    admin = "admin"


class CalendarDay(TimestampMixin, db.Model):
    """One date that does not follow the weekly schedule; dates without a row follow it."""

    __tablename__ = "calendar_days"
    __table_args__ = (
        CheckConstraint("kind IN ('workday', 'holiday')", name="kind"),
        CheckConstraint("source IN ('library', 'admin')", name="source"),
        CheckConstraint("kind = 'workday' OR hours IS NULL", name="hours_on_workdays"),
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # Working hours of this date as "HH:MM-HH:MM,HH:MM-HH:MM"; NULL on a workday means the standard day.
    hours: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(100))
    # An admin's override survives a later import from the holiday library.
    source: Mapped[str] = mapped_column(String(16), nullable=False)
