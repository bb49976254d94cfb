"""Filing reports and reading them within each role's scope."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    bindparam,
    false,
    insert,
    inspect,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from app.dialect import queries, spatial
from app.dialect.engine import DriverStatement, dialect_name
from app.errors import Forbidden, NotFound, ValidationFailed
from app.extensions import db
from app.lib.coords import to_wgs84
from app.lib.i18n import tr
from app.models import (
    CaseEvent,
    Category,
    Cell,
    Report,
    ReportFollower,
    ReportStatus,
    Role,
    User,
    code_in_subtree,
    subtree_cell_ids,
)
from app.models.base import utcnow
from app.services import versions
from app.services.calendar.worktime import local_day
from app.services.cases import attributes as attribute_answers, dispatch, notifications, sla
from app.services.cases.categories import find_active_by_code
from app.services.cases.rows import report_row_by_id
from app.services.grid.routing import route_wgs84
from app.services.people.workers import cells_served_on, served_cell_ids


def in_subtree(user: User, report: Report) -> bool:
    """Whether a supervisor oversees the case: its cell lies under theirs (root: also the triage queue)."""
    if user.cell is None:
        return False
    if report.cell is None:
        return user.cell.parent_id is None
    return code_in_subtree(report.cell.code, user.cell.code)


def start_handling(report: Report, now: datetime, actor: User | None = None) -> None:
    """An accepted case: its clock starts, and its category may send it to a worker at once."""
    sla.start_clock(report, now)
    db.session.flush()
    dispatch.auto_dispatch(report, now, actor)


def visibility_key(user: User) -> tuple:
    """What visibility(user) is built from, besides the cells (the cells cache's version covers those): users with
    the same key get the same clause, so a statement built around it for one serves the other."""
    if user.role == Role.admin.value:
        return (user.role,)
    # A worker's served cells are those in force on the local day.
    return (user.role, user.id, user.cell_id, local_day() if user.role == Role.worker.value else None)


def visibility(user: User) -> ColumnElement[bool]:
    """The reports a user may see; anything outside it answers 404, never 403. Every input but the cells' rows is
    in visibility_key."""
    own = Report.reporter_id == user.id
    if user.role == Role.admin.value:
        return true()
    if user.role == Role.worker.value:
        # Cases handed to them stay theirs even once the assignment to that cell has ended.
        return or_(own, Report.assignee_id == user.id, Report.cell_id.in_(served_cell_ids(user.id)))
    if user.role == Role.supervisor.value:
        if user.cell is None:
            return own
        scope = Report.cell_id.in_(subtree_cell_ids(user.cell.code))
        if user.cell.parent_id is None:
            # Root supervisors own the triage queue of reports no cell took.
            scope = or_(scope, Report.cell_id.is_(None))
        return or_(own, scope)
    if user.role == Role.resident.value:
        # A case they follow shows them its public view (app.services.public.view).
        return or_(own, Report.id.in_(select(ReportFollower.report_id).where(ReportFollower.user_id == user.id)))
    return false()


def create_report(user: User, **fields: Any) -> Report:
    """File a report (file_report's fields)."""
    return file_report(user, **fields)[0]


# What a filing may read beside its write: given the category and the WGS-84 point, a statement and its values (or
# None to read nothing). It runs just before the write, so it does not see the new report.
ReadBeside = Callable[[Category, float, float], "tuple[DriverStatement, dict[str, Any]] | None"]


def file_report(
    user: User,
    *,
    category_code: str,
    description: str,
    location: dict[str, Any],
    address: str | None = None,
    attributes: Mapping[str, list[str]] | None = None,
    extra: dict[str, Any] | None = None,
    read_beside: ReadBeside | None = None,
) -> tuple[Report, list[tuple] | None]:
    """File a report; `extra` sets further columns (Open311's fields) in the same insert. With `read_beside`, also
    the rows of its read, sent with the write (one round trip on PostgreSQL), else None.

    `attributes` are a client's answers to the category's Open311 attributes, values by code, checked and stored
    alike for Open311 and the API (app.services.cases.attributes); None, from the services' own callers, stores
    none and asks for none."""
    if user.role not in (Role.resident.value, Role.worker.value):
        raise Forbidden(tr("Only residents and grid workers file reports."))
    category = find_active_by_code(category_code)
    if category is None:
        raise ValidationFailed(
            errors={"category_code": [tr("No active category {category_code!r}.", category_code=category_code)]}
        )
    answers = attribute_answers.answers(category, attributes) if attributes is not None else None
    crs = location.get("crs") or "wgs84"
    lon, lat = to_wgs84(location["lon"], location["lat"], crs)
    routing = route_wgs84(lon, lat)

    now = utcnow()
    status, picked = ReportStatus.submitted.value, None
    if routing.cell_id is not None:
        if user.role == Role.worker.value:
            # A worker's report in their own cell is accepted, and auto-dispatch picks for it. Whether they serve it
            # comes from the process's cache of assignments: a report elsewhere asks the database nothing before
            # its write.
            if routing.cell_id in cells_served_on(user.id, local_day(now)):
                status = ReportStatus.accepted.value
                if category.auto_dispatch:
                    picked = dispatch.pick_worker(routing.cell_id, now)
        elif category.auto_accept:
            status = ReportStatus.accepted.value
            if category.auto_dispatch:
                picked = dispatch.pick_worker(routing.cell_id, now)

    values = {
        **_DEFAULTS,
        "case_day": local_day(now),
        "category_id": category.id,
        "reporter_id": user.id,
        "cell_id": routing.cell_id,
        "handling_cell_id": routing.cell_id,
        "status": status,
        "description": description,
        "address": address,
        "location": spatial.point(lon, lat),
        "input_crs": crs,
        "input_lon": location["lon"],
        "input_lat": location["lat"],
        "routed_by": routing.routed_by,
        "routing_distance_m": routing.distance_m,
        "needs_triage": routing.cell_id is None,
        "created_at": now,
        "updated_at": now,
        "attributes": answers,
        **(extra or {}),
    }
    event = {
        "event_actor_id": user.id,
        "event_actor_role": user.role,
        "event_to_status": status,
        "event_created_at": now,
        "event_data": {
            "cell_code": routing.cell_code,
            "routed_by": routing.routed_by,
            "routing_distance_m": routing.distance_m,
            "crs": crs,
        },
    }
    if status == ReportStatus.accepted.value:
        # What start_handling does to a case accepted later, done before the write: the clock starts, and
        # auto-dispatch's pick (above: the case, not yet written, is no one's load either way) is written with the
        # report, as assigned, with its create and assign events, in the same statement.
        values.update(sla.started_clock(category, now))
        if picked is not None:
            worker, reason = picked
            values.update(status=ReportStatus.assigned.value, assignee_id=worker.id, assigned_at=now)
            event["assign_data"] = dispatch.assignment_data(worker.id, reason)
    # The report and its events in one round trip (app.dialect.queries.chained_inserts), then the report as the
    # session's own persistent object, built from what was written: no unit of work, no read back.
    report_id, last_event_id, read = queries.run_chained_inserts(
        _filing_statements(tuple(sorted(values)), assigned=picked is not None),
        {**values, **event},
        read_first=read_beside(category, lon, lat) if read_beside is not None else None,
    )
    report = versions.attach(Report, {**_NULLS, **values, "id": report_id})
    # Its many-to-ones as loaded: the session holds its objects weakly, so only the report keeps them from a query.
    for name, related in (("category", category), ("reporter", user), ("cell", routing.cell)):
        set_committed_value(report, name, related)
    set_committed_value(report, "handling_cell", routing.cell)
    if picked is not None:
        set_committed_value(report, "assignee", picked[0])
        notifications.announce_event("assign", report_id, last_event_id, now)
    elif status == ReportStatus.accepted.value and category.auto_dispatch:
        # Nobody serves the cell today: its supervisors are told, the filer aside (dispatch.auto_dispatch).
        notifications.announce_case("unassigned", report, now, actor_id=user.id)
    return report, read


_REPORTS, _EVENTS = Report.__table__, CaseEvent.__table__
# What the ORM would write for a column left unset: its scalar default, else NULL.
_DEFAULTS = {c.key: c.default.arg for c in _REPORTS.columns if c.default is not None and c.default.is_scalar}
_NULLS = {attr.key: None for attr in inspect(Report).column_attrs if attr.key not in ("id", "distance_m")}
_FILING: dict[tuple[str, tuple[str, ...], bool], tuple] = {}


def _filing_statements(keys: tuple[str, ...], *, assigned: bool) -> tuple:
    """The INSERTs of a report with these columns and of its create event (and, when it is written assigned, of
    the assign event, returning its id), built once per set of columns."""
    dialect = dialect_name()
    found = _FILING.get((dialect, keys, assigned))
    if found is None:
        report = (
            insert(_REPORTS)
            .values({key: bindparam(key, type_=_REPORTS.c[key].type) for key in keys})
            .returning(_REPORTS.c.id)
        )
        data_type, at = _EVENTS.c.data.type, bindparam("event_created_at", type_=_EVENTS.c.created_at.type)
        report_id = bindparam("parent_id", type_=Integer)
        rows = [
            select(
                report_id,
                bindparam("event_actor_id", type_=Integer),
                bindparam("event_actor_role", type_=_EVENTS.c.actor_role.type),
                literal("create", _EVENTS.c.action.type),
                null(),
                bindparam("event_to_status", type_=_EVENTS.c.to_status.type),
                bindparam("event_data", type_=data_type),
                at,
            )
        ]
        if assigned:
            # The system's step, as CaseEvent.of writes it with no actor.
            rows.append(
                select(
                    report_id,
                    null(),
                    literal("system", _EVENTS.c.actor_role.type),
                    literal("assign", _EVENTS.c.action.type),
                    literal(ReportStatus.accepted.value, _EVENTS.c.from_status.type),
                    literal(ReportStatus.assigned.value, _EVENTS.c.to_status.type),
                    bindparam("assign_data", type_=data_type),
                    at,
                )
            )
        # INSERT ... SELECT, not a multi-row VALUES (which SQLAlchemy compiles anew on every run); one INSERT
        # numbers its rows in the order its SELECT gives them.
        events = insert(_EVENTS).from_select(
            ["report_id", "actor_id", "actor_role", "action", "from_status", "to_status", "data", "created_at"],
            union_all(*rows) if assigned else rows[0],
        )
        if assigned:
            events = events.returning(_EVENTS.c.id)
        found = _FILING.setdefault((dialect, keys, assigned), queries.chained_inserts(report, events))
    return found


def get_report_for(user: User, report_id: int) -> Report:
    report = db.session.scalars(select(Report).where(Report.id == report_id, visibility(user))).first()
    if report is None:
        raise NotFound(tr("No report with id {report_id}.", report_id=report_id), code="report_not_found")
    return report


def read_report_for(user: User, report_id: int):
    """get_report_for for a read that only shows the case: a row (app.services.cases.rows), not an ORM object."""
    found = report_row_by_id(report_id, visibility_key(user), lambda: visibility(user))
    if not found:
        raise NotFound(tr("No report with id {report_id}.", report_id=report_id), code="report_not_found")
    return found[0]


def listed_reports() -> Select:
    """select(Report) with what a list shows: cell references and the assignee joined in the same query, the
    cells' polygons left in the database."""
    return select(Report).options(*_LIST_OPTIONS)


_LIST_OPTIONS = (
    joinedload(Report.cell).load_only(Cell.id, Cell.code, Cell.name, Cell.level),
    joinedload(Report.handling_cell).load_only(Cell.id, Cell.code, Cell.name, Cell.level),
    joinedload(Report.assignee).load_only(User.id, User.username, User.display_name),
    # Shown to supervisors and admins (app.services.public.view.may_see_personal_data).
    joinedload(Report.reporter).load_only(User.id, User.display_name, User.phone),
)


def history(report: Report) -> list[CaseEvent]:
    return list(db.session.scalars(select(CaseEvent).where(CaseEvent.report_id == report.id).order_by(CaseEvent.id)))
