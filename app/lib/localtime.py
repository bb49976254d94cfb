"""The local calendar day rule: which day a moment falls on in a zone, and the UTC span of a local day."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def day_of(moment: datetime, tz: str | ZoneInfo) -> date:
    return moment.astimezone(tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)).date()


def day_bounds(day: date, tz: str | ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a local calendar day (23 or 25 hours long across a DST switch)."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def month_bounds(moment: datetime, tz: str | ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local calendar month `moment` falls in."""
    day = day_of(moment, tz)
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return day_bounds(first, tz)[0], day_bounds(following, tz)[0]
