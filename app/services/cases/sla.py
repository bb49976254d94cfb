"""The traffic light of a case's time limit: green, yellow (80 % used) and red (past the deadline)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, literal

from app.models import CLOCK_RUNNING_STATUSES, Report
from app.services.calendar import worktime


def _measured_at(now: datetime) -> ColumnElement:
    # A case on hold is judged at the moment its clock stopped.
    return func.coalesce(Report.hold_started_at, literal(now, type_=Report.deadline_at.type))


def sla_state_expr(now: datetime) -> ColumnElement[str | None]:
    """SQL for the state of every case with a deadline; NULL for cases whose clock never started."""
    at = _measured_at(now)
    return case(
        (Report.deadline_at.is_(None), None),
        (Report.closed_at.is_not(None), case((Report.closed_at > Report.due_at, "red"), else_="green")),
        (at > Report.deadline_at, "red"),
        (and_(Report.warn_at.is_not(None), at >= Report.warn_at), "yellow"),
        else_="green",
    )


def sla_state(report: Report, now: datetime) -> str | None:
    if report.deadline_at is None:
        return None
    if report.closed_at is not None:
        return "red" if report.due_at is not None and report.closed_at > report.due_at else "green"
    at = report.hold_started_at or now
    if at > report.deadline_at:
        return "red"
    if report.warn_at is not None and at >= report.warn_at:
        return "yellow"
    return "green"


def overdue_filter(now: datetime) -> ColumnElement[bool]:
    """Open cases whose clock runs and whose current deadline has passed: what escalation moves."""
    # deadline_at IS NOT NULL keeps the test two-valued, so its negation (overdue=false) keeps cases without one.
    return and_(Report.status.in_(CLOCK_RUNNING_STATUSES), Report.deadline_at.is_not(None), Report.deadline_at < now)


WARN_SHARE = 0.8


def start_clock(report: Report, start: datetime) -> None:
    """Accepting a case starts its clock: snapshot the category's limit and set the deadlines."""
    report.accepted_at = start
    report.time_limit_value = report.category.time_limit_value
    report.time_limit_unit = report.category.time_limit_unit
    recompute_clock(report)


def recompute_clock(report: Report) -> None:
    """due_at, deadline_at and warn_at from the clock's inputs; the one formula every change goes through.

    Own limit: accepted_at + (limit + approved extensions) in the limit's unit, then moved on by the
    time held. After an escalation the handling level's window runs from escalated_at instead, while
    due_at keeps the case's own due time for the on-time statistics.
    """
    if report.accepted_at is None or report.time_limit_unit is None:
        return
    unit = report.time_limit_unit
    allowed = report.time_limit_value + (report.extension_value or 0)
    held = report.held_seconds or 0.0
    report.due_at = worktime.add_seconds(worktime.deadline(report.accepted_at, allowed, unit), held, unit)
    if report.escalation_level == 0 or report.escalated_at is None:
        report.deadline_at = report.due_at
        report.warn_at = worktime.add_seconds(
            worktime.deadline(report.accepted_at, allowed * WARN_SHARE, unit), held, unit
        )
    else:
        window, window_unit = report.category.escalation_window_value, report.category.escalation_window_unit
        report.deadline_at = worktime.deadline(report.escalated_at, window, window_unit)
        report.warn_at = worktime.deadline(report.escalated_at, window * WARN_SHARE, window_unit)
