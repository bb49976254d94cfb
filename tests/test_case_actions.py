"""Case actions: every transition, its permissions, If-Match, bad input, the clock, duplicates, history, races."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from app.models import CaseEvent, Notification, Report, ReportStatus
from app.models.base import utcnow
from app.services.cases import lifecycle as cases, sla
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    OTHER_COMMUNITY,
    OTHER_GRID,
    auth_header,
    committed_world,
    make_category,
    make_report,
    make_two_district_grid,
    make_user,
    set_case,
)

URL = "/api/v1/reports"
SW, NE = "11010500100101", "11010500100104"
SW_POINT, NE_POINT, OTHER_POINT, FAR_POINT = (116.405, 39.905), (116.415, 39.915), (116.505, 39.905), (100.0, 30.0)
NW_POINT = (116.405, 39.915)  # in grid 03, which no worker serves
ALL_STATUSES = [s.value for s in ReportStatus]
CLOCKED = {"accepted", "assigned", "in_progress", "on_hold", "resolved", "closed"}
WITH_ASSIGNEE = {"assigned", "in_progress", "on_hold", "resolved", "closed"}


def build_world():
    cells = make_two_district_grid()
    other_community = cells[OTHER_COMMUNITY]
    return SimpleNamespace(
        cells=cells,
        # auto_dispatch off: the tests decide who gets each case.
        category=make_category(hours=4, auto_dispatch=False),
        resident=make_user("resident"),
        resident2=make_user("resident"),
        worker=make_user("worker", served=[cells[SW]]),
        worker2=make_user("worker", served=[cells[SW]]),
        worker_ne=make_user("worker", served=[cells[NE]]),
        other_worker=make_user("worker", served=[cells[OTHER_GRID]]),
        supervisor=make_user("supervisor", cell=cells[COMMUNITY]),
        other_supervisor=make_user("supervisor", cell=other_community),
        root_supervisor=make_user("supervisor", cell=cells[DISTRICT]),
        admin=make_user("admin"),
    )


@pytest.fixture()
def w(db):
    return build_world()


def case(w, status="submitted", *, point=SW_POINT, category=None, reporter=None, started=None, **columns):
    """A resident's case put straight into `status`, with the clock and assignee that status implies."""
    report = make_report(reporter or w.resident, category or w.category, *point)
    now = utcnow()
    if status in CLOCKED:
        sla.start_clock(report, started or now - timedelta(minutes=10))
    if status in WITH_ASSIGNEE:
        columns.setdefault("assignee_id", w.worker.id)
        columns.setdefault("assigned_at", now)
    if status == "on_hold":
        columns.setdefault("hold_started_at", now)
    if status == "resolved":
        columns.setdefault("resolved_at", now)
    if status == "closed":
        columns.setdefault("closed_at", now)
    return set_case(report, status=status, **columns)


def version(db, report) -> int:
    return db.session.scalar(select(Report.version).where(Report.id == report.id))


def act(client, db, report, action, user, body=None, *, if_match="current"):
    headers = auth_header(user) if user is not None else {}
    if if_match == "current":
        headers["If-Match"] = f'"{version(db, report)}"'
    elif if_match is not None:
        headers["If-Match"] = if_match
    return client.post(f"{URL}/{report.id}/actions/{action}", json={} if body is None else body, headers=headers)


SNAPSHOT_COLUMNS = (
    Report.status,
    Report.version,
    Report.assignee_id,
    Report.assigned_at,
    Report.cell_id,
    Report.handling_cell_id,
    Report.accepted_at,
    Report.deadline_at,
    Report.warn_at,
    Report.due_at,
    Report.extension_value,
    Report.extension_requested,
    Report.hold_started_at,
    Report.held_seconds,
    Report.duplicate_of_id,
    Report.resolved_at,
    Report.closed_at,
    Report.needs_triage,
    Report.updated_at,
)


def snapshot(db, report) -> tuple:
    row = db.session.execute(select(*SNAPSHOT_COLUMNS).where(Report.id == report.id)).one()
    events = db.session.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.report_id == report.id))
    notes = db.session.scalar(select(func.count()).select_from(Notification))
    return (*row, events, notes)


def events_of(db, report) -> list[CaseEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(CaseEvent).where(CaseEvent.report_id == report.id).order_by(CaseEvent.id)))


def stored(db, report) -> Report:
    db.session.expire_all()
    return db.session.get(Report, report.id)


def duplicate_target(w):
    return case(w, "in_progress", point=NE_POINT)


# action -> (a source status, who does it, body maker, resulting status)
SUCCESS = {
    "accept": ("submitted", "supervisor", lambda w: {"note": "属实"}, "accepted"),
    "reject": ("submitted", "supervisor", lambda w: {"reason": "不属于受理范围"}, "rejected"),
    "assign": ("accepted", "supervisor", lambda w: {"assignee_id": w.worker2.id, "note": "请处理"}, "assigned"),
    "start": ("assigned", "worker", lambda w: {}, "in_progress"),
    "resolve": ("in_progress", "worker", lambda w: {"note": "已清理"}, "resolved"),
    "verify": ("resolved", "supervisor", lambda w: {"note": "核查通过"}, "closed"),
    "close": ("resolved", "supervisor", lambda w: {"note": "结案"}, "closed"),
    "rework": ("resolved", "supervisor", lambda w: {"note": "未清理干净"}, "assigned"),
    "return": ("in_progress", "worker", lambda w: {"reason": "不属于本网格"}, "submitted"),
    "reroute": ("submitted", "supervisor", lambda w: {"cell_id": w.cells[NE].id}, "submitted"),
    "hold": ("in_progress", "worker", lambda w: {"reason": "等待配件"}, "on_hold"),
    "resume": ("on_hold", "worker", lambda w: {}, "in_progress"),
    "request_extension": ("in_progress", "worker", lambda w: {"value": 2, "reason": "工程量大"}, "in_progress"),
    "approve_extension": ("in_progress", "supervisor", lambda w: {}, "in_progress"),
    "deny_extension": ("in_progress", "supervisor", lambda w: {"reason": "时限充足"}, "in_progress"),
    "mark_duplicate": ("submitted", "supervisor", lambda w: {"duplicate_of": duplicate_target(w).id}, "duplicate"),
    "supervise": ("in_progress", "supervisor", lambda w: {"note": "请加快办理"}, "in_progress"),
    "cancel": ("submitted", "resident", lambda w: {}, "cancelled"),
}
PENDING_EXTENSION = {"approve_extension", "deny_extension"}


def setup_case(w, action, status):
    extra = {"extension_requested": 2} if action in PENDING_EXTENSION else {}
    return case(w, status, **extra)


# ---- every action's success ---------------------------------------------------------------------


@pytest.mark.parametrize("as_admin", [False, True], ids=["role", "admin"])
@pytest.mark.parametrize("action", list(SUCCESS))
def test_action_succeeds_and_writes_one_event(client, db, w, action, as_admin):
    source, who, make_body, target = SUCCESS[action]
    report = setup_case(w, action, source)
    body = make_body(w)
    actor = w.admin if as_admin else getattr(w, who)
    before = version(db, report)
    events_before = len(events_of(db, report))

    resp = act(client, db, report, action, actor, body)

    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == target
    after = version(db, report)
    assert after > before
    assert resp.headers["ETag"] == f'"{after}"'
    events = events_of(db, report)
    assert len(events) == events_before + 1
    event = events[-1]
    assert (event.action, event.from_status, event.to_status) == (action, source, target)
    assert (event.actor_id, event.actor_role) == (actor.id, actor.role)
    assert event.note == (body.get("note") or body.get("reason"))


def test_accept_starts_the_clock(client, db, w):
    report = case(w)
    resp = act(client, db, report, "accept", w.supervisor)
    assert resp.status_code == 200, resp.json
    out = resp.json
    accepted = datetime.fromisoformat(out["accepted_at"])
    assert datetime.fromisoformat(out["deadline_at"]) - accepted == timedelta(hours=4)
    assert out["due_at"] == out["deadline_at"]
    assert datetime.fromisoformat(out["warn_at"]) - accepted == timedelta(hours=3.2)
    assert out["sla_state"] == "green"


def test_accept_with_auto_dispatch_hands_over_to_dispatch(client, db, w):
    auto = make_category(hours=4, auto_dispatch=True)
    report = case(w, category=auto)
    resp = act(client, db, report, "accept", w.supervisor)
    assert resp.status_code == 200, resp.json
    # Both SW workers are primary, off duty and idle: the tie goes to the lower id.
    assert (resp.json["status"], resp.json["assignee"]["id"]) == ("assigned", w.worker.id)
    assert resp.json["deadline_at"] is not None
    assert resp.headers["ETag"] == f'"{version(db, report)}"'
    accept, assign = events_of(db, report)[1:]
    assert (accept.action, accept.to_status) == ("accept", "accepted")
    assert (assign.action, assign.actor_role, assign.to_status) == ("assign", "system", "assigned")
    assert assign.data == {"automatic": True, "reason": "primary_off_duty", "assignee_id": w.worker.id}


def test_accept_with_auto_dispatch_and_nobody_serving_notifies_the_supervisors(client, db, w):
    auto = make_category(hours=4, auto_dispatch=True)
    report = case(w, category=auto, point=NW_POINT)
    resp = act(client, db, report, "accept", w.supervisor)
    assert resp.status_code == 200, resp.json
    assert (resp.json["status"], resp.json["assignee"]) == ("accepted", None)
    notified = db.session.scalars(
        select(Notification.user_id).where(Notification.report_id == report.id, Notification.kind == "case_unassigned")
    ).all()
    # The supervisor who accepted acted: only the other one is told.
    assert notified == [w.root_supervisor.id]


def test_assign_records_the_assignee(client, db, w):
    report = case(w, "accepted")
    resp = act(client, db, report, "assign", w.supervisor, {"assignee_id": w.worker2.id})
    assert resp.status_code == 200, resp.json
    assert resp.json["assignee"] == {
        "id": w.worker2.id,
        "username": w.worker2.username,
        "display_name": w.worker2.display_name,
    }
    assert resp.json["assigned_at"] is not None
    assert events_of(db, report)[-1].data == {"assignee_id": w.worker2.id, "previous_assignee_id": None}


def test_return_clears_assignee_and_clock_and_reroute_moves_the_case(client, db, w):
    report = case(w, "assigned", extension_value=1, escalation_level=1, escalated_at=utcnow())
    resp = act(client, db, report, "return", w.worker, {"reason": "应属东北网格"})
    assert resp.status_code == 200, resp.json
    out = resp.json
    assert out["assignee"] is None and out["deadline_at"] is None and out["accepted_at"] is None
    assert out["sla_state"] is None and out["extension_value"] == 0
    assert (out["escalation_level"], out["handling_cell"]["code"]) == (0, SW)
    assert events_of(db, report)[-1].data == {"previous_assignee_id": w.worker.id}

    resp = act(client, db, report, "reroute", w.supervisor, {"cell_id": w.cells[NE].id, "note": "改派"})
    assert resp.status_code == 200, resp.json
    out = resp.json
    assert out["cell"]["code"] == NE and out["handling_cell"]["code"] == NE
    assert out["needs_triage"] is False and out["escalation_level"] == 0
    assert events_of(db, report)[-1].data == {"from_cell": SW, "to_cell": NE}
    # The worker of the old cell no longer sees it; the new cell's worker does.
    assert_problem(client.get(f"{URL}/{report.id}", headers=auth_header(w.worker)), 404, "report_not_found")
    assert client.get(f"{URL}/{report.id}", headers=auth_header(w.worker_ne)).status_code == 200


def test_root_supervisor_reroutes_a_triage_case_then_accepts_it(client, db, w):
    report = case(w, point=FAR_POINT)
    assert_problem(act(client, db, report, "accept", w.root_supervisor), 409, "case_unrouted")
    resp = act(client, db, report, "reroute", w.root_supervisor, {"cell_id": w.cells[SW].id})
    assert resp.status_code == 200, resp.json
    assert resp.json["needs_triage"] is False and resp.json["cell"]["code"] == SW
    resp = act(client, db, report, "accept", w.root_supervisor)
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "accepted"


def test_worker_accepts_and_assigns_in_own_cell_when_self_handling(client, db, w):
    own = make_category(hours=4, auto_dispatch=False, self_handling=True)
    report = case(w, category=own)
    resp = act(client, db, report, "accept", w.worker)
    assert resp.status_code == 200, resp.json
    resp = act(client, db, report, "assign", w.worker, {"assignee_id": w.worker.id})
    assert resp.status_code == 200, resp.json
    assert resp.json["assignee"]["id"] == w.worker.id
    # Not in a cell they serve: they do not even see it.
    elsewhere = case(w, category=own, point=NE_POINT)
    assert_problem(act(client, db, elsewhere, "accept", w.worker), 404, "report_not_found")


def test_supervise_notifies_the_assignee(client, db, w):
    report = case(w, "in_progress")
    resp = act(client, db, report, "supervise", w.supervisor, {"note": "请今天办结"})
    assert resp.status_code == 200, resp.json
    notes = db.session.scalars(select(Notification).where(Notification.report_id == report.id)).all()
    assert [(n.user_id, n.kind, n.body) for n in notes] == [(w.worker.id, "supervision", "请今天办结")]


# ---- statuses an action may not leave from ------------------------------------------------------

NOT_ALLOWED = [(action, status) for action in SUCCESS for status in ALL_STATUSES if status not in cases.SOURCES[action]]


@pytest.mark.parametrize("action, status", NOT_ALLOWED)
def test_action_from_a_wrong_status_is_409_and_changes_nothing(client, db, w, action, status):
    report = setup_case(w, action, status)
    body = SUCCESS[action][2](w)
    before = snapshot(db, report)
    problem = assert_problem(act(client, db, report, action, w.admin, body), 409, "transition_not_allowed")
    assert (problem["action"], problem["case_status"]) == (action, status)
    assert snapshot(db, report) == before


def test_extension_decisions_need_a_pending_request(client, db, w):
    report = case(w, "in_progress")
    before = snapshot(db, report)
    assert_problem(act(client, db, report, "approve_extension", w.supervisor), 409, "no_extension_request")
    assert_problem(
        act(client, db, report, "deny_extension", w.supervisor, {"reason": "x"}), 409, "no_extension_request"
    )
    assert snapshot(db, report) == before


def test_a_second_extension_request_waits_for_the_first(client, db, w):
    report = case(w, "in_progress", extension_requested=1)
    before = snapshot(db, report)
    assert_problem(
        act(client, db, report, "request_extension", w.worker, {"value": 2, "reason": "x"}), 409, "extension_pending"
    )
    assert snapshot(db, report) == before


# ---- who may act --------------------------------------------------------------------------------

WRONG_USERS = [
    ("accept", "submitted", "resident", 403),
    ("accept", "submitted", "resident2", 404),
    ("accept", "submitted", "worker", 403),
    ("accept", "submitted", "other_worker", 404),
    ("accept", "submitted", "other_supervisor", 404),
    ("reject", "submitted", "worker", 403),
    ("reject", "submitted", "resident", 403),
    ("assign", "accepted", "worker", 403),
    ("assign", "accepted", "resident", 403),
    ("start", "assigned", "worker2", 403),
    ("start", "assigned", "supervisor", 403),
    ("start", "assigned", "resident", 403),
    ("start", "assigned", "other_worker", 404),
    ("resolve", "in_progress", "worker2", 403),
    ("resolve", "in_progress", "supervisor", 403),
    ("verify", "resolved", "worker", 403),
    ("verify", "resolved", "resident", 403),
    ("verify", "resolved", "worker_ne", 404),
    ("verify", "resolved", "other_supervisor", 404),
    ("close", "resolved", "worker", 403),
    ("close", "resolved", "worker2", 403),
    ("close", "resolved", "resident", 403),
    ("close", "resolved", "other_supervisor", 404),
    ("rework", "resolved", "worker", 403),
    ("rework", "resolved", "worker2", 403),
    ("return", "in_progress", "supervisor", 403),
    ("return", "assigned", "worker2", 403),
    ("reroute", "submitted", "worker", 403),
    ("reroute", "submitted", "resident", 403),
    ("hold", "in_progress", "worker2", 403),
    ("hold", "in_progress", "supervisor", 403),
    ("resume", "on_hold", "supervisor", 403),
    ("resume", "on_hold", "worker2", 403),
    ("request_extension", "in_progress", "supervisor", 403),
    ("request_extension", "in_progress", "worker2", 403),
    ("approve_extension", "in_progress", "worker", 403),
    ("deny_extension", "in_progress", "worker", 403),
    ("approve_extension", "in_progress", "other_supervisor", 404),
    ("mark_duplicate", "submitted", "worker", 403),
    ("mark_duplicate", "submitted", "resident", 403),
    ("supervise", "in_progress", "worker", 403),
    ("supervise", "in_progress", "resident", 403),
    ("supervise", "in_progress", "other_supervisor", 404),
    ("cancel", "submitted", "resident2", 404),
    ("cancel", "submitted", "supervisor", 403),
    ("cancel", "submitted", "worker", 403),
]


@pytest.mark.parametrize("action, status, who, expected", WRONG_USERS)
def test_wrong_user_is_refused_and_changes_nothing(client, db, w, action, status, who, expected):
    report = setup_case(w, action, status)
    body = SUCCESS[action][2](w)
    before = snapshot(db, report)
    code = "action_forbidden" if expected == 403 else "report_not_found"
    assert_problem(act(client, db, report, action, getattr(w, who), body), expected, code)
    assert snapshot(db, report) == before


def test_worker_cancels_nothing_and_resident_cancels_only_while_submitted(client, db, w):
    report = case(w, "accepted")
    before = snapshot(db, report)
    assert_problem(act(client, db, report, "cancel", w.resident), 409, "transition_not_allowed")
    assert snapshot(db, report) == before


@pytest.mark.parametrize("action", list(SUCCESS))
def test_action_without_a_token_is_401(client, db, w, action):
    report = setup_case(w, action, SUCCESS[action][0])
    before = snapshot(db, report)
    assert_problem(act(client, db, report, action, None, SUCCESS[action][2](w)), 401, "missing_token")
    assert snapshot(db, report) == before


def test_action_on_a_missing_case_is_404(client, db, w):
    resp = client.post(f"{URL}/999999/actions/accept", json={}, headers={**auth_header(w.admin), "If-Match": '"1"'})
    assert_problem(resp, 404, "report_not_found")


# ---- If-Match -----------------------------------------------------------------------------------


def test_get_returns_the_etag_the_actions_check(client, db, w):
    report = case(w)
    resp = client.get(f"{URL}/{report.id}", headers=auth_header(w.supervisor))
    assert resp.status_code == 200
    tag = resp.headers["ETag"]
    assert tag == f'"{version(db, report)}"'
    moved = act(client, db, report, "accept", w.supervisor, if_match=tag)
    assert moved.status_code == 200, moved.json
    assert moved.headers["ETag"] != tag
    assert client.get(f"{URL}/{report.id}", headers=auth_header(w.supervisor)).headers["ETag"] == moved.headers["ETag"]


@pytest.mark.parametrize("action", list(SUCCESS))
def test_action_without_if_match_is_428_and_changes_nothing(client, db, w, action):
    source, who, make_body, _ = SUCCESS[action]
    report = setup_case(w, action, source)
    before = snapshot(db, report)
    assert_problem(
        act(client, db, report, action, getattr(w, who), make_body(w), if_match=None), 428, "if_match_required"
    )
    assert snapshot(db, report) == before


@pytest.mark.parametrize("action", list(SUCCESS))
def test_action_with_a_stale_etag_is_412_and_changes_nothing(client, db, w, action):
    source, who, make_body, _ = SUCCESS[action]
    report = setup_case(w, action, source)
    stale = f'"{version(db, report) - 1}"'
    before = snapshot(db, report)
    assert_problem(
        act(client, db, report, action, getattr(w, who), make_body(w), if_match=stale), 412, "version_mismatch"
    )
    assert snapshot(db, report) == before


@pytest.mark.parametrize("header", ["*", 'W/"{v}"', "{v}", '"abc"', ""])
def test_unusable_if_match_is_412(client, db, w, header):
    report = case(w)
    before = snapshot(db, report)
    tag = header.format(v=version(db, report))
    assert_problem(act(client, db, report, "accept", w.supervisor, if_match=tag), 412, "version_mismatch")
    assert snapshot(db, report) == before


def test_if_match_list_containing_the_current_etag_passes(client, db, w):
    report = case(w)
    resp = act(client, db, report, "accept", w.supervisor, if_match=f'"999", "{version(db, report)}"')
    assert resp.status_code == 200, resp.json


def test_one_of_two_requests_with_the_same_etag_wins(client, db, w):
    report = case(w)
    tag = f'"{version(db, report)}"'
    first = act(client, db, report, "accept", w.supervisor, if_match=tag)
    second = act(client, db, report, "reject", w.supervisor, {"reason": "重复"}, if_match=tag)
    assert first.status_code == 200
    assert_problem(second, 412, "version_mismatch")
    assert [e.action for e in events_of(db, report)] == ["create", "accept"]


def test_a_write_that_loses_the_race_after_its_checks_is_412(client, db, w, monkeypatch):
    """Another transaction moves the row between this request's checks and its UPDATE: the version check wins."""
    report = case(w)
    original = cases._begin

    def begin_then_concurrent_write(user, rep, action, if_match):
        source = original(user, rep, action, if_match)
        db.session.execute(text("UPDATE reports SET version = version + 1 WHERE id = :id"), {"id": rep.id})
        return source

    monkeypatch.setattr(cases, "_begin", begin_then_concurrent_write)
    before_events = len(events_of(db, report))
    assert_problem(act(client, db, report, "accept", w.supervisor), 412, "version_mismatch")
    assert stored(db, report).status == "submitted"
    assert len(events_of(db, report)) == before_events


# ---- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("action", list(SUCCESS))
def test_unknown_field_is_422_and_changes_nothing(client, db, w, action):
    source, who, make_body, _ = SUCCESS[action]
    report = setup_case(w, action, source)
    before = snapshot(db, report)
    problem = assert_problem(
        act(client, db, report, action, getattr(w, who), {**make_body(w), "status": "closed"}), 422, "validation_failed"
    )
    assert "status" in problem["errors"]
    assert snapshot(db, report) == before


BAD_BODIES = [
    ("accept", {"note": 5}, "note"),
    ("accept", {"note": ""}, "note"),
    ("reject", {}, "reason"),
    ("reject", {"reason": ["x"]}, "reason"),
    ("assign", {}, "assignee_id"),
    ("assign", {"assignee_id": "3"}, "assignee_id"),
    ("assign", {"assignee_id": True}, "assignee_id"),
    ("assign", {"assignee_id": 0}, "assignee_id"),
    ("start", {"note": {"a": 1}}, "note"),
    ("resolve", {}, "note"),
    ("resolve", {"note": ""}, "note"),
    ("resolve", {"note": "x" * 2001}, "note"),
    ("verify", {"note": 1.5}, "note"),
    ("close", {"note": ["x"]}, "note"),
    ("rework", {}, "note"),
    ("return", {}, "reason"),
    ("return", {"note": "wrong cell"}, "reason"),
    ("reroute", {}, "cell_id"),
    ("reroute", {"cell_id": "12"}, "cell_id"),
    ("reroute", {"cell_id": 1.5}, "cell_id"),
    ("hold", {}, "reason"),
    ("resume", {"note": 3}, "note"),
    ("request_extension", {"reason": "x"}, "value"),
    ("request_extension", {"value": 2}, "reason"),
    ("request_extension", {"value": "2", "reason": "x"}, "value"),
    ("request_extension", {"value": 2.5, "reason": "x"}, "value"),
    ("request_extension", {"value": 0, "reason": "x"}, "value"),
    ("request_extension", {"value": -1, "reason": "x"}, "value"),
    ("request_extension", {"value": 10**6, "reason": "x"}, "value"),
    ("approve_extension", {"value": 3}, "value"),
    ("deny_extension", {}, "reason"),
    ("mark_duplicate", {}, "duplicate_of"),
    ("mark_duplicate", {"duplicate_of": "1"}, "duplicate_of"),
    ("supervise", {}, "note"),
    ("cancel", {"reason": "x"}, "reason"),
]


@pytest.mark.parametrize("action, body, field", BAD_BODIES)
def test_bad_body_is_422_and_changes_nothing(client, db, w, action, body, field):
    source, who, _, _ = SUCCESS[action]
    report = setup_case(w, action, source)
    before = snapshot(db, report)
    problem = assert_problem(act(client, db, report, action, getattr(w, who), body), 422, "validation_failed")
    assert field in problem["errors"], problem
    assert snapshot(db, report) == before


def test_malformed_json_is_400_and_changes_nothing(client, db, w):
    report = case(w)
    before = snapshot(db, report)
    resp = client.post(
        f"{URL}/{report.id}/actions/accept",
        data="{not json",
        content_type="application/json",
        headers={**auth_header(w.supervisor), "If-Match": f'"{version(db, report)}"'},
    )
    assert_problem(resp, 400, "malformed_json")
    assert snapshot(db, report) == before


@pytest.mark.parametrize("assignee", ["missing", "worker_ne", "supervisor", "resident", "inactive"])
def test_assignee_must_be_an_active_worker_of_the_cell(client, db, w, assignee):
    report = case(w, "accepted")
    if assignee == "missing":
        assignee_id = 999999
    elif assignee == "inactive":
        assignee_id = make_user("worker", served=[w.cells[SW]], active=False).id
    else:
        assignee_id = getattr(w, assignee).id
    before = snapshot(db, report)
    problem = assert_problem(
        act(client, db, report, "assign", w.supervisor, {"assignee_id": assignee_id}), 422, "validation_failed"
    )
    assert "assignee_id" in problem["errors"]
    assert snapshot(db, report) == before


@pytest.mark.parametrize(
    "target, who, status, code",
    [
        ("missing", "supervisor", 422, "validation_failed"),
        ("community", "supervisor", 422, "validation_failed"),
        ("other", "supervisor", 403, "cell_out_of_scope"),
        ("other", "root_supervisor", 403, "cell_out_of_scope"),
    ],
)
def test_reroute_needs_a_grid_cell_of_the_callers_subtree(client, db, w, target, who, status, code):
    report = case(w)
    cell_id = {"missing": 999999, "community": w.cells[COMMUNITY].id, "other": w.cells[OTHER_GRID].id}[target]
    before = snapshot(db, report)
    assert_problem(act(client, db, report, "reroute", getattr(w, who), {"cell_id": cell_id}), status, code)
    assert snapshot(db, report) == before


def test_admin_reroutes_anywhere(client, db, w):
    report = case(w)
    resp = act(client, db, report, "reroute", w.admin, {"cell_id": w.cells[OTHER_GRID].id})
    assert resp.status_code == 200, resp.json
    assert resp.json["cell"]["code"] == OTHER_GRID


# ---- the clock: hold/resume and extensions ------------------------------------------------------


def test_hold_and_resume_move_the_deadlines_by_the_time_held(client, db, w):
    report = case(w, "in_progress")
    clock_before = stored(db, report)
    deadline, warn, due = clock_before.deadline_at, clock_before.warn_at, clock_before.due_at

    resp = act(client, db, report, "hold", w.worker, {"reason": "等待配件"})
    assert resp.status_code == 200, resp.json
    held = stored(db, report)
    assert held.hold_started_at is not None
    # Pretend the hold began two hours ago.
    set_case(held, hold_started_at=held.hold_started_at - timedelta(hours=2))

    resp = act(client, db, report, "resume", w.worker)
    assert resp.status_code == 200, resp.json
    after = stored(db, report)
    assert after.hold_started_at is None
    assert after.held_seconds >= 2 * 3600
    moved = timedelta(seconds=after.held_seconds)
    assert (after.deadline_at - deadline, after.warn_at - warn, after.due_at - due) == (moved, moved, moved)
    assert events_of(db, report)[-1].data == {"held_seconds": after.held_seconds}


def test_a_held_case_is_judged_where_its_clock_stopped(client, db, w):
    # Five hours in on a four-hour limit, but on hold since minute ten: still green.
    report = case(
        w, "on_hold", started=utcnow() - timedelta(hours=5), hold_started_at=utcnow() - timedelta(hours=4, minutes=50)
    )
    resp = client.get(f"{URL}/{report.id}", headers=auth_header(w.supervisor))
    assert resp.json["sla_state"] == "green"


def test_approved_extension_moves_due_and_deadline(client, db, w):
    report = case(w, "in_progress")
    due = stored(db, report).due_at
    resp = act(client, db, report, "request_extension", w.worker, {"value": 3, "reason": "需要协调"})
    assert resp.status_code == 200, resp.json
    assert resp.json["extension_requested"] == 3
    assert stored(db, report).due_at == due

    resp = act(client, db, report, "approve_extension", w.supervisor, {"note": "同意"})
    assert resp.status_code == 200, resp.json
    after = stored(db, report)
    assert (after.extension_value, after.extension_requested) == (3, None)
    assert after.due_at - due == timedelta(hours=3)
    assert after.deadline_at == after.due_at
    assert resp.json["extension_requested"] is None and resp.json["extension_value"] == 3
    assert events_of(db, report)[-1].data["value"] == 3


def test_denied_extension_leaves_the_deadline(client, db, w):
    report = case(w, "in_progress", extension_requested=5)
    due = stored(db, report).due_at
    resp = act(client, db, report, "deny_extension", w.supervisor, {"reason": "时限充足"})
    assert resp.status_code == 200, resp.json
    after = stored(db, report)
    assert (after.due_at, after.extension_value, after.extension_requested) == (due, 0, None)


# ---- late stays late ----------------------------------------------------------------------------


def late_case(w, status="in_progress", **columns):
    """Five hours into a four-hour limit: its due time passed an hour ago, and the sweep has not run yet."""
    return case(w, status, started=utcnow() - timedelta(hours=5), **columns)


def test_an_extension_approved_after_the_due_time_leaves_the_case_late(client, db, w):
    report = late_case(w, extension_requested=3)
    missed = stored(db, report).due_at
    resp = act(client, db, report, "approve_extension", w.supervisor)
    assert resp.status_code == 200, resp.json
    after = stored(db, report)
    assert after.due_at - missed == timedelta(hours=3) and after.late_since == missed
    assert (resp.json["sla_state"], resp.json["late"], resp.json["level_sla_state"]) == ("red", True, "green")


def test_a_hold_after_the_due_time_keeps_the_case_late_through_the_resume(client, db, w):
    report = late_case(w)
    missed = stored(db, report).due_at
    assert act(client, db, report, "hold", w.worker, {"reason": "等待配件"}).status_code == 200
    assert stored(db, report).late_since == missed
    set_case(stored(db, report), hold_started_at=utcnow() - timedelta(hours=2))
    resp = act(client, db, report, "resume", w.worker)
    assert resp.status_code == 200, resp.json
    after = stored(db, report)
    assert after.due_at > missed and after.late_since == missed
    assert (resp.json["sla_state"], resp.json["late"]) == ("red", True)


@pytest.mark.parametrize("action", ["verify", "close"])
def test_closing_after_the_due_time_is_late_and_before_it_on_time(client, db, w, action):
    late = late_case(w, "resolved")
    resp = act(client, db, late, action, w.supervisor, {"note": "结案"})
    assert resp.status_code == 200, resp.json
    assert (resp.json["status"], resp.json["sla_state"], resp.json["late"]) == ("closed", "red", True)
    assert resp.json["late_since"] == resp.json["due_at"] and resp.json["level_sla_state"] is None
    on_time = case(w, "resolved")
    resp = act(client, db, on_time, action, w.supervisor, {"note": "结案"})
    assert (resp.json["sla_state"], resp.json["late"], resp.json["late_since"]) == ("green", False, None)


def test_a_late_case_marked_duplicate_stays_late(client, db, w):
    report = late_case(w)
    resp = act(client, db, report, "mark_duplicate", w.supervisor, {"duplicate_of": duplicate_target(w).id})
    assert resp.status_code == 200, resp.json
    assert stored(db, report).late_since == stored(db, report).due_at
    assert (resp.json["status"], resp.json["sla_state"], resp.json["late"]) == ("duplicate", "red", True)


def test_a_return_restarts_the_clock_and_clears_the_lateness(client, db, w):
    report = late_case(w, escalation_level=1, late_since=utcnow() - timedelta(hours=1))
    resp = act(client, db, report, "return", w.worker, {"reason": "应属东北网格"})
    assert resp.status_code == 200, resp.json
    assert stored(db, report).late_since is None
    assert (resp.json["sla_state"], resp.json["late"], resp.json["late_since"]) == (None, False, None)


# ---- duplicates ---------------------------------------------------------------------------------


def test_duplicate_links_to_an_open_case_of_the_same_community(client, db, w):
    original = case(w, "in_progress", point=NE_POINT)
    report = case(w)
    resp = act(client, db, report, "mark_duplicate", w.supervisor, {"duplicate_of": original.id, "note": "同一处"})
    assert resp.status_code == 200, resp.json
    assert (resp.json["status"], resp.json["duplicate_of"]) == ("duplicate", original.id)
    assert events_of(db, report)[-1].data == {"duplicate_of": original.id, "case_number": original.case_number}


def test_a_triage_case_may_duplicate_any_case_the_supervisor_sees(client, db, w):
    original = case(w, "accepted")
    report = case(w, point=FAR_POINT)
    resp = act(client, db, report, "mark_duplicate", w.root_supervisor, {"duplicate_of": original.id})
    assert resp.status_code == 200, resp.json


@pytest.mark.parametrize("rule", ["itself", "closed", "duplicate", "other_community", "unseen", "missing"])
def test_duplicate_rules(client, db, w, rule):
    report = case(w)
    who = w.supervisor
    if rule == "itself":
        target = report.id
    elif rule == "closed":
        target = case(w, "closed", point=NE_POINT).id
    elif rule == "duplicate":
        target = case(w, "duplicate", point=NE_POINT).id
    elif rule == "other_community":
        target, who = case(w, "accepted", point=OTHER_POINT).id, w.admin
    elif rule == "unseen":
        target = case(w, "accepted", point=OTHER_POINT).id
    else:
        target = 999999
    before = snapshot(db, report)
    problem = assert_problem(
        act(client, db, report, "mark_duplicate", who, {"duplicate_of": target}), 422, "validation_failed"
    )
    assert "duplicate_of" in problem["errors"]
    assert snapshot(db, report) == before


# ---- the whole loop and its history -------------------------------------------------------------


def test_full_loop_round_trip_with_history(client, db, w):
    filed = client.post(
        URL,
        headers=auth_header(w.resident),
        json={
            "category_code": w.category.code,
            "description": "垃圾桶满溢",
            "location": {"lon": SW_POINT[0], "lat": SW_POINT[1]},
        },
    )
    assert filed.status_code == 201, filed.json
    report = stored(db, SimpleNamespace(id=filed.json["id"]))
    steps = [
        ("accept", w.supervisor, {}, "accepted"),
        ("assign", w.supervisor, {"assignee_id": w.worker.id}, "assigned"),
        ("start", w.worker, {}, "in_progress"),
        ("hold", w.worker, {"reason": "等待清运车"}, "on_hold"),
        ("resume", w.worker, {}, "in_progress"),
        ("request_extension", w.worker, {"value": 1, "reason": "量大"}, "in_progress"),
        ("approve_extension", w.supervisor, {}, "in_progress"),
        ("supervise", w.supervisor, {"note": "今日办结"}, "in_progress"),
        ("resolve", w.worker, {"note": "已清运"}, "resolved"),
        ("rework", w.supervisor, {"note": "周边仍有垃圾"}, "assigned"),
        ("start", w.worker, {}, "in_progress"),
        ("resolve", w.worker, {"note": "已全部清运"}, "resolved"),
        ("verify", w.worker2, {"note": "现场核查通过"}, "closed"),
    ]
    tag = client.get(f"{URL}/{report.id}", headers=auth_header(w.admin)).headers["ETag"]
    for action, user, body, status in steps:
        resp = act(client, db, report, action, user, body, if_match=tag)
        assert resp.status_code == 200, (action, resp.json)
        assert resp.json["status"] == status
        tag = resp.headers["ETag"]

    out = client.get(f"{URL}/{report.id}", headers=auth_header(w.resident)).json
    assert out["status"] == "closed" and out["closed_at"] is not None and out["sla_state"] == "green"
    # Staff read the full history; the resident's public one is in tests/test_residents.py.
    history = client.get(f"{URL}/{report.id}/events", headers=auth_header(w.supervisor)).json
    assert [(e["action"], e["from_status"], e["to_status"]) for e in history] == [
        ("create", None, "submitted"),
        ("accept", "submitted", "accepted"),
        ("assign", "accepted", "assigned"),
        ("start", "assigned", "in_progress"),
        ("hold", "in_progress", "on_hold"),
        ("resume", "on_hold", "in_progress"),
        ("request_extension", "in_progress", "in_progress"),
        ("approve_extension", "in_progress", "in_progress"),
        ("supervise", "in_progress", "in_progress"),
        ("resolve", "in_progress", "resolved"),
        ("rework", "resolved", "assigned"),
        ("start", "assigned", "in_progress"),
        ("resolve", "in_progress", "resolved"),
        ("verify", "resolved", "closed"),
    ]
    assert [e["actor_id"] for e in history] == [w.resident.id] + [user.id for _, user, _, _ in steps]
    assert history[4]["note"] == "等待清运车" and history[-1]["actor_role"] == "worker"


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_events_cannot_be_changed_through_the_api(client, db, w, method):
    report = case(w)
    event = events_of(db, report)[0]
    for url in (f"{URL}/{report.id}/events", f"{URL}/{report.id}/events/{event.id}"):
        resp = getattr(client, method)(url, json={"note": "x"}, headers=auth_header(w.admin))
        assert resp.status_code in (404, 405)
    assert events_of(db, report)[0].note is None


def test_postgis_refuses_update_and_delete_of_events(db, w, backend):
    if backend != "postgis":
        pytest.skip("the append-only trigger is PostgreSQL's")
    report = case(w)
    for statement in (
        "UPDATE case_events SET note = 'edited' WHERE report_id = :id",
        "DELETE FROM case_events WHERE report_id = :id",
    ):
        with pytest.raises(IntegrityError, match="append-only"), db.session.begin_nested():
            db.session.execute(text(statement), {"id": report.id})
    assert len(events_of(db, report)) == 1


# ---- two connections at once --------------------------------------------------------------------


@pytest.fixture()
def live(app):
    """A committed world that separate connections can see; removed afterwards."""
    with committed_world(app):
        world = build_world()
        world.report = case(world)
        yield world


def test_two_concurrent_actions_on_one_case_have_one_winner(app, live, backend, monkeypatch):
    from app.extensions import db as real_db

    world = live
    report_id = world.report.id
    headers = {**auth_header(world.supervisor), "If-Match": f'"{world.report.version}"'}
    # This thread's session must not hold SQLite's write lock while the two requests run.
    real_db.session.close()
    if backend == "postgis":
        # Both requests pass their checks before either writes, so the row's version decides.
        barrier = threading.Barrier(2, timeout=20)
        original = cases._begin

        def begin_together(*args):
            source = original(*args)
            barrier.wait()
            return source

        monkeypatch.setattr(cases, "_begin", begin_together)
    results = {}

    def run(action, body):
        results[action] = app.test_client().post(f"{URL}/{report_id}/actions/{action}", json=body, headers=headers)

    threads = [
        threading.Thread(target=run, args=("accept", {})),
        threading.Thread(target=run, args=("reject", {"reason": "不属实"})),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    codes = sorted(resp.status_code for resp in results.values())
    assert codes == [200, 412], {a: r.get_json() for a, r in results.items()}
    winner = next(a for a, r in results.items() if r.status_code == 200)
    loser = next(r for r in results.values() if r.status_code == 412)
    assert loser.get_json()["code"] == "version_mismatch"
    real_db.session.expire_all()
    stored_report = real_db.session.get(Report, report_id)
    assert stored_report.status == {"accept": "accepted", "reject": "rejected"}[winner]
    actions = real_db.session.scalars(
        select(CaseEvent.action).where(CaseEvent.report_id == report_id).order_by(CaseEvent.id)
    ).all()
    assert actions == ["create", winner]


OVERSIZED = '{"note": "' + "x" * (1024 * 1024) + '"}'


@pytest.mark.parametrize("action", list(SUCCESS))
@pytest.mark.parametrize(
    "raw, status, code",
    [("{not json", 400, "malformed_json"), (OVERSIZED, 413, "payload_too_large")],
    ids=["malformed", "oversized"],
)
def test_every_action_refuses_an_unreadable_body_and_changes_nothing(client, db, w, action, raw, status, code):
    source, who, _, _ = SUCCESS[action]
    report = setup_case(w, action, source)
    before = snapshot(db, report)
    events_before = len(events_of(db, report))
    resp = client.post(
        f"{URL}/{report.id}/actions/{action}",
        data=raw,
        content_type="application/json",
        headers={**auth_header(getattr(w, who)), "If-Match": f'"{version(db, report)}"'},
    )
    assert_problem(resp, status, code)
    assert snapshot(db, report) == before
    assert len(events_of(db, report)) == events_before
