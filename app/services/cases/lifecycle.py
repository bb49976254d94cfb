"""The case loop: each transition of a report, who may make it, and the one history event it writes."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.errors import (
    Conflict,
    Forbidden,
    TransitionNotAllowed,
    ValidationFailed,
    VersionMismatch,
    VersionRequired,
)
from app.extensions import db
from app.lib.i18n import tr
from app.models import (
    OPEN_STATUSES,
    Attachment,
    AttachmentStage,
    CaseEvent,
    Cell,
    CellLevel,
    Report,
    ReportStatus,
    Role,
    User,
    code_in_subtree,
)
from app.models.base import utcnow
from app.models.labels import ACTION_LABELS, STATUS_LABELS, label
from app.services.calendar import worktime
from app.services.cases import notifications, reports, sla
from app.services.people import workers

S = ReportStatus
OPEN = tuple(OPEN_STATUSES)
# The statuses each action may leave from (the diagram in DESIGN.md).
SOURCES: dict[str, tuple[str, ...]] = {
    "accept": (S.submitted,),
    "reject": (S.submitted,),
    # Re-assigning a case that already has a worker is the same step again.
    "assign": (S.accepted, S.assigned),
    "start": (S.assigned,),
    "resolve": (S.in_progress,),
    "verify": (S.resolved,),
    "close": (S.resolved,),
    "rework": (S.resolved,),
    "return": (S.assigned, S.in_progress),
    "reroute": (S.submitted,),
    "hold": (S.in_progress,),
    "resume": (S.on_hold,),
    "request_extension": (S.assigned, S.in_progress),
    # A pending request may be decided while the worker has the case on hold.
    "approve_extension": (S.assigned, S.in_progress, S.on_hold),
    "deny_extension": (S.assigned, S.in_progress, S.on_hold),
    "mark_duplicate": OPEN,
    "supervise": OPEN,
    "cancel": (S.submitted,),
}
# Supervisors act within their subtree; a worker's own steps need the case assigned to them.
SUPERVISOR_ACTIONS = frozenset(
    {
        "accept",
        "reject",
        "assign",
        "reroute",
        "approve_extension",
        "deny_extension",
        "mark_duplicate",
        "verify",
        "close",
        "rework",
        "supervise",
    }
)
ASSIGNEE_ACTIONS = frozenset({"start", "resolve", "hold", "resume", "request_extension", "return"})


def etag(report: Report) -> str:
    return f'"{report.version}"'


def may(user: User, report: Report, action: str) -> bool:
    """The permission rule of issue 3, independent of the case's status."""
    if user.role == Role.admin.value:
        return True
    if user.role == Role.supervisor.value:
        return action in SUPERVISOR_ACTIONS and reports.in_subtree(user, report)
    if user.role == Role.worker.value:
        if action in ASSIGNEE_ACTIONS:
            return report.assignee_id == user.id
        serves_cell = report.cell_id is not None and workers.serves(user.id, report.cell_id)
        if action in ("accept", "assign"):
            return serves_cell and report.category.self_handling
        if action == "verify":
            # Someone else's work: a worker never signs off their own resolution.
            return serves_cell and report.assignee_id != user.id
        return False
    if user.role == Role.resident.value:
        return action == "cancel" and report.reporter_id == user.id
    return False


def _begin(user: User, report: Report, action: str, if_match: Collection[int] | None) -> str:
    """Permission, then the If-Match precondition, then the source status; returns that status."""
    if not may(user, report, action):
        raise Forbidden(
            tr("Your account may not {action} this case.", action=label(ACTION_LABELS, action)), code="action_forbidden"
        )
    if if_match is None:
        raise VersionRequired(
            tr("Send If-Match: {etag} (the ETag of GET /reports/{report_id}).", etag=etag(report), report_id=report.id)
        )
    if report.version not in if_match:
        raise VersionMismatch(tr("The case is now at ETag {etag}; read it again and retry.", etag=etag(report)))
    if report.status not in SOURCES[action]:
        raise TransitionNotAllowed(
            tr(
                "Cannot {action} a case that is {status}.",
                action=label(ACTION_LABELS, action),
                status=label(STATUS_LABELS, report.status),
            ),
            action=action,
            case_status=report.status,
        )
    # Before the action moves or stops the clock (an extension, a resume, a close): a case already past its due
    # time stays late.
    sla.note_lateness(report, utcnow())
    return report.status


def _record(
    user: User,
    report: Report,
    action: str,
    from_status: str,
    now: datetime,
    *,
    note: str | None = None,
    data: dict[str, Any] | None = None,
) -> Report:
    event = CaseEvent.of(report, user, action, from_status, now, note=note, data=data)
    db.session.add(event)
    db.session.flush()
    # Who is told of the step, and what, is NOTICES' business (app/services/cases/notifications.py).
    notifications.announce(event)
    return report


def record_side_event(
    user: User, report: Report, action: str, now: datetime, *, data: dict[str, Any] | None = None
) -> Report:
    """An event beside the loop (a photo attached): the status stays, and so does the version."""
    return _record(user, report, action, report.status, now, data=data)


def accept(user: User, report: Report, if_match: Collection[int] | None, *, note: str | None = None) -> Report:
    source = _begin(user, report, "accept", if_match)
    if report.cell_id is None:
        raise Conflict(tr("Re-route the case to a grid cell before accepting it."), code="case_unrouted")
    now = utcnow()
    report.status = S.accepted.value
    _record(user, report, "accept", source, now, note=note)
    reports.start_handling(report, now, user)
    return report


def reject(user: User, report: Report, if_match: Collection[int] | None, *, reason: str) -> Report:
    source = _begin(user, report, "reject", if_match)
    now = utcnow()
    report.status = S.rejected.value
    return _record(user, report, "reject", source, now, note=reason)


def assign(
    user: User, report: Report, if_match: Collection[int] | None, *, assignee_id: int, note: str | None = None
) -> Report:
    source = _begin(user, report, "assign", if_match)
    assignee = db.session.get(User, assignee_id)
    if assignee is None or assignee.role != Role.worker.value or not assignee.active:
        raise ValidationFailed(
            errors={"assignee_id": [tr("No active grid worker with id {assignee_id}.", assignee_id=assignee_id)]}
        )
    if not workers.serves(assignee.id, report.cell_id):
        raise ValidationFailed(errors={"assignee_id": [tr("This worker does not serve the case's cell.")]})
    now = utcnow()
    previous = report.assignee_id
    report.status = S.assigned.value
    report.assignee_id = assignee.id
    report.assigned_at = now
    return _record(
        user,
        report,
        "assign",
        source,
        now,
        note=note,
        data={"assignee_id": assignee.id, "previous_assignee_id": previous},
    )


def start(user: User, report: Report, if_match: Collection[int] | None, *, note: str | None = None) -> Report:
    source = _begin(user, report, "start", if_match)
    now = utcnow()
    report.status = S.in_progress.value
    return _record(user, report, "start", source, now, note=note)


def resolve(user: User, report: Report, if_match: Collection[int] | None, *, note: str) -> Report:
    source = _begin(user, report, "resolve", if_match)
    if report.category.requires_after_photo and not _has_after_photo(report):
        raise Conflict(
            tr('This category needs an "after" photo of the result before the case is resolved.'),
            code="after_photo_required",
        )
    now = utcnow()
    report.status = S.resolved.value
    report.resolved_at = now
    return _record(user, report, "resolve", source, now, note=note)


def _has_after_photo(report: Report) -> bool:
    return (
        db.session.scalar(
            select(Attachment.id)
            .where(Attachment.report_id == report.id, Attachment.stage == AttachmentStage.after.value)
            .limit(1)
        )
        is not None
    )


def _close(user: User, report: Report, if_match: Collection[int] | None, action: str, note: str | None) -> Report:
    source = _begin(user, report, action, if_match)
    now = utcnow()
    report.status = S.closed.value
    report.closed_at = now
    return _record(user, report, action, source, now, note=note)


def verify(user: User, report: Report, if_match: Collection[int] | None, *, note: str | None = None) -> Report:
    """The on-site check (核查) passed: the case closes."""
    return _close(user, report, if_match, "verify", note)


def close(user: User, report: Report, if_match: Collection[int] | None, *, note: str | None = None) -> Report:
    """A supervisor's sign-off (结案) on a resolved case without a separate on-site check."""
    return _close(user, report, if_match, "close", note)


def rework(user: User, report: Report, if_match: Collection[int] | None, *, note: str) -> Report:
    source = _begin(user, report, "rework", if_match)
    now = utcnow()
    report.status = S.assigned.value
    report.resolved_at = None
    return _record(user, report, "rework", source, now, note=note, data={"assignee_id": report.assignee_id})


def return_case(user: User, report: Report, if_match: Collection[int] | None, *, reason: str) -> Report:
    """Wrong cell or function: back to submitted without a worker or a clock, for a supervisor to re-route."""
    source = _begin(user, report, "return", if_match)
    now = utcnow()
    previous = report.assignee_id
    report.status = S.submitted.value
    report.assignee_id = None
    report.assigned_at = None
    # The clock restarts from the next acceptance, with that cell's limit: a fresh due time, not yet missed.
    report.accepted_at = report.deadline_at = report.warn_at = report.due_at = report.late_since = None
    report.time_limit_value = report.time_limit_unit = None
    report.extension_value, report.extension_requested, report.held_seconds = 0, None, 0.0
    _back_to_grid_level(report)
    return _record(user, report, "return", source, now, note=reason, data={"previous_assignee_id": previous})


def _back_to_grid_level(report: Report) -> None:
    # A case back at the start of the loop answers to its grid cell again, unescalated.
    report.handling_cell = report.cell
    report.escalation_level, report.escalated_at, report.critical, report.reminded_level = 0, None, False, None


def reroute(
    user: User, report: Report, if_match: Collection[int] | None, *, cell_id: int, note: str | None = None
) -> Report:
    source = _begin(user, report, "reroute", if_match)
    cell = db.session.get(Cell, cell_id)
    if cell is None or not cell.active or cell.level != CellLevel.grid.value:
        raise ValidationFailed(
            errors={"cell_id": [tr("No active grid-level cell with id {cell_id}.", cell_id=cell_id)]}
        )
    if user.role == Role.supervisor.value and not code_in_subtree(cell.code, user.cell.code):
        raise Forbidden(tr("That cell lies outside your subtree."), code="cell_out_of_scope")
    now = utcnow()
    previous = report.cell.code if report.cell is not None else None
    report.cell = cell
    report.needs_triage = False
    _back_to_grid_level(report)
    return _record(user, report, "reroute", source, now, note=note, data={"from_cell": previous, "to_cell": cell.code})


def hold(user: User, report: Report, if_match: Collection[int] | None, *, reason: str) -> Report:
    source = _begin(user, report, "hold", if_match)
    now = utcnow()
    report.status = S.on_hold.value
    report.hold_started_at = now
    return _record(user, report, "hold", source, now, note=reason)


def resume(user: User, report: Report, if_match: Collection[int] | None, *, note: str | None = None) -> Report:
    source = _begin(user, report, "resume", if_match)
    now = utcnow()
    held = (
        worktime.seconds_between(report.hold_started_at, now, report.time_limit_unit)
        if report.hold_started_at is not None and report.time_limit_unit
        else 0.0
    )
    report.status = S.in_progress.value
    report.held_seconds = (report.held_seconds or 0.0) + held
    report.hold_started_at = None
    sla.recompute_clock(report)
    return _record(user, report, "resume", source, now, note=note, data={"held_seconds": held})


def request_extension(
    user: User, report: Report, if_match: Collection[int] | None, *, value: int, reason: str
) -> Report:
    source = _begin(user, report, "request_extension", if_match)
    if report.extension_requested is not None:
        raise Conflict(tr("An extension request is already waiting for a decision."), code="extension_pending")
    now = utcnow()
    report.extension_requested = value
    return _record(
        user,
        report,
        "request_extension",
        source,
        now,
        note=reason,
        data={"value": value, "unit": report.time_limit_unit},
    )


def _pending_extension(report: Report) -> int:
    if report.extension_requested is None:
        raise Conflict(tr("No extension request is waiting for a decision."), code="no_extension_request")
    return report.extension_requested


def approve_extension(
    user: User, report: Report, if_match: Collection[int] | None, *, note: str | None = None
) -> Report:
    source = _begin(user, report, "approve_extension", if_match)
    value = _pending_extension(report)
    now = utcnow()
    before = report.due_at
    report.extension_value = (report.extension_value or 0) + value
    report.extension_requested = None
    sla.recompute_clock(report)
    return _record(
        user,
        report,
        "approve_extension",
        source,
        now,
        note=note,
        data={
            "value": value,
            "unit": report.time_limit_unit,
            "due_before": before.isoformat() if before else None,
            "due_after": report.due_at.isoformat() if report.due_at else None,
        },
    )


def deny_extension(user: User, report: Report, if_match: Collection[int] | None, *, reason: str) -> Report:
    source = _begin(user, report, "deny_extension", if_match)
    value = _pending_extension(report)
    now = utcnow()
    report.extension_requested = None
    return _record(user, report, "deny_extension", source, now, note=reason, data={"value": value})


def _community_code(report: Report) -> str | None:
    # Cell codes nest: the first 12 digits are the community's code.
    return report.cell.code[:12] if report.cell is not None else None


def mark_duplicate(
    user: User, report: Report, if_match: Collection[int] | None, *, duplicate_of: int, note: str | None = None
) -> Report:
    """Rule: the original is open, visible to the caller, and in the case's community (triage cases: any)."""
    source = _begin(user, report, "mark_duplicate", if_match)
    original = db.session.scalars(select(Report).where(Report.id == duplicate_of, reports.visibility(user))).first()
    problem = None
    if original is None:
        problem = tr("No report with id {report_id} that you may see.", report_id=duplicate_of)
    elif original.id == report.id:
        problem = tr("A case cannot duplicate itself.")
    elif original.status not in OPEN_STATUSES:
        problem = tr("The original is {status}; it must still be open.", status=label(STATUS_LABELS, original.status))
    elif report.cell is not None and _community_code(original) != _community_code(report):
        problem = tr("The original lies in another community.")
    if problem:
        raise ValidationFailed(errors={"duplicate_of": [problem]})
    now = utcnow()
    report.status = S.duplicate.value
    report.duplicate_of_id = original.id
    return _record(
        user,
        report,
        "mark_duplicate",
        source,
        now,
        note=note,
        data={"duplicate_of": original.id, "case_number": original.case_number},
    )


def supervise(user: User, report: Report, if_match: Collection[int] | None, *, note: str) -> Report:
    """督办: a supervision note on an open case; the status stays, the assignee is told."""
    source = _begin(user, report, "supervise", if_match)
    now = utcnow()
    # The event alone would leave the row as it was; the version still moves so every ETag names one history.
    report.updated_at = now
    return _record(user, report, "supervise", source, now, note=note)


def cancel(user: User, report: Report, if_match: Collection[int] | None, *, note: str | None = None) -> Report:
    source = _begin(user, report, "cancel", if_match)
    now = utcnow()
    report.status = S.cancelled.value
    return _record(user, report, "cancel", source, now, note=note)
