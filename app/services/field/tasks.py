"""A worker's day: the cases in their hands and the cells they serve."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select

from app.extensions import db
from app.lib.geometry import to_geojson
from app.models import TASK_STATUSES, CaseEvent, Cell, Report, Role, User, WorkerCell, subtree_cell_ids
from app.services.calendar.worktime import local_day
from app.services.cases.reports import listed_reports
from app.services.cases.rows import ReportRow, report_rows_page, user_refs
from app.services.pagination import Page, paginate
from app.services.people.workers import current_on


def tasks_query(user: User, status: list[str] | None = None, cell: Cell | None = None) -> Select:
    """The user's cases (only those routed to `cell`'s subtree, if given), soonest deadline first (cases without
    one last), then by id."""
    statuses = status or TASK_STATUSES
    stmt = listed_reports().where(Report.assignee_id == user.id, Report.status.in_(statuses))
    if cell is not None:
        stmt = stmt.where(Report.cell_id.in_(subtree_cell_ids(cell.code)))
    return stmt.order_by(*TASK_ORDER)


TASK_ORDER = (Report.deadline_at.is_(None), Report.deadline_at, Report.id)


def tasks_page(stmt: Select, page: int, page_size: int) -> Page:
    """A page of a tasks_query, its reports read as rows (app.services.cases.rows): a worker's app polls it."""

    def fetch(offset: int) -> list[ReportRow]:
        return report_rows_page(stmt.whereclause, list(TASK_ORDER), page_size, offset)

    return paginate(stmt, page, page_size, fetch=fetch)


def last_events(reports: list[Report]) -> dict[int, dict[str, Any]]:
    """The latest event of each report in one query, its actor (id, username, display_name) from the workers'
    people cache (app.services.cases.rows)."""
    if not reports:
        return {}
    latest = (
        select(func.max(CaseEvent.id))
        .where(CaseEvent.report_id.in_([r.id for r in reports]))
        .group_by(CaseEvent.report_id)
    )
    rows = db.session.execute(
        select(
            CaseEvent.report_id,
            CaseEvent.action,
            CaseEvent.created_at,
            CaseEvent.actor_id,
            CaseEvent.actor_role,
            CaseEvent.note,
        ).where(CaseEvent.id.in_(latest))
    ).all()
    actors = user_refs({row.actor_id for row in rows if row.actor_id is not None})
    return {
        row.report_id: {
            "action": row.action,
            "at": row.created_at,
            "actor": actors.get(row.actor_id) if row.actor_id is not None else None,
            "actor_role": row.actor_role,
            "note": row.note,
        }
        for row in rows
    }


def as_tasks(reports: list[ReportRow]) -> list[ReportRow]:
    """The page's rows as /me/tasks lists them: each with its latest event as `last_event` (None without one)."""
    events = last_events(reports)
    for report in reports:
        # Set on the row itself: a wrapper would put a second attribute lookup under every field of the dump.
        report.last_event = events.get(report.id)
    return reports


def my_cells(user: User) -> list[dict[str, Any]]:
    """A worker's grid cells today with their duty and dates; a supervisor's subtree root; an admin's none."""
    if user.role == Role.supervisor.value:
        if user.cell is None:
            return []
        return [
            {
                "cell": user.cell,
                "duty": "supervisor",
                "valid_from": None,
                "valid_to": None,
                "geometry": to_geojson(user.cell.geom),
            }
        ]
    if user.role != Role.worker.value:
        return []
    rows = db.session.execute(
        select(WorkerCell, Cell)
        .join(Cell, Cell.id == WorkerCell.cell_id)
        .where(WorkerCell.user_id == user.id, current_on(local_day()))
        .order_by(Cell.code, WorkerCell.id)
    )
    return [
        {
            "cell": cell,
            "duty": assignment.duty,
            "valid_from": assignment.valid_from,
            "valid_to": assignment.valid_to,
            "geometry": to_geojson(cell.geom),
        }
        for assignment, cell in rows
    ]
