"""Auto-dispatch: hand a freshly accepted case to one of its cell's workers, or tell the supervisors."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Date, Integer, Select, and_, bindparam, case, func, inspect, select

from app.dialect.engine import DriverStatement, compiled_once
from app.extensions import db
from app.models import OPEN_STATUSES, CaseEvent, Duty, Report, ReportStatus, Role, User, WorkerCell
from app.services import versions
from app.services.calendar.worktime import local_day
from app.services.cases import notifications
from app.services.cases.sla import overdue_backlog_filter
from app.services.people.workers import current_on, on_duty_expr

# Tiers in the order the rule tries them; the name is the reason recorded on the case event.
REASONS = ("primary_on_duty", "primary_off_duty", "backup_on_duty", "backup_off_duty")


def _pick_statement() -> Select:
    """The rule as one query with bound cell, day and moment: the worker's columns, then the tier."""
    cell_id = bindparam("cell_id", type_=Integer)
    day = bindparam("day", type_=Date)
    now = bindparam("now", type_=Report.deadline_at.type)
    on_duty = on_duty_expr(User.id)
    primary = WorkerCell.duty == Duty.primary.value
    tier = case((and_(primary, on_duty), 0), (primary, 1), (on_duty, 2), else_=3).label("tier")
    # Each candidate's load as index probes of their own cases (ix_reports_assignee_status for the open and overdue
    # ones, ix_reports_assignee_assigned for the last assignment): workload()'s grouped form read the whole reports
    # table once the planner judged a cell's workers to have many cases.
    theirs = Report.assignee_id == User.id
    open_cases = select(func.count()).where(theirs, Report.status.in_(OPEN_STATUSES)).scalar_subquery()
    overdue_cases = select(func.count()).where(theirs, overdue_backlog_filter(now)).scalar_subquery()
    last = select(func.max(Report.assigned_at)).where(theirs).scalar_subquery()
    return (
        select(*_USERS.columns, tier)
        .join(WorkerCell, WorkerCell.user_id == User.id)
        .where(WorkerCell.cell_id == cell_id, current_on(day), User.role == Role.worker.value, User.active.is_(True))
        .order_by(tier, open_cases, overdue_cases, case((last.is_(None), 0), else_=1), last, User.id)
        .limit(1)
    )


_USERS = User.__table__
# The worker's attribute for each column the query gives, in order.
_USER_KEYS = tuple(inspect(User).get_property_by_column(column).key for column in _USERS.columns)
_PICK: dict[str, DriverStatement] = {}


def pick_worker(cell_id: int, now: datetime) -> tuple[User, str] | None:
    """The worker the rule picks for a case in the cell, with the rule's reason; one query.

    Primary workers on duty first, then primary workers at all, then backups the same way; within a
    tier the fewest open cases, then the fewest overdue, then the longest since their last assignment
    (never assigned first), then the lowest id so the choice is deterministic.
    """
    pick = compiled_once(_PICK, _pick_statement, cell_id=0, day=date(2000, 1, 1), now=datetime(2000, 1, 1, tzinfo=UTC))
    rows = pick.run({"cell_id": cell_id, "day": local_day(now), "now": now})
    if not rows:
        return None
    *columns, tier = rows[0]
    return versions.attach(User, dict(zip(_USER_KEYS, columns, strict=True))), REASONS[tier]


def auto_dispatch(report: Report, now: datetime, actor: User | None = None) -> User | None:
    """Called right after a case becomes accepted (by `actor`). Assigns it by the rule and records why; flushes only.

    None when the category waits for a supervisor, or when the cell has no worker today (its
    supervisors, the one who accepted aside, are then notified).
    """
    if not report.category.auto_dispatch or report.cell_id is None:
        return None
    picked = pick_worker(report.cell_id, now)
    if picked is None:
        notifications.announce_case("unassigned", report, now, actor_id=actor.id if actor else None)
        return None
    worker, reason = picked
    from_status = report.status
    report.assignee_id = worker.id
    report.assigned_at = now
    report.status = ReportStatus.assigned.value
    event = CaseEvent.of(report, None, "assign", from_status, now, data=assignment_data(worker.id, reason))
    db.session.add(event)
    db.session.flush()
    notifications.announce(event)
    return worker


def assignment_data(worker_id: int, reason: str) -> dict:
    """What an automatic assignment's event records: that it was the rule's, why, and to whom."""
    return {"automatic": True, "reason": reason, "assignee_id": worker_id}


def workload(now: datetime, user_ids: Select | list[int]):
    """Per assignee among `user_ids`: open cases, overdue cases and the latest assignment time."""
    return (
        select(
            Report.assignee_id.label("user_id"),
            func.sum(case((Report.status.in_(OPEN_STATUSES), 1), else_=0)).label("open_cases"),
            func.sum(case((overdue_backlog_filter(now), 1), else_=0)).label("overdue_cases"),
            func.max(Report.assigned_at).label("last_assigned_at"),
        )
        .where(Report.assignee_id.in_(user_ids))
        .group_by(Report.assignee_id)
        .subquery("workload")
    )
