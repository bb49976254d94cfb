"""A case's lights: once late, red for good (a return aside); beside it, the light of the handling level's clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_

from app.models import CLOCK_RUNNING_STATUSES, OPEN_STATUSES, Category, Report, ReportStatus
from app.services.calendar import worktime

# The rule, one definition here in Python and the equal SQL beside it (tests/test_sla.py holds them equal):
#
# A case is late once its own due time (due_at: limit, holds and extensions; escalation never moves it) has
# passed while it was open, measured where its clock stands: now, or when it went on hold (a held clock is
# paused). A closed case is late when it closed after its due time. late_since is the first due time it missed:
# escalation and every action of the loop record it (Report.late_since) before they move or stop the clock, so
# neither an extension approved afterwards nor a hold moves it back; until recorded it is due_at. A late case
# stays late whatever level handles it, until it ends and after; only a return (wrong cell or function), which
# restarts the clock from the next acceptance, clears it.
#
# sla_state, the case's light: red when late; else, once accepted, green or yellow (80 % of the window used) by
# the handling level's clock while open, green when it ended. level_sla_state, the handling level's own light
# (deadline_at, warn_at: each escalation level gets its own window): red past that level's deadline, yellow,
# green; null before acceptance and once the case has ended.


def _measured_at(now: datetime | ColumnElement) -> ColumnElement:
    # A case on hold is judged at the moment its clock stopped. `now` may be a bound parameter of a cached statement.
    moment = now if isinstance(now, ColumnElement) else literal(now, type_=Report.deadline_at.type)
    return func.coalesce(Report.hold_started_at, moment)


def _open() -> ColumnElement[bool]:
    return Report.status.in_(OPEN_STATUSES)


def _missed_unrecorded(now: datetime | ColumnElement) -> ColumnElement[bool]:
    # Every branch is two-valued (no NULL), so the negation of late_filter keeps the cases that are not late.
    return and_(
        Report.due_at.is_not(None),
        or_(
            and_(_open(), _measured_at(now) > Report.due_at),
            and_(
                Report.status == ReportStatus.closed.value,
                Report.closed_at.is_not(None),
                Report.closed_at > Report.due_at,
            ),
        ),
    )


def late_since(report: Report, now: datetime) -> datetime | None:
    """The first due time the case missed, or None while it is not late."""
    if report.late_since is not None:
        return report.late_since
    if report.due_at is None:
        return None
    if report.status in OPEN_STATUSES:
        at = report.hold_started_at or now
    elif report.status == ReportStatus.closed.value and report.closed_at is not None:
        at = report.closed_at
    else:
        return None
    return report.due_at if at > report.due_at else None


def late_since_expr(now: datetime) -> ColumnElement[datetime | None]:
    """SQL of late_since."""
    return case(
        (Report.late_since.is_not(None), Report.late_since),
        (_missed_unrecorded(now), Report.due_at),
        else_=None,
    )


def late_filter(now: datetime | ColumnElement) -> ColumnElement[bool]:
    """Late cases, open or ended (late_since is not None)."""
    return or_(Report.late_since.is_not(None), _missed_unrecorded(now))


def overdue_backlog_filter(now: datetime | ColumnElement) -> ColumnElement[bool]:
    """Open cases that are late now: the overdue backlog (遗留超期), `overdue=true` and a worker's overdue cases."""
    return and_(_open(), late_filter(now))


def note_lateness(report: Report, now: datetime) -> None:
    """Record late_since before an action moves or stops the clock, so that the case stays late."""
    if report.late_since is None:
        missed = late_since(report, now)
        if missed is not None:
            report.late_since = missed


def level_sla_state(report: Report, now: datetime) -> str | None:
    """The handling level's own light: its deadline (deadline_at) and warning mark (warn_at)."""
    if report.deadline_at is None or report.status not in OPEN_STATUSES:
        return None
    at = report.hold_started_at or now
    if at > report.deadline_at:
        return "red"
    if report.warn_at is not None and at >= report.warn_at:
        return "yellow"
    return "green"


def level_sla_state_expr(now: datetime) -> ColumnElement[str | None]:
    """SQL of level_sla_state."""
    at = _measured_at(now)
    return case(
        (or_(Report.deadline_at.is_(None), Report.status.not_in(OPEN_STATUSES)), None),
        (at > Report.deadline_at, "red"),
        (and_(Report.warn_at.is_not(None), at >= Report.warn_at), "yellow"),
        else_="green",
    )


def sla_state(report: Report, now: datetime) -> str | None:
    """The case's light: red once late, until it ends and after; null before acceptance."""
    if late_since(report, now) is not None:
        return "red"
    if report.deadline_at is None:
        return None
    if report.status not in OPEN_STATUSES:
        return "green"
    return level_sla_state(report, now)


def sla_state_expr(now: datetime) -> ColumnElement[str | None]:
    """SQL of sla_state: what lists filter, maps colour and summaries count."""
    return case(
        (late_filter(now), "red"),
        (Report.deadline_at.is_(None), None),
        (Report.status.not_in(OPEN_STATUSES), "green"),
        else_=level_sla_state_expr(now),
    )


def level_overdue_filter(now: datetime) -> ColumnElement[bool]:
    """Open cases whose clock runs and whose handling level's deadline has passed: what escalation moves."""
    # deadline_at IS NOT NULL keeps the test two-valued.
    return and_(Report.status.in_(CLOCK_RUNNING_STATUSES), Report.deadline_at.is_not(None), Report.deadline_at < now)


WARN_SHARE = 0.8


def start_clock(report: Report, start: datetime) -> None:
    """Accepting a case starts its clock: snapshot the category's limit and set the deadlines."""
    report.accepted_at = start
    report.time_limit_value = report.category.time_limit_value
    report.time_limit_unit = report.category.time_limit_unit
    recompute_clock(report)


def started_clock(category: Category, start: datetime) -> dict[str, Any]:
    """The clock's columns of a case accepted at `start` in `category`, never held, extended or escalated: what
    start_clock leaves on a case, for one written already accepted."""
    columns: dict[str, Any] = {
        "accepted_at": start,
        "time_limit_value": category.time_limit_value,
        "time_limit_unit": category.time_limit_unit,
    }
    if category.time_limit_unit is None:
        return columns
    allowed, unit = category.time_limit_value, category.time_limit_unit
    due_at = _own_time(start, allowed, unit, 0.0)
    return {
        **columns,
        "due_at": due_at,
        "deadline_at": due_at,
        "warn_at": _own_time(start, allowed * WARN_SHARE, unit, 0.0),
    }


def _own_time(accepted_at: datetime, allowed: float, unit: str, held: float) -> datetime:
    """`allowed` units of the case's own limit from acceptance, moved on by the time held."""
    return worktime.add_seconds(worktime.deadline(accepted_at, allowed, unit), held, unit)


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
    report.due_at = _own_time(report.accepted_at, allowed, unit, held)
    if report.escalation_level == 0 or report.escalated_at is None:
        report.deadline_at = report.due_at
        report.warn_at = _own_time(report.accepted_at, allowed * WARN_SHARE, unit, held)
    else:
        window, window_unit = report.category.escalation_window_value, report.category.escalation_window_unit
        report.deadline_at = worktime.deadline(report.escalated_at, window, window_unit)
        report.warn_at = worktime.deadline(report.escalated_at, window * WARN_SHARE, window_unit)
