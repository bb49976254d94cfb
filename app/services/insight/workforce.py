"""The workforce overview: active workers in a manager's view with their cells, duty, workload and last position."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, literal_column, select, type_coerce, union_all

from app.errors import ValidationFailed
from app.extensions import db
from app.lib.i18n import tr
from app.models import Cell, DutyLog, PatrolCheckin, Report, Role, User, WorkerCell
from app.models.base import utcnow
from app.models.grid import subtree_cell_ids
from app.services.calendar.worktime import local_day
from app.services.cases.dispatch import workload
from app.services.people.workers import check_manages, current_on, in_subtree_of, on_duty_expr


def workers_query(actor: User, *, cell_id: int | None = None, on_duty: bool | None = None) -> Select:
    """Active workers in the actor's view: all of them for an admin, those serving the subtree today for a
    supervisor; optionally only those serving a cell of `cell_id`'s subtree today (a street: its grid workers, as
    every cell filter scopes to the subtree), or only those on (off) duty."""
    today = local_day()
    stmt = select(User).where(User.role == Role.worker.value, User.active.is_(True))
    if actor.role == Role.supervisor.value:
        in_scope = (
            select(WorkerCell.user_id)
            .join(Cell, Cell.id == WorkerCell.cell_id)
            .where(current_on(today), in_subtree_of(actor))
        )
        stmt = stmt.where(User.id.in_(in_scope))
    if cell_id is not None:
        cell = db.session.get(Cell, cell_id)
        if cell is None:
            raise ValidationFailed(errors={"cell": [tr("No cell with id {cell_id}.", cell_id=cell_id)]})
        check_manages(actor, cell)
        stmt = stmt.where(
            User.id.in_(
                select(WorkerCell.user_id).where(WorkerCell.cell_id.in_(subtree_cell_ids(cell.code)), current_on(today))
            )
        )
    if on_duty is not None:
        flag = on_duty_expr(User.id)
        stmt = stmt.where(flag if on_duty else ~flag)
    return stmt.order_by(User.username, User.id)


def last_positions(user_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The latest known position of each user: from duty changes, reports they filed and patrol check-ins.

    Each source is one branch of the UNION. Check-ins come by the thousand a day, so that branch takes only each
    user's latest (an index lookup on (user_id, recorded_at) per user) rather than ranking them all.
    """
    latest_checkin = (
        select(
            User.id.label("user_id"),
            select(func.max(PatrolCheckin.recorded_at))
            .where(PatrolCheckin.user_id == User.id)
            .scalar_subquery()
            .label("at"),
        )
        .where(User.id.in_(user_ids))
        .subquery("latest_checkin")
    )
    sources = union_all(
        select(
            DutyLog.user_id.label("user_id"),
            DutyLog.created_at.label("at"),
            DutyLog.lon.label("lon"),
            DutyLog.lat.label("lat"),
            literal_column("'duty'").label("source"),
        ).where(DutyLog.user_id.in_(user_ids)),
        select(
            Report.reporter_id,
            Report.created_at,
            func.ST_X(Report.location),
            func.ST_Y(Report.location),
            literal_column("'report'"),
        ).where(Report.reporter_id.in_(user_ids)),
        select(
            PatrolCheckin.user_id,
            PatrolCheckin.recorded_at,
            func.ST_X(PatrolCheckin.location),
            func.ST_Y(PatrolCheckin.location),
            literal_column("'patrol'"),
        ).join(
            latest_checkin,
            and_(latest_checkin.c.user_id == PatrolCheckin.user_id, latest_checkin.c.at == PatrolCheckin.recorded_at),
        ),
    ).subquery("positions")
    ranked = select(
        sources, func.row_number().over(partition_by=sources.c.user_id, order_by=sources.c.at.desc()).label("rank")
    ).subquery("ranked")
    rows = db.session.execute(
        select(
            ranked.c.user_id,
            type_coerce(ranked.c.at, DutyLog.created_at.type),
            ranked.c.lon,
            ranked.c.lat,
            ranked.c.source,
        ).where(ranked.c.rank == 1)
    )
    return {
        user_id: {"lon": lon, "lat": lat, "crs": "wgs84", "at": at, "source": source}
        for user_id, at, lon, lat, source in rows
    }


def describe(users: list[User], now: datetime | None = None) -> list[dict[str, Any]]:
    """A page of workers with their cells, duty status, workload and last position: four queries in all."""
    now = now or utcnow()
    ids = [u.id for u in users]
    if not ids:
        return []
    load = workload(now, ids)
    counts = {
        row.user_id: row
        for row in db.session.execute(
            select(
                User.id.label("user_id"),
                on_duty_expr(User.id).label("on_duty"),
                func.coalesce(load.c.open_cases, 0).label("open_cases"),
                func.coalesce(load.c.overdue_cases, 0).label("overdue_cases"),
            )
            .outerjoin(load, load.c.user_id == User.id)
            .where(User.id.in_(ids))
        )
    }
    cells: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for assignment, cell in db.session.execute(
        select(WorkerCell, Cell)
        .join(Cell, Cell.id == WorkerCell.cell_id)
        .where(WorkerCell.user_id.in_(ids), current_on(local_day(now)))
        .order_by(Cell.code)
    ):
        cells[assignment.user_id].append(
            {
                "assignment_id": assignment.id,
                "duty": assignment.duty,
                "valid_from": assignment.valid_from,
                "valid_to": assignment.valid_to,
                "cell": cell,
            }
        )
    positions = last_positions(ids)
    return [
        {
            "user": u,
            "cells": cells[u.id],
            "on_duty": bool(counts[u.id].on_duty),
            "open_cases": int(counts[u.id].open_cases),
            "overdue_cases": int(counts[u.id].overdue_cases),
            "last_position": positions.get(u.id),
        }
        for u in users
    ]
