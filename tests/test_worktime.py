"""Working time: deadlines, elapsed working time and shifts against weekly hours, holidays, make-up days and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from app.lib.hours import DEFAULT_WORK_HOURS, parse_hours, parse_week
from app.services.calendar import worktime
from app.services.calendar.days import set_day
from app.services.calendar.worktime import Calendar, NoWorkingTime
from app.services.cases import sla
from config import ConfigError, load_config

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
WEEK = parse_week(DEFAULT_WORK_HOURS)
# The 2026 National Day holidays as published: 1-7 October off, Sunday 20 September and Saturday 10 October
# worked instead (调休).
NATIONAL_DAY_2026 = {**{date(2026, 10, d): () for d in range(1, 8)}, date(2026, 9, 20): None, date(2026, 10, 10): None}


def local(y, m, d, hh=0, mm=0, tz=SH) -> datetime:
    """A local wall-clock time as the aware UTC datetime every caller passes in."""
    return datetime(y, m, d, hh, mm, tzinfo=tz).astimezone(UTC)


def shanghai(overrides=None) -> Calendar:
    return Calendar(SH, WEEK, overrides)


# 2026-11-23 is a Monday.
MON, TUE, FRI, SAT, NEXT_MON = (2026, 11, 23), (2026, 11, 24), (2026, 11, 27), (2026, 11, 28), (2026, 11, 30)


# ---- working hours -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start, hours, expected",
    [
        (local(*MON, 9), 2, local(*MON, 11)),  # inside the morning
        (local(*MON, 9), 3, local(*MON, 12)),  # ends exactly at noon, not after lunch
        (local(*MON, 11), 2, local(*MON, 14, 30)),  # crosses lunch
        (local(*MON, 12, 30), 1, local(*MON, 14, 30)),  # starts during lunch
        (local(*MON, 9), 7, local(*MON, 17, 30)),  # a whole working day
        (local(*MON, 16, 30), 2, local(*TUE, 10)),  # crosses the night
        (local(*MON, 20), 1, local(*TUE, 10)),  # starts at night
        (local(*MON, 5), 1, local(*MON, 10)),  # starts before the day begins
        (local(*FRI, 16, 30), 2, local(*NEXT_MON, 10)),  # crosses the weekend
        (local(*SAT, 10), 1, local(*NEXT_MON, 10)),  # starts on a weekend
        (local(*MON, 9), 3.2, local(*MON, 13, 42)),  # fractional: the 80 % mark of 4 hours
        (local(*MON, 9), 35, local(*FRI, 17, 30)),  # a working week
    ],
)
def test_working_hours_deadlines(start, hours, expected):
    assert shanghai().deadline(start, hours, "working_hours") == expected


def test_calendar_hours_count_nights_and_weekends():
    cal = shanghai()
    assert cal.deadline(local(*FRI, 16, 30), 2, "hours") == local(*FRI, 18, 30)
    assert cal.deadline(local(*FRI, 16, 30), 48, "hours") == local(*(2026, 11, 29), 16, 30)
    assert cal.seconds_between(local(*FRI, 17), local(*NEXT_MON, 10), "hours") == 65 * 3600


def test_holidays_are_skipped():
    cal = shanghai(NATIONAL_DAY_2026)
    # Wednesday 30 September afternoon: the next working time is Thursday 8 October.
    assert cal.deadline(local(2026, 9, 30, 16, 30), 2, "working_hours") == local(2026, 10, 8, 10)
    assert cal.deadline(local(2026, 10, 3, 10), 1, "working_hours") == local(2026, 10, 8, 10)
    assert cal.seconds_between(local(2026, 9, 30, 17), local(2026, 10, 8, 10), "working_hours") == 1.5 * 3600
    # Without the holidays the same limit ends the next morning.
    assert shanghai().deadline(local(2026, 9, 30, 16, 30), 2, "working_hours") == local(2026, 10, 1, 10)


def test_make_up_working_days_count():
    cal = shanghai(NATIONAL_DAY_2026)
    # Friday 9 October: Saturday 10 October is worked (调休), with the standard day's hours.
    assert cal.deadline(local(2026, 10, 9, 16, 30), 2, "working_hours") == local(2026, 10, 10, 10)
    assert cal.hours_of(date(2026, 10, 10)) == WEEK[0]
    assert cal.seconds_between(local(2026, 10, 10, 0), local(2026, 10, 11, 0), "working_hours") == 7 * 3600
    # Sunday 20 September is worked too; an ordinary Sunday is not.
    assert cal.seconds_between(local(2026, 9, 20), local(2026, 9, 21), "working_hours") == 7 * 3600
    assert cal.seconds_between(local(2026, 9, 27), local(2026, 9, 28), "working_hours") == 0
    assert shanghai().deadline(local(2026, 10, 9, 16, 30), 2, "working_hours") == local(2026, 10, 12, 10)


def test_custom_hours_on_one_date():
    # A half day on Monday: only the morning is worked.
    cal = shanghai({date(*MON): parse_hours("09:00-12:00")})
    assert cal.deadline(local(*MON, 11), 2, "working_hours") == local(*TUE, 10)
    assert cal.seconds_between(local(*MON), local(*TUE), "working_hours") == 3 * 3600


# ---- working days --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start, days, expected",
    [
        (local(*MON, 15), 1, local(*TUE, 15)),  # same clock time on the next working day
        (local(*MON, 9), 1, local(*MON, 17, 30)),  # a day's working time from the first minute
        (local(*FRI, 15), 1, local(*NEXT_MON, 15)),  # over the weekend
        (local(*MON, 9), 0.5, local(*MON, 14)),  # half a day = 3.5 working hours, across lunch
        (local(*MON, 10), 0.8, local(*MON, 17, 6)),  # the 80 % mark of one day: 5.6 working hours
        (local(*MON, 9), 5, local(*FRI, 17, 30)),
        (local(*MON, 20), 1, local(*TUE, 17, 30)),  # starting at night: the next day's working time
    ],
)
def test_working_days_deadlines(start, days, expected):
    assert shanghai().deadline(start, days, "working_days") == expected


def test_working_days_skip_holidays_and_use_make_up_days():
    cal = shanghai(NATIONAL_DAY_2026)
    assert cal.deadline(local(2026, 9, 30, 10), 1, "working_days") == local(2026, 10, 8, 10)
    assert cal.deadline(local(2026, 10, 9, 10), 1, "working_days") == local(2026, 10, 10, 10)
    assert cal.seconds_between(local(2026, 9, 30, 10), local(2026, 10, 8, 10), "working_days") == 7 * 3600


def test_one_working_day_is_the_most_common_days_length():
    # Saturday mornings are worked too, but a working day is still the 8-hour weekday.
    cal = Calendar(SH, parse_week("mon-fri 08:00-12:00,14:00-18:00; sat 09:00-12:00"))
    assert cal.day_seconds == 8 * 3600
    assert cal.deadline(local(*FRI, 16), 1, "working_days") == local(*NEXT_MON, 11)
    assert cal.hours_of(date(*SAT)) == parse_hours("09:00-12:00")


# ---- seconds_between and add_seconds ---------------------------------------------------------------


def test_seconds_between_counts_working_seconds():
    cal = shanghai()
    assert cal.seconds_between(local(*MON, 9), local(*TUE, 9), "working_hours") == 7 * 3600
    assert cal.seconds_between(local(*FRI, 17), local(*NEXT_MON, 10), "working_hours") == 1.5 * 3600
    assert cal.seconds_between(local(*MON, 12, 5), local(*MON, 13, 25), "working_hours") == 0
    assert cal.seconds_between(local(*MON, 11), local(*MON, 14), "working_days") == 1.5 * 3600
    assert cal.seconds_between(local(*TUE, 9), local(*MON, 9), "working_hours") == 0
    assert cal.seconds_between(local(*TUE, 9), local(*MON, 9), "hours") == 0


STARTS = [
    local(*MON, 9),
    local(*MON, 11, 59),
    local(*MON, 12, 30),
    local(*FRI, 17, 29),
    local(*SAT, 3),
    local(2026, 9, 30, 16, 45),
    local(2026, 10, 9, 12),
]
SECONDS = [1, 59.5, 3600, 3 * 3600 + 0.25, 7 * 3600, 26 * 3600 + 17, 100 * 3600]


@pytest.mark.parametrize("unit", ["working_hours", "working_days", "hours"])
@pytest.mark.parametrize("start", STARTS)
def test_add_seconds_and_seconds_between_are_inverse(unit, start):
    cal = shanghai(NATIONAL_DAY_2026)
    for seconds in SECONDS:
        end = cal.add_seconds(start, seconds, unit)
        assert cal.seconds_between(start, end, unit) == pytest.approx(seconds, abs=1e-6)
    # The other way round, for ends inside working time: moving on by the working time between gives the end.
    for end in (local(*TUE, 10, 15), local(*NEXT_MON, 16), local(2026, 10, 10, 9, 30), local(2026, 10, 8, 14)):
        if end > start:
            assert cal.add_seconds(start, cal.seconds_between(start, end, unit), unit) == end


def test_add_seconds_lands_at_the_earliest_moment():
    cal = shanghai()
    # An end at lunch: the working time until then had run out at noon.
    spent = cal.seconds_between(local(*MON, 9), local(*MON, 12, 45), "working_hours")
    assert cal.add_seconds(local(*MON, 9), spent, "working_hours") == local(*MON, 12)
    assert cal.add_seconds(local(*SAT, 9), 0, "working_hours") == local(*SAT, 9)


def test_a_hold_over_a_weekend_moves_the_deadline_by_the_working_time_held(db):
    """The clock formula with a hold: held working seconds move the deadline in working time."""
    report = SimpleNamespace(
        accepted_at=local(*FRI, 9),
        time_limit_value=8,
        time_limit_unit="working_hours",
        extension_value=0,
        held_seconds=0.0,
        escalation_level=0,
        escalated_at=None,
        category=None,
    )
    sla.recompute_clock(report)
    assert report.due_at == report.deadline_at == local(*NEXT_MON, 10)
    # On hold from Friday 16:00 to Monday 10:00: 1.5 + 1 working hours.
    report.held_seconds = worktime.seconds_between(local(*FRI, 16), local(*NEXT_MON, 10), "working_hours")
    assert report.held_seconds == 2.5 * 3600
    sla.recompute_clock(report)
    assert report.deadline_at == report.due_at == local(*NEXT_MON, 14)  # 10:00 + 2 h to noon + 30 min after lunch
    # 80 % of 8 hours runs out Friday 16:54; moved on by 2.5 working hours: Monday 10:54.
    assert report.warn_at == local(*NEXT_MON, 10, 54)


# ---- time zones ------------------------------------------------------------------------------------


def test_dst_zone_keeps_local_hours_across_the_march_switch():
    cal = Calendar(BERLIN, WEEK)
    # Europe/Berlin moves to summer time on Sunday 29 March 2026.
    start = local(2026, 3, 27, 16, 30, tz=BERLIN)
    end = cal.deadline(start, 2, "working_hours")
    assert end == local(2026, 3, 30, 10, tz=BERLIN)
    assert end.astimezone(BERLIN).utcoffset() == timedelta(hours=2)
    assert start.astimezone(BERLIN).utcoffset() == timedelta(hours=1)
    assert (
        cal.seconds_between(local(2026, 3, 27, 9, tz=BERLIN), local(2026, 3, 30, 9, tz=BERLIN), "working_hours")
        == 7 * 3600
    )
    assert cal.deadline(local(2026, 3, 27, 15, tz=BERLIN), 1, "working_days") == local(2026, 3, 30, 15, tz=BERLIN)
    # Calendar hours are elapsed time: 24 hours from Saturday noon is 13:00 on Sunday, wall clock.
    assert cal.deadline(local(2026, 3, 28, 12, tz=BERLIN), 24, "hours") == local(2026, 3, 29, 13, tz=BERLIN)


def test_dst_zone_keeps_local_hours_across_the_october_switch():
    cal = Calendar(BERLIN, WEEK)
    # Back to winter time on Sunday 25 October 2026.
    assert cal.deadline(local(2026, 10, 23, 16, 30, tz=BERLIN), 2, "working_hours") == local(
        2026, 10, 26, 10, tz=BERLIN
    )
    assert cal.deadline(local(2026, 10, 23, 15, tz=BERLIN), 1, "working_days") == local(2026, 10, 26, 15, tz=BERLIN)
    assert cal.deadline(local(2026, 10, 24, 12, tz=BERLIN), 24, "hours") == local(2026, 10, 25, 11, tz=BERLIN)


def test_working_hours_through_the_switch_night_count_real_time():
    # A night shift on the switch Sundays: 01:00-04:00 lasts two real hours in March and four in October.
    cal = Calendar(BERLIN, parse_week("sun 01:00-04:00"))
    assert cal.seconds_between(local(2026, 3, 29, tz=BERLIN), local(2026, 3, 30, tz=BERLIN), "working_hours") == 7200
    assert (
        cal.seconds_between(local(2026, 10, 25, tz=BERLIN), local(2026, 10, 26, tz=BERLIN), "working_hours") == 4 * 3600
    )
    # Half an hour into the March shift is 03:30 summer time (the hour 02:00-03:00 never happened).
    assert cal.add_seconds(local(2026, 3, 29, tz=BERLIN), 5400, "working_hours") == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC
    )


def test_dst_free_zones_shift_by_their_fixed_offset():
    kolkata = ZoneInfo("Asia/Kolkata")
    cal = Calendar(kolkata, WEEK)
    end = cal.deadline(local(*FRI, 16, 30, tz=kolkata), 2, "working_hours")
    assert end == local(*NEXT_MON, 10, tz=kolkata) == datetime(2026, 11, 30, 4, 30, tzinfo=UTC)
    # Shanghai: 09:00 is always 01:00 UTC, summer or winter.
    for month in (1, 7):
        assert shanghai().deadline(local(2026, month, 6 if month == 7 else 5, 8), 1, "working_hours") == datetime(
            2026, month, 6 if month == 7 else 5, 2, tzinfo=UTC
        )


# ---- bad input ----------------------------------------------------------------------------------------


def test_unknown_unit_is_refused():
    with pytest.raises(ValueError, match="unknown time-limit unit"):
        shanghai().deadline(local(*MON, 9), 1, "fortnights")
    with pytest.raises(ValueError, match="unknown time-limit unit"):
        worktime.deadline(local(*MON, 9), 1, "fortnights")


def test_a_calendar_without_working_time_says_so_instead_of_looping():
    with pytest.raises(NoWorkingTime):
        Calendar(SH, parse_week("")).deadline(local(*MON, 9), 1, "working_hours")
    with pytest.raises(NoWorkingTime):
        Calendar(SH, parse_week("")).deadline(local(*MON, 9), 1, "working_days")

    # Every date from 2027 on declared a holiday.
    def all_off(year):
        first = date(year, 1, 1)
        return {first + timedelta(days=i): () for i in range(366)} if year >= 2027 else {}

    with pytest.raises(NoWorkingTime):
        Calendar(SH, WEEK, all_off).deadline(local(2026, 12, 31, 18), 1, "working_hours")


@pytest.mark.parametrize(
    "text",
    [
        "mon-fri 9:00-12:00",
        "mon-fri 09:00-12:00,11:00-13:00",
        "mon-fri 12:00-09:00",
        "fri-mon 09:00-12:00",
        "monday 09:00-12:00",
        "mon-fri 09:00",
        "mon 24:00-25:00",
    ],
)
def test_bad_weekly_hours_are_refused(text):
    with pytest.raises(ValueError):
        parse_week(text)


def test_weekly_hours_parse():
    week = parse_week("mon-fri 09:00-12:00,13:30-17:30; sat 09:00-12:00")
    assert week[0] == week[4] == parse_hours("09:00-12:00,13:30-17:30")
    assert week[5] == parse_hours("09:00-12:00") and week[6] == ()


def test_config_reads_and_checks_work_hours(monkeypatch):
    monkeypatch.delenv("WORK_HOURS", raising=False)
    assert load_config("testing").WORK_HOURS == DEFAULT_WORK_HOURS
    monkeypatch.setenv("WORK_HOURS", "mon-sat 08:00-12:00")
    assert load_config("testing").WORK_HOURS == "mon-sat 08:00-12:00"
    monkeypatch.setenv("WORK_HOURS", "weekdays 9-5")
    with pytest.raises(ConfigError, match="WORK_HOURS"):
        load_config("testing")
    monkeypatch.delenv("WORK_HOURS")
    monkeypatch.setenv("TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(ConfigError, match="TIMEZONE"):
        load_config("testing")


# ---- the configured calendar, read from the database ---------------------------------------------------


def test_module_functions_use_the_stored_calendar(app, db):
    assert worktime.current_calendar() is worktime.current_calendar()
    assert worktime.deadline(local(*MON, 16, 30), 2, "working_hours") == local(*TUE, 10)
    set_day(date(*TUE), kind="holiday", name="停工")
    assert worktime.deadline(local(*MON, 16, 30), 2, "working_hours") == local(2026, 11, 25, 10)
    set_day(date(*SAT), kind="workday", hours=["10:00-11:00"])
    assert worktime.seconds_between(local(*FRI, 17), local(*NEXT_MON, 9), "working_hours") == 1.5 * 3600
    assert worktime.add_seconds(local(*FRI, 17), 1800, "working_days") == local(*FRI, 17, 30)
    assert worktime.add_seconds(local(*FRI, 17), 3600, "working_days") == local(*SAT, 10, 30)


def test_the_loaded_calendar_reads_each_year_once():
    calls = []
    cal = Calendar(SH, WEEK, lambda year: calls.append(year) or {})
    cal.deadline(local(2026, 12, 30, 9), 20, "working_days")
    cal.seconds_between(local(2026, 12, 1), local(2027, 2, 1), "working_hours")
    assert calls == [2026, 2027]
