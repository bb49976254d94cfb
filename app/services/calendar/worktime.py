"""Time limits in calendar or working time: deadlines, elapsed time and shifts against the work calendar.

Units:
- ``hours``: elapsed (calendar) time; nights, weekends and holidays count.
- ``working_hours``: time inside the working hours of the work calendar only.
- ``working_days``: working time too, one working day being the length of a standard working day (the
  weekly schedule's most common day: 7 h with the default 09:00-12:00 and 13:30-17:30). This is how digital
  city-management time-limit tables count 工作日 (a working day is a fixed number of 工作时), so fractions
  (the 80 % warning, half a day) are exact: 1 working day accepted Monday 15:00 runs out Tuesday 15:00;
  accepted Friday 15:00 it runs out Monday 15:00; a holiday in between is skipped.

``seconds_between`` and ``add_seconds`` count working seconds for both working units, so the time held
and extensions move a deadline in the same sense as the limit itself.

The work calendar is the weekly schedule (``WORK_HOURS``, in ``TIMEZONE``) overridden per date by the
``calendar_days`` table (public holidays, make-up working days 调休, custom hours). Local wall-clock hours
are turned into UTC per date with zoneinfo, so a DST zone keeps its 09:00 on both sides of a switch.
Every computation walks the days spanned, one interval sum per day.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app, g
from sqlalchemy import select

from app.extensions import db
from app.lib import localtime
from app.lib.hours import DayHours, hours_seconds, parse_hours, parse_week
from app.models import CALENDAR_UNIT_SECONDS, CalendarDay, DayKind, LimitUnit
from app.models.base import utcnow

LIMIT_UNITS = frozenset(unit.value for unit in LimitUnit)

# A calendar with no working time for this long cannot end any limit: stop instead of walking forever.
MAX_IDLE_DAYS = 400

# Per-date overrides: the date's hours, () for a day off, None for "the standard day" (a make-up working day).
Overrides = Mapping[date, "DayHours | None"]


def local_day(moment: datetime | None = None) -> date:
    """The local calendar day (TIMEZONE) of `moment`, default now: case numbers and duty rosters count in it."""
    return localtime.day_of(moment or utcnow(), current_app.config["TIMEZONE"])


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a local calendar day in TIMEZONE; date filters of the API use the same rule."""
    return localtime.day_bounds(day, current_app.config["TIMEZONE"])


def local_month_bounds(moment: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local month (TIMEZONE) of `moment`, default now."""
    return localtime.month_bounds(moment or utcnow(), current_app.config["TIMEZONE"])


class NoWorkingTime(ValueError):
    """The calendar has no working time ahead, so a working-time limit never runs out."""


class Calendar:
    """A loaded work calendar: weekly hours, per-date overrides fetched a year at a time, UTC intervals cached."""

    def __init__(
        self,
        tz: str | ZoneInfo,
        week: tuple[DayHours, ...],
        overrides: Overrides | Callable[[int], Overrides] | None = None,
    ) -> None:
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self.week = week
        fixed = overrides or {}
        self._load_year = overrides if callable(overrides) else (lambda _year: fixed)
        self._years: dict[int, Overrides] = {}
        self._intervals: dict[date, list[tuple[datetime, datetime]]] = {}
        # The standard day: what a make-up working day works and what one working day is worth.
        patterns = Counter(day for day in week if day)
        self.standard_day: DayHours = max(patterns, key=lambda p: (patterns[p], -week.index(p))) if patterns else ()
        self.day_seconds = hours_seconds(self.standard_day)

    def hours_of(self, day: date) -> DayHours:
        year = self._years.get(day.year)
        if year is None:
            year = self._years[day.year] = self._load_year(day.year)
        if day not in year:
            return self.week[day.weekday()]
        hours = year[day]
        return self.standard_day if hours is None else hours

    def intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working intervals of a local date as aware UTC datetimes."""
        cached = self._intervals.get(day)
        if cached is None:
            cached = []
            for start, end in self.hours_of(day):
                # fold=0 maps a wall time inside a spring-forward gap past it, so the interval just shrinks.
                a = datetime.combine(day, start, tzinfo=self.tz).astimezone(UTC)
                b = datetime.combine(day, end, tzinfo=self.tz).astimezone(UTC)
                if b > a:
                    cached.append((a, b))
            self._intervals[day] = cached
        return cached

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def working_seconds(self, start: datetime, end: datetime) -> float:
        if end <= start:
            return 0.0
        total = timedelta(0)
        day, last = self.local_date(start), self.local_date(end)
        while day <= last:
            for a, b in self.intervals(day):
                lo, hi = max(a, start), min(b, end)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total.total_seconds()

    def add_working_seconds(self, start: datetime, seconds: float) -> datetime:
        """The earliest moment by which `seconds` of working time have passed since `start`."""
        if seconds <= 0:
            return start
        remaining = timedelta(seconds=seconds)
        day, idle = self.local_date(start), 0
        while True:
            worked = False
            for a, b in self.intervals(day):
                if b <= start:
                    continue
                a = max(a, start)
                worked = True
                if remaining <= b - a:
                    return a + remaining
                remaining -= b - a
            idle = 0 if worked else idle + 1
            if idle > MAX_IDLE_DAYS:
                raise NoWorkingTime(
                    f"no working time in the {MAX_IDLE_DAYS} days after {day - timedelta(MAX_IDLE_DAYS)}"
                )
            day += timedelta(days=1)

    def unit_seconds(self, unit: str) -> float:
        if unit == LimitUnit.working_days.value:
            if not self.day_seconds:
                raise NoWorkingTime("the weekly schedule has no working day")
            return self.day_seconds
        return CALENDAR_UNIT_SECONDS.get(unit, 3600.0)

    def deadline(self, start: datetime, value: float, unit: str) -> datetime:
        _check_unit(unit)
        if unit in CALENDAR_UNIT_SECONDS:
            return start + timedelta(seconds=value * CALENDAR_UNIT_SECONDS[unit])
        return self.add_working_seconds(start, value * self.unit_seconds(unit))

    def seconds_between(self, start: datetime, end: datetime, unit: str) -> float:
        _check_unit(unit)
        if unit in CALENDAR_UNIT_SECONDS:
            return max((end - start).total_seconds(), 0.0)
        return self.working_seconds(start, end)

    def add_seconds(self, start: datetime, seconds: float, unit: str) -> datetime:
        _check_unit(unit)
        if unit in CALENDAR_UNIT_SECONDS:
            return start + timedelta(seconds=seconds)
        return self.add_working_seconds(start, seconds)


def _check_unit(unit: str) -> None:
    if unit not in LIMIT_UNITS:
        raise ValueError(f"unknown time-limit unit {unit!r}")


def _stored_overrides(year: int) -> dict[date, DayHours | None]:
    rows = db.session.execute(
        select(CalendarDay.day, CalendarDay.kind, CalendarDay.hours).where(
            CalendarDay.day.between(date(year, 1, 1), date(year, 12, 31))
        )
    )
    return {
        day: (() if kind == DayKind.holiday.value else parse_hours(hours) if hours else None)
        for day, kind, hours in rows
    }


def load_calendar() -> Calendar:
    """The configured calendar, reading the overrides from the database as dates are asked for."""
    return Calendar(current_app.config["TIMEZONE"], parse_week(current_app.config["WORK_HOURS"]), _stored_overrides)


def current_calendar() -> Calendar:
    """The calendar of this app context (one request, one CLI command), loaded once and reused."""
    calendar = g.get("work_calendar")
    if calendar is None:
        calendar = g.work_calendar = load_calendar()
    return calendar


def forget_calendar() -> None:
    """Drop the loaded calendar so the next computation reads the table again: after a change to it, and at
    the start of each round of a loop that keeps one app context (`flask escalate --every`)."""
    g.pop("work_calendar", None)


def deadline(start: datetime, value: float, unit: str) -> datetime:
    """The moment a limit of `value` `unit`s that starts at `start` runs out."""
    _check_unit(unit)
    if unit == "hours":
        return start + timedelta(hours=value)
    return current_calendar().deadline(start, value, unit)


def seconds_between(start: datetime, end: datetime, unit: str) -> float:
    """Time from start to end in the unit's sense: calendar seconds for hours, working seconds otherwise."""
    _check_unit(unit)
    if unit == "hours":
        return max((end - start).total_seconds(), 0.0)
    return current_calendar().seconds_between(start, end, unit)


def add_seconds(start: datetime, seconds: float, unit: str) -> datetime:
    """Move `start` on by `seconds` in the unit's sense (the inverse of seconds_between)."""
    _check_unit(unit)
    if unit == "hours":
        return start + timedelta(seconds=seconds)
    return current_calendar().add_seconds(start, seconds, unit)
