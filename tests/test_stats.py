"""GET /api/v1/stats/summary: figures per child cell over a period, on constructed data with known answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from app.models import CaseEvent
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    STREET,
    auth_header,
    make_case,
    make_category,
    make_cell,
    make_test_grid,
    make_user,
)

URL = "/api/v1/stats/summary"
SW = "11010500100101"
STREET2, COMMUNITY2, GRID2 = "110105002", "110105002001", "11010500200101"
P0 = datetime(2026, 11, 1, tzinfo=UTC)
P1 = datetime(2026, 11, 15, tzinfo=UTC)
DAY = timedelta(days=1)
PERIOD = {"from": P0.isoformat(), "to": P1.isoformat()}


@pytest.fixture()
def world(db):
    cells = make_test_grid()
    street2 = make_cell(STREET2, "street", (116.42, 39.90, 116.43, 39.91), cells[DISTRICT])
    community2 = make_cell(COMMUNITY2, "community", (116.42, 39.90, 116.43, 39.91), street2)
    cells[GRID2] = make_cell(GRID2, "grid", (116.42, 39.90, 116.43, 39.91), community2)
    category = make_category()
    resident = make_user("resident")

    def case(grid, created, **fields):
        return make_case(resident, category, cells[grid], created_at=created, **fields)

    # Street 1 (every case in its grid SW):
    case(SW, P0 + DAY, status="closed", due_at=P0 + 3 * DAY, closed_at=P0 + 2 * DAY)  # on time
    case(SW, P0 + DAY, status="closed", due_at=P0 + 2 * DAY, closed_at=P0 + 4 * DAY)  # late
    case(SW, P0 - 5 * DAY, status="on_hold", due_at=P0 + 5 * DAY, hold_started_at=P0 + DAY)  # due, on hold
    overdue = case(SW, P0 + DAY, status="assigned", due_at=P0 + 6 * DAY, deadline_at=P0 + 6 * DAY)
    case(SW, P1 + DAY, status="assigned", due_at=P1 + 300 * DAY)  # filed after the period
    case(SW, P0 - 20 * DAY, status="duplicate", due_at=P0 + 2 * DAY)  # never due
    case(SW, P0 + 10 * DAY, status="closed", due_at=P1 + 5 * DAY, closed_at=P0 + 12 * DAY)  # on time, due later
    for when in (P0 + 7 * DAY, P0 + 9 * DAY, P1 + DAY):
        db.session.add(CaseEvent(report_id=overdue.id, actor_role="system", action="escalate", created_at=when))
    db.session.add(CaseEvent(report_id=overdue.id, actor_role="system", action="critical", created_at=P0 + 10 * DAY))
    # Street 2: one report waiting for acceptance.
    case(GRID2, P0 + 2 * DAY, status="submitted")
    db.session.commit()
    return SimpleNamespace(
        cells=cells,
        resident=resident,
        worker=make_user("worker", served=[cells[SW]]),
        district_sup=make_user("supervisor", cell=cells[DISTRICT]),
        street_sup=make_user("supervisor", cell=cells[STREET]),
        no_cell_sup=make_user("supervisor"),
        admin=make_user("admin"),
    )


STREET1_FIGURES = {
    "filed": 4,
    "closed": 3,
    "closed_on_time": 2,
    "due": 4,
    "due_on_hold": 1,
    "due_closed_on_time": 1,
    "due_missed": 2,
    "overdue_backlog": 1,
    "avg_close_seconds": 2 * 86400.0,
    "escalations": 2,
}
EMPTY = {
    "filed": 0,
    "closed": 0,
    "closed_on_time": 0,
    "due": 0,
    "due_on_hold": 0,
    "due_closed_on_time": 0,
    "due_missed": 0,
    "on_time_rate": None,
    "overdue_backlog": 0,
    "avg_close_seconds": None,
    "escalations": 0,
    "satisfaction_avg": None,
    "satisfaction_count": 0,
}


def get(client, user, **query):
    return client.get(URL, query_string={**PERIOD, **query}, headers=auth_header(user))


@pytest.mark.parametrize("who", ["district_sup", "admin"])
def test_district_summary_per_street(client, world, who):
    resp = get(client, getattr(world, who), cell=DISTRICT)
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()
    assert data["cell"]["code"] == DISTRICT
    assert (data["from"], data["to"]) == ("2026-11-01T08:00:00+08:00", "2026-11-15T08:00:00+08:00")
    by_code = {row["cell"]["code"]: row for row in data["children"]}
    assert list(by_code) == [STREET, STREET2]
    street1 = by_code[STREET]
    assert street1["on_time_rate"] == pytest.approx(1 / 3)
    assert {k: street1[k] for k in STREET1_FIGURES} == pytest.approx(STREET1_FIGURES)
    assert by_code[STREET2] == {"cell": by_code[STREET2]["cell"], **EMPTY, "filed": 1}


def test_street_supervisor_reads_their_own_street_per_community(client, world):
    data = get(client, world.street_sup, cell=STREET).get_json()
    assert [row["cell"]["code"] for row in data["children"]] == [COMMUNITY]
    assert data["children"][0]["filed"] == 4


def test_community_summary_lists_every_grid_even_empty(client, world):
    data = get(client, world.admin, cell=COMMUNITY).get_json()
    rows = {row["cell"]["code"]: row for row in data["children"]}
    assert len(rows) == 4
    assert rows[SW]["due"] == 4
    assert all(row["filed"] == 0 and row["on_time_rate"] is None for code, row in rows.items() if code != SW)


def test_a_period_with_nothing_due_has_no_rate(client, world):
    resp = client.get(
        URL,
        query_string={"cell": DISTRICT, "from": "2020-01-01T00:00:00+00:00", "to": "2020-02-01T00:00:00+00:00"},
        headers=auth_header(world.admin),
    )
    rows = resp.get_json()["children"]
    assert [row["on_time_rate"] for row in rows] == [None, None]
    assert rows[0]["overdue_backlog"] == 1  # the backlog is today's, whatever the period


def test_the_rate_counts_only_cases_due_in_the_period_and_decided(client, db, world):
    """A period that runs into the future: open cases not yet due are not missed; late ones are, wherever they are."""
    now = datetime.now(UTC)
    hour = timedelta(hours=1)

    def case(status, **fields):
        return make_case(world.resident, make_category(), world.cells[SW], status=status, **fields)

    case("assigned", due_at=now + 5 * DAY)  # not yet due: undecided
    case("on_hold", due_at=now - hour, hold_started_at=now - 5 * hour)  # held before its due time: undecided
    case("assigned", due_at=now - 2 * hour)  # past due, not yet swept: missed
    case("closed", due_at=now + 3 * DAY, closed_at=now - hour)  # closed before its due time: on time
    # Escalated, then given an extension: still late, and due when it missed (late_since), not at the new due_at.
    case("in_progress", escalation_level=1, due_at=now + 2 * DAY, late_since=now - 10 * hour)
    # Late, extended, then closed before the new due time: closed, but not on time.
    case("closed", due_at=now + 2 * DAY, late_since=now - 20 * hour, closed_at=now - hour)
    case("closed", due_at=now + 40 * DAY, closed_at=now - hour)  # due after the period

    resp = client.get(
        URL,
        query_string={"cell": DISTRICT, "from": (now - DAY).isoformat(), "to": (now + 30 * DAY).isoformat()},
        headers=auth_header(world.admin),
    )
    assert resp.status_code == 200, resp.get_json()
    street1 = resp.get_json()["children"][0]
    assert street1["cell"]["code"] == STREET
    figures = ("due", "due_on_hold", "due_closed_on_time", "due_missed", "closed", "closed_on_time")
    assert {k: street1[k] for k in figures} == {
        "due": 6,
        "due_on_hold": 1,
        "due_closed_on_time": 1,
        "due_missed": 3,
        "closed": 3,
        "closed_on_time": 2,
    }
    assert street1["on_time_rate"] == pytest.approx(1 / 4)
    # The backlog is the open cases late now: the fixture's overdue case, the unswept one, the escalated one.
    assert street1["overdue_backlog"] == 3


def test_a_period_with_nothing_decided_has_no_rate(client, db, world):
    now = datetime.now(UTC)
    make_case(world.resident, make_category(), world.cells[SW], status="assigned", due_at=now + 5 * DAY)
    resp = client.get(
        URL,
        query_string={"cell": DISTRICT, "from": now.isoformat(), "to": (now + 30 * DAY).isoformat()},
        headers=auth_header(world.admin),
    )
    street1 = resp.get_json()["children"][0]
    assert (street1["due"], street1["due_missed"], street1["on_time_rate"]) == (1, 0, None)


@pytest.mark.parametrize(
    "query, field",
    [
        ({"from": P1.isoformat(), "to": P0.isoformat()}, "to"),
        ({"from": P0.isoformat(), "to": P0.isoformat()}, "to"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-11-01T00:00:00"}, "from"),  # no offset: ambiguous
        ({"cell": "1"}, "cell"),
        ({"cell_id": "x"}, "cell_id"),
        ({"to": "2026-11-31"}, "to"),
        ({"to": "2026-11-15 08:00"}, "to"),
    ],
)
def test_bad_arguments_are_422(client, world, query, field):
    body = assert_problem(get(client, world.admin, **{"cell": DISTRICT, **query}), 422, "validation_failed")
    assert field in body["errors"]


def test_a_missing_cell_is_422(client, world):
    resp = client.get(URL, query_string=PERIOD, headers=auth_header(world.admin))
    assert "cell" in assert_problem(resp, 422, "validation_failed")["errors"]


def _month_bounds(now: datetime) -> tuple[str, str]:
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + timedelta(days=32)).replace(day=1)
    return first.isoformat(), following.isoformat()


@pytest.mark.parametrize("given", [{}, {"from": "2026-11-01"}, {"to": "2099-12-31"}])
def test_from_and_to_default_to_the_current_local_month(client, world, given):
    before = _month_bounds(datetime.now(UTC))
    resp = client.get(URL, query_string={"cell": DISTRICT, **given}, headers=auth_header(world.admin))
    after = _month_bounds(datetime.now(UTC))
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()
    expected_from = "2026-11-01T00:00:00+08:00" if "from" in given else None
    expected_to = "2100-01-01T00:00:00+08:00" if "to" in given else None
    assert any(
        (data["from"], data["to"]) == (expected_from or month[0], expected_to or month[1]) for month in (before, after)
    )


def test_a_grid_cell_has_no_next_level(client, world):
    assert "cell" in assert_problem(get(client, world.admin, cell=SW), 422, "validation_failed")["errors"]


@pytest.mark.parametrize(
    "query, field",
    [
        ({"cell": "999999"}, "cell"),
        ({"cell_id": 999_999}, "cell_id"),
        ({"cell": DISTRICT, "cell_id": 999_999}, "cell_id"),
        ({"cell": STREET}, "cell"),  # with cell_id = the district's: they disagree
    ],
)
def test_an_unknown_cell_or_two_that_disagree_are_422(client, world, query, field):
    if query == {"cell": STREET}:
        query = {**query, "cell_id": world.cells[DISTRICT].id}
    assert field in assert_problem(get(client, world.admin, **query), 422, "validation_failed")["errors"]


@pytest.mark.parametrize("how", ["cell", "cell_id", "both"])
def test_the_cell_by_id_code_or_both_is_the_same_answer(client, world, how):
    query = {
        "cell": {"cell": STREET},
        "cell_id": {"cell_id": world.cells[STREET].id},
        "both": {"cell": STREET, "cell_id": world.cells[STREET].id},
    }[how]
    data = get(client, world.street_sup, **query).get_json()
    assert data["cell"]["code"] == STREET
    assert [row["cell"]["code"] for row in data["children"]] == [COMMUNITY]


@pytest.mark.parametrize("who, code", [("street_sup", DISTRICT), ("street_sup", STREET2), ("no_cell_sup", STREET)])
def test_a_cell_outside_the_supervisors_subtree_is_403(client, world, who, code):
    assert_problem(get(client, getattr(world, who), cell=code), 403, "outside_subtree")


@pytest.mark.parametrize("who", ["worker", "resident"])
def test_workers_and_residents_are_403(client, world, who):
    assert_problem(get(client, getattr(world, who), cell=DISTRICT), 403, "forbidden")


def test_no_token_is_401(client, world):
    assert_problem(client.get(URL, query_string={"cell": DISTRICT, **PERIOD}), 401, "missing_token")


# ---- satisfaction (issue 4) -----------------------------------------------------------------------


def _rated(world, grid, rating, rated_at, **fields):
    return make_case(
        world.resident,
        make_category(),
        world.cells[grid],
        status="closed",
        created_at=P0 - 9 * DAY,
        closed_at=rated_at - DAY,
        rating=rating,
        rated_at=rated_at,
        **fields,
    )


def test_satisfaction_is_the_mean_rating_of_the_cases_rated_in_the_period(client, db, world):
    _rated(world, SW, 5, P0 + DAY)
    _rated(world, SW, 2, P0 + 3 * DAY, rating_comment="太慢")
    _rated(world, SW, 4, P1 - timedelta(seconds=1))
    _rated(world, SW, 1, P1)  # the period is half-open: rated at its end is outside
    _rated(world, SW, 1, P0 - DAY)  # before it
    _rated(world, GRID2, 3, P0 + 2 * DAY)
    data = get(client, world.admin, cell=DISTRICT).get_json()
    rows = {row["cell"]["code"]: row for row in data["children"]}
    assert rows[STREET]["satisfaction_count"] == 3
    assert rows[STREET]["satisfaction_avg"] == pytest.approx(11 / 3)
    assert (rows[STREET2]["satisfaction_avg"], rows[STREET2]["satisfaction_count"]) == (3.0, 1)
    assert data["satisfaction_count"] == 4 and data["satisfaction_avg"] == pytest.approx(14 / 4)
    # The other figures do not count the ratings twice.
    assert rows[STREET]["escalations"] == STREET1_FIGURES["escalations"]


def test_satisfaction_follows_the_supervisors_scope(client, db, world):
    _rated(world, SW, 5, P0 + DAY)
    _rated(world, GRID2, 1, P0 + DAY)
    data = get(client, world.street_sup, cell=STREET).get_json()
    assert [(r["cell"]["code"], r["satisfaction_avg"], r["satisfaction_count"]) for r in data["children"]] == [
        (COMMUNITY, 5.0, 1)
    ]
    assert (data["satisfaction_avg"], data["satisfaction_count"]) == (5.0, 1)


def test_no_rating_in_the_period_is_null_not_zero(client, db, world):
    _rated(world, SW, 4, P1 + DAY)
    data = get(client, world.admin, cell=DISTRICT).get_json()
    assert [(r["satisfaction_avg"], r["satisfaction_count"]) for r in data["children"]] == [(None, 0), (None, 0)]
    assert (data["satisfaction_avg"], data["satisfaction_count"]) == (None, 0)


def test_a_rating_given_through_the_api_counts(client, db, world):
    from app.models.base import utcnow

    report = make_case(world.resident, make_category(), world.cells[SW], status="closed", closed_at=utcnow())
    resp = client.post(
        f"/api/v1/reports/{report.id}/actions/rate", json={"score": 4}, headers=auth_header(world.resident)
    )
    assert resp.status_code == 200, resp.get_json()
    now = utcnow()
    query = {"cell": DISTRICT, "from": (now - DAY).isoformat(), "to": (now + DAY).isoformat()}
    data = client.get(URL, query_string=query, headers=auth_header(world.admin)).get_json()
    assert (data["satisfaction_avg"], data["satisfaction_count"]) == (4.0, 1)


# ---- one way to say each thing (issue 16) ---------------------------------------------------------


def test_the_total_row_sums_the_children_and_recomputes_the_rate(client, db, world):
    # Street 2 gets one case due in the period and closed on time: its own rate is 1, street 1's is 1/3. Their
    # mean would be 2/3; the district's rate is over the summed counts: 2 on time of 4 decided.
    make_case(
        world.resident,
        make_category(),
        world.cells[GRID2],
        status="closed",
        created_at=P0 + DAY,
        due_at=P0 + 5 * DAY,
        closed_at=P0 + 3 * DAY,
    )
    data = get(client, world.district_sup, cell=DISTRICT).get_json()
    rows = data["children"]
    total = data["total"]
    assert total["cell"]["code"] == DISTRICT
    assert [row["on_time_rate"] for row in rows] == [pytest.approx(1 / 3), 1.0]
    assert total["on_time_rate"] == pytest.approx(2 / 4)
    counts = [name for name, value in EMPTY.items() if value == 0]
    assert "due_missed" in counts
    assert {name: total[name] for name in counts} == {name: sum(row[name] for row in rows) for name in counts}
    assert (total["filed"], total["due"], total["due_missed"], total["closed"]) == (6, 5, 2, 4)
    # The mean time to close over all 4 closed cases: 3 of street 1 (2 days each on average) and one of 2 days.
    assert total["avg_close_seconds"] == pytest.approx(2 * 86400.0)
    assert (data["satisfaction_avg"], data["satisfaction_count"]) == (total["satisfaction_avg"], 0)


def test_the_total_row_of_a_cell_with_nothing_is_empty(client, world):
    resp = client.get(
        URL,
        query_string={"cell": DISTRICT, "from": "2020-01-01", "to": "2020-01-31"},
        headers=auth_header(world.admin),
    )
    total = resp.get_json()["total"]
    assert {**total, "overdue_backlog": 0} == {"cell": total["cell"], **EMPTY}
    assert total["overdue_backlog"] == 1  # today's backlog, whatever the period


def test_dates_are_local_days_in_the_timezone(client, world):
    # 2026-11-01 in Asia/Shanghai starts at 2026-10-31T16:00Z; "to" as a date includes that whole local day.
    resp = client.get(
        URL, query_string={"cell": DISTRICT, "from": "2026-11-01", "to": "2026-11-14"}, headers=auth_header(world.admin)
    )
    data = resp.get_json()
    assert (data["from"], data["to"]) == ("2026-11-01T00:00:00+08:00", "2026-11-15T00:00:00+08:00")
