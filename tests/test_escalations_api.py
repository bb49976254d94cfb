"""GET /api/v1/escalations: escalated open cases in the caller's subtree, most overdue first, with their context."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from app.models import CaseEvent
from app.models.base import utcnow
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    OTHER_DISTRICT,
    OTHER_GRID,
    STREET,
    auth_header,
    make_case,
    make_category,
    make_escalated_case,
    make_two_district_grid,
    make_user,
)

URL = "/api/v1/escalations"
SW = "11010500100101"
HOUR = timedelta(hours=1)


@pytest.fixture()
def world(db):
    cells = make_two_district_grid()
    category = make_category()
    resident = make_user("resident")
    worker = make_user("worker", served=[cells[SW]])
    now = utcnow()

    def case(grid, handling, level, overdue_hours, **fields):
        # Late since the grid level's deadline (its own due time), before the level now handling it got its window.
        late = now - (overdue_hours + 3) * HOUR
        return make_case(
            resident,
            category,
            cells[grid],
            status=fields.pop("status", "assigned"),
            assignee_id=worker.id,
            escalation_level=level,
            handling_cell_id=cells[handling].id,
            escalated_at=now - 3 * HOUR,
            deadline_at=now - overdue_hours * HOUR,
            due_at=late,
            late_since=late if level else None,
            **fields,
        )

    at_community = case(SW, COMMUNITY, 1, 2)
    at_street = case(SW, STREET, 2, 5, critical=False)
    not_escalated = case(SW, SW, 0, 9)
    closed = case(SW, COMMUNITY, 1, 9, status="closed")
    elsewhere = case(OTHER_GRID, "110106001001", 1, 1)
    for i, action in enumerate(["create", "accept", "assign", "escalate"]):
        db.session.add(
            CaseEvent(report_id=at_community.id, actor_role="system", action=action, created_at=now - (10 - i) * HOUR)
        )
    db.session.commit()
    return SimpleNamespace(
        cells=cells,
        worker=worker,
        resident=resident,
        at_community=at_community,
        at_street=at_street,
        not_escalated=not_escalated,
        closed=closed,
        elsewhere=elsewhere,
        community_sup=make_user("supervisor", cell=cells[COMMUNITY]),
        street_sup=make_user("supervisor", cell=cells[STREET]),
        district_sup=make_user("supervisor", cell=cells[DISTRICT]),
        other_sup=make_user("supervisor", cell=cells[OTHER_DISTRICT]),
        grid_sup=make_user("supervisor", cell=cells[SW]),
        no_cell_sup=make_user("supervisor"),
        admin=make_user("admin"),
    )


def ids(resp) -> list[int]:
    assert resp.status_code == 200, resp.get_json()
    return [item["id"] for item in resp.get_json()["items"]]


def test_supervisors_see_cases_escalated_into_their_subtree_most_overdue_first(client, world):
    assert ids(client.get(URL, headers=auth_header(world.district_sup))) == [world.at_street.id, world.at_community.id]
    assert ids(client.get(URL, headers=auth_header(world.street_sup))) == [world.at_street.id, world.at_community.id]
    assert ids(client.get(URL, headers=auth_header(world.community_sup))) == [world.at_community.id]
    assert ids(client.get(URL, headers=auth_header(world.other_sup))) == [world.elsewhere.id]
    assert ids(client.get(URL, headers=auth_header(world.grid_sup))) == []
    assert ids(client.get(URL, headers=auth_header(world.no_cell_sup))) == []
    assert ids(client.get(URL, headers=auth_header(world.admin))) == [
        world.at_street.id,
        world.at_community.id,
        world.elsewhere.id,
    ]


def test_each_case_carries_chain_assignee_overdue_time_and_last_events(client, world):
    resp = client.get(URL, query_string={"escalation_level": "community"}, headers=auth_header(world.community_sup))
    data = resp.get_json()
    assert data["total"] == 1
    item = data["items"][0]
    assert (item["level"], item["escalation_level"], item["status"]) == ("community", 1, "assigned")
    assert item["handling_cell"]["code"] == COMMUNITY
    assert [(c["code"], c["level"]) for c in item["chain"]] == [
        (SW, "grid"),
        (COMMUNITY, "community"),
        (STREET, "street"),
        (DISTRICT, "district"),
    ]
    assert item["assignee"]["id"] == world.worker.id
    # Counted from late_since (5 hours ago), not from the community's deadline (2 hours ago).
    assert 5 * 3600 <= item["overdue_seconds"] < 5 * 3600 + 600
    assert item["late_since"] == item["due_at"]
    assert [e["action"] for e in item["last_events"]] == ["escalate", "assign", "accept"]
    assert item["case_number"] == world.at_community.case_number


def test_filters_by_cell_and_level_and_pages(client, world):
    headers = auth_header(world.district_sup)
    assert ids(client.get(URL, query_string={"cell": COMMUNITY}, headers=headers)) == [world.at_community.id]
    community_id = world.at_community.handling_cell_id
    assert ids(client.get(URL, query_string={"cell_id": community_id}, headers=headers)) == [world.at_community.id]
    assert ids(client.get(URL, query_string={"escalation_level": "street"}, headers=headers)) == [world.at_street.id]
    assert ids(client.get(URL, query_string={"escalation_level": "2"}, headers=headers)) == [world.at_street.id]
    assert ids(client.get(URL, query_string={"escalation_level": "grid"}, headers=headers)) == []
    resp = client.get(URL, query_string={"page": 2, "page_size": 1}, headers=headers)
    assert ids(resp) == [world.at_community.id]
    assert resp.get_json()["total"] == 2


@pytest.mark.parametrize(
    "query, field",
    [
        ({"escalation_level": "city"}, "escalation_level"),
        ({"escalation_level": "4"}, "escalation_level"),
        ({"escalation_level": "-1"}, "escalation_level"),
        ({"escalation_level": "Street"}, "escalation_level"),
        ({"page": 0}, "page"),
        ({"page_size": 1000}, "page_size"),
        ({"cell": "12"}, "cell"),
        ({"cell": "999999"}, "cell"),
        ({"cell_id": 999_999}, "cell_id"),
        ({"cell_id": "abc"}, "cell_id"),
    ],
)
def test_bad_arguments_are_422(client, world, query, field):
    body = assert_problem(
        client.get(URL, query_string=query, headers=auth_header(world.district_sup)), 422, "validation_failed"
    )
    assert field in body["errors"]


def test_a_cell_outside_the_subtree_is_403(client, world):
    resp = client.get(URL, query_string={"cell": "110106001001"}, headers=auth_header(world.community_sup))
    assert_problem(resp, 403, "outside_subtree")


def test_a_cell_id_and_code_that_disagree_are_422(client, world):
    query = {"cell": COMMUNITY, "cell_id": world.at_street.handling_cell_id}
    body = assert_problem(
        client.get(URL, query_string=query, headers=auth_header(world.district_sup)), 422, "validation_failed"
    )
    assert "cell" in body["errors"]


@pytest.mark.parametrize("who", ["worker", "resident"])
def test_workers_and_residents_are_403(client, world, who):
    assert_problem(client.get(URL, headers=auth_header(getattr(world, who))), 403, "forbidden")


def test_no_token_is_401(client, world):
    assert_problem(client.get(URL), 401, "missing_token")


def test_overdue_seconds_count_from_late_since_inside_the_new_window(client, db):
    """The issue's case: escalated once and inside the community's fresh window, it is still overdue since the due
    time it missed; a case on hold is measured where its clock stopped, and the order follows overdue_seconds."""
    cells = make_two_district_grid()
    category = make_category(hours=4, window=8, window_unit="hours")
    resident = make_user("resident")
    swept = make_escalated_case(resident, category, cells[SW], hours_late=2)
    now = utcnow()
    # Late ten hours ago, on hold for the last nine: one hour overdue.
    held = make_case(
        resident,
        category,
        cells[SW],
        status="on_hold",
        escalation_level=1,
        handling_cell_id=cells[COMMUNITY].id,
        due_at=now - 10 * HOUR,
        late_since=now - 10 * HOUR,
        deadline_at=now + HOUR,
        hold_started_at=now - 9 * HOUR,
    )
    resp = client.get(URL, headers=auth_header(make_user("supervisor", cell=cells[COMMUNITY])))
    assert resp.status_code == 200, resp.get_json()
    items = resp.get_json()["items"]
    assert [item["id"] for item in items] == [swept.id, held.id]
    first, second = items
    assert 2 * 3600 <= first["overdue_seconds"] < 2 * 3600 + 600
    assert first["late_since"] == first["due_at"] and first["deadline_at"] > first["late_since"]
    assert second["overdue_seconds"] == pytest.approx(3600, abs=1)
