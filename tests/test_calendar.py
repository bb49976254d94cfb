"""Work calendar: the admin endpoints, deadline recompute on a change, and `flask calendar import`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app.lib.hours import DEFAULT_WORK_HOURS, parse_week
from app.models import CalendarDay, Report
from app.models.base import utcnow
from app.services.calendar import worktime
from app.services.calendar.days import import_year, library_days, library_years, set_day
from app.services.cases import sla
from tests.assertions import assert_problem
from tests.factories import auth_header, make_category, make_report, make_test_grid, make_user

URL = "/api/v1/calendar/days"
SH = ZoneInfo("Asia/Shanghai")
POINT = (116.405, 39.905)
# 2026 as published: National Day 1-7 October, Saturday 10 October worked instead.
HOLIDAY, MAKE_UP = "2026-10-01", "2026-10-10"


@pytest.fixture()
def world(db):
    cells = make_test_grid()
    return SimpleNamespace(
        cells=cells,
        category=make_category(hours=4),
        admin=make_user("admin"),
        supervisor=make_user("supervisor", cell=cells["110105"]),
        worker=make_user("worker", served=[cells["11010500100101"]]),
        resident=make_user("resident"),
    )


def rows(db) -> list[tuple]:
    return db.session.execute(
        select(CalendarDay.day, CalendarDay.kind, CalendarDay.hours, CalendarDay.name, CalendarDay.source).order_by(
            CalendarDay.day
        )
    ).all()


def local(d: date, hh: int = 0, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), tzinfo=SH).astimezone(UTC)


def today() -> date:
    return utcnow().astimezone(SH).date()


# ---- listing ----------------------------------------------------------------------------------------


def test_list_shows_weekly_days_holidays_and_make_up_days(client, db, world):
    import_year(2026)
    db.session.commit()
    resp = client.get(URL, query_string={"from": "2026-09-28", "to": "2026-10-11"}, headers=auth_header(world.admin))
    assert resp.status_code == 200, resp.json
    out = resp.json
    assert (out["from"], out["to"]) == ("2026-09-28", "2026-10-11")
    days = {d["date"]: d for d in out["items"]}
    assert [d["date"] for d in out["items"]] == [str(date(2026, 9, 28) + timedelta(days=i)) for i in range(14)]
    assert days["2026-09-28"] == {
        "date": "2026-09-28",
        "weekday": 1,
        "kind": "workday",
        "hours": ["09:00-12:00", "13:30-17:30"],
        "working_hours": 7.0,
        "name": None,
        "source": "weekly",
    }
    assert days[HOLIDAY] | {"hours": None} == {
        "date": HOLIDAY,
        "weekday": 4,
        "kind": "holiday",
        "hours": None,
        "working_hours": 0.0,
        "name": "国庆节",
        "source": "library",
    }
    assert days[HOLIDAY]["hours"] == []
    assert days[MAKE_UP]["kind"] == "workday" and days[MAKE_UP]["weekday"] == 6
    assert days[MAKE_UP]["name"] == "国庆节调休上班" and days[MAKE_UP]["working_hours"] == 7.0
    assert days["2026-10-11"]["kind"] == "rest" and days["2026-10-11"]["source"] == "weekly"


def test_list_takes_up_to_366_days(client, db, world):
    resp = client.get(URL, query_string={"from": "2028-01-01", "to": "2028-12-31"}, headers=auth_header(world.admin))
    assert resp.status_code == 200, resp.json
    assert len(resp.json["items"]) == 366


@pytest.mark.parametrize(
    "query, field",
    [
        ({"to": "2026-10-01"}, "from"),
        ({"from": "2026-10-01"}, "to"),
        ({"from": "2026-10-02", "to": "2026-10-01"}, "to"),
        ({"from": "2026-01-01", "to": "2027-01-02"}, "to"),
        ({"from": "2026-13-01", "to": "2026-12-01"}, "from"),
        ({"from": "yesterday", "to": "2026-12-01"}, "from"),
        ({"from": "1999-12-31", "to": "2000-01-01"}, "from"),
    ],
)
def test_list_refuses_bad_ranges(client, db, world, query, field):
    body = assert_problem(
        client.get(URL, query_string=query, headers=auth_header(world.admin)), 422, "validation_failed"
    )
    assert field in body["errors"], body


def test_list_is_for_admins_only(client, db, world):
    query = {"from": "2026-10-01", "to": "2026-10-02"}
    assert_problem(client.get(URL, query_string=query), 401, "missing_token")
    for user in (world.supervisor, world.worker, world.resident):
        assert_problem(client.get(URL, query_string=query, headers=auth_header(user)), 403, "forbidden")


# ---- one day --------------------------------------------------------------------------------------------


def test_get_one_day(client, db, world):
    resp = client.get(f"{URL}/2026-11-28", headers=auth_header(world.admin))
    assert resp.status_code == 200, resp.json
    assert resp.json == {
        "date": "2026-11-28",
        "weekday": 6,
        "kind": "rest",
        "hours": [],
        "working_hours": 0.0,
        "name": None,
        "source": "weekly",
    }


@pytest.mark.parametrize("day", ["2026-02-30", "tomorrow", "2026-1-1", "2026-10-01T08:00", "2100-01-01"])
def test_bad_dates_are_refused(client, db, world, day):
    headers = auth_header(world.admin)
    body = assert_problem(client.get(f"{URL}/{day}", headers=headers), 422, "validation_failed")
    assert "day" in body["errors"]
    body = assert_problem(
        client.put(f"{URL}/{day}", json={"kind": "holiday"}, headers=headers), 422, "validation_failed"
    )
    assert "day" in body["errors"]
    assert rows(db) == []


def test_admin_makes_a_day_a_holiday(client, db, world):
    resp = client.put(
        f"{URL}/2026-12-01", json={"kind": "holiday", "name": "停水停电"}, headers=auth_header(world.admin)
    )
    assert resp.status_code == 200, resp.json
    assert resp.json == {
        "date": "2026-12-01",
        "weekday": 2,
        "kind": "holiday",
        "hours": [],
        "working_hours": 0.0,
        "name": "停水停电",
        "source": "admin",
        "recomputed_cases": 0,
    }
    assert rows(db) == [(date(2026, 12, 1), "holiday", None, "停水停电", "admin")]
    assert client.get(f"{URL}/2026-12-01", headers=auth_header(world.admin)).json["kind"] == "holiday"
    # Deadlines computed afterwards skip the day.
    assert worktime.deadline(local(date(2026, 11, 30), 17), 1, "working_hours") == local(date(2026, 12, 2), 9, 30)


def test_admin_sets_a_make_up_day_with_its_own_hours(client, db, world):
    resp = client.put(
        f"{URL}/2026-11-29",
        json={"kind": "workday", "hours": ["13:30-17:30", "08:30-12:00"][::-1]},
        headers=auth_header(world.admin),
    )
    assert resp.status_code == 200, resp.json
    assert resp.json["kind"] == "workday" and resp.json["source"] == "admin"
    assert resp.json["hours"] == ["08:30-12:00", "13:30-17:30"] and resp.json["working_hours"] == 7.5
    assert resp.json["name"] is None
    # Without hours a workday works the standard day; a second PUT replaces the first.
    resp = client.put(
        f"{URL}/2026-11-29", json={"kind": "workday", "name": "调休上班"}, headers=auth_header(world.admin)
    )
    assert resp.status_code == 200, resp.json
    assert resp.json["hours"] == ["09:00-12:00", "13:30-17:30"]
    assert rows(db) == [(date(2026, 11, 29), "workday", None, "调休上班", "admin")]


def test_admin_clears_an_override(client, db, world):
    set_day(date(2026, 12, 1), kind="holiday")
    db.session.commit()
    resp = client.delete(f"{URL}/2026-12-01", headers=auth_header(world.admin))
    assert resp.status_code == 200, resp.json
    assert resp.json["kind"] == "workday" and resp.json["source"] == "weekly"
    assert rows(db) == []
    assert client.delete(f"{URL}/2026-12-01", headers=auth_header(world.admin)).json["recomputed_cases"] == 0


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "kind"),
        ({"kind": "weekend"}, "kind"),
        ({"kind": 5}, "kind"),
        ({"kind": "holiday", "name": 7}, "name"),
        ({"kind": "holiday", "name": "x" * 101}, "name"),
        ({"kind": "workday", "hours": "09:00-12:00"}, "hours"),
        ({"kind": "workday", "hours": [9]}, "hours"),
        ({"kind": "workday", "hours": []}, "hours"),
        ({"kind": "workday", "hours": ["09:00-12:00"] * 9}, "hours"),
        ({"kind": "workday", "hours": ["9-12"]}, "hours"),
        ({"kind": "workday", "hours": ["12:00-09:00"]}, "hours"),
        ({"kind": "workday", "hours": ["09:00-12:00", "11:00-14:00"]}, "hours"),
        ({"kind": "holiday", "hours": ["09:00-12:00"]}, "hours"),
        ({"kind": "holiday", "colour": "red"}, "colour"),
    ],
)
def test_put_refuses_bad_bodies(client, db, world, body, field):
    resp = client.put(f"{URL}/2026-12-01", json=body, headers=auth_header(world.admin))
    problem = assert_problem(resp, 422, "validation_failed")
    assert field in problem["errors"], problem
    assert rows(db) == []


def test_put_refuses_malformed_json(client, db, world):
    resp = client.put(
        f"{URL}/2026-12-01", data="{kind: holiday", content_type="application/json", headers=auth_header(world.admin)
    )
    assert_problem(resp, 400, "malformed_json")
    assert rows(db) == []


def test_put_refuses_an_oversized_body(client, db, world):
    resp = client.put(
        f"{URL}/2026-12-01", json={"kind": "holiday", "name": "x" * (1024 * 1024)}, headers=auth_header(world.admin)
    )
    assert_problem(resp, 413, "payload_too_large")
    assert rows(db) == []


def test_changes_are_for_admins_only(client, db, world):
    set_day(date(2026, 12, 2), kind="holiday", name="停电")
    db.session.commit()
    before = rows(db)
    for day in ("2026-12-01", "2026-12-02"):
        assert_problem(client.put(f"{URL}/{day}", json={"kind": "workday"}), 401, "missing_token")
        assert_problem(client.delete(f"{URL}/{day}"), 401, "missing_token")
        assert_problem(client.get(f"{URL}/{day}"), 401, "missing_token")
        for user in (world.supervisor, world.worker, world.resident):
            headers = auth_header(user)
            assert_problem(client.put(f"{URL}/{day}", json={"kind": "workday"}, headers=headers), 403, "forbidden")
            assert_problem(client.delete(f"{URL}/{day}", headers=headers), 403, "forbidden")
            assert_problem(client.get(f"{URL}/{day}", headers=headers), 403, "forbidden")
    assert rows(db) == before


# ---- deadlines follow the calendar -----------------------------------------------------------------


def accepted_case(world, db, accepted_at: datetime, value: int, unit: str, status: str = "assigned") -> Report:
    report = make_report(world.resident, world.category, *POINT)
    report.status, report.accepted_at = status, accepted_at
    report.time_limit_value, report.time_limit_unit = value, unit
    if status == "closed":
        report.closed_at = accepted_at + timedelta(hours=1)
    sla.recompute_clock(report)
    db.session.commit()
    return report


def next_weekday(after: date) -> date:
    day = after + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def test_a_new_holiday_moves_open_deadlines_but_not_closed_ones(client, db, world):
    accepted = utcnow() - timedelta(hours=1)
    open_case = accepted_case(world, db, accepted, 20, "working_days")
    closed_case = accepted_case(world, db, accepted, 20, "working_days", status="closed")
    hours_case = accepted_case(world, db, accepted, 400, "hours")
    before = {r.id: (r.deadline_at, r.warn_at, r.due_at, r.version) for r in (open_case, closed_case, hours_case)}
    holiday = next_weekday(today() + timedelta(days=1))

    resp = client.put(f"{URL}/{holiday}", json={"kind": "holiday"}, headers=auth_header(world.admin))
    assert resp.status_code == 200, resp.json
    assert resp.json["recomputed_cases"] == 1

    for report in (open_case, closed_case, hours_case):
        db.session.refresh(report)
    expected = worktime.Calendar(SH, parse_week(DEFAULT_WORK_HOURS), {holiday: ()})
    assert open_case.deadline_at == open_case.due_at == expected.deadline(accepted, 20, "working_days")
    assert open_case.deadline_at > before[open_case.id][0]
    assert open_case.warn_at == expected.deadline(accepted, 16, "working_days")
    assert open_case.version == before[open_case.id][3] + 1  # clients' ETags see the change
    for report in (closed_case, hours_case):
        assert (report.deadline_at, report.warn_at, report.due_at, report.version) == before[report.id]

    # Clearing the holiday again puts the open case back.
    resp = client.delete(f"{URL}/{holiday}", headers=auth_header(world.admin))
    assert resp.json["recomputed_cases"] == 1
    db.session.refresh(open_case)
    assert open_case.deadline_at == before[open_case.id][0]


def test_passed_deadlines_stay_where_they_were(client, db, world):
    monday = today() - timedelta(days=today().weekday() + 21)
    passed = accepted_case(world, db, local(monday, 9), 2, "working_days")
    assert passed.deadline_at == local(monday + timedelta(days=1), 17, 30)
    before = (passed.deadline_at, passed.warn_at, passed.due_at, passed.version)

    resp = client.put(f"{URL}/{monday + timedelta(days=1)}", json={"kind": "holiday"}, headers=auth_header(world.admin))
    assert resp.status_code == 200, resp.json
    assert resp.json["recomputed_cases"] == 0
    db.session.refresh(passed)
    assert (passed.deadline_at, passed.warn_at, passed.due_at, passed.version) == before


def test_recompute_leaves_cases_whose_deadline_is_before_the_changed_day(client, db, world):
    accepted = utcnow() - timedelta(hours=1)
    short = accepted_case(world, db, accepted, 1, "working_days")
    before = (short.deadline_at, short.version)
    far = next_weekday(today() + timedelta(days=30))
    resp = client.put(f"{URL}/{far}", json={"kind": "holiday"}, headers=auth_header(world.admin))
    assert resp.json["recomputed_cases"] == 0
    db.session.refresh(short)
    assert (short.deadline_at, short.version) == before


# ---- import from the holiday library ------------------------------------------------------------------


def run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_cli_imports_a_year_of_holidays_and_make_up_days(app, db):
    expected = library_days(2026)
    result = run(app, "calendar", "import", "2026")
    assert result.exit_code == 0, result.output
    assert f"{len(expected)} added, 0 updated, 0 removed, 0 admin overrides kept" in result.output
    stored = {day: (kind, name, source) for day, kind, _hours, name, source in rows(db)}
    assert stored[date(2026, 2, 17)] == ("holiday", "春节", "library")
    assert stored[date(2026, 2, 14)] == ("workday", "春节调休上班", "library")
    assert stored[date(2026, 10, 10)] == ("workday", "国庆节调休上班", "library")
    assert sum(kind == "workday" for kind, _n, _s in stored.values()) == 6
    assert len(stored) == len(expected)

    again = run(app, "calendar", "import", "2026")
    assert again.exit_code == 0, again.output
    assert "0 added, 0 updated, 0 removed" in again.output
    assert len(rows(db)) == len(expected)


def test_import_keeps_admin_overrides_and_drops_stale_library_rows(app, db):
    set_day(date(2026, 10, 1), kind="workday", name="值班")
    db.session.add(CalendarDay(day=date(2026, 3, 3), kind="holiday", name="旧数据", source="library"))
    db.session.commit()
    result = run(app, "calendar", "import", "2026")
    assert result.exit_code == 0, result.output
    assert "1 removed, 1 admin overrides kept" in result.output
    stored = {day: (kind, name, source) for day, kind, _hours, name, source in rows(db)}
    assert stored[date(2026, 10, 1)] == ("workday", "值班", "admin")
    assert date(2026, 3, 3) not in stored


def test_import_recomputes_open_deadlines(app, db, world):
    year = today().year
    if year not in library_years():
        pytest.skip(f"the holiday library has no {year}")
    accepted = utcnow() - timedelta(hours=1)
    case = accepted_case(world, db, accepted, 200, "working_days")
    result = run(app, "calendar", "import", str(year))
    assert result.exit_code == 0, result.output
    assert "1 open cases recomputed" in result.output
    db.session.refresh(case)
    assert case.deadline_at == worktime.deadline(accepted, 200, "working_days")


def test_cli_refuses_a_year_the_library_lacks(app, db):
    missing = max(library_years()) + 1
    result = run(app, "calendar", "import", str(missing))
    assert result.exit_code == 1
    assert "calendar_year_unavailable" in result.output and str(missing) in result.output
    assert rows(db) == []
    assert run(app, "calendar", "import", "soon").exit_code == 2
    assert run(app, "calendar", "import", "1999").exit_code == 2


def test_seed_demo_seeds_this_and_next_year(app, db):
    result = run(app, "seed-demo", "--no-cases")
    assert result.exit_code == 0, result.output
    this_year = today().year
    seeded = {day.year for day in db.session.scalars(select(CalendarDay.day))}
    assert seeded == {y for y in (this_year, this_year + 1) if y in library_years()}
    for year in (this_year, this_year + 1):
        if year not in library_years():
            assert f"the holiday library has no {year}" in result.output
    count = db.session.scalar(select(func.count()).select_from(CalendarDay))
    again = run(app, "seed-demo", "--no-cases")
    assert "work calendar: 0 days added" in again.output
    assert db.session.scalar(select(func.count()).select_from(CalendarDay)) == count
