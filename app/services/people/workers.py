"""Grid workers: their dated cell assignments, the duty log, workload and last known position."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Select,
    and_,
    case,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
    type_coerce,
    union_all,
)

from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.extensions import db
from app.lib.coords import to_wgs84
from app.models import (
    OPEN_STATUSES,
    Cell,
    CellLevel,
    Duty,
    DutyLog,
    PatrolCheckin,
    Report,
    Role,
    User,
    WorkerCell,
    code_in_subtree,
    in_subtree,
)
from app.models.base import utcnow
from app.services.cases.sla import overdue_filter
from app.services.calendar.worktime import local_day


def current_on(day: date) -> ColumnElement[bool]:
    """Assignments in force on `day` (both ends inclusive)."""
    return and_(WorkerCell.valid_from <= day, or_(WorkerCell.valid_to.is_(None), WorkerCell.valid_to >= day))


def serves(user_id: int, cell_id: int, at: datetime | None = None) -> bool:
    """Whether an active worker serves the cell on the local day of `at` (default: now)."""
    return db.session.scalar(
        select(WorkerCell.id).join(User, User.id == WorkerCell.user_id)
        .where(WorkerCell.user_id == user_id, WorkerCell.cell_id == cell_id, current_on(local_day(at)),
               User.role == Role.worker.value, User.active.is_(True)).limit(1)) is not None


def served_cell_ids(user_id: int, at: datetime | None = None) -> Select:
    """Ids of the cells the user is assigned to on the local day of `at` (for scope filters)."""
    return select(WorkerCell.cell_id).where(WorkerCell.user_id == user_id, current_on(local_day(at)))


def cells_served_today(user_id: int) -> list[Cell]:
    return served_cells_of([user_id]).get(user_id, [])


def served_cells_of(user_ids: list[int]) -> dict[int, list[Cell]]:
    """The grid cells each of these users serves today, by code: one query for a whole list of accounts."""
    served: dict[int, list[Cell]] = {}
    rows = db.session.execute(select(WorkerCell.user_id, Cell).join(Cell, Cell.id == WorkerCell.cell_id)
                              .where(WorkerCell.user_id.in_(user_ids), current_on(local_day()))
                              .order_by(WorkerCell.user_id, Cell.code))
    for user_id, cell in rows:
        served.setdefault(user_id, []).append(cell)
    return served


# ---- who may manage which cell ------------------------------------------------------------------

def in_subtree_of(supervisor: User) -> ColumnElement[bool]:
    """Cells under the supervisor's cell (itself included); nothing for a supervisor without one."""
    if supervisor.cell is None:
        return false()
    return in_subtree(Cell.code, supervisor.cell.code)


def check_manages(actor: User, cell: Cell) -> None:
    """Admins manage every cell; a supervisor only the cells of their subtree."""
    if actor.role == Role.admin.value:
        return
    if actor.role == Role.supervisor.value and actor.cell is not None and code_in_subtree(cell.code, actor.cell.code):
        return
    raise Forbidden(f"Cell {cell.code} lies outside your subtree.", code="outside_subtree")


def get_cell(cell_id: int) -> Cell:
    cell = db.session.get(Cell, cell_id)
    if cell is None:
        raise NotFound(f"No cell with id {cell_id}.", code="cell_not_found")
    return cell


# ---- assignments --------------------------------------------------------------------------------

def assignments_query(cell: Cell, on: date | None = None) -> Select:
    stmt = select(WorkerCell).where(WorkerCell.cell_id == cell.id)
    if on is not None:
        stmt = stmt.where(current_on(on))
    return stmt.order_by(WorkerCell.valid_from.desc(), WorkerCell.id.desc())


def assign(cell: Cell, *, user_id: int, duty: str = Duty.primary.value, valid_from: date | None = None,
           valid_to: date | None = None) -> WorkerCell:
    valid_from = valid_from or local_day()
    errors: dict[str, list[str]] = {}
    if cell.level != CellLevel.grid.value:
        errors["cell"] = [f"Workers serve grid-level cells; {cell.code} is a {cell.level}."]
    # Taking the worker's row lock serialises assignments of one worker, so two overlapping ones
    # cannot both pass the check below (SQLite already serialises writers).
    user = db.session.scalars(select(User).where(User.id == user_id).with_for_update()).first()
    if user is None:
        errors["user_id"] = [f"No user with id {user_id}."]
    elif user.role != Role.worker.value:
        errors["user_id"] = [f"User {user.username} is a {user.role}, not a worker."]
    elif not user.active:
        errors["user_id"] = [f"User {user.username} is deactivated."]
    if valid_to is not None and valid_to < valid_from:
        errors["valid_to"] = ["Must not be before valid_from."]
    if errors:
        raise ValidationFailed(errors=errors)
    overlapping = db.session.scalar(
        select(WorkerCell.id).where(
            WorkerCell.user_id == user_id, WorkerCell.cell_id == cell.id,
            or_(WorkerCell.valid_to.is_(None), WorkerCell.valid_to >= valid_from),
            WorkerCell.valid_from <= valid_to if valid_to is not None else true(),
        ).order_by(WorkerCell.id).limit(1))
    if overlapping is not None:
        raise ValidationFailed(errors={"valid_from": [
            f"Overlaps assignment {overlapping} of this worker to this cell."]})
    assignment = WorkerCell(user_id=user_id, cell_id=cell.id, duty=duty, valid_from=valid_from, valid_to=valid_to)
    db.session.add(assignment)
    db.session.flush()
    return assignment


def end_assignment(cell: Cell, assignment_id: int) -> WorkerCell | None:
    """Not started yet (or started today): deleted. Running: ended yesterday, kept as history."""
    assignment = db.session.scalars(select(WorkerCell).where(
        WorkerCell.id == assignment_id, WorkerCell.cell_id == cell.id)).first()
    if assignment is None:
        raise NotFound(f"Cell {cell.code} has no assignment {assignment_id}.", code="assignment_not_found")
    today = local_day()
    if assignment.valid_to is not None and assignment.valid_to < today:
        raise Conflict(f"Assignment {assignment_id} ended on {assignment.valid_to}; it is history.",
                       code="assignment_ended")
    if assignment.valid_from >= today:
        db.session.delete(assignment)
        db.session.flush()
        return None
    assignment.valid_to = today - timedelta(days=1)
    db.session.flush()
    return assignment


# ---- duty ---------------------------------------------------------------------------------------

def on_duty_expr(user_id: ColumnElement) -> ColumnElement[bool]:
    """The worker's latest duty change says on. (A patrol check-in would be OR-ed in here.)"""
    latest = (select(DutyLog.on_duty).where(DutyLog.user_id == user_id)
              .order_by(DutyLog.id.desc()).limit(1).correlate_except(DutyLog).scalar_subquery())
    return type_coerce(func.coalesce(latest, false()), Boolean)


def set_duty(user: User, on: bool, lon: float, lat: float, crs: str = "wgs84") -> DutyLog:
    if user.role != Role.worker.value:
        raise Forbidden("Only grid workers go on and off duty.")
    lon, lat = to_wgs84(lon, lat, crs)
    entry = DutyLog(user_id=user.id, on_duty=on, lon=lon, lat=lat, created_at=utcnow())
    db.session.add(entry)
    db.session.flush()
    return entry


# ---- workload and listing -----------------------------------------------------------------------

def workload(now: datetime, user_ids: Select | list[int]):
    """Per assignee among `user_ids`: open cases, overdue cases and the latest assignment time."""
    return (select(Report.assignee_id.label("user_id"),
                   func.sum(case((Report.status.in_(OPEN_STATUSES), 1), else_=0)).label("open_cases"),
                   func.sum(case((overdue_filter(now), 1), else_=0)).label("overdue_cases"),
                   func.max(Report.assigned_at).label("last_assigned_at"))
            .where(Report.assignee_id.in_(user_ids))
            .group_by(Report.assignee_id)
            .subquery("workload"))


def workers_query(actor: User, *, cell_id: int | None = None, on_duty: bool | None = None) -> Select:
    """Active workers in the actor's view: all of them for an admin, those serving the subtree today for a
    supervisor; optionally only those serving `cell_id` today, or only those on (off) duty."""
    today = local_day()
    stmt = select(User).where(User.role == Role.worker.value, User.active.is_(True))
    if actor.role == Role.supervisor.value:
        in_scope = (select(WorkerCell.user_id).join(Cell, Cell.id == WorkerCell.cell_id)
                    .where(current_on(today), in_subtree_of(actor)))
        stmt = stmt.where(User.id.in_(in_scope))
    if cell_id is not None:
        cell = db.session.get(Cell, cell_id)
        if cell is None:
            raise ValidationFailed(errors={"cell": [f"No cell with id {cell_id}."]})
        check_manages(actor, cell)
        stmt = stmt.where(User.id.in_(select(WorkerCell.user_id).where(
            WorkerCell.cell_id == cell_id, current_on(today))))
    if on_duty is not None:
        flag = on_duty_expr(User.id)
        stmt = stmt.where(flag if on_duty else ~flag)
    return stmt.order_by(User.username, User.id)


def last_positions(user_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The latest known position of each user: from duty changes, reports they filed and patrol check-ins.

    Each source is one branch of the UNION. Check-ins come by the thousand a day, so that branch takes only each
    user's latest (an index lookup on (user_id, recorded_at) per user) rather than ranking them all.
    """
    latest_checkin = (select(User.id.label("user_id"),
                             select(func.max(PatrolCheckin.recorded_at)).where(PatrolCheckin.user_id == User.id)
                             .scalar_subquery().label("at"))
                      .where(User.id.in_(user_ids)).subquery("latest_checkin"))
    sources = union_all(
        select(DutyLog.user_id.label("user_id"), DutyLog.created_at.label("at"), DutyLog.lon.label("lon"),
               DutyLog.lat.label("lat"), literal_column("'duty'").label("source"))
        .where(DutyLog.user_id.in_(user_ids)),
        select(Report.reporter_id, Report.created_at, func.ST_X(Report.location), func.ST_Y(Report.location),
               literal_column("'report'"))
        .where(Report.reporter_id.in_(user_ids)),
        select(PatrolCheckin.user_id, PatrolCheckin.recorded_at, func.ST_X(PatrolCheckin.location),
               func.ST_Y(PatrolCheckin.location), literal_column("'patrol'"))
        .join(latest_checkin, and_(latest_checkin.c.user_id == PatrolCheckin.user_id,
                                   latest_checkin.c.at == PatrolCheckin.recorded_at)),
    ).subquery("positions")
    ranked = select(sources, func.row_number().over(
        partition_by=sources.c.user_id, order_by=sources.c.at.desc()).label("rank")).subquery("ranked")
    rows = db.session.execute(
        select(ranked.c.user_id, type_coerce(ranked.c.at, DutyLog.created_at.type), ranked.c.lon, ranked.c.lat,
               ranked.c.source).where(ranked.c.rank == 1))
    return {user_id: {"lon": lon, "lat": lat, "crs": "wgs84", "at": at, "source": source}
            for user_id, at, lon, lat, source in rows}


def describe(users: list[User], now: datetime | None = None) -> list[dict[str, Any]]:
    """A page of workers with their cells, duty status, workload and last position: four queries in all."""
    now = now or utcnow()
    ids = [u.id for u in users]
    if not ids:
        return []
    load = workload(now, ids)
    counts = {row.user_id: row for row in db.session.execute(
        select(User.id.label("user_id"), on_duty_expr(User.id).label("on_duty"),
               func.coalesce(load.c.open_cases, 0).label("open_cases"),
               func.coalesce(load.c.overdue_cases, 0).label("overdue_cases"))
        .outerjoin(load, load.c.user_id == User.id).where(User.id.in_(ids)))}
    cells: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for assignment, cell in db.session.execute(
            select(WorkerCell, Cell).join(Cell, Cell.id == WorkerCell.cell_id)
            .where(WorkerCell.user_id.in_(ids), current_on(local_day(now)))
            .order_by(Cell.code)):
        cells[assignment.user_id].append({"assignment_id": assignment.id, "duty": assignment.duty,
                                          "valid_from": assignment.valid_from, "valid_to": assignment.valid_to,
                                          "cell": cell})
    positions = last_positions(ids)
    return [{"user": u, "cells": cells[u.id], "on_duty": bool(counts[u.id].on_duty),
             "open_cases": int(counts[u.id].open_cases), "overdue_cases": int(counts[u.id].overdue_cases),
             "last_position": positions.get(u.id)} for u in users]
