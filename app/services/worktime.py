"""Time limits in calendar or working time: deadlines, elapsed time and shifts against the work calendar."""
from __future__ import annotations

from datetime import datetime, timedelta

# INTERFACE (shared by the case loop, escalation and dispatch). The calendar work fills in the
# working units; until then they are counted as calendar time so callers can be written against it.


def deadline(start: datetime, value: float, unit: str) -> datetime:
    """The moment a limit of `value` `unit`s that starts at `start` runs out."""
    if unit == "hours":
        return start + timedelta(hours=value)
    if unit == "working_hours":
        return start + timedelta(hours=value)
    if unit == "working_days":
        return start + timedelta(days=value)
    raise ValueError(f"unknown time-limit unit {unit!r}")


def seconds_between(start: datetime, end: datetime, unit: str) -> float:
    """Time from start to end in the unit's sense: calendar seconds for hours, working seconds otherwise."""
    return max((end - start).total_seconds(), 0.0)


def add_seconds(start: datetime, seconds: float, unit: str) -> datetime:
    """Move `start` on by `seconds` in the unit's sense (the inverse of seconds_between)."""
    return start + timedelta(seconds=seconds)
