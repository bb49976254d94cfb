"""The access matrix: every endpoint that takes an object id, against every relationship to that object.

A row per endpoint says what each relationship gets; an endpoint of the app without a row fails the test, so a
new endpoint is added here the day it is written. Each cell runs against a fresh object in its expected state,
so one relationship's success cannot change what the next one meets.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from app.models import CaseEvent, Notification, ReportFollower
from app.models.base import utcnow
from tests.factories import (
    COMMUNITY,
    GRID_BOXES,
    OTHER_COMMUNITY,
    OTHER_GRID,
    auth_header,
    make_api_key,
    make_case,
    make_category,
    make_cell,
    make_two_district_grid,
    make_user,
)
from tests.test_attachments import png

SW, NE = "11010500100101", "11010500100104"
API = "/api/v1"
# Each relationship to the case (and, through it, to its cell, photos, notifications): who asks.
RELATIONS = (
    "owner",
    "follower",
    "resident",
    "cell_worker",
    "other_worker",
    "supervisor",
    "other_supervisor",
    "admin",
    "anonymous",
)
# Statuses of a row in RELATIONS order; "full" and "public" are 200 with that view of the case.
CASE_READ = ("full", "public", 404, "full", 404, "full", 404, "full", 401)
SUPERVISOR_ACTION = (403, 403, 404, 403, 404, 200, 404, 200, 401)
ASSIGNEE_ACTION = (403, 403, 404, 200, 404, 403, 404, 200, 401)
ADMIN_ONLY = (403, 403, 403, 403, 403, 403, 403, 200, 401)
ANY_SIGNED_IN = (200, 200, 200, 200, 200, 200, 200, 200, 401)
MANAGERS_OF_THE_CELL = (403, 403, 403, 403, 403, 200, 403, 200, 401)
# Clock fields of a case whose clock runs (accepted and later), so every action finds what it needs.
CLOCK = {"time_limit_value": 4, "time_limit_unit": "hours"}


@dataclass
class Row:
    method: str
    path: str
    expected: tuple
    # Builds the object for one relationship: path values, and the JSON body or multipart form to send.
    make: Callable[[SimpleNamespace], dict[str, Any]]
    status_when_allowed: int = 200
    body: dict[str, Any] | Callable[[SimpleNamespace], dict[str, Any]] | None = None
    multipart: bool = False
    if_match: bool = False
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def case(w, status="accepted", **columns):
    """A case of the owner's in the SW cell, followed by the follower, in `status` with what that status has."""
    now = utcnow()
    if status not in ("submitted", "rejected", "cancelled"):
        columns = {
            **CLOCK,
            "accepted_at": now,
            "deadline_at": now + timedelta(hours=4),
            "warn_at": now + timedelta(hours=3),
            "due_at": now + timedelta(hours=4),
            **columns,
        }
    if status in ("assigned", "in_progress", "on_hold", "resolved", "closed"):
        columns.setdefault("assignee_id", w.cell_worker.id)
    if status == "on_hold":
        columns.setdefault("hold_started_at", now)
    if status in ("resolved", "closed"):
        columns.setdefault("resolved_at", now)
    if status == "closed":
        columns.setdefault("closed_at", now)
    report = make_case(w.owner, w.category, w.cells[SW], status=status, lon=116.4021, lat=39.9081, **columns)
    w.db.session.add(ReportFollower(report_id=report.id, user_id=w.follower.id))
    w.db.session.add(
        CaseEvent(
            report_id=report.id, actor_id=w.owner.id, actor_role="resident", action="create", to_status="submitted"
        )
    )
    w.db.session.commit()
    return report


def report_id(status="accepted", **columns):
    return lambda w: {"report_id": case(w, status, **columns).id}


def _photo(w):
    report = case(w, "in_progress")
    from app.services.field.attachments import add_attachment

    attachment = add_attachment(w.cell_worker, report, stage="after", data=png(), filename="after.png")
    w.db.session.commit()
    return {"report_id": report.id, "attachment_id": attachment.id}


def _duplicate(w):
    original = case(w, "accepted")
    return {"report_id": case(w, "accepted").id, "duplicate_of": original.id}


def _notification(w):
    report = case(w)
    note = Notification(user_id=w.owner.id, report_id=report.id, kind="case_closed", title="通知")
    w.db.session.add(note)
    w.db.session.commit()
    return {"notification_id": note.id}


def _fresh_cell(w):
    """A grid cell of its own (no reports, no workers), that an admin may delete."""
    n = w.seq = getattr(w, "seq", 0) + 1
    return {"cell_id": make_cell(f"{COMMUNITY}{50 + n:02d}", "grid", GRID_BOXES[NE], w.cells[COMMUNITY]).id}


def _assignment(w):
    from app.services.people.workers import assign

    assignment = assign(w.cells[NE], user_id=make_user("worker").id, duty="backup")
    w.db.session.commit()
    return {"cell_id": w.cells[NE].id, "assignment_id": assignment.id}


def _calendar_day(w):
    from app.services.calendar.days import set_day

    set_day(w.day, kind="holiday", name="测试")
    w.db.session.commit()
    return {"day": w.day.isoformat()}


ACTION_BODIES = {
    "reject": {"reason": "不属实"},
    "assign": lambda w: {"assignee_id": w.cell_worker.id},
    "resolve": {"note": "已处理"},
    "rework": {"note": "仍有"},
    "return": {"reason": "非本网格"},
    "reroute": lambda w: {"cell_id": w.cells[NE].id},
    "hold": {"reason": "等材料"},
    "request_extension": {"value": 2, "reason": "需要更多时间"},
    "deny_extension": {"reason": "不同意"},
    "supervise": {"note": "请今日办结"},
    "rate": {"score": 4},
}
ACTIONS = {
    # action: (the case's status, who may take it)
    "accept": ("submitted", SUPERVISOR_ACTION),
    "reject": ("submitted", SUPERVISOR_ACTION),
    "assign": ("accepted", SUPERVISOR_ACTION),
    "start": ("assigned", ASSIGNEE_ACTION),
    "resolve": ("in_progress", ASSIGNEE_ACTION),
    # The assignee never signs off their own work.
    "verify": ("resolved", SUPERVISOR_ACTION),
    "close": ("resolved", SUPERVISOR_ACTION),
    "rework": ("resolved", SUPERVISOR_ACTION),
    "return": ("assigned", ASSIGNEE_ACTION),
    "reroute": ("submitted", SUPERVISOR_ACTION),
    "hold": ("in_progress", ASSIGNEE_ACTION),
    "resume": ("on_hold", ASSIGNEE_ACTION),
    "request_extension": ("in_progress", ASSIGNEE_ACTION),
    "approve_extension": ("in_progress", SUPERVISOR_ACTION),
    "deny_extension": ("in_progress", SUPERVISOR_ACTION),
    "mark_duplicate": ("accepted", SUPERVISOR_ACTION),
    "supervise": ("assigned", SUPERVISOR_ACTION),
    # Residents cancel their own submitted case (admins may take every action).
    "cancel": ("submitted", (200, 403, 404, 403, 404, 403, 404, 200, 401)),
}


def _action_rows() -> list[Row]:
    rows = []
    for action, (status, expected) in ACTIONS.items():
        extension = (
            {"extension_requested": 2} if action.endswith("_extension") and action != "request_extension" else {}
        )
        make = _duplicate if action == "mark_duplicate" else report_id(status, **extension)
        rows.append(
            Row(
                "POST",
                f"{API}/reports/{{report_id}}/actions/{action}",
                expected,
                make,
                body=ACTION_BODIES.get(action, {}),
                if_match=True,
            )
        )
    return rows


ROWS = [
    Row("GET", f"{API}/reports/{{report_id}}", CASE_READ, report_id()),
    # Internal notes never reach a resident: the reporter too reads the public history.
    Row(
        "GET",
        f"{API}/reports/{{report_id}}/events",
        ("public", "public", 404, "full", 404, "full", 404, "full", 401),
        report_id(),
    ),
    *_action_rows(),
    # Only the reporter rates; a follower sees the case, so 403 rather than 404.
    Row(
        "POST",
        f"{API}/reports/{{report_id}}/actions/rate",
        (200, 403, 404, 403, 404, 403, 404, 403, 401),
        report_id("closed"),
        body={"score": 4},
    ),
    # Residents follow; their own case is 409 own_case; staff are refused by role, before any look-up.
    Row(
        "POST",
        f"{API}/reports/{{report_id}}/actions/follow",
        (409, 200, 404, 403, 403, 403, 403, 403, 401),
        report_id(),
        body={},
    ),
    Row(
        "POST",
        f"{API}/reports/{{report_id}}/actions/unfollow",
        (200, 200, 404, 403, 403, 403, 403, 403, 401),
        report_id(),
        body={},
    ),
    Row(
        "GET",
        f"{API}/reports/{{report_id}}/attachments",
        (200, 200, 404, 200, 404, 200, 404, 200, 401),
        report_id("in_progress"),
    ),
    # A follower may see the case but add nothing to it.
    Row(
        "POST",
        f"{API}/reports/{{report_id}}/attachments",
        (201, 403, 404, 201, 404, 201, 404, 201, 401),
        report_id("in_progress"),
        multipart=True,
    ),
    # An "after" photo of a private category is not in the public view: the follower does not see it.
    Row(
        "GET",
        f"{API}/reports/{{report_id}}/attachments/{{attachment_id}}",
        (200, 404, 404, 200, 404, 200, 404, 200, 401),
        _photo,
    ),
    Row(
        "GET",
        f"{API}/reports/{{report_id}}/attachments/{{attachment_id}}/content",
        (200, 404, 404, 200, 404, 200, 404, 200, 401),
        _photo,
    ),
    Row("GET", f"{API}/cells/{{cell_id}}/reports/summary", ANY_SIGNED_IN, lambda w: {"cell_id": w.cells[SW].id}),
    Row("GET", f"{API}/cells/{{cell_id}}", ANY_SIGNED_IN, lambda w: {"cell_id": w.cells[SW].id}),
    Row("GET", f"{API}/cells/{{cell_id}}/children", ANY_SIGNED_IN, lambda w: {"cell_id": w.cells[COMMUNITY].id}),
    Row(
        "PATCH",
        f"{API}/cells/{{cell_id}}",
        ADMIN_ONLY,
        lambda w: {"cell_id": w.cells[SW].id},
        body={"name": "改名网格"},
    ),
    Row("DELETE", f"{API}/cells/{{cell_id}}", ADMIN_ONLY, _fresh_cell, status_when_allowed=204),
    Row(
        "PATCH",
        f"{API}/categories/{{category_id}}",
        ADMIN_ONLY,
        lambda w: {"category_id": w.category.id},
        body={"name": "改名"},
    ),
    Row("GET", f"{API}/calendar/days/{{day}}", ADMIN_ONLY, _calendar_day),
    Row("PUT", f"{API}/calendar/days/{{day}}", ADMIN_ONLY, _calendar_day, body={"kind": "workday"}),
    Row("DELETE", f"{API}/calendar/days/{{day}}", ADMIN_ONLY, _calendar_day),
    Row("GET", f"{API}/users/{{user_id}}", ADMIN_ONLY, lambda w: {"user_id": w.cell_worker.id}),
    Row(
        "PATCH",
        f"{API}/users/{{user_id}}",
        ADMIN_ONLY,
        lambda w: {"user_id": w.cell_worker.id},
        body={"display_name": "王师傅"},
    ),
    # Supervisors manage the cells of their subtree (elsewhere 403 outside_subtree), admins every cell.
    Row("GET", f"{API}/cells/{{cell_id}}/workers", MANAGERS_OF_THE_CELL, lambda w: {"cell_id": w.cells[NE].id}),
    Row(
        "POST",
        f"{API}/cells/{{cell_id}}/workers",
        MANAGERS_OF_THE_CELL,
        lambda w: {"cell_id": w.cells[NE].id},
        body=lambda w: {"user_id": make_user("worker").id, "duty": "backup"},
        status_when_allowed=201,
    ),
    Row(
        "DELETE",
        f"{API}/cells/{{cell_id}}/workers/{{assignment_id}}",
        MANAGERS_OF_THE_CELL,
        _assignment,
        status_when_allowed=204,
    ),
    # One's own notification only; anyone else's is unseen.
    Row(
        "POST",
        f"{API}/notifications/{{notification_id}}/read",
        (200, 404, 404, 404, 404, 404, 404, 404, 401),
        _notification,
        body={},
    ),
    Row(
        "DELETE",
        f"{API}/api-keys/{{key_id}}",
        ADMIN_ONLY,
        lambda w: {"key_id": make_api_key("app").api_key.id},
        status_when_allowed=204,
    ),
]
_accounts = iter(range(1, 10_000))


def _new_account(role: str, cell_code: str) -> Callable[[SimpleNamespace], dict[str, Any]]:
    return lambda w: {
        "username": f"matrix.{role}.{next(_accounts)}",
        "password": "long-enough-1",
        "role": role,
        "cell_code": cell_code,
    }


# Endpoints without a path value whose object is named in the body: here the cell a new account works in.
BODY_ROWS = [
    # Supervisors create workers of their subtree's grid cells (elsewhere 403 outside_subtree); admins any account.
    Row(
        "POST",
        f"{API}/users",
        MANAGERS_OF_THE_CELL,
        lambda w: {},
        body=_new_account("worker", NE),
        status_when_allowed=201,
        note="worker",
    ),
    Row(
        "POST",
        f"{API}/users",
        ADMIN_ONLY,
        lambda w: {},
        body=_new_account("supervisor", COMMUNITY),
        status_when_allowed=201,
        note="supervisor",
    ),
]
# Routes with a path value that are not objects of anyone's.
NOT_OBJECTS = {
    ("GET", "/api/v1/docs/assets/{filename}"): "Swagger UI's own files",
    ("GET", "/static/{filename}"): "Flask's static folder",
    ("GET", "/console/{name}"): "the console's built files (public; the data comes from /api/v1)",
}
# Open311 reads name a request (or its token) and have their own callers: API keys, not accounts.
OPEN311_ROWS = {
    ("GET", "/open311/v2/requests/{name}"): "requests",
    ("GET", "/open311/v2/tokens/{name}"): "tokens",
    ("GET", "/open311/v2/services/{name}"): "services",
    ("GET", "/open311/v2/service/{name}"): "services",
    ("GET", "/open311/v2/discovery.{fmt}"): None,
    ("GET", "/open311/v2/services.{fmt}"): None,
    ("GET", "/open311/v2/requests.{fmt}"): None,
    ("POST", "/open311/v2/requests.{fmt}"): None,
}


def _app_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.arguments:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        routes.update((method, path) for method in rule.methods - {"HEAD", "OPTIONS"})
    return routes


def test_every_route_with_a_path_value_has_a_row(app):
    covered = {(row.method, row.path) for row in ROWS} | set(NOT_OBJECTS) | set(OPEN311_ROWS)
    routes = _app_routes(app)
    assert routes - covered == set(), "add a row to ROWS (or say why it is not an object) for these routes"
    assert covered - routes == set(), "rows for routes the app no longer has"


@pytest.fixture()
def w(db):
    cells = make_two_district_grid()
    return SimpleNamespace(
        db=db,
        cells=cells,
        day=utcnow().date().replace(year=2030),
        category=make_category(hours=4, auto_dispatch=False),
        owner=make_user("resident"),
        follower=make_user("resident"),
        resident=make_user("resident"),
        cell_worker=make_user("worker", served=[cells[SW]]),
        other_worker=make_user("worker", served=[cells[OTHER_GRID]]),
        supervisor=make_user("supervisor", cell=cells[COMMUNITY]),
        other_supervisor=make_user("supervisor", cell=cells[OTHER_COMMUNITY]),
        admin=make_user("admin"),
    )


def _request(client, w, row: Row, who: str):
    values = row.make(w)
    path = row.path.format(**values)
    headers = {} if who == "anonymous" else auth_header(getattr(w, who))
    body = row.body(w) if callable(row.body) else row.body
    if "duplicate_of" in values:
        body = {"duplicate_of": values["duplicate_of"]}
    if row.if_match:
        current = client.get(f"{API}/reports/{values['report_id']}", headers=auth_header(w.admin))
        headers["If-Match"] = current.headers["ETag"]
    if row.multipart:
        return client.post(
            path,
            headers=headers,
            content_type="multipart/form-data",
            data={"stage": "before", "file": (io.BytesIO(png()), "p.png", "image/png")},
        )
    return client.open(path, method=row.method, headers=headers, json=body)


def _outcome(resp, row: Row, expected):
    """The status, or the view of the case for reads that show one."""
    if resp.status_code == 200 and expected in ("full", "public"):
        data = resp.get_json()
        if isinstance(data, list):  # the history: the public one names actors by role, the full one by id
            assert data, "a history to judge"
            return "public" if all("actor" in e and "actor_id" not in e for e in data) else "full"
        return data["view"]
    return resp.status_code


@pytest.mark.parametrize(
    "row", ROWS + BODY_ROWS, ids=lambda row: " ".join(filter(None, (row.method, row.path.removeprefix(API), row.note)))
)
def test_the_matrix(client, w, row):
    expected = {
        who: (row.status_when_allowed if want == 200 else want)
        for who, want in zip(RELATIONS, row.expected, strict=True)
    }
    got = {}
    for who in RELATIONS:
        resp = _request(client, w, row, who)
        got[who] = _outcome(resp, row, expected[who])
        assert resp.status_code < 500, resp.get_data(as_text=True)
    assert got == expected


@pytest.mark.parametrize("path", ["requests/{number}", "tokens/{token}"])
def test_open311_readers(client, db, w, path):
    """The key that filed a request reads it in full, any other key or nobody its public view, a bad key 403."""
    filing, other = make_api_key("filing app"), make_api_key("other app")
    resp = client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": filing.key,
            "service_code": w.category.code,
            "lat": "39.9081",
            "long": "116.4021",
            "description": "路边垃圾",
        },
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    answer = resp.get_json()[0]
    url = "/open311/v2/" + path.format(number=answer["service_request_id"], token=answer["token"]) + ".json"
    got = {}
    for who, key in (("filing_key", filing.key), ("other_key", other.key), ("no_key", None), ("bad_key", "g311_x")):
        resp = client.get(url, query_string={"api_key": key} if key else {})
        if resp.status_code == 200 and path.startswith("requests"):
            got[who] = "full" if "description" in resp.get_json()[0] else "public"
        else:
            got[who] = resp.status_code
    if path.startswith("tokens"):
        # A token says only which request it is: the filer's to know, and as hard to guess as a key.
        assert got == {"filing_key": 200, "other_key": 200, "no_key": 200, "bad_key": 403}
    else:
        assert got == {"filing_key": "full", "other_key": "public", "no_key": "public", "bad_key": 403}
