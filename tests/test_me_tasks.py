"""My worker's day: my open cases (/me/tasks) and my cells with their polygons (/me/cells)."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from shapely.geometry import shape

from app.extensions import db as _db
from app.models import CaseEvent
from app.models.base import utcnow
from app.services.calendar.worktime import local_day
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    GRID_BOXES,
    auth_header,
    make_assignment,
    make_case,
    make_category,
    make_test_grid,
    make_user,
    square,
)

API = "/api/v1"
TASKS = f"{API}/me/tasks"
CELLS = f"{API}/me/cells"
SW, SE, NE = "11010500100101", "11010500100102", "11010500100104"


@pytest.fixture()
def world(db):
    cells = make_test_grid()
    return SimpleNamespace(
        cells=cells,
        admin=make_user("admin"),
        supervisor=make_user("supervisor", cell=cells[COMMUNITY]),
        worker=make_user("worker", username="wang", served=[cells[SW]]),
        other=make_user("worker", username="li", served=[cells[SW]]),
        resident=make_user("resident"),
        category=make_category(),
    )


def event(report, actor, action, note=None, minutes_ago=0):
    _db.session.add(
        CaseEvent(
            report_id=report.id,
            actor_id=actor.id if actor else None,
            actor_role=actor.role if actor else "system",
            action=action,
            note=note,
            created_at=utcnow() - timedelta(minutes=minutes_ago),
        )
    )
    _db.session.commit()


def case(world, status="assigned", hours=None, assignee="worker", **fields):
    now = utcnow()
    deadline = None if hours is None else now + timedelta(hours=hours)
    clock = {
        "deadline_at": deadline,
        "warn_at": None if hours is None else deadline - timedelta(hours=2),
        "due_at": deadline,
        **fields,
    }
    return make_case(
        world.resident,
        world.category,
        world.cells[SW],
        status=status,
        assignee_id=getattr(world, assignee).id if assignee else None,
        accepted_at=now - timedelta(hours=1),
        **clock,
    )


# ---- GET /me/tasks ------------------------------------------------------------------------------


def test_my_tasks_soonest_deadline_first_without_a_deadline_last(client, db, world):
    later = case(world, "in_progress", hours=5)
    overdue = case(world, "assigned", hours=-1)
    no_deadline = case(world, "assigned")
    soon = case(world, "on_hold", hours=1, hold_started_at=utcnow() - timedelta(minutes=30))
    tie_a = case(world, "assigned", hours=3)
    tie_b = case(world, "assigned", deadline_at=tie_a.deadline_at, warn_at=tie_a.warn_at)
    first_no_deadline = no_deadline
    second_no_deadline = case(world, "in_progress")
    # Not mine to act on: resolved, closed, someone else's, unassigned.
    case(world, "resolved", hours=0.5)
    case(world, "closed", hours=0.2)
    case(world, "assigned", hours=0.1, assignee="other")
    case(world, "accepted", hours=0.1, assignee=None)

    resp = client.get(TASKS, headers=auth_header(world.worker))
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert [t["id"] for t in body["items"]] == [
        overdue.id,
        soon.id,
        tie_a.id,
        tie_b.id,
        later.id,
        first_no_deadline.id,
        second_no_deadline.id,
    ]
    assert tie_a.id < tie_b.id and first_no_deadline.id < second_no_deadline.id
    assert body["total"] == 7
    states = {t["id"]: t["sla_state"] for t in body["items"]}
    assert (states[overdue.id], states[soon.id], states[later.id], states[no_deadline.id]) == (
        "red",
        "yellow",
        "green",
        None,
    )


def test_a_task_carries_its_location_cell_and_latest_event(client, db, world):
    report = case(world, "in_progress", hours=4, lon=116.4052, lat=39.9051)
    event(report, world.resident, "create", minutes_ago=30)
    event(report, None, "assign", minutes_ago=20)
    event(report, world.worker, "start", note="On my way", minutes_ago=10)
    quiet = case(world, "assigned", hours=6)
    tasks = client.get(TASKS, headers=auth_header(world.worker)).json["items"]
    task = tasks[0]
    assert task["id"] == report.id and task["case_number"] == report.case_number
    assert task["location"] == {"lon": 116.4052, "lat": 39.9051, "crs": "wgs84"}
    assert task["cell"]["code"] == SW
    assert task["deadline_at"].endswith("+08:00")
    last = task["last_event"]
    assert (last["action"], last["note"], last["actor_role"]) == ("start", "On my way", "worker")
    assert last["actor"] == {"id": world.worker.id, "username": "wang", "display_name": world.worker.display_name}
    assert last["at"].endswith("+08:00")
    assert tasks[1]["id"] == quiet.id and tasks[1]["last_event"] is None


def test_a_system_event_has_no_actor(client, db, world):
    report = case(world, "assigned", hours=4)
    event(report, None, "escalate")
    last = client.get(TASKS, headers=auth_header(world.worker)).json["items"][0]["last_event"]
    assert (last["action"], last["actor"], last["actor_role"]) == ("escalate", None, "system")


def test_my_tasks_by_status_and_in_pages(client, db, world):
    resolved = case(world, "resolved", hours=1)
    ids = [case(world, "assigned", hours=h).id for h in (4, 2, 3)]
    headers = auth_header(world.worker)
    assert [t["id"] for t in client.get(f"{TASKS}?status=resolved", headers=headers).json["items"]] == [resolved.id]
    assert client.get(f"{TASKS}?status=in_progress", headers=headers).json == {
        "items": [],
        "page": 1,
        "page_size": 20,
        "total": 0,
    }
    page = client.get(f"{TASKS}?page=2&page_size=2", headers=headers).json
    assert ([t["id"] for t in page["items"]], page["total"]) == ([ids[0]], 3)


def test_my_tasks_for_callers_without_cases_and_bad_queries(client, db, world):
    case(world, "assigned", hours=1)
    for user in (world.resident, world.supervisor, world.admin, world.other):
        resp = client.get(TASKS, headers=auth_header(user))
        assert (resp.status_code, resp.json["items"], resp.json["total"]) == (200, [], 0)
    assert_problem(client.get(TASKS), 401, "missing_token")
    headers = auth_header(world.worker)
    for query in ("status=closed", "status=nonsense", "page_size=500", "page=0", "page=x", "cell=1", "cell=999999"):
        assert_problem(client.get(f"{TASKS}?{query}", headers=headers), 422, "validation_failed")


def test_my_tasks_by_cell_code_or_id(client, db, world):
    mine = case(world, "assigned", hours=1)
    headers = auth_header(world.worker)

    def ids(query):
        resp = client.get(TASKS, query_string=query, headers=headers)
        assert resp.status_code == 200, resp.json
        return [t["id"] for t in resp.json["items"]]

    assert ids({"cell": SW}) == ids({"cell": COMMUNITY}) == ids({"cell_id": world.cells[SW].id}) == [mine.id]
    assert ids({"cell": NE}) == []
    # Another worker's cases stay theirs whatever cell is asked for.
    assert client.get(TASKS, query_string={"cell": SW}, headers=auth_header(world.other)).json["items"] == []
    body = assert_problem(
        client.get(TASKS, query_string={"cell": NE, "cell_id": world.cells[SW].id}, headers=headers),
        422,
        "validation_failed",
    )
    assert "cell" in body["errors"]


# ---- GET /me/cells ------------------------------------------------------------------------------


def test_a_worker_gets_the_cells_served_today_with_duty_dates_and_polygons(client, db, world):
    today = local_day()
    make_assignment(world.worker, world.cells[NE], duty="backup", valid_from=today, valid_to=today + timedelta(days=6))
    make_assignment(world.worker, world.cells[SE], valid_from=date(2024, 1, 1), valid_to=today - timedelta(days=1))
    make_assignment(world.worker, world.cells[SE], duty="backup", valid_from=today + timedelta(days=1))
    resp = client.get(CELLS, headers=auth_header(world.worker))
    assert resp.status_code == 200, resp.json
    assert [(c["code"], c["duty"], c["level"]) for c in resp.json] == [(SW, "primary", "grid"), (NE, "backup", "grid")]
    sw, ne = resp.json
    assert (sw["id"], sw["name"], sw["valid_to"]) == (world.cells[SW].id, world.cells[SW].name, None)
    assert (ne["valid_from"], ne["valid_to"]) == (today.isoformat(), (today + timedelta(days=6)).isoformat())
    assert ne["geometry"]["type"] == "MultiPolygon"
    assert shape(ne["geometry"]).equals(square(*GRID_BOXES[NE]))


def test_a_supervisor_gets_their_subtree_root_and_an_admin_nothing(client, db, world):
    resp = client.get(CELLS, headers=auth_header(world.supervisor))
    assert resp.status_code == 200, resp.json
    assert [(c["code"], c["level"], c["duty"]) for c in resp.json] == [(COMMUNITY, "community", "supervisor")]
    assert shape(resp.json[0]["geometry"]).equals(square(116.40, 39.90, 116.42, 39.92))
    assert client.get(CELLS, headers=auth_header(world.admin)).json == []
    assert client.get(CELLS, headers=auth_header(make_user("worker"))).json == []


def test_my_cells_wrong_callers(client, db, world):
    assert_problem(client.get(CELLS), 401, "missing_token")
    assert_problem(client.get(CELLS, headers=auth_header(world.resident)), 403, "forbidden")
