"""Supervisors' figures per cell of the next level down: filings, closures, on-time rate, backlog, escalations.

Periods are half-open [start, end). Late is one rule (app.services.cases.sla). A case is "due in the period" when
its due time falls in it: the first due time it missed (late_since) if it is late, else its own due time (due_at:
limit, holds and extensions, never moved by escalation); rejected, duplicate and cancelled cases are never due.
Of those, a case is decided once it closed or became late: closed on time (closed and not late) or missed (late,
open or closed). The on-time closure rate (按期结案率) is closed on time / (closed on time + missed): open cases
not yet late, those on hold before their due time included, are left out, so a period that runs into the future
counts no case as missed before it is. Null when nothing is decided. The overdue backlog is the open cases late
now. Satisfaction is the mean rating (1-5) of the cases rated in the period (rated_at), null when none was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, not_, select
from sqlalchemy.orm import aliased

from app.dialect import queries
from app.errors import Forbidden, NotFound, ValidationFailed
from app.extensions import db
from app.lib.i18n import tr
from app.models import (
    CaseEvent,
    Cell,
    Report,
    Role,
    User,
    code_in_subtree,
    in_subtree,
)
from app.services.cases import sla

NEVER_DUE = ("duplicate", "cancelled", "rejected")


@dataclass(frozen=True)
class CellFigures:
    cell: dict
    filed: int
    closed: int
    closed_on_time: int
    due: int
    due_on_hold: int
    due_closed_on_time: int
    due_missed: int
    on_time_rate: float | None
    overdue_backlog: int
    avg_close_seconds: float | None
    escalations: int
    satisfaction_avg: float | None
    satisfaction_count: int


@dataclass(frozen=True)
class Summary:
    cell: Cell
    start: datetime
    end: datetime
    children: list[CellFigures]
    satisfaction_avg: float | None
    satisfaction_count: int


def _cell_for(user: User, code: str) -> Cell:
    cell = db.session.scalars(select(Cell).where(Cell.code == code)).first()
    if cell is None:
        raise NotFound(tr("No cell {code!r}.", code=code), code="cell_not_found")
    if user.role == Role.supervisor.value and (user.cell is None or not code_in_subtree(cell.code, user.cell.code)):
        raise Forbidden(tr("Statistics cover your own subtree only."))
    return cell


def _count(condition) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def summary(user: User, code: str, start: datetime, end: datetime, now: datetime) -> Summary:
    if end <= start:
        raise ValidationFailed(errors={"to": [tr("Must be after from.")]})
    cell = _cell_for(user, code)
    if cell.level == "grid":
        raise ValidationFailed(errors={"cell": [tr("A grid cell has no cells below it; ask for its community.")]})
    child, leaf = aliased(Cell), aliased(Cell)

    def within(column):
        return and_(column >= start, column < end)

    late = sla.late_filter(now)
    on_time = and_(Report.status == "closed", not_(late))
    closed = and_(Report.status == "closed", within(Report.closed_at))
    # A late case is due when it missed (late_since); an extension or hold afterwards moves only due_at.
    due = and_(within(func.coalesce(Report.late_since, Report.due_at)), Report.status.not_in(NEVER_DUE))
    rated = and_(Report.rating.is_not(None), within(Report.rated_at))
    escalations = (
        select(CaseEvent.report_id, func.count().label("n"))
        .where(CaseEvent.action == "escalate", within(CaseEvent.created_at))
        .group_by(CaseEvent.report_id)
        .subquery()
    )
    stmt = (
        select(
            child.id,
            child.code,
            child.name,
            child.level,
            _count(within(Report.created_at)),
            _count(closed),
            _count(and_(closed, on_time)),
            _count(due),
            _count(and_(due, Report.status == "on_hold")),
            _count(and_(due, on_time)),
            _count(and_(due, late)),
            _count(sla.overdue_backlog_filter(now)),
            func.avg(case((closed, queries.seconds_between(Report.created_at, Report.closed_at)))),
            func.coalesce(func.sum(escalations.c.n), 0),
            func.avg(case((rated, Report.rating))),
            _count(rated),
        )
        .select_from(child)
        # Every cell of the child's subtree, then its cases.
        .outerjoin(leaf, in_subtree(leaf.code, child.code))
        .outerjoin(Report, Report.cell_id == leaf.id)
        .outerjoin(escalations, escalations.c.report_id == Report.id)
        .where(child.parent_id == cell.id)
        .group_by(child.id, child.code, child.name, child.level)
        .order_by(child.code)
    )
    children = []
    for row in db.session.execute(stmt):
        (
            cell_id,
            cell_code,
            name,
            level,
            filed,
            n_closed,
            on_time,
            n_due,
            on_hold,
            due_on_time,
            missed,
            backlog,
            avg_close,
            n_escalations,
            satisfaction,
            n_rated,
        ) = row
        decided = due_on_time + missed
        children.append(
            CellFigures(
                cell={"id": cell_id, "code": cell_code, "name": name, "level": level},
                filed=filed,
                closed=n_closed,
                closed_on_time=on_time,
                due=n_due,
                due_on_hold=on_hold,
                due_closed_on_time=due_on_time,
                due_missed=missed,
                on_time_rate=due_on_time / decided if decided else None,
                overdue_backlog=backlog,
                avg_close_seconds=float(avg_close) if avg_close is not None else None,
                escalations=n_escalations,
                satisfaction_avg=float(satisfaction) if satisfaction is not None else None,
                satisfaction_count=n_rated,
            )
        )
    # Every case lies under exactly one child (cases route to grid cells), so the children's ratings are all.
    n_rated = sum(c.satisfaction_count for c in children)
    total = sum(c.satisfaction_avg * c.satisfaction_count for c in children if c.satisfaction_count)
    return Summary(
        cell=cell,
        start=start,
        end=end,
        children=children,
        satisfaction_avg=total / n_rated if n_rated else None,
        satisfaction_count=n_rated,
    )
