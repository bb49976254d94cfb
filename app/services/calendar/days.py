"""The work calendar's days: effective view, admin overrides, imports from the holiday library, deadline recompute."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import chinese_calendar
from chinese_calendar import constants as holiday_data
from sqlalchemy import or_, select

from app.errors import CalendarYearUnavailable
from app.extensions import db
from app.lib.hours import format_hours, hours_seconds, parse_hours
from app.lib.i18n import tr
from app.models import OPEN_STATUSES, WORKING_UNITS, CalendarDay, DayKind, DaySource, Report
from app.models.base import utcnow
from app.services.calendar import worktime
from app.services.cases import sla

LIBRARY = f"chinesecalendar {chinese_calendar.__version__}"
RECOMPUTE_BATCH = 500


@dataclass(frozen=True)
class DayView:
    """One date as the deadlines see it: the override if there is one, else the weekly schedule."""

    date: date
    kind: str  # workday, holiday, or rest (a weekly day off)
    hours: list[str]
    working_hours: float
    name: str | None
    source: str  # weekly, library or admin

    @property
    def weekday(self) -> int:
        return self.date.isoweekday()


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    removed: int = 0
    kept_admin: int = 0
    recomputed: int = 0


def _view(day: date, row: CalendarDay | None, calendar: worktime.Calendar) -> DayView:
    hours = calendar.hours_of(day)
    if row is not None:
        kind, name, source = row.kind, row.name, row.source
    else:
        kind, name, source = (DayKind.workday.value if hours else "rest"), None, "weekly"
    return DayView(
        date=day,
        kind=kind,
        hours=format_hours(hours),
        working_hours=round(hours_seconds(hours) / 3600, 4),
        name=name,
        source=source,
    )


def days_between(first: date, last: date) -> list[DayView]:
    """Every date from first to last inclusive, oldest first (the API caps the range)."""
    rows = {row.day: row for row in db.session.scalars(select(CalendarDay).where(CalendarDay.day.between(first, last)))}
    calendar = worktime.current_calendar()
    return [
        _view(first + timedelta(days=i), rows.get(first + timedelta(days=i)), calendar)
        for i in range((last - first).days + 1)
    ]


def get_day(day: date) -> DayView:
    return _view(day, db.session.get(CalendarDay, day), worktime.current_calendar())


def set_day(day: date, *, kind: str, name: str | None = None, hours: list[str] | None = None) -> tuple[DayView, int]:
    """An admin's override of one date; open cases' deadlines follow. Returns the day and the cases recomputed."""
    row = db.session.get(CalendarDay, day)
    if row is None:
        row = CalendarDay(day=day)
        db.session.add(row)
    row.kind, row.name, row.source = kind, name, DaySource.admin.value
    row.hours = ",".join(format_hours(parse_hours(",".join(hours)))) if hours else None
    db.session.flush()
    worktime.forget_calendar()
    recomputed = recompute_open_cases(since=day)
    return get_day(day), recomputed


def clear_day(day: date) -> int:
    """Drop a date's override so it follows the weekly schedule again; returns the cases recomputed."""
    row = db.session.get(CalendarDay, day)
    if row is None:
        return 0
    db.session.delete(row)
    db.session.flush()
    worktime.forget_calendar()
    return recompute_open_cases(since=day)


def library_years() -> set[int]:
    return {day.year for day in holiday_data.holidays}


def library_days(year: int) -> dict[date, tuple[str, str]]:
    """The library's holidays and make-up working days (调休上班) of a year: date -> (kind, name)."""
    if year not in library_years():
        raise CalendarYearUnavailable(
            tr(
                "{library} has no holidays for {year}; it covers {first}-{last}. "
                "Set that year's days by hand (PUT /api/v1/calendar/days/{{date}}) or upgrade the library.",
                library=LIBRARY,
                year=year,
                first=min(library_years()),
                last=max(library_years()),
            )
        )
    chinese = {holiday.value: holiday.chinese for holiday in holiday_data.Holiday}
    days = {
        day: (DayKind.holiday.value, chinese.get(value, value))
        for day, value in holiday_data.holidays.items()
        if day.year == year
    }
    days.update(
        {
            day: (DayKind.workday.value, f"{chinese.get(value, value)}调休上班")
            for day, value in holiday_data.workdays.items()
            if day.year == year
        }
    )
    return days


def import_year(year: int, progress: Callable[[Iterable, str], Iterable] = lambda it, _l: it) -> ImportResult:
    """Bring a year's library days in: add and update library rows, drop ones the library no longer has,
    leave admins' overrides alone. Idempotent."""
    wanted = library_days(year)
    result = ImportResult()
    stored = {
        row.day: row
        for row in db.session.scalars(
            select(CalendarDay).where(CalendarDay.day.between(date(year, 1, 1), date(year, 12, 31)))
        )
    }
    for day, (kind, name) in progress(sorted(wanted.items()), f"calendar {year}"):
        row = stored.get(day)
        if row is None:
            db.session.add(CalendarDay(day=day, kind=kind, name=name, hours=None, source=DaySource.library.value))
            result.created += 1
        elif row.source == DaySource.admin.value:
            result.kept_admin += 1
        elif (row.kind, row.name, row.hours) != (kind, name, None):
            row.kind, row.name, row.hours = kind, name, None
            result.updated += 1
    for day, row in stored.items():
        if day not in wanted and row.source == DaySource.library.value:
            db.session.delete(row)
            result.removed += 1
    db.session.flush()
    if result.created or result.updated or result.removed:
        worktime.forget_calendar()
        result.recomputed = recompute_open_cases(since=date(year, 1, 1))
    return result


def recompute_open_cases(since: date, now: datetime | None = None) -> int:
    """Re-derive the deadlines of open, accepted cases whose deadline is still ahead and not before `since`.

    A changed date can only move a deadline that lies on or after it, and passed deadlines and closed cases
    stay as they were. Batches by id keep the session's work bounded per flush.
    """
    now = now or utcnow()
    tz = worktime.current_calendar().tz
    day_start = datetime.combine(since, time.min, tzinfo=tz).astimezone(UTC)
    working = sorted(WORKING_UNITS)
    criteria = (
        Report.status.in_(OPEN_STATUSES),
        Report.accepted_at.is_not(None),
        Report.deadline_at > now,
        or_(Report.deadline_at >= day_start, Report.due_at >= day_start),
        or_(Report.time_limit_unit.in_(working), Report.escalation_level > 0),
    )
    count, last_id = 0, 0
    while True:
        batch = db.session.scalars(
            select(Report).where(*criteria, Report.id > last_id).order_by(Report.id).limit(RECOMPUTE_BATCH)
        ).all()
        if not batch:
            return count
        for report in batch:
            sla.recompute_clock(report)
        db.session.flush()
        count += len(batch)
        last_id = batch[-1].id
