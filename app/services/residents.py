"""What residents get: their own reports, a case's public view and history, rating, following, similar cases."""
from __future__ import annotations

from collections.abc import Collection
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import Select, delete, select

from app import spatial
from app.errors import Conflict, Forbidden, NotFound, TransitionNotAllowed, VersionMismatch
from app.extensions import db
from app.models import OPEN_STATUSES, CaseEvent, Category, Report, ReportFollower, ReportStatus, Role, User
from app.models.base import utcnow
from app.models.reports import case_number
from app.services import notifications
from app.services import reports as report_service

# The notes that answer the resident: why it was rejected, what was done, how it was checked. Every other
# note (supervise, hold, extension, rework, assign, reroute, return ...) is internal to the staff.
PUBLIC_NOTE_ACTIONS = frozenset({"reject", "resolve", "verify", "close"})
MAX_SIMILAR = 5
SIMILAR_DESCRIPTION_CHARS = 80
STAFF_ROLES = frozenset({Role.worker.value, Role.supervisor.value, Role.admin.value})


# The contact fields an Open311 client may send with a request (ContactOut field: Report column).
CONTACT_COLUMNS = {"email": "contact_email", "phone": "contact_phone", "first_name": "contact_first_name",
                   "last_name": "contact_last_name", "device_id": "device_id", "account_id": "account_id"}


def may_see_personal_data(user: User | None, report: Report) -> bool:
    """The reporter's name and phone: the reporter themselves, supervisors of the case's subtree, admins.

    Grid workers handle the case without them. Any other personal data of a report goes under this rule."""
    if user is None:
        return False
    if report.reporter_id == user.id or user.role == Role.admin.value:
        return True
    return user.role == Role.supervisor.value and report_service.in_subtree(user, report)


def public_viewer(user: User | None) -> bool:
    """Residents (a case's reporter or follower) get the public view: no staff names, no internal notes."""
    return user is None or user.role not in STAFF_ROLES


def shape_report(user: User | None, report: Report, out: dict[str, Any]) -> dict[str, Any]:
    """Decide, for one dumped report and one viewer, which personal data stays in it."""
    if may_see_personal_data(user, report):
        reporter = report.reporter
        out["reporter"] = {"id": reporter.id, "name": reporter.display_name, "phone": reporter.phone}
        contact = {field: getattr(report, column) for field, column in CONTACT_COLUMNS.items()}
        out["contact"] = contact if any(value is not None for value in contact.values()) else None
    else:
        out["reporter"] = None
        out["contact"] = None
    if public_viewer(user):
        out["assignee"] = None
        if user is None or report.reporter_id != user.id:
            # A follower sees the case, not who filed it or what they said of the outcome.
            out["reporter_id"] = None
            out["rating_comment"] = None
    return out


def history_for(user: User, report: Report) -> list[Any]:
    """Staff: every event. Residents: status changes, public notes and their own steps, actors as roles."""
    events = report_service.history(report)
    if not public_viewer(user):
        return events
    public = []
    for event in events:
        own = event.actor_id == user.id
        if not (own or event.action in PUBLIC_NOTE_ACTIONS or event.from_status != event.to_status):
            continue
        public.append({
            "id": event.id, "action": event.action, "from_status": event.from_status,
            "to_status": event.to_status, "actor": _actor(user, report, event),
            "note": event.note if own or event.action in PUBLIC_NOTE_ACTIONS else None,
            "created_at": event.created_at})
    return public


def _actor(user: User, report: Report, event: CaseEvent) -> str:
    if event.actor_id == user.id:
        return "you"
    if event.actor_id is None:
        return "system"
    if event.actor_id == report.reporter_id:
        return "reporter"
    return "staff"


def my_reports_query(user: User, *, status: str | None = None) -> Select:
    """The caller's own reports, newest first (ix_reports_reporter_created)."""
    stmt = report_service.listed_reports().where(Report.reporter_id == user.id)
    if status:
        stmt = stmt.where(Report.status == status)
    return stmt.order_by(Report.created_at.desc(), Report.id.desc())


def _check_if_match(report: Report, if_match: Collection[int] | None) -> None:
    # Residents' apps may leave If-Match out; one that sends it gets the usual check.
    if if_match is not None and report.version not in if_match:
        raise VersionMismatch(f"The case is now at ETag \"{report.version}\"; read it again and retry.")


def rate(user: User, report: Report, if_match: Collection[int] | None, *, score: int,
         comment: str | None = None) -> Report:
    """Once, by the reporter, on their closed case; writes one `rate` event and moves the ETag."""
    if report.reporter_id != user.id:
        raise Forbidden("Only the resident who filed the case may rate it.", code="action_forbidden")
    _check_if_match(report, if_match)
    if report.status != ReportStatus.closed.value:
        raise TransitionNotAllowed(f"Cannot rate a case that is {report.status}; wait until it is closed.",
                                   action="rate", case_status=report.status)
    if report.rating is not None:
        raise Conflict("You rated this case already.", code="already_rated")
    now = utcnow()
    report.rating, report.rating_comment, report.rated_at = score, comment, now
    db.session.add(CaseEvent(report_id=report.id, actor_id=user.id, actor_role=user.role, action="rate",
                             from_status=report.status, to_status=report.status, note=comment,
                             data={"score": score}, created_at=now))
    db.session.flush()
    return report


def _followable(user: User, report_id: int) -> Report:
    """A case the caller sees, or an open case of an active category (one offered as similar, say)."""
    if user.role != Role.resident.value:
        raise Forbidden("Only residents follow cases.", code="action_forbidden")
    report = db.session.scalars(select(Report).join(Category, Category.id == Report.category_id).where(
        Report.id == report_id,
        report_service.visibility(user)
        | (Report.status.in_(OPEN_STATUSES) & Category.active.is_(True)))).first()
    if report is None:
        raise NotFound(f"No open report with id {report_id}.", code="report_not_found")
    return report


def _following(user: User, report: Report) -> ReportFollower | None:
    return db.session.get(ReportFollower, (report.id, user.id))


def follow(user: User, report_id: int, if_match: Collection[int] | None) -> dict[str, Any]:
    """Follow an open case instead of filing a duplicate; again is a no-op. The case itself does not change."""
    report = _followable(user, report_id)
    _check_if_match(report, if_match)
    if report.reporter_id == user.id:
        raise Conflict("You filed this case; you hear of it already.", code="own_case")
    row = _following(user, report)
    if row is None:
        row = ReportFollower(report_id=report.id, user_id=user.id, created_at=utcnow())
        db.session.add(row)
        db.session.flush()
    return {"report_id": report.id, "following": True, "since": row.created_at}


def unfollow(user: User, report_id: int, if_match: Collection[int] | None) -> dict[str, Any]:
    """Stop following; when not following it is a no-op."""
    report = _followable(user, report_id)
    _check_if_match(report, if_match)
    db.session.execute(delete(ReportFollower).where(ReportFollower.report_id == report.id,
                                                    ReportFollower.user_id == user.id))
    db.session.flush()
    return {"report_id": report.id, "following": False, "since": None}


def notify_case_ended(actor: User, report: Report, public_note: str | None = None) -> int:
    """Tell the reporter (a resident) and the followers that the case has ended, once each, never the actor.

    `public_note` is the note of a PUBLIC_NOTE_ACTIONS step (the reason of a reject, the closing note)."""
    resident_reporter = select(User.id).where(User.id == report.reporter_id, User.role == Role.resident.value)
    followers = select(ReportFollower.user_id).where(ReportFollower.report_id == report.id)
    recipients = sorted(set(db.session.scalars(resident_reporter.union(followers))) - {actor.id})
    return notifications.notify(
        recipients, kind=f"case_{report.status}", title=f"Case {report.case_number} is {report.status}",
        report=report, body=public_note, data={"status": report.status},
        dedupe_prefix=f"case_ended:{report.id}:{report.status}")


def with_similar_cases(report: Report) -> Report:
    """The just-filed report with its similar_open_cases, for the filing answer only."""
    report.similar_open_cases = similar_open_cases(report)
    return report


def similar_open_cases(report: Report) -> list[dict[str, Any]]:
    """Up to 5 open cases of the report's category within its duplicate radius, nearest first: one query
    through the spatial index, no personal data."""
    radius = report.category.duplicate_radius_m
    if not radius:
        return []
    pt = to_shape(report.location)
    distance = spatial.distance_m(Report.location, pt.x, pt.y)
    rows = db.session.execute(
        select(Report.id, Report.case_day, Report.status, Report.created_at, Report.description,
               distance.label("distance_m"))
        .where(spatial.points_within_distance(Report.location, Report.id, pt.x, pt.y, radius),
               Report.category_id == report.category_id, Report.status.in_(OPEN_STATUSES), Report.id != report.id)
        .order_by(spatial.local_distance_m(Report.location, pt.x, pt.y), Report.id)
        .limit(MAX_SIMILAR))
    return [{"id": rid, "case_number": case_number(day, rid), "status": status, "distance_m": metres,
             "created_at": created, "description": _short(text)}
            for rid, day, status, created, text, metres in rows]


def _short(text: str) -> str:
    if len(text) <= SIMILAR_DESCRIPTION_CHARS:
        return text
    return text[:SIMILAR_DESCRIPTION_CHARS - 1] + "…"
