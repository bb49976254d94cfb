"""Factories for test data: cells from simple boxes, users, categories, reports, tokens.

Each factory commits: inside a test that only releases a savepoint of the test's outer transaction
(rolled back after the test), and it keeps the data when a request rolls its own work back.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import date, datetime, timedelta

from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, box
from sqlalchemy import text

from app.auth.passwords import hash_password
from app.dialect import spatial
from app.extensions import db
from app.models import Category, Cell, DutyLog, Report, Role, User, WorkerCell
from app.models.base import utcnow
from app.services.cases import reports as report_service
from app.services.people import sessions as auth_service

PASSWORD = "correct-horse-9"
# Assignments made by the factories run from long ago, so "today" never falls before them.
SINCE = date(2020, 1, 1)
_seq = itertools.count(1)

# A small test grid: district 110105 over [116.40, 116.42] x [39.90, 39.92], one street, one community
# and four 0.01-degree grid cells meeting at (116.41, 39.91).
DISTRICT = "110105"
STREET = "110105001"
COMMUNITY = "110105001001"
GRID_BOXES = {
    "11010500100101": (116.40, 39.90, 116.41, 39.91),  # south-west
    "11010500100102": (116.41, 39.90, 116.42, 39.91),  # south-east
    "11010500100103": (116.40, 39.91, 116.41, 39.92),  # north-west
    "11010500100104": (116.41, 39.91, 116.42, 39.92),  # north-east
}


def square(min_lon, min_lat, max_lon, max_lat) -> MultiPolygon:
    return MultiPolygon([box(min_lon, min_lat, max_lon, max_lat)])


def geojson_square(min_lon, min_lat, max_lon, max_lat) -> dict:
    return {
        "type": "Polygon",
        "coordinates": [
            [[min_lon, min_lat], [max_lon, min_lat], [max_lon, max_lat], [min_lon, max_lat], [min_lon, min_lat]]
        ],
    }


def make_cell(
    code: str,
    level: str,
    bounds: Iterable[float],
    parent: Cell | None = None,
    name: str | None = None,
    active: bool = True,
) -> Cell:
    cell = Cell(
        code=code,
        level=level,
        name=name or f"cell {code}",
        parent_id=parent.id if parent else None,
        geom=from_shape(square(*bounds), srid=4326),
        active=active,
    )
    db.session.add(cell)
    db.session.commit()
    return cell


OTHER_DISTRICT, OTHER_COMMUNITY, OTHER_GRID = "110106", "110106001001", "11010600100101"
OTHER_BOX = (116.50, 39.90, 116.51, 39.91)


def make_test_grid() -> dict[str, Cell]:
    district = make_cell(DISTRICT, "district", (116.40, 39.90, 116.42, 39.92))
    street = make_cell(STREET, "street", (116.40, 39.90, 116.42, 39.92), district)
    community = make_cell(COMMUNITY, "community", (116.40, 39.90, 116.42, 39.92), street)
    cells = {DISTRICT: district, STREET: street, COMMUNITY: community}
    for code, bounds in GRID_BOXES.items():
        cells[code] = make_cell(code, "grid", bounds, community)
    return cells


def make_two_district_grid() -> dict[str, Cell]:
    """The test grid and, beside it, a second district whose one chain ends in a single grid cell (scoping tests)."""
    cells = make_test_grid()
    district = cells[OTHER_DISTRICT] = make_cell(OTHER_DISTRICT, "district", OTHER_BOX)
    street = cells["110106001"] = make_cell("110106001", "street", OTHER_BOX, district)
    community = cells[OTHER_COMMUNITY] = make_cell(OTHER_COMMUNITY, "community", OTHER_BOX, street)
    cells[OTHER_GRID] = make_cell(OTHER_GRID, "grid", OTHER_BOX, community)
    return cells


def make_user(
    role: str | Role = Role.resident,
    *,
    username: str | None = None,
    cell: Cell | None = None,
    served: Iterable[Cell] = (),
    password: str = PASSWORD,
    active: bool = True,
    phone: str | None = None,
    language: str = "zh-CN",
) -> User:
    role = role.value if isinstance(role, Role) else role
    n = next(_seq)
    user = User(
        username=username or f"{role}{n}",
        password_hash=hash_password(password),
        role=role,
        display_name=f"{role} {n}",
        phone=phone,
        active=active,
        language=language,
        cell_id=cell.id if cell else None,
    )
    db.session.add(user)
    db.session.flush()
    for served_cell in served:
        db.session.add(WorkerCell(user_id=user.id, cell_id=served_cell.id, duty="primary", valid_from=SINCE))
    db.session.commit()
    return user


def make_assignment(
    worker: User, cell: Cell, *, duty: str = "primary", valid_from: date | None = None, valid_to: date | None = None
) -> WorkerCell:
    assignment = WorkerCell(
        user_id=worker.id, cell_id=cell.id, duty=duty, valid_from=valid_from or SINCE, valid_to=valid_to
    )
    db.session.add(assignment)
    db.session.commit()
    return assignment


def make_duty(worker: User, on: bool, lon: float = 116.405, lat: float = 39.905, at: datetime | None = None) -> DutyLog:
    entry = DutyLog(user_id=worker.id, on_duty=on, lon=lon, lat=lat, **({"created_at": at} if at else {}))
    db.session.add(entry)
    db.session.commit()
    return entry


def make_category(
    code: str | None = None,
    *,
    hours: int = 4,
    active: bool = True,
    name: str = "暴露垃圾",
    group: str = "市容环境",
    unit: str = "hours",
    auto_accept: bool = False,
    auto_dispatch: bool = True,
    self_handling: bool = False,
    window: int = 1,
    window_unit: str = "working_days",
    public: bool = False,
) -> Category:
    category = Category(
        code=code or f"T{next(_seq):03d}",
        name=name,
        group=group,
        time_limit_value=hours,
        time_limit_unit=unit,
        active=active,
        auto_accept=auto_accept,
        auto_dispatch=auto_dispatch,
        self_handling=self_handling,
        escalation_window_value=window,
        escalation_window_unit=window_unit,
        public=public,
    )
    db.session.add(category)
    db.session.commit()
    return category


def make_report(
    user: User, category: Category, lon: float, lat: float, crs: str = "wgs84", description: str = "test report"
):
    report = report_service.create_report(
        user, category_code=category.code, description=description, location={"lon": lon, "lat": lat, "crs": crs}
    )
    db.session.commit()
    return report


def make_offered(resident: User, report) -> Report:
    """What makes `report` offered to `resident` (so they may follow it): their own report of its category at its
    point, as similar_open_cases would have shown it to them."""
    from geoalchemy2.shape import to_shape

    point = to_shape(report.location)
    return make_report(resident, report.category, point.x, point.y, description="the same again")


def set_case(report, **columns):
    """Put a case straight into a state (status, assignee, clock fields) without walking the loop."""
    for name, value in columns.items():
        setattr(report, name, value)
    db.session.commit()
    return report


def make_case(
    reporter: User,
    category: Category,
    cell: Cell | None,
    *,
    status: str = "accepted",
    lon: float = 116.405,
    lat: float = 39.905,
    **fields,
) -> Report:
    """A case put straight into the state a test needs (no actions, no events); fields override columns."""
    now = utcnow()
    values = {
        "case_day": now.date(),
        "category_id": category.id,
        "reporter_id": reporter.id,
        "cell_id": cell.id if cell else None,
        "handling_cell_id": cell.id if cell else None,
        "status": status,
        "description": "test case",
        "location": spatial.point(lon, lat),
        "input_lon": lon,
        "input_lat": lat,
        "routed_by": "covers" if cell else None,
        "needs_triage": cell is None,
        "created_at": now,
        "updated_at": now,
    }
    values.update(fields)
    report = Report(**values)
    db.session.add(report)
    db.session.commit()
    return report


def make_escalated_case(reporter: User, category: Category, cell: Cell, *, hours_late: float = 2.0, **fields) -> Report:
    """A case whose own due time passed `hours_late` hours ago, moved one level up by the real escalation sweep (which
    moves every other overdue case of the test as well): the community handles it in a fresh window."""
    from app.services.cases.escalation import escalate_batch
    from app.services.cases.sla import start_clock

    assert category.time_limit_unit == "hours", "the start is reckoned in elapsed hours"
    fields.setdefault("status", "assigned")
    report = make_case(reporter, category, cell, **fields)
    start_clock(report, utcnow() - timedelta(hours=category.time_limit_value + hours_late))
    db.session.commit()
    escalate_batch(utcnow())
    db.session.commit()
    db.session.refresh(report)
    assert report.escalation_level == 1
    return report


def tokens_for(user: User, password: str = PASSWORD) -> auth_service.TokenPair:
    pair = auth_service.login(user.username, password)
    db.session.commit()
    return pair


def auth_header(user: User, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens_for(user, password).access_token}"}


def make_checkin(
    worker: User, lon: float, lat: float, at: datetime, cell: Cell | None = None, accuracy: float | None = 5.0
):
    """A stored patrol point (WGS-84), routed by the caller (`cell`), without going through the API."""
    from app.models import PatrolCheckin

    checkin = PatrolCheckin(
        user_id=worker.id,
        cell_id=cell.id if cell else None,
        recorded_at=at,
        received_at=utcnow(),
        location=spatial.point(lon, lat),
        accuracy_m=accuracy,
        input_crs="wgs84",
        input_lon=lon,
        input_lat=lat,
    )
    db.session.add(checkin)
    db.session.commit()
    return checkin


def make_api_key(name: str = "civic app", created_by: User | None = None):
    """An issued API key (IssuedKey: .key is the plain text, .api_key the row)."""
    from app.services.people.api_keys import create_key

    issued = create_key(name, created_by)
    db.session.commit()
    return issued


# Every table a committed-data test may fill, children before parents; calendar days are shared and kept.
COMMITTED_TABLES = (
    "sync_changes",
    "idempotency_keys",
    "attachments",
    "report_followers",
    "patrol_checkins",
    "notifications",
    "case_events",
    "reports",
    "api_keys",
    "refresh_tokens",
    "auth_sessions",
    "duty_log",
    "worker_cells",
    "users",
    "categories",
)


@contextmanager
def committed_world(app):
    """A block whose writes other connections can see (each commit is real); all of it is deleted after."""
    with app.app_context():
        try:
            yield
        finally:
            db.session.rollback()
            delete_committed(db.session.connection())
            db.session.commit()
            db.session.remove()


def wait_for_lock_waiter(timeout_s: float = 10.0) -> bool:
    """PostGIS: wait until another connection to this database queues for a lock (one this transaction holds, in a
    two-connection test); whether one did. Each look is its own transaction, as pg_stat_activity is read once per
    transaction."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with db.engine.connect() as connection:
            if connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ):
                return True
        time.sleep(0.02)
    return False


def delete_committed(connection) -> None:
    """Remove what a test committed for other connections to see (the rollback per test cannot).

    On PostGIS the triggers (case_events refuses DELETE) are off for this transaction only."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET LOCAL session_replication_role = replica"))
    # A duplicate names its original with ON DELETE RESTRICT, which SQLite checks row by row, not per statement.
    connection.execute(text("UPDATE reports SET duplicate_of_id = NULL WHERE duplicate_of_id IS NOT NULL"))
    for table in COMMITTED_TABLES:
        connection.execute(text(f"DELETE FROM {table}"))
    for level in ("grid", "community", "street", "district"):  # children before their parents
        connection.execute(text("DELETE FROM cells WHERE level = :level"), {"level": level})


# A pothole class's Open311 attribute definitions, every datatype once (Open311 and POST /reports tests).
POTHOLE_ATTRIBUTES = [
    {
        "code": "size",
        "datatype": "singlevaluelist",
        "required": True,
        "order": 2,
        "description": "How big?",
        "values": [{"key": "s", "name": "Small"}, {"key": "l", "name": "Large"}],
    },
    {"code": "notice", "variable": False, "datatype": "string", "order": 1, "description": "Call 120 if hurt."},
    {
        "code": "kinds",
        "datatype": "multivaluelist",
        "order": 3,
        "description": "What is damaged?",
        "values": [{"key": "road", "name": "Road"}, {"key": "kerb", "name": "Kerb"}],
    },
    {
        "code": "depth",
        "datatype": "number",
        "order": 4,
        "description": "Depth in cm",
        "datatype_description": "a number",
    },
    {"code": "seen_at", "datatype": "datetime", "order": 5, "description": "When did you see it?"},
    {"code": "remark", "datatype": "text", "order": 6, "description": "Anything else"},
]
