"""Grid workers: their dated cell assignments, the duty log, workload and last known position."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    false,
    func,
    or_,
    select,
    true,
    type_coerce,
)

from app.dialect.engine import DriverStatement, compiled_once
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.extensions import db
from app.lib.coords import to_wgs84
from app.lib.i18n import tr
from app.models import (
    Cell,
    CellLevel,
    Duty,
    DutyLog,
    Role,
    User,
    WorkerCell,
    code_in_subtree,
    in_subtree,
)
from app.models.base import utcnow
from app.services import versions
from app.services.calendar.worktime import local_day


def current_on(day: date) -> ColumnElement[bool]:
    """Assignments in force on `day` (both ends inclusive)."""
    return and_(WorkerCell.valid_from <= day, or_(WorkerCell.valid_to.is_(None), WorkerCell.valid_to >= day))


def serves(user_id: int, cell_id: int, at: datetime | None = None) -> bool:
    """Whether an active worker serves the cell on the local day of `at` (default: now)."""
    return bool(_serves_statement().run({"user_id": user_id, "cell_id": cell_id, "day": local_day(at)}))


def cells_served_on(user_id: int, day: date) -> frozenset[int]:
    """The ids of the cells a worker is assigned to on the local day, from this process's cache: every filing by a
    worker asks it, and any change to any assignment drops the cache (cache_versions' `assignments`). The caller
    has checked that the user is an active worker (serves checks it in its read)."""
    store = versions.cache(versions.ASSIGNMENTS, "served")
    found = store.get((user_id, day))
    if found is None:
        # store.get read the version before these rows: a change committed in between only drops them sooner.
        version = versions.current_version(versions.ASSIGNMENTS)
        found = frozenset(
            db.session.scalars(select(WorkerCell.cell_id).where(WorkerCell.user_id == user_id, current_on(day)))
        )
        store.put((user_id, day), found, version)
    return found


_SERVES: dict[str, DriverStatement] = {}


def _serves_statement() -> DriverStatement:
    """A worker's every step on a case and every photo they attach asks it (app.dialect.engine.compiled_once)."""
    placeholders = {"user_id": 0, "cell_id": 0, "day": date(2000, 1, 1)}
    return compiled_once(_SERVES, _serves_select, **placeholders)


def _serves_select() -> Select:
    return (
        select(WorkerCell.id)
        .join(User, User.id == WorkerCell.user_id)
        .where(
            WorkerCell.user_id == bindparam("user_id", type_=Integer),
            WorkerCell.cell_id == bindparam("cell_id", type_=Integer),
            current_on(bindparam("day", type_=WorkerCell.valid_from.type)),
            User.role == Role.worker.value,
            User.active.is_(True),
        )
        .limit(1)
    )


def served_cell_ids(user_id: int, at: datetime | None = None) -> Select:
    """Ids of the cells the user is assigned to on the local day of `at` (for scope filters)."""
    return select(WorkerCell.cell_id).where(WorkerCell.user_id == user_id, current_on(local_day(at)))


def cells_served_today(user_id: int) -> list[Cell]:
    return served_cells_of([user_id]).get(user_id, [])


def served_cells_of(user_ids: list[int]) -> dict[int, list[Cell]]:
    """The grid cells each of these users serves today, by code: one query for a whole list of accounts."""
    served: dict[int, list[Cell]] = {}
    rows = db.session.execute(
        select(WorkerCell.user_id, Cell)
        .join(Cell, Cell.id == WorkerCell.cell_id)
        .where(WorkerCell.user_id.in_(user_ids), current_on(local_day()))
        .order_by(WorkerCell.user_id, Cell.code)
    )
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
    raise Forbidden(tr("Cell {code} lies outside your subtree.", code=cell.code), code="outside_subtree")


def get_cell(cell_id: int) -> Cell:
    cell = db.session.get(Cell, cell_id)
    if cell is None:
        raise NotFound(tr("No cell with id {cell_id}.", cell_id=cell_id), code="cell_not_found")
    return cell


# ---- assignments --------------------------------------------------------------------------------


def assignments_query(cell: Cell, on: date | None = None) -> Select:
    stmt = select(WorkerCell).where(WorkerCell.cell_id == cell.id)
    if on is not None:
        stmt = stmt.where(current_on(on))
    return stmt.order_by(WorkerCell.valid_from.desc(), WorkerCell.id.desc())


def assign(
    cell: Cell,
    *,
    user_id: int,
    duty: str = Duty.primary.value,
    valid_from: date | None = None,
    valid_to: date | None = None,
) -> WorkerCell:
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
        select(WorkerCell.id)
        .where(
            WorkerCell.user_id == user_id,
            WorkerCell.cell_id == cell.id,
            or_(WorkerCell.valid_to.is_(None), WorkerCell.valid_to >= valid_from),
            WorkerCell.valid_from <= valid_to if valid_to is not None else true(),
        )
        .order_by(WorkerCell.id)
        .limit(1)
    )
    if overlapping is not None:
        raise ValidationFailed(
            errors={
                "valid_from": [
                    tr("Overlaps assignment {overlapping} of this worker to this cell.", overlapping=overlapping)
                ]
            }
        )
    assignment = WorkerCell(user_id=user_id, cell_id=cell.id, duty=duty, valid_from=valid_from, valid_to=valid_to)
    db.session.add(assignment)
    db.session.flush()
    return assignment


def end_assignment(cell: Cell, assignment_id: int) -> WorkerCell | None:
    """Not started yet (or started today): deleted. Running: ended yesterday, kept as history."""
    assignment = db.session.scalars(
        select(WorkerCell).where(WorkerCell.id == assignment_id, WorkerCell.cell_id == cell.id)
    ).first()
    if assignment is None:
        raise NotFound(
            tr("Cell {code} has no assignment {assignment_id}.", code=cell.code, assignment_id=assignment_id),
            code="assignment_not_found",
        )
    today = local_day()
    if assignment.valid_to is not None and assignment.valid_to < today:
        raise Conflict(
            tr(
                "Assignment {assignment_id} ended on {valid_to}; it is history.",
                assignment_id=assignment_id,
                valid_to=assignment.valid_to,
            ),
            code="assignment_ended",
        )
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
    latest = (
        select(DutyLog.on_duty)
        .where(DutyLog.user_id == user_id)
        .order_by(DutyLog.id.desc())
        .limit(1)
        .correlate_except(DutyLog)
        .scalar_subquery()
    )
    return type_coerce(func.coalesce(latest, false()), Boolean)


def set_duty(user: User, on: bool, lon: float, lat: float, crs: str = "wgs84") -> DutyLog:
    if user.role != Role.worker.value:
        raise Forbidden(tr("Only grid workers go on and off duty."))
    lon, lat = to_wgs84(lon, lat, crs)
    entry = DutyLog(user_id=user.id, on_duty=on, lon=lon, lat=lat, created_at=utcnow())
    db.session.add(entry)
    db.session.flush()
    return entry
