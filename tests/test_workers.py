"""Workers: cell assignments (/cells/{id}/workers), the overview (/workers) and duty (/me/duty)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app.extensions import db as _db
from app.lib.coords import wgs84_to_gcj02
from app.models import DutyLog, WorkerCell
from app.models.base import utcnow
from app.services.calendar.worktime import local_day
from app.services.people.workers import serves
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    OTHER_DISTRICT,
    OTHER_GRID,
    auth_header,
    make_assignment,
    make_category,
    make_duty,
    make_escalated_case,
    make_report,
    make_two_district_grid,
    make_user,
)

API = "/api/v1"
SW = "11010500100101"
NE = "11010500100104"
SW_POINT = (116.405, 39.905)


@pytest.fixture()
def world(db):
    cells = make_two_district_grid()
    return SimpleNamespace(
        cells=cells,
        admin=make_user("admin"),
        supervisor=make_user("supervisor", cell=cells[COMMUNITY]),
        outsider=make_user("supervisor", cell=cells[OTHER_DISTRICT]),
        worker=make_user("worker", username="wang", served=[cells[SW]]),
        newcomer=make_user("worker", username="zhao"),
        far_worker=make_user("worker", username="sun", served=[cells[OTHER_GRID]]),
        resident=make_user("resident"),
    )


def assignments_snapshot(db) -> list[tuple]:
    return db.session.execute(
        select(
            WorkerCell.id,
            WorkerCell.user_id,
            WorkerCell.cell_id,
            WorkerCell.duty,
            WorkerCell.valid_from,
            WorkerCell.valid_to,
        ).order_by(WorkerCell.id)
    ).all()


def cell_url(world, code=SW) -> str:
    return f"{API}/cells/{world.cells[code].id}/workers"


def bearer_json(user) -> dict:
    return {**auth_header(user), "Content-Type": "application/json"}


# ---- POST /cells/{id}/workers -------------------------------------------------------------------


def test_admin_assigns_a_primary_worker_from_today(client, db, world):
    resp = client.post(cell_url(world, NE), headers=auth_header(world.admin), json={"user_id": world.newcomer.id})
    assert resp.status_code == 201, resp.json
    body = resp.json
    assert body["user"] == {"id": world.newcomer.id, "username": "zhao", "display_name": world.newcomer.display_name}
    assert body["cell"]["code"] == NE
    assert (body["duty"], body["valid_from"], body["valid_to"]) == ("primary", local_day().isoformat(), None)
    assert serves(world.newcomer.id, world.cells[NE].id)


def test_supervisor_assigns_a_dated_backup_in_their_subtree(client, db, world):
    start = local_day() + timedelta(days=1)
    resp = client.post(
        cell_url(world),
        headers=auth_header(world.supervisor),
        json={
            "user_id": world.newcomer.id,
            "duty": "backup",
            "valid_from": start.isoformat(),
            "valid_to": (start + timedelta(days=6)).isoformat(),
        },
    )
    assert resp.status_code == 201, resp.json
    assert resp.json["duty"] == "backup"
    cell_id = world.cells[SW].id
    assert not serves(world.newcomer.id, cell_id)  # not yet
    tomorrow = datetime.combine(start, datetime.min.time(), timezone(timedelta(hours=8))) + timedelta(hours=12)
    assert serves(world.newcomer.id, cell_id, at=tomorrow)
    assert not serves(world.newcomer.id, cell_id, at=tomorrow + timedelta(days=7))


def test_back_to_back_assignments_do_not_overlap(client, db, world):
    make_assignment(world.newcomer, world.cells[SW], valid_from=date(2025, 1, 1), valid_to=date(2025, 1, 31))
    resp = client.post(
        cell_url(world),
        headers=auth_header(world.admin),
        json={"user_id": world.newcomer.id, "valid_from": "2025-02-01"},
    )
    assert resp.status_code == 201, resp.json


@pytest.mark.parametrize(
    "body, field",
    [
        ({"user_id": "WORKER", "valid_from": "2030-01-01"}, "valid_from"),  # overlaps the open-ended one
        (
            {"user_id": "WORKER", "valid_from": "2019-01-01", "valid_to": "2020-01-01"},
            "valid_from",
        ),  # touches its start
        ({"user_id": "NEWCOMER", "valid_from": "2025-01-10", "valid_to": "2025-01-05"}, "valid_to"),
        ({"user_id": "RESIDENT"}, "user_id"),
        ({"user_id": "SUPERVISOR"}, "user_id"),
        ({"user_id": 999999}, "user_id"),
        ({"user_id": "GONE"}, "user_id"),
        ({"user_id": "NEWCOMER", "duty": "chief"}, "duty"),
        ({"user_id": "7"}, "user_id"),
        ({"user_id": True}, "user_id"),
        ({"user_id": "NEWCOMER", "valid_from": "yesterday"}, "valid_from"),
        ({"user_id": "NEWCOMER", "shift": "night"}, "shift"),
        ({}, "user_id"),
    ],
)
def test_assignment_rejects_bad_input_and_changes_nothing(client, db, world, body, field):
    people = {
        "WORKER": world.worker,
        "NEWCOMER": world.newcomer,
        "RESIDENT": world.resident,
        "SUPERVISOR": world.supervisor,
        "GONE": make_user("worker", active=False),
    }
    body = {k: people[v].id if isinstance(v, str) and v in people else v for k, v in body.items()}
    before = assignments_snapshot(db)
    resp = assert_problem(
        client.post(cell_url(world), headers=auth_header(world.admin), json=body), 422, "validation_failed"
    )
    assert field in resp["errors"], resp
    assert assignments_snapshot(db) == before


@pytest.mark.parametrize("code", [COMMUNITY, DISTRICT])
def test_a_worker_serves_only_grid_cells(client, db, world, code):
    before = assignments_snapshot(db)
    resp = assert_problem(
        client.post(cell_url(world, code), headers=auth_header(world.admin), json={"user_id": world.newcomer.id}),
        422,
        "validation_failed",
    )
    assert "cell" in resp["errors"]
    assert assignments_snapshot(db) == before


def test_assignment_rejects_malformed_json(client, db, world):
    before = assignments_snapshot(db)
    assert_problem(client.post(cell_url(world), headers=bearer_json(world.admin), data="{"), 400, "malformed_json")
    assert assignments_snapshot(db) == before


def test_assignment_wrong_callers(client, db, world):
    body = {"user_id": world.newcomer.id}
    before = assignments_snapshot(db)
    assert_problem(client.post(cell_url(world), json=body), 401, "missing_token")
    assert_problem(client.post(cell_url(world), json=body, headers=auth_header(world.worker)), 403, "forbidden")
    assert_problem(client.post(cell_url(world), json=body, headers=auth_header(world.resident)), 403, "forbidden")
    assert_problem(client.post(cell_url(world), json=body, headers=auth_header(world.outsider)), 403, "outside_subtree")
    assert_problem(
        client.post(f"{API}/cells/999999/workers", json=body, headers=auth_header(world.admin)), 404, "cell_not_found"
    )
    assert assignments_snapshot(db) == before


# ---- GET /cells/{id}/workers --------------------------------------------------------------------


def test_cell_assignments_latest_first_with_a_day_filter(client, db, world):
    old = make_assignment(
        world.newcomer, world.cells[SW], duty="backup", valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31)
    )
    resp = client.get(cell_url(world), headers=auth_header(world.supervisor))
    assert resp.status_code == 200, resp.json
    assert resp.json["total"] == 2
    assert [a["user"]["username"] for a in resp.json["items"]] == ["zhao", "wang"]
    resp = client.get(f"{cell_url(world)}?on=2019-06-01", headers=auth_header(world.admin))
    assert resp.json["items"] == []
    resp = client.get(f"{cell_url(world)}?on=2025-06-01", headers=auth_header(world.admin))
    assert [a["user"]["username"] for a in resp.json["items"]] == ["wang"]
    resp = client.get(f"{cell_url(world)}?on=2024-06-01", headers=auth_header(world.admin))
    assert [a["id"] for a in resp.json["items"]][0] == old.id
    assert resp.json["items"][0]["valid_to"] == "2024-12-31"


def test_cell_assignments_wrong_callers_and_bad_query(client, db, world):
    assert_problem(client.get(cell_url(world)), 401, "missing_token")
    assert_problem(client.get(cell_url(world), headers=auth_header(world.worker)), 403, "forbidden")
    assert_problem(client.get(cell_url(world), headers=auth_header(world.outsider)), 403, "outside_subtree")
    assert_problem(client.get(f"{cell_url(world)}?on=soon", headers=auth_header(world.admin)), 422, "validation_failed")


# ---- DELETE /cells/{id}/workers/{assignment} ----------------------------------------------------


def test_ending_a_running_assignment_keeps_it_as_history(client, db, world):
    assignment = db.session.scalars(select(WorkerCell).where(WorkerCell.user_id == world.worker.id)).one()
    resp = client.delete(f"{cell_url(world)}/{assignment.id}", headers=auth_header(world.supervisor))
    assert resp.status_code == 204
    db.session.expire_all()
    assert db.session.get(WorkerCell, assignment.id).valid_to == local_day() - timedelta(days=1)
    assert not serves(world.worker.id, world.cells[SW].id)
    # Already ended: nothing left to end.
    assert_problem(
        client.delete(f"{cell_url(world)}/{assignment.id}", headers=auth_header(world.admin)), 409, "assignment_ended"
    )


def test_ending_an_assignment_not_yet_begun_removes_it(client, db, world):
    future = make_assignment(world.newcomer, world.cells[SW], valid_from=local_day() + timedelta(days=3))
    resp = client.delete(f"{cell_url(world)}/{future.id}", headers=auth_header(world.admin))
    assert resp.status_code == 204
    db.session.expire_all()
    assert db.session.get(WorkerCell, future.id) is None


def test_ending_an_assignment_wrong_callers(client, db, world):
    assignment = db.session.scalars(select(WorkerCell).where(WorkerCell.user_id == world.worker.id)).one()
    url = f"{cell_url(world)}/{assignment.id}"
    before = assignments_snapshot(db)
    assert_problem(client.delete(url), 401, "missing_token")
    assert_problem(client.delete(url, headers=auth_header(world.worker)), 403, "forbidden")
    assert_problem(client.delete(url, headers=auth_header(world.outsider)), 403, "outside_subtree")
    # The assignment belongs to another cell than the URL says.
    assert_problem(
        client.delete(f"{cell_url(world, NE)}/{assignment.id}", headers=auth_header(world.admin)),
        404,
        "assignment_not_found",
    )
    assert assignments_snapshot(db) == before


# ---- what a worker sees follows the assignment's dates -------------------------------------------


def test_worker_sees_reports_of_cells_served_today_and_cases_assigned_to_them(client, db, world):
    category = make_category()
    report = make_report(world.resident, category, *SW_POINT)
    handed = make_report(world.resident, category, *SW_POINT)
    handed.assignee_id = world.worker.id
    db.session.commit()
    assert client.get(f"{API}/reports/{report.id}", headers=auth_header(world.worker)).status_code == 200
    assignment = db.session.scalars(select(WorkerCell).where(WorkerCell.user_id == world.worker.id)).one()
    assignment.valid_to = local_day() - timedelta(days=1)
    db.session.commit()
    assert_problem(client.get(f"{API}/reports/{report.id}", headers=auth_header(world.worker)), 404, "report_not_found")
    assert client.get(f"{API}/reports/{handed.id}", headers=auth_header(world.worker)).status_code == 200
    assert client.get(f"{API}/me", headers=auth_header(world.worker)).json["served_cells"] == []


# ---- POST /me/duty ------------------------------------------------------------------------------


def test_worker_goes_on_and_off_duty_and_the_log_is_kept(client, db, world):
    lon, lat = wgs84_to_gcj02(*SW_POINT)
    resp = client.post(
        f"{API}/me/duty",
        headers=auth_header(world.worker),
        json={"duty": "on", "position": {"lon": lon, "lat": lat, "crs": "gcj02"}},
    )
    assert resp.status_code == 201, resp.json
    assert resp.json["duty"] == "on"
    assert resp.json["position"]["crs"] == "wgs84"
    assert resp.json["position"]["lon"] == pytest.approx(SW_POINT[0], abs=1e-5)
    assert resp.json["at"].endswith("+08:00")
    resp = client.post(
        f"{API}/me/duty",
        headers=auth_header(world.worker),
        json={"duty": "off", "position": {"lon": 116.406, "lat": 39.906}},
    )
    assert resp.status_code == 201, resp.json
    log = db.session.scalars(select(DutyLog).where(DutyLog.user_id == world.worker.id).order_by(DutyLog.id)).all()
    assert [entry.on_duty for entry in log] == [True, False]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"duty": "maybe", "position": {"lon": 116.4, "lat": 39.9}}, "duty"),
        ({"duty": "on"}, "position"),
        ({"position": {"lon": 116.4, "lat": 39.9}}, "duty"),
        ({"duty": "on", "position": {"lon": 116.4, "lat": 91}}, "position"),
        ({"duty": "on", "position": {"lon": "116.4", "lat": 39.9}}, "position"),
        ({"duty": "on", "position": {"lon": 116.4, "lat": 39.9, "crs": "mars"}}, "position"),
        ({"duty": "on", "position": {"lon": 116.4, "lat": 39.9}, "shift": 1}, "shift"),
        ({"duty": True, "position": {"lon": 116.4, "lat": 39.9}}, "duty"),
    ],
)
def test_duty_rejects_bad_input_and_logs_nothing(client, db, world, body, field):
    resp = assert_problem(
        client.post(f"{API}/me/duty", headers=auth_header(world.worker), json=body), 422, "validation_failed"
    )
    assert field in resp["errors"], resp
    assert db.session.scalars(select(DutyLog)).all() == []


def test_duty_wrong_callers(client, db, world):
    body = {"duty": "on", "position": {"lon": 116.4, "lat": 39.9}}
    assert_problem(client.post(f"{API}/me/duty", json=body), 401, "missing_token")
    for user in (world.resident, world.supervisor, world.admin):
        assert_problem(client.post(f"{API}/me/duty", json=body, headers=auth_header(user)), 403, "forbidden")
    assert_problem(client.post(f"{API}/me/duty", headers=bearer_json(world.worker), data="{"), 400, "malformed_json")
    assert db.session.scalars(select(DutyLog)).all() == []


# ---- GET /workers -------------------------------------------------------------------------------


def give_cases(world, worker, *, open_=0, overdue=0):
    category = make_category()
    now = utcnow()
    for status, count, deadline in (
        ("in_progress", open_, now + timedelta(hours=2)),
        ("assigned", overdue, now - timedelta(hours=1)),
    ):
        for _ in range(count):
            report = make_report(world.resident, category, *SW_POINT)
            # At the grid level the level's deadline is the case's own due time.
            report.status, report.assignee_id, report.deadline_at, report.due_at = status, worker.id, deadline, deadline
    _db.session.commit()


def test_admin_sees_every_active_worker_with_cells_duty_load_and_position(client, db, world):
    make_assignment(world.worker, world.cells[NE], duty="backup")
    make_user("worker", username="away", active=False)
    give_cases(world, world.worker, open_=2, overdue=1)
    earlier = utcnow() - timedelta(hours=2)
    make_duty(world.worker, True, 116.401, 39.901, at=earlier)
    make_duty(world.far_worker, True, 116.505, 39.905, at=earlier)
    # A report filed after going on duty is the newer position.
    make_report(world.far_worker, make_category(), 116.506, 39.906)

    resp = client.get(f"{API}/workers", headers=auth_header(world.admin))
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert [w["username"] for w in body["items"]] == ["sun", "wang", "zhao"] and body["total"] == 3
    sun, wang, zhao = body["items"]
    assert [(c["cell"]["code"], c["duty"]) for c in wang["cells"]] == [(SW, "primary"), (NE, "backup")]
    assert (wang["on_duty"], wang["open_cases"], wang["overdue_cases"]) == (True, 3, 1)
    assert wang["last_position"]["source"] == "duty"
    assert (wang["last_position"]["lon"], wang["last_position"]["lat"]) == (116.401, 39.901)
    assert wang["last_position"]["at"].endswith("+08:00")
    assert sun["last_position"]["source"] == "report"
    assert (sun["last_position"]["lon"], sun["last_position"]["lat"]) == pytest.approx((116.506, 39.906))
    assert (zhao["cells"], zhao["on_duty"], zhao["open_cases"], zhao["last_position"]) == ([], False, 0, None)


def test_a_case_late_at_an_earlier_level_counts_among_the_overdue(client, db, world):
    """Escalated once and inside the community's new window, the case is still late: still one of the worker's
    overdue cases."""
    give_cases(world, world.worker, open_=1)
    category = make_category(hours=4, window=8, window_unit="hours")
    make_escalated_case(world.resident, category, world.cells[SW], assignee_id=world.worker.id)
    resp = client.get(f"{API}/workers", headers=auth_header(world.admin))
    wang = next(w for w in resp.json["items"] if w["username"] == "wang")
    assert (wang["open_cases"], wang["overdue_cases"]) == (2, 1)


def test_supervisor_sees_the_workers_of_their_subtree(client, db, world):
    resp = client.get(f"{API}/workers", headers=auth_header(world.supervisor))
    assert resp.status_code == 200, resp.json
    assert [w["username"] for w in resp.json["items"]] == ["wang"]


def test_workers_by_cell_and_duty(client, db, world):
    make_assignment(world.newcomer, world.cells[SW], duty="backup")
    make_duty(world.newcomer, True)
    headers = auth_header(world.supervisor)
    names = lambda q: [w["username"] for w in client.get(f"{API}/workers?{q}", headers=headers).json["items"]]
    assert names(f"cell_id={world.cells[SW].id}") == ["wang", "zhao"]
    assert names(f"cell_id={world.cells[NE].id}") == []
    # A cell scopes to its subtree, as every cell filter does: the community's workers are its grid cells' workers.
    assert names(f"cell={COMMUNITY}") == names(f"cell_id={world.cells[COMMUNITY].id}") == ["wang", "zhao"]
    assert names(f"cell={SW}") == names(f"cell_id={world.cells[SW].id}&cell={SW}") == ["wang", "zhao"]
    assert names("on_duty=true") == ["zhao"]
    assert names(f"cell_id={world.cells[SW].id}&on_duty=false") == ["wang"]


def test_workers_wrong_callers_and_bad_query(client, db, world):
    assert_problem(client.get(f"{API}/workers"), 401, "missing_token")
    for user in (world.worker, world.resident):
        assert_problem(client.get(f"{API}/workers", headers=auth_header(user)), 403, "forbidden")
    assert_problem(
        client.get(f"{API}/workers?cell_id={world.cells[SW].id}", headers=auth_header(world.outsider)),
        403,
        "outside_subtree",
    )
    headers = auth_header(world.admin)
    for query in ("cell=abc", "cell_id=abc", "on_duty=perhaps", "page_size=500", "cell=999999", "cell_id=999999"):
        assert_problem(client.get(f"{API}/workers?{query}", headers=headers), 422, "validation_failed")


OVERSIZED = '{"user_id": 1, "pad": "' + "x" * (1024 * 1024) + '"}'


def test_worker_writes_refuse_an_oversized_body_and_change_nothing(client, db, world):
    before = assignments_snapshot(db)
    assert_problem(
        client.post(cell_url(world), headers=bearer_json(world.admin), data=OVERSIZED), 413, "payload_too_large"
    )
    assert_problem(
        client.post(f"{API}/me/duty", headers=bearer_json(world.worker), data=OVERSIZED), 413, "payload_too_large"
    )
    assert assignments_snapshot(db) == before
    assert db.session.scalars(select(DutyLog)).all() == []
