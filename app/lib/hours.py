"""Working hours as text: a day's hours ('09:00-12:00,13:30-17:30') and a week of them, parsed and measured."""

from __future__ import annotations

from datetime import date, datetime, time
from functools import lru_cache

DEFAULT_WORK_HOURS = "mon-fri 09:00-12:00,13:30-17:30"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DayHours = tuple[tuple[time, time], ...]


def _parse_time(text: str) -> time:
    hh, sep, mm = text.strip().partition(":")
    if not sep or len(hh) != 2 or len(mm) != 2 or not (hh + mm).isdigit():
        raise ValueError(f"{text.strip()!r} is not HH:MM")
    hour, minute = int(hh), int(mm)
    if hour > 23 or minute > 59:
        raise ValueError(f"{text.strip()!r} is not a time of day")
    return time(hour, minute)


def parse_hours(text: str) -> DayHours:
    """'09:00-12:00,13:30-17:30' into ordered, non-overlapping (start, end) pairs; '' is a day off."""
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        start, sep, end = part.partition("-")
        if not sep:
            raise ValueError(f"{part!r} is not HH:MM-HH:MM")
        pairs.append((_parse_time(start), _parse_time(end)))
    for i, (start, end) in enumerate(pairs):
        if start >= end:
            raise ValueError(f"{start:%H:%M}-{end:%H:%M} ends before it starts")
        if i and start < pairs[i - 1][1]:
            raise ValueError("working hours must be in order and must not overlap")
    return tuple(pairs)


def format_hours(hours: DayHours) -> list[str]:
    return [f"{start:%H:%M}-{end:%H:%M}" for start, end in hours]


@lru_cache(maxsize=16)
def parse_week(text: str) -> tuple[DayHours, ...]:
    """'mon-fri 09:00-12:00,13:30-17:30; sat 09:00-12:00' into seven days' hours, Monday first."""
    week: list[DayHours] = [()] * 7
    for group in filter(None, (g_.strip() for g_ in text.split(";"))):
        days, _, hours = group.partition(" ")
        first, _, last = days.lower().partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"{days!r} is not a weekday or range like mon-fri")
        lo, hi = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if hi < lo:
            raise ValueError(f"{days!r} runs backwards")
        parsed = parse_hours(hours)
        for i in range(lo, hi + 1):
            week[i] = parsed
    return tuple(week)


def hours_seconds(hours: DayHours) -> float:
    """The length of a day's working hours in seconds."""
    return float(sum((datetime.combine(date.min, e) - datetime.combine(date.min, s)).total_seconds() for s, e in hours))
