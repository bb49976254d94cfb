"""Report categories (Open311 service codes) and their time limits."""
from __future__ import annotations

import enum

from sqlalchemy import Boolean, CheckConstraint, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import TimestampMixin


class LimitUnit(str, enum.Enum):
    hours = "hours"


class Category(TimestampMixin, db.Model):
    __tablename__ = "categories"
    __table_args__ = (
        CheckConstraint("time_limit_value > 0", name="time_limit_positive"),
        CheckConstraint("time_limit_unit IN ('hours')", name="time_limit_unit"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    group: Mapped[str] = mapped_column("group_name", String(100), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[str | None] = mapped_column(String(500))
    time_limit_value: Mapped[int] = mapped_column(Integer, nullable=False)
    time_limit_unit: Mapped[str] = mapped_column(String(16), nullable=False, default=LimitUnit.hours.value)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
