"""Column types and mixins shared by every model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime

from sqlalchemy import DateTime, TypeDecorator
from sqlalchemy.orm import Mapped, mapped_column

# Ids are INTEGER columns: 32 bits on PostgreSQL (64 on SQLite), so no row has an id above this.
MAX_ID = 2**31 - 1

# Python's datetimes end at years 1 and 9999. A time a year inside them keeps every conversion (to UTC, to
# TIMEZONE) and every window derived from it (Open311's 90 days, a trend's year) representable.
EARLIEST, LATEST = datetime(2, 1, 1), datetime(9998, 12, 31)
TIME_RANGE_ERROR = "Must lie between 0002-01-01 and 9998-12-31."


def within_time_range(value: date | datetime) -> bool:
    """By the wall clock or calendar date, which an offset moves by less than a day."""
    if isinstance(value, datetime):
        return EARLIEST <= value.replace(tzinfo=None) <= LATEST
    return EARLIEST.date() <= value <= LATEST.date()


# A clock set for the current context (the demo's month of cases is written at the moments it tells of); unset, the
# real one.
_set_clock: ContextVar[datetime | None] = ContextVar("set_clock", default=None)


def utcnow() -> datetime:
    moment = _set_clock.get()
    return datetime.now(UTC) if moment is None else moment


@contextmanager
def clock_at(moment: datetime) -> Iterator[None]:
    """utcnow() answers `moment` inside the block, for every service and column default that reads it."""
    token = _set_clock.set(moment.astimezone(UTC))
    try:
        yield
    finally:
        _set_clock.reset(token)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on both backends (SQLite stores text and would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False)
