"""Reports: filing (routing, status, deadline, history), bad input, and who may read which report."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from geoalchemy2.shape import to_shape
from psycopg.pq import PipelineStatus
from sqlalchemy import Integer, bindparam, delete, event, func, select, update

from app.dialect.engine import DriverStatement
from app.lib.coords import gcj02_to_bd09, wgs84_to_gcj02
from app.models import CaseEvent, Cell, Notification, Report, WorkerCell
from app.models.base import utcnow
from app.services.calendar.worktime import local_day
from app.services.cases import reports as report_service, sla
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    OTHER_COMMUNITY,
    OTHER_GRID,
    auth_header,
    make_assignment,
    make_category,
    make_escalated_case,
    make_report,
    make_two_district_grid,
    make_user,
    set_case,
)

URL = "/api/v1/reports"
PROBLEM = "application/problem+json"
SW = "11010500100101"
NE = "11010500100104"
SW_POINT = (116.405, 39.905)
NE_POINT = (116.415, 39.915)
OTHER_POINT = (116.505, 39.905)
FAR_POINT = (100.0, 30.0)  # no cell anywhere near


@pytest.fixture()
def world(db):
    """The test grid, a second district beside it, one category, and an account of every kind."""
    cells = make_two_district_grid()
    other_community = cells[OTHER_COMMUNITY]
    category = make_category(hours=4)
    return SimpleNamespace(
        cells=cells,
        category=category,
        resident=make_user("resident"),
        resident2=make_user("resident"),
        worker=make_user("worker", served=[cells[SW]]),
        other_worker=make_user("worker", served=[cells[OTHER_GRID]]),
        supervisor=make_user("supervisor", cell=cells[COMMUNITY]),
        other_supervisor=make_user("supervisor", cell=other_community),
        root_supervisor=make_user("supervisor", cell=cells[DISTRICT]),
        admin=make_user("admin"),
    )


def body(world, lon_lat=SW_POINT, **overrides):
    data = {
        "category_code": world.category.code,
        "description": "垃圾桶满溢",
        "location": {"lon": lon_lat[0], "lat": lon_lat[1]},
        "address": "东四北大街 1 号",
    }
    data.update(overrides)
    return data


def report_count(db) -> int:
    return db.session.scalar(select(func.count()).select_from(Report))


def event_count(db) -> int:
    return db.session.scalar(select(func.count()).select_from(CaseEvent))


def parse_local(value: str) -> datetime:
    assert value.endswith("+08:00"), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(hours=8)
    return parsed


# ---- filing -------------------------------------------------------------------------------------


def test_resident_files_a_report_routed_to_its_cell(client, db, world):
    resp = client.post(URL, json=body(world), headers=auth_header(world.resident))
    assert resp.status_code == 201, resp.json
    out = resp.json
    assert out["status"] == "submitted"
    assert out["cell"] == {"id": world.cells[SW].id, "code": SW, "name": world.cells[SW].name, "level": "grid"}
    assert out["routed_by"] == "covers"
    assert out["needs_triage"] is False
    assert out["reporter_id"] == world.resident.id
    assert out["category"]["code"] == world.category.code
    assert out["description"] == "垃圾桶满溢"
    assert out["address"] == "东四北大街 1 号"
    assert out["location"] == {"lon": SW_POINT[0], "lat": SW_POINT[1], "crs": "wgs84"}

    created = parse_local(out["created_at"])
    parse_local(out["updated_at"])
    # The clock starts only when the case is accepted.
    assert out["deadline_at"] is None and out["due_at"] is None and out["accepted_at"] is None
    assert out["sla_state"] is None and out["assignee"] is None and out["escalation_level"] == 0
    assert out["handling_cell"]["code"] == SW and out["critical"] is False and out["duplicate_of"] is None
    # The case number is the local day of filing followed by the zero-padded id.
    assert out["case_number"] == f"{created:%Y%m%d}{out['id']:07d}"

    stored = db.session.get(Report, out["id"])
    assert stored.reporter_id == world.resident.id and stored.cell_id == world.cells[SW].id
    assert stored.case_number == out["case_number"]
    events = db.session.scalars(select(CaseEvent).where(CaseEvent.report_id == out["id"])).all()
    assert len(events) == 1
    event = events[0]
    assert (event.action, event.from_status, event.to_status) == ("create", None, "submitted")
    assert (event.actor_id, event.actor_role) == (world.resident.id, "resident")
    assert event.data["cell_code"] == SW


def test_deadline_follows_the_category_limit(client, db, world):
    slow = make_category(hours=48)
    resp = client.post(URL, json=body(world, category_code=slow.code), headers=auth_header(world.worker))
    assert resp.status_code == 201, resp.json
    out = resp.json
    # Accepted at filing, then handed at once to the cell's only worker by auto-dispatch.
    assert (out["status"], out["assignee"]["id"]) == ("assigned", world.worker.id)
    assert parse_local(out["accepted_at"]) == parse_local(out["created_at"])
    assert parse_local(out["deadline_at"]) - parse_local(out["created_at"]) == timedelta(hours=48)
    assert out["due_at"] == out["deadline_at"]
    assert parse_local(out["warn_at"]) - parse_local(out["created_at"]) == timedelta(hours=48 * 0.8)
    assert out["sla_state"] == "green"
    assert (out["time_limit_value"], out["time_limit_unit"]) == (48, "hours")


def test_auto_accept_category_starts_residents_reports_accepted_with_a_clock(client, db, world):
    auto = make_category(hours=6, auto_accept=True)
    resp = client.post(URL, json=body(world, category_code=auto.code), headers=auth_header(world.resident))
    assert resp.status_code == 201, resp.json
    out = resp.json
    assert out["status"] == "assigned"
    assert parse_local(out["deadline_at"]) - parse_local(out["accepted_at"]) == timedelta(hours=6)
    event = db.session.scalars(select(CaseEvent).where(CaseEvent.report_id == out["id"]).order_by(CaseEvent.id)).first()
    assert (event.action, event.to_status) == ("create", "accepted")


def test_auto_accept_leaves_unrouted_reports_submitted(client, db, world):
    auto = make_category(hours=6, auto_accept=True)
    resp = client.post(URL, json=body(world, FAR_POINT, category_code=auto.code), headers=auth_header(world.resident))
    assert resp.status_code == 201, resp.json
    assert resp.json["status"] == "submitted" and resp.json["deadline_at"] is None


def test_worker_report_in_own_cell_starts_accepted(client, db, world):
    resp = client.post(URL, json=body(world), headers=auth_header(world.worker))
    assert resp.status_code == 201, resp.json
    assert (resp.json["status"], resp.json["assignee"]["id"]) == ("assigned", world.worker.id)
    assert resp.json["cell"]["code"] == SW
    # Auto-dispatch may add its own assign event after this one.
    event = db.session.scalars(
        select(CaseEvent).where(CaseEvent.report_id == resp.json["id"], CaseEvent.action == "create")
    ).one()
    assert (event.action, event.to_status, event.actor_role) == ("create", "accepted", "worker")


def _handled(db, report_id: int) -> dict:
    """What accepting a case left on it, as times after its acceptance: status, assignee, the clock, the assign
    event and the notices of that step."""
    report = db.session.get(Report, report_id)
    db.session.refresh(report)
    assign = db.session.scalars(
        select(CaseEvent).where(CaseEvent.report_id == report_id, CaseEvent.action == "assign")
    ).one()
    notices = db.session.scalars(
        select(Notification).where(Notification.dedupe_key.like(f"%:{report_id}:{assign.id}:%"))
    ).all()
    since = report.accepted_at
    return {
        "status": (report.status, report.assignee_id, report.assigned_at == since),
        "clock": (report.due_at - since, report.deadline_at - since, report.warn_at - since, report.time_limit_value),
        "assign": (assign.actor_id, assign.actor_role, assign.from_status, assign.to_status, assign.data),
        "notices": sorted(
            (n.user_id, n.kind, n.dedupe_key.replace(f":{report_id}:{assign.id}:", ":case:step:")) for n in notices
        ),
    }


@contextlib.contextmanager
def sent_and_pipelined(db):
    """The statements sent while inside, each with whether it went in a psycopg pipeline (never on SQLite)."""
    sent: list[tuple[str, bool]] = []

    def record(conn, _cursor, statement, *_args):
        pgconn = getattr(conn.connection.dbapi_connection, "pgconn", None)
        sent.append((statement, pgconn is not None and pgconn.pipeline_status != PipelineStatus.OFF))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_a_read_beside_a_filing_runs_before_its_write_and_on_postgresql_in_its_round_trip(db, world):
    dialect = db.session.get_bind().dialect
    same_category = Report.category_id == bindparam("category_id", type_=Integer)
    counted = DriverStatement(select(func.count(Report.id)).where(same_category), dialect, category_id=0)

    def file():
        return report_service.file_report(
            world.resident,
            category_code=world.category.code,
            description="垃圾桶满溢",
            location={"lon": SW_POINT[0], "lat": SW_POINT[1]},
            read_beside=lambda category, lon, lat: (counted, {"category_id": category.id}),
        )

    db.session.flush()
    with sent_and_pipelined(db) as sent:
        first, read_first = file()
        second, read_second = file()
    # Each read saw the reports before its own write: none, then the first.
    assert (read_first, read_second) == ([(0,)], [(1,)])
    assert second.id > first.id
    ours = [(statement, pipelined) for statement, pipelined in sent if "count(reports.id)" in statement]
    writes = [(statement, pipelined) for statement, pipelined in sent if "INSERT INTO reports" in statement]
    assert len(ours) == 2 and len(writes) == 2
    # Through the engine's hooks, read first; on PostgreSQL both in one pipeline.
    assert sent.index(ours[0]) < sent.index(writes[0])
    assert all(pipelined for _, pipelined in ours + writes) is (db.session.get_bind().dialect.name == "postgresql")
    # Without a read, the filing reads nothing beside it.
    assert (
        report_service.file_report(
            world.resident, category_code=world.category.code, description="x", location={"lon": 116.405, "lat": 39.905}
        )[1]
        is None
    )


def test_a_worker_s_filing_reads_their_cells_once_then_asks_only_whom_to_pick(client, db, world):
    """Whether a worker serves the cell comes from the process's cache of assignments: read on their first filing of
    the day, then never again until an assignment changes. In their own cell the filing asks auto-dispatch's pick;
    elsewhere it asks nothing before its write."""

    def file(point) -> tuple[dict, list[str]]:
        with sent_and_pipelined(db) as sent:
            resp = client.post(URL, json=body(world, point), headers=auth_header(world.worker))
        assert resp.status_code == 201, resp.json
        return resp.json, [statement for statement, _ in sent if "worker_cells" in statement]

    first, first_reads = file(SW_POINT)
    assert (first["status"], first["assignee"]["id"]) == ("assigned", world.worker.id)
    assert len(first_reads) == 2  # their cells, then the pick
    again, again_reads = file(SW_POINT)
    assert (again["status"], again["assignee"]["id"]) == ("assigned", world.worker.id)
    assert again_reads == first_reads[1:]
    elsewhere, elsewhere_reads = file(NE_POINT)
    assert (elsewhere["status"], elsewhere["assignee"], elsewhere_reads) == ("submitted", None, [])

    # An assignment made since (here the NE cell, from today) is seen by the next filing.
    make_assignment(world.worker, world.cells[NE], valid_from=local_day())
    now_theirs, now_reads = file(NE_POINT)
    assert (now_theirs["status"], now_theirs["assignee"]["id"], len(now_reads)) == ("assigned", world.worker.id, 2)
    # One that ended yesterday no longer counts, nor one withdrawn.
    theirs = WorkerCell.user_id == world.worker.id
    sw = select(Cell.id).where(Cell.code == SW).scalar_subquery()
    db.session.execute(
        update(WorkerCell).where(theirs, WorkerCell.cell_id == sw).values(valid_to=local_day() - timedelta(days=1))
    )
    db.session.execute(delete(WorkerCell).where(theirs, WorkerCell.cell_id != sw))
    db.session.commit()
    for point in (SW_POINT, NE_POINT):
        assert file(point)[0]["status"] == "submitted"


@pytest.mark.parametrize("filer", ["worker", "resident"])
def test_a_case_accepted_at_filing_is_left_as_the_accept_action_leaves_one(client, db, world, filer):
    """Filing writes an accepted case assigned at once, with both events, where an accept later takes a flush, a
    query and another flush (reports.start_handling): the two leave the same case."""
    auto = make_category(hours=6, auto_accept=True)
    filed = client.post(URL, json=body(world, category_code=auto.code), headers=auth_header(getattr(world, filer)))
    assert filed.status_code == 201, filed.json
    events = db.session.scalars(
        select(CaseEvent).where(CaseEvent.report_id == filed.json["id"]).order_by(CaseEvent.id)
    ).all()
    assert [(e.action, e.from_status, e.to_status) for e in events] == [
        ("create", None, "accepted"),
        ("assign", "accepted", "assigned"),
    ]

    later = make_category(hours=6)
    submitted = client.post(URL, json=body(world, category_code=later.code), headers=auth_header(world.resident))
    report = db.session.get(Report, submitted.json["id"])
    accepted = client.post(
        f"{URL}/{report.id}/actions/accept",
        json={},
        headers={**auth_header(world.supervisor), "If-Match": f'"{report.version}"'},
    )
    assert accepted.status_code == 200, accepted.json
    assert accepted.json["status"] == "assigned"
    assert _handled(db, filed.json["id"]) == _handled(db, report.id)
    # Built once and kept, each filing statement must also be one SQLAlchemy compiles once (a multi-row VALUES
    # is compiled on every run).
    kept = [statement for statements in report_service._FILING.values() for statement in statements]
    assert kept and all(statement._generate_cache_key() is not None for statement in kept)


def test_worker_report_outside_own_cell_stays_submitted(client, db, world):
    resp = client.post(URL, json=body(world, NE_POINT), headers=auth_header(world.worker))
    assert resp.status_code == 201, resp.json
    assert resp.json["status"] == "submitted"
    assert resp.json["cell"]["code"] == NE
    # Whom auto-dispatch would pick was read with whether they serve the cell, and left unused.
    assert resp.json["assignee"] is None
    actions = db.session.scalars(select(CaseEvent.action).where(CaseEvent.report_id == resp.json["id"])).all()
    assert actions == ["create"]


def test_report_outside_every_cell_is_kept_for_triage(client, db, world):
    resp = client.post(URL, json=body(world, FAR_POINT), headers=auth_header(world.resident))
    assert resp.status_code == 201, resp.json
    out = resp.json
    assert out["cell"] is None
    assert out["needs_triage"] is True
    assert out["routed_by"] is None
    assert out["status"] == "submitted"
    assert out["location"] == {"lon": FAR_POINT[0], "lat": FAR_POINT[1], "crs": "wgs84"}
    stored = db.session.get(Report, out["id"])
    assert stored.cell_id is None and stored.needs_triage is True
    assert event_count(db) == 1


def test_worker_report_outside_every_cell_stays_submitted(client, db, world):
    resp = client.post(URL, json=body(world, FAR_POINT), headers=auth_header(world.worker))
    assert resp.status_code == 201, resp.json
    assert (resp.json["status"], resp.json["cell"], resp.json["needs_triage"]) == ("submitted", None, True)


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_chinese_datum_input_is_stored_as_wgs84(client, db, world, crs):
    gcj = wgs84_to_gcj02(*SW_POINT)
    sent = gcj if crs == "gcj02" else gcj02_to_bd09(*gcj)
    # The datums really differ here (hundreds of metres), so storing the raw input would be caught.
    assert abs(sent[0] - SW_POINT[0]) + abs(sent[1] - SW_POINT[1]) > 1e-3
    data = body(world, location={"lon": sent[0], "lat": sent[1], "crs": crs})
    resp = client.post(URL, json=data, headers=auth_header(world.resident))
    assert resp.status_code == 201, resp.json
    out = resp.json
    assert out["location"]["crs"] == "wgs84"
    assert out["location"]["lon"] == pytest.approx(SW_POINT[0], abs=1e-6)
    assert out["location"]["lat"] == pytest.approx(SW_POINT[1], abs=1e-6)
    assert out["cell"]["code"] == SW

    stored = db.session.get(Report, out["id"])
    point = to_shape(stored.location)
    assert (point.x, point.y) == pytest.approx(SW_POINT, abs=1e-6)
    assert (stored.input_crs, stored.input_lon, stored.input_lat) == (crs, sent[0], sent[1])


def test_description_of_exactly_4000_characters_is_accepted(client, db, world):
    resp = client.post(URL, json=body(world, description="字" * 4000), headers=auth_header(world.resident))
    assert resp.status_code == 201, resp.json
    assert len(resp.json["description"]) == 4000


@pytest.mark.parametrize("who", ["supervisor", "root_supervisor", "admin"])
def test_supervisors_and_admins_cannot_file(client, db, world, who):
    resp = client.post(URL, json=body(world), headers=auth_header(getattr(world, who)))
    assert_problem(resp, 403, "forbidden")
    assert report_count(db) == 0
    assert event_count(db) == 0


def _inactive(world, db):
    return make_category(active=False).code


BAD_BODIES = {
    "unknown category": (lambda w, db: body(w, category_code="NOPE"), "category_code"),
    "inactive category": (lambda w, db: body(w, category_code=_inactive(w, db)), "category_code"),
    "empty description": (lambda w, db: body(w, description=""), "description"),
    "description too long": (lambda w, db: body(w, description="x" * 4001), "description"),
    "missing description": (lambda w, db: {k: v for k, v in body(w).items() if k != "description"}, "description"),
    "lat 91": (lambda w, db: body(w, location={"lon": 116.405, "lat": 91}), "location.lat"),
    "lon -181": (lambda w, db: body(w, location={"lon": -181, "lat": 39.905}), "location.lon"),
    "lon as string": (lambda w, db: body(w, location={"lon": "120.1", "lat": 39.905}), "location.lon"),
    "lat missing": (lambda w, db: body(w, location={"lon": 116.405}), "location.lat"),
    "missing location": (lambda w, db: {k: v for k, v in body(w).items() if k != "location"}, "location"),
    "location not an object": (lambda w, db: body(w, location=[116.405, 39.905]), "location"),
    "unknown top-level field": (lambda w, db: body(w, priority="high"), "priority"),
    "unknown location field": (
        lambda w, db: body(w, location={"lon": 116.405, "lat": 39.905, "alt": 3}),
        "location.alt",
    ),
    "bad crs": (lambda w, db: body(w, location={"lon": 116.405, "lat": 39.905, "crs": "epsg3857"}), "location.crs"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES), ids=list(BAD_BODIES))
def test_bad_report_bodies_are_422_and_write_nothing(client, db, world, case):
    make_body, field = BAD_BODIES[case]
    data = make_body(world, db)
    resp = client.post(URL, json=data, headers=auth_header(world.resident))
    problem = assert_problem(resp, 422, "validation_failed")
    errors = problem["errors"]
    for part in field.split("."):
        assert part in errors, (field, problem)
        errors = errors[part]
    assert report_count(db) == 0
    assert event_count(db) == 0


def test_malformed_json_is_400(client, db, world):
    resp = client.post(
        URL, data='{"category_code": ', content_type="application/json", headers=auth_header(world.resident)
    )
    assert_problem(resp, 400, "malformed_json")
    assert report_count(db) == 0


def test_non_json_content_type_is_415(client, db, world):
    resp = client.post(
        URL,
        data=f"category_code={world.category.code}&description=x",
        content_type="application/x-www-form-urlencoded",
        headers=auth_header(world.resident),
    )
    assert_problem(resp, 415, "unsupported_media_type")
    assert report_count(db) == 0


def test_body_over_one_mebibyte_is_413(client, db, world):
    data = json.dumps(body(world, description="x" * (1024 * 1024 + 1)))
    resp = client.post(URL, data=data, content_type="application/json", headers=auth_header(world.resident))
    assert_problem(resp, 413, "payload_too_large")
    assert report_count(db) == 0


def test_unauthenticated_filing_is_401(client, db, world):
    resp = client.post(URL, json=body(world))
    assert_problem(resp, 401, "missing_token")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert report_count(db) == 0


def test_garbage_token_is_401(client, db, world):
    resp = client.post(URL, json=body(world), headers={"Authorization": "Bearer not-a-jwt"})
    assert_problem(resp, 401, "invalid_token")
    assert report_count(db) == 0


# ---- reading one report -------------------------------------------------------------------------


@pytest.fixture()
def filed(world):
    """One report in each interesting place, filed through the service."""
    return SimpleNamespace(
        sw=make_report(world.resident, world.category, *SW_POINT),
        ne=make_report(world.resident2, world.category, *NE_POINT),
        other=make_report(world.resident2, world.category, *OTHER_POINT),
        triage=make_report(world.resident, world.category, *FAR_POINT),
    )


def _get(client, user, report):
    return client.get(f"{URL}/{report.id}", headers=auth_header(user))


def test_resident_reads_own_report(client, db, world, filed):
    resp = _get(client, world.resident, filed.sw)
    assert resp.status_code == 200, resp.json
    assert resp.json["id"] == filed.sw.id
    assert resp.json["case_number"] == filed.sw.case_number
    assert resp.json["cell"]["code"] == SW
    parse_local(resp.json["created_at"])


def test_someone_elses_report_is_404_not_403(client, db, world, filed):
    other = assert_problem(_get(client, world.resident2, filed.sw), 404, "report_not_found")
    missing = assert_problem(client.get(f"{URL}/999999", headers=auth_header(world.resident2)), 404, "report_not_found")
    # A report that exists but is hidden answers exactly like one that does not exist.
    assert other["title"] == missing["title"]


@pytest.mark.parametrize(
    "who, visible, hidden",
    [
        ("worker", ["sw"], ["ne", "other", "triage"]),
        ("other_worker", ["other"], ["sw", "ne", "triage"]),
        ("supervisor", ["sw", "ne"], ["other", "triage"]),
        ("other_supervisor", ["other"], ["sw", "ne", "triage"]),
        ("root_supervisor", ["sw", "ne", "triage"], ["other"]),
        ("admin", ["sw", "ne", "other", "triage"], []),
    ],
)
def test_report_detail_scope_per_role(client, db, world, filed, who, visible, hidden):
    user = getattr(world, who)
    for name in visible:
        resp = _get(client, user, getattr(filed, name))
        assert resp.status_code == 200, (name, resp.json)
        assert resp.json["id"] == getattr(filed, name).id
    for name in hidden:
        assert_problem(_get(client, user, getattr(filed, name)), 404, "report_not_found")


def test_worker_sees_own_report_filed_outside_their_cells(client, db, world):
    mine = make_report(world.worker, world.category, *NE_POINT)
    resp = _get(client, world.worker, mine)
    assert resp.status_code == 200
    assert resp.json["id"] == mine.id


def test_report_detail_needs_a_token(client, db, world, filed):
    assert_problem(client.get(f"{URL}/{filed.sw.id}"), 401, "missing_token")


# ---- history ------------------------------------------------------------------------------------


def test_report_events_list_the_create_event(client, db, world, filed):
    # Staff read the full history; residents get the public one (tests/test_residents.py).
    resp = client.get(f"{URL}/{filed.sw.id}/events", headers=auth_header(world.supervisor))
    assert resp.status_code == 200, resp.json
    assert len(resp.json) == 1
    event = resp.json[0]
    assert event["action"] == "create"
    assert event["from_status"] is None
    assert event["to_status"] == "submitted"
    assert event["actor_id"] == world.resident.id
    assert event["actor_role"] == "resident"
    assert event["data"]["cell_code"] == SW
    assert event["data"]["crs"] == "wgs84"
    parse_local(event["created_at"])


def test_report_events_are_scoped_like_the_report(client, db, world, filed):
    assert_problem(
        client.get(f"{URL}/{filed.sw.id}/events", headers=auth_header(world.resident2)), 404, "report_not_found"
    )
    assert_problem(
        client.get(f"{URL}/{filed.sw.id}/events", headers=auth_header(world.other_worker)), 404, "report_not_found"
    )
    resp = client.get(f"{URL}/{filed.sw.id}/events", headers=auth_header(world.supervisor))
    assert resp.status_code == 200 and [e["action"] for e in resp.json] == ["create"]
    assert_problem(client.get(f"{URL}/{filed.sw.id}/events"), 401, "missing_token")


# ---- lists --------------------------------------------------------------------------------------


def _list(client, user, **query):
    resp = client.get(URL, headers=auth_header(user), query_string=query)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert set(resp.json) == {"items", "page", "page_size", "total"}
    return resp.json


def _ids(page) -> list[int]:
    return [item["id"] for item in page["items"]]


@pytest.mark.parametrize(
    "who, visible",
    [
        ("resident", ["triage", "sw"]),
        ("resident2", ["other", "ne"]),
        ("worker", ["sw"]),
        ("other_worker", ["other"]),
        ("supervisor", ["ne", "sw"]),
        ("other_supervisor", ["other"]),
        ("root_supervisor", ["triage", "ne", "sw"]),
        ("admin", ["triage", "other", "ne", "sw"]),
    ],
)
def test_list_scope_per_role_newest_first(client, db, world, filed, who, visible):
    page = _list(client, getattr(world, who))
    expected = [getattr(filed, name).id for name in visible]
    assert _ids(page) == expected  # filed in the order sw, ne, other, triage: newest first is the reverse
    assert page["total"] == len(expected)
    assert (page["page"], page["page_size"]) == (1, 20)


def test_list_needs_a_token(client, db, world, filed):
    assert_problem(client.get(URL), 401, "missing_token")


def test_list_pagination(client, db, world):
    reports = [make_report(world.resident, world.category, *SW_POINT, description=f"r{i}") for i in range(5)]
    newest_first = [r.id for r in reversed(reports)]
    first = _list(client, world.resident, page=1, page_size=2)
    second = _list(client, world.resident, page=2, page_size=2)
    third = _list(client, world.resident, page=3, page_size=2)
    beyond = _list(client, world.resident, page=4, page_size=2)
    assert (first["page"], first["page_size"], first["total"]) == (1, 2, 5)
    assert (third["page"], third["total"]) == (3, 5)
    assert _ids(first) + _ids(second) + _ids(third) == newest_first
    assert beyond["items"] == [] and beyond["total"] == 5


@pytest.mark.parametrize(
    "query, field",
    [
        ({"page": 0}, "page"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 101}, "page_size"),
        ({"page": "x"}, "page"),
        ({"status": "done"}, "status"),
        ({"cell_id": 0}, "cell_id"),
        ({"triage": "maybe"}, "triage"),
        ({"created_from": "2026-01-01T00:00:00"}, "created_from"),
        ({"created_to": "2026-01-01T08:00"}, "created_to"),
        ({"created_to": "2026-02-30"}, "created_to"),
        ({"created_from": "01/02/2026"}, "created_from"),
        ({"cell": "999999"}, "cell"),
        ({"cell_id": 999_999}, "cell_id"),
        ({"sla_state": "blue"}, "sla_state"),
        ({"escalation_level": 4}, "escalation_level"),
        ({"escalation_level": -1}, "escalation_level"),
        ({"escalation_level": "top"}, "escalation_level"),
        ({"assignee_id": 0}, "assignee_id"),
        ({"assignee_id": "me"}, "assignee_id"),
        ({"overdue": "perhaps"}, "overdue"),
    ],
)
def test_list_bad_query_is_422(client, db, world, filed, query, field):
    resp = client.get(URL, headers=auth_header(world.admin), query_string=query)
    problem = assert_problem(resp, 422, "validation_failed")
    assert field in problem["errors"], problem


def test_list_unknown_cell_id_is_422(client, db, world, filed):
    resp = client.get(URL, headers=auth_header(world.admin), query_string={"cell_id": 999999})
    problem = assert_problem(resp, 422, "validation_failed")
    assert "cell_id" in problem["errors"]


def test_list_filter_by_status(client, db, world, filed):
    accepted = make_report(world.worker, make_category(auto_dispatch=False), *SW_POINT)
    assert accepted.status == "accepted"
    assert _ids(_list(client, world.admin, status="accepted")) == [accepted.id]
    submitted = _list(client, world.admin, status="submitted")
    assert _ids(submitted) == [filed.triage.id, filed.other.id, filed.ne.id, filed.sw.id]
    # Filters narrow the caller's scope; they never widen it.
    assert _ids(_list(client, world.resident, status="accepted")) == []


def test_list_filter_by_category(client, db, world, filed):
    other_category = make_category(hours=8)
    special = make_report(world.resident, other_category, *NE_POINT)
    assert _ids(_list(client, world.admin, category=other_category.code)) == [special.id]
    assert _list(client, world.admin, category=world.category.code)["total"] == 4
    # A code of no category is a mistake to hear of, not an empty list.
    problem = assert_problem(
        client.get(URL, headers=auth_header(world.admin), query_string={"category": "NOPE"}), 422, "validation_failed"
    )
    assert "NOPE" in problem["errors"]["category"][0]


def test_list_filter_by_cell_subtree(client, db, world, filed):
    cells = world.cells
    assert _ids(_list(client, world.admin, cell_id=cells[SW].id)) == [filed.sw.id]
    assert _ids(_list(client, world.admin, cell_id=cells[COMMUNITY].id)) == [filed.ne.id, filed.sw.id]
    assert _ids(_list(client, world.admin, cell_id=cells[DISTRICT].id)) == [filed.ne.id, filed.sw.id]
    assert _ids(_list(client, world.admin, cell_id=cells["110106"].id)) == [filed.other.id]
    # A worker asking for a subtree they do not serve still sees only their own cell's reports.
    assert _ids(_list(client, world.worker, cell_id=cells[COMMUNITY].id)) == [filed.sw.id]
    assert _ids(_list(client, world.other_supervisor, cell_id=cells[COMMUNITY].id)) == []


def test_list_filter_by_cell_code_or_id_or_both(client, db, world, filed):
    cells = world.cells
    by_code = _ids(_list(client, world.admin, cell=COMMUNITY))
    assert by_code == [filed.ne.id, filed.sw.id]
    assert _ids(_list(client, world.admin, cell_id=cells[COMMUNITY].id, cell=COMMUNITY)) == by_code
    assert _ids(_list(client, world.worker, cell=COMMUNITY)) == [filed.sw.id]
    geojson = client.get(f"{URL}.geojson", query_string={"cell": SW}, headers=auth_header(world.admin))
    assert [f["properties"]["id"] for f in geojson.json["features"]] == [filed.sw.id]


@pytest.mark.parametrize(
    "query, field",
    [
        ({"cell": "999999"}, "cell"),
        ({"cell": "11"}, "cell"),
        ({"cell_id": 999_999}, "cell_id"),
        ({"cell": SW, "cell_id": "community"}, "cell"),
    ],
)
def test_list_cell_unknown_or_disagreeing_is_422(client, db, world, filed, query, field):
    if query.get("cell_id") == "community":
        query = {**query, "cell_id": world.cells[COMMUNITY].id}
    for path in (URL, f"{URL}.geojson"):
        body = assert_problem(
            client.get(path, query_string=query, headers=auth_header(world.worker)), 422, "validation_failed"
        )
        assert field in body["errors"]


def test_list_dates_are_local_days_around_midnight_in_shanghai(client, db, world, filed):
    # Asia/Shanghai is UTC+8: the local day 2026-01-02 is [2026-01-01T16:00Z, 2026-01-02T16:00Z).
    filed.sw.created_at = datetime(2026, 1, 1, 15, 59, 59, tzinfo=UTC)  # 2026-01-01 23:59:59 local
    filed.ne.created_at = datetime(2026, 1, 1, 16, 0, tzinfo=UTC)  # 2026-01-02 00:00:00 local
    filed.other.created_at = datetime(2026, 1, 2, 15, 59, 59, tzinfo=UTC)  # 2026-01-02 23:59:59 local
    filed.triage.created_at = datetime(2026, 1, 2, 16, 0, tzinfo=UTC)  # 2026-01-03 00:00:00 local
    db.session.commit()
    day = _ids(_list(client, world.admin, created_from="2026-01-02", created_to="2026-01-02"))
    assert day == [filed.other.id, filed.ne.id]
    assert _ids(_list(client, world.admin, created_from="2026-01-03")) == [filed.triage.id]
    assert _ids(_list(client, world.admin, created_to="2026-01-01")) == [filed.sw.id]
    # A datetime is taken as given: midnight local as `to` excludes the case filed at that instant.
    page = _list(client, world.admin, created_from="2026-01-02", created_to="2026-01-03T00:00:00+08:00")
    assert _ids(page) == [filed.other.id, filed.ne.id]
    page = _list(client, world.admin, created_from="2026-01-02T00:00:00+08:00", created_to="2026-01-02T00:00:01+08:00")
    assert _ids(page) == [filed.ne.id]
    # The same instant in UTC, and a date mixed with a datetime.
    page = _list(client, world.admin, created_from="2026-01-01T16:00:00Z", created_to="2026-01-02")
    assert _ids(page) == [filed.other.id, filed.ne.id]


def test_list_filter_by_triage(client, db, world, filed):
    assert _ids(_list(client, world.admin, triage="true")) == [filed.triage.id]
    assert _ids(_list(client, world.admin, triage="false")) == [filed.other.id, filed.ne.id, filed.sw.id]
    assert _ids(_list(client, world.root_supervisor, triage="true")) == [filed.triage.id]
    assert _ids(_list(client, world.supervisor, triage="true")) == []


def test_list_filter_by_created_range_with_offsets(client, db, world, filed):
    utc = UTC
    filed.sw.created_at = datetime(2026, 1, 1, 0, 0, tzinfo=utc)
    filed.ne.created_at = datetime(2026, 1, 2, 0, 0, tzinfo=utc)
    filed.other.created_at = datetime(2026, 1, 3, 0, 0, tzinfo=utc)
    filed.triage.created_at = datetime(2026, 1, 4, 0, 0, tzinfo=utc)
    db.session.commit()  # a savepoint of the test's transaction; requests roll back only their own work

    # 2026-01-02T08:00+08:00 is exactly ne's creation instant: the lower bound is inclusive.
    page = _list(client, world.admin, created_from="2026-01-02T08:00:00+08:00")
    assert _ids(page) == [filed.triage.id, filed.other.id, filed.ne.id]
    # The upper bound is exclusive; the same instant written in UTC.
    page = _list(client, world.admin, created_to="2026-01-03T00:00:00Z")
    assert _ids(page) == [filed.ne.id, filed.sw.id]
    # Offsets are honoured: 07:59 at +08:00 is one minute before ne.
    page = _list(client, world.admin, created_from="2026-01-01T00:00:01+00:00", created_to="2026-01-02T07:59:00+08:00")
    assert _ids(page) == []
    page = _list(client, world.admin, created_from="2026-01-01T20:00:00-04:00", created_to="2026-01-03T00:00:01+00:00")
    assert _ids(page) == [filed.other.id, filed.ne.id]
    # Newest first follows created_at, not the id.
    filed.sw.created_at = datetime(2026, 1, 5, tzinfo=utc)
    db.session.commit()
    assert _ids(_list(client, world.admin))[0] == filed.sw.id


# ---- case-loop filters and status fields --------------------------------------------------------


@pytest.fixture()
def clocked(world):
    """Four-hour cases at each point of their clock, plus one not yet accepted."""
    now = utcnow()

    def accepted(hours_ago: float, **columns):
        report = make_report(world.resident, world.category, *SW_POINT)
        sla.start_clock(report, now - timedelta(hours=hours_ago))
        return set_case(report, **{"status": "accepted", **columns})

    return SimpleNamespace(
        green=accepted(1),
        yellow=accepted(3.5, assignee_id=world.worker.id, status="assigned"),
        red=accepted(5, escalation_level=1),
        held_red=accepted(6, status="on_hold", assignee_id=world.worker.id, hold_started_at=now - timedelta(hours=1)),
        waiting=make_report(world.resident, world.category, *SW_POINT),
    )


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"sla_state": "green"}, ["green"]),
        ({"sla_state": "yellow"}, ["yellow"]),
        ({"sla_state": "red"}, ["held_red", "red"]),
        # Overdue: open and late, wherever the clock stands (held_red went on hold after its due time).
        ({"overdue": "true"}, ["held_red", "red"]),
        ({"overdue": "false"}, ["waiting", "yellow", "green"]),
        ({"escalation_level": 1}, ["red"]),
        ({"escalation_level": "community"}, ["red"]),
        ({"escalation_level": 0}, ["waiting", "held_red", "yellow", "green"]),
        ({"escalation_level": "grid"}, ["waiting", "held_red", "yellow", "green"]),
        ({"escalation_level": "district"}, []),
        ({"sla_state": "red", "overdue": "false"}, []),
    ],
)
def test_list_filters_by_clock_and_escalation(client, db, world, clocked, query, expected):
    page = _list(client, world.supervisor, **query)
    assert _ids(page) == [getattr(clocked, name).id for name in expected]
    assert page["total"] == len(expected)


def test_list_filter_by_assignee(client, db, world, clocked):
    assert _ids(_list(client, world.admin, assignee_id=world.worker.id)) == [clocked.held_red.id, clocked.yellow.id]
    assert _ids(_list(client, world.admin, assignee_id=world.worker.id + 1000)) == []
    # The filter narrows the caller's scope; it never widens it.
    assert _ids(_list(client, world.other_worker, assignee_id=world.worker.id)) == []


def test_report_shows_its_status_fields(client, db, world, clocked):
    out = _get(client, world.supervisor, clocked.yellow).json
    assert out["sla_state"] == "yellow"
    assert out["assignee"] == {
        "id": world.worker.id,
        "username": world.worker.username,
        "display_name": world.worker.display_name,
    }
    assert parse_local(out["deadline_at"]) - parse_local(out["accepted_at"]) == timedelta(hours=4)
    assert parse_local(out["warn_at"]) - parse_local(out["accepted_at"]) == timedelta(hours=3.2)
    assert out["due_at"] == out["deadline_at"]
    assert (out["escalation_level"], out["critical"], out["extension_requested"]) == (0, False, None)
    assert out["handling_cell"]["code"] == SW
    assert _get(client, world.supervisor, clocked.red).json["sla_state"] == "red"
    assert _get(client, world.supervisor, clocked.waiting).json["sla_state"] is None
    assert (out["late"], out["late_since"], out["level_sla_state"]) == (False, None, "yellow")
    assert out["level_deadline_at"] == out["deadline_at"]
    waiting = _get(client, world.supervisor, clocked.waiting).json
    assert (waiting["late"], waiting["level_sla_state"], waiting["level_deadline_at"]) == (False, None, None)


def test_a_case_escalated_once_stays_red_with_its_levels_own_light_beside(client, db, world, clocked):
    """Escalated once, the case is well inside the community's new window, and still late: red in GET and lists."""
    category = make_category(hours=4, window=8, window_unit="hours")
    late = make_escalated_case(world.resident, category, world.cells[SW], hours_late=2, assignee_id=world.worker.id)
    # The sweep moved clocked.red (accepted 5 hours ago, 4-hour limit) as well; the others are untouched.
    out = _get(client, world.supervisor, late).json
    assert (out["escalation_level"], out["handling_cell"]["code"]) == (1, COMMUNITY)
    assert (out["sla_state"], out["late"], out["level_sla_state"]) == ("red", True, "green")
    assert out["late_since"] == out["due_at"]
    assert utcnow() - parse_local(out["late_since"]) >= timedelta(hours=2)
    assert out["level_deadline_at"] == out["deadline_at"]
    assert timedelta(hours=7) < parse_local(out["level_deadline_at"]) - utcnow() <= timedelta(hours=8)

    assert _ids(_list(client, world.supervisor, sla_state="red")) == [late.id, clocked.held_red.id, clocked.red.id]
    assert late.id not in _ids(_list(client, world.supervisor, sla_state="green"))
    assert _ids(_list(client, world.supervisor, overdue="true")) == [late.id, clocked.held_red.id, clocked.red.id]
    assert late.id not in _ids(_list(client, world.supervisor, overdue="false"))
    listed = {item["id"]: item for item in _list(client, world.supervisor)["items"]}
    assert (listed[late.id]["sla_state"], listed[late.id]["late"], listed[late.id]["level_sla_state"]) == (
        "red",
        True,
        "green",
    )


def test_a_new_report_answers_201_with_its_location_and_a_replay_repeats_it(client, db, world):
    headers = {**auth_header(world.resident), "Idempotency-Key": "file-once-1"}
    first = client.post(URL, json=body(world), headers=headers)
    assert first.status_code == 201, first.json
    assert first.headers["Location"] == f"{URL}/{first.json['id']}"
    assert "Idempotent-Replayed" not in first.headers
    # The Location names the case as its reader reads it.
    read = client.get(first.headers["Location"], headers=auth_header(world.resident))
    assert read.status_code == 200 and read.json["case_number"] == first.json["case_number"]
    assert first.headers["ETag"] == read.headers["ETag"]

    count = report_count(db)
    replay = client.post(URL, json=body(world), headers=headers)
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_data() == first.get_data()
    assert (replay.headers["Location"], replay.headers["ETag"]) == (first.headers["Location"], first.headers["ETag"])
    assert report_count(db) == count


def test_a_refused_report_has_no_location(client, db, world):
    resp = client.post(URL, json=body(world, category_code="NOPE"), headers=auth_header(world.resident))
    assert_problem(resp, 422, "validation_failed")
    assert "Location" not in resp.headers


@pytest.mark.parametrize(
    ("who", "point", "status"),
    [("resident", SW_POINT, "submitted"), ("worker", SW_POINT, "assigned"), ("resident", FAR_POINT, "submitted")],
)
def test_the_filed_report_is_what_was_written(db, world, who, point, status):
    """create_report writes the report and its event in one round trip and hands back the session's object built
    from what it wrote, not read back: it must equal a fresh read, column by column, and its relations too."""
    from sqlalchemy import inspect

    from app.services.cases.reports import create_report

    user = getattr(world, who)
    report = create_report(
        user, category_code=world.category.code, description="井盖缺失", location={"lon": point[0], "lat": point[1]}
    )
    keys = [a.key for a in inspect(Report).column_attrs if a.key not in ("location", "distance_m")]
    held = {key: getattr(report, key) for key in keys}
    related = (report.category.code, report.reporter.id, report.cell and report.cell.code, report.handling_cell_id)
    held_point = to_shape(report.location)
    db.session.flush()
    db.session.expire_all()
    fresh = db.session.get(Report, report.id)
    assert {key: getattr(fresh, key) for key in keys} == held
    assert (fresh.category.code, fresh.reporter.id, fresh.cell and fresh.cell.code, fresh.handling_cell_id) == related
    assert to_shape(fresh.location).equals(held_point)
    assert fresh.status == status
    events = db.session.scalars(select(CaseEvent).where(CaseEvent.report_id == report.id).order_by(CaseEvent.id)).all()
    first = events[0]
    assert (first.action, first.from_status, first.actor_id, first.actor_role) == ("create", None, user.id, user.role)
    assert first.created_at == fresh.created_at
    assert first.data["cell_code"] == (fresh.cell.code if fresh.cell else None)
