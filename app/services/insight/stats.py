"""Supervisors' figures per cell of the next level down: filings, closures, on-time rate, backlog, escalations.

Periods are half-open [start, end). Late is one rule (app.services.cases.sla). A case is "due in the period" when
its due time falls in it: the first due time it missed (late_since) if it is late, else its own due time (due_at:
limit, holds and extensions, never moved by escalation); rejected, duplicate and cancelled cases are never due.
Of those, a case is decided once it closed or became late: closed on time (closed and not late) or missed (late,
open or closed). The on-time closure rate (按期结案率) is closed on time / (closed on time + missed): open cases
not yet late, those on hold before their due time included, are left out, so a period that runs into the future
counts no case as missed before it is. Null when nothing is decided. The overdue backlog is the open cases late
now. Satisfaction is the mean rating (1-5) of the cases rated in the period (rated_at), null when none was.
The period defaults to the current local month (TIMEZONE). The total row of the cell asked about sums its children's
counts and recomputes its rates and means from the sums (never an average of the children's rates).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, not_, select
from sqlalchemy.orm import aliased

from app.dialect import queries
from app.errors import ValidationFailed
from app.extensions import db
from app.lib.i18n import tr
from app.models import (
    CaseEvent,
    Cell,
    Report,
    User,
    in_subtree,
)
from app.services.calendar.worktime import local_month_bounds
from app.services.cases import sla
from app.services.people.workers import check_manages

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
    total: CellFigures
    satisfaction_avg: float | None
    satisfaction_count: int


def _figures(cell: dict, counts: dict, avg_close: float | None, satisfaction: float | None) -> CellFigures:
    decided = counts["due_closed_on_time"] + counts["due_missed"]
    return CellFigures(
        cell=cell,
        **{name: int(value) for name, value in counts.items()},
        on_time_rate=counts["due_closed_on_time"] / decided if decided else None,
        avg_close_seconds=float(avg_close) if avg_close is not None else None,
        satisfaction_avg=float(satisfaction) if satisfaction is not None else None,
    )


COUNTS = (
    "filed",
    "closed",
    "closed_on_time",
    "due",
    "due_on_hold",
    "due_closed_on_time",
    "due_missed",
    "overdue_backlog",
    "escalations",
    "satisfaction_count",
)


def _mean(pairs: list[tuple[float | None, int]]) -> float | None:
    """The mean over all the items of several groups, from each group's mean and size."""
    n = sum(size for mean, size in pairs if mean is not None)
    return sum(mean * size for mean, size in pairs if mean is not None) / n if n else None


def _total(cell: Cell, children: list[CellFigures]) -> CellFigures:
    # Every case lies under exactly one child (cases route to grid cells), so the children's sums are the cell's.
    counts = {name: sum(getattr(c, name) for c in children) for name in COUNTS}
    return _figures(
        {"id": cell.id, "code": cell.code, "name": cell.name, "level": cell.level},
        counts,
        _mean([(c.avg_close_seconds, c.closed) for c in children]),
        _mean([(c.satisfaction_avg, c.satisfaction_count) for c in children]),
    )


def _count(condition) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def summary(user: User, cell: Cell, start: datetime | None, end: datetime | None, now: datetime) -> Summary:
    """Figures per child of `cell` over [start, end), each bound defaulting to the current local month's."""
    check_manages(user, cell)
    month_start, month_end = local_month_bounds(now)
    start = start if start is not None else month_start
    end = end if end is not None else month_end
    if end <= start:
        raise ValidationFailed(errors={"to": [tr("Must be after from.")]})
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
        cell_id, cell_code, name, level, *figures = row
        *counted, avg_close, n_escalations, satisfaction, n_rated = figures
        counts = dict(zip(COUNTS[:8], counted, strict=True))
        counts.update(escalations=n_escalations, satisfaction_count=n_rated)
        children.append(
            _figures({"id": cell_id, "code": cell_code, "name": name, "level": level}, counts, avg_close, satisfaction)
        )
    total = _total(cell, children)
    return Summary(
        cell=cell,
        start=start,
        end=end,
        children=children,
        total=total,
        satisfaction_avg=total.satisfaction_avg,
        satisfaction_count=total.satisfaction_count,
    )
