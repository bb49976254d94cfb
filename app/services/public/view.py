"""Who sees what of a case: the full view for its reporter and the staff in scope, the public view for anyone else."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import ColumnElement, false, select

from app.errors import ValidationFailed
from app.extensions import db
from app.lib.i18n import tr
from app.models import Attachment, CaseEvent, Report, Role, User
from app.models.base import utcnow
from app.services.cases import reports as report_scope, sla
from app.services.cases.rows import cell_label_points
from app.services.pagination import Page

STAFF_ROLES = frozenset({Role.worker.value, Role.supervisor.value, Role.admin.value})
# The notes that answer the public: why it was rejected, what was done, how it was checked. Every other note
# (accept, assign, supervise, hold, extension, rework, reroute, return ...) is internal to the staff.
PUBLIC_NOTE_ACTIONS = frozenset({"reject", "resolve", "verify", "close"})
# The public view of someone else's case, by ReportOut field. `location` is rounded to the handling cell.
PUBLIC_FIELDS = frozenset(
    {"id", "case_number", "category", "status", "handling_cell", "created_at", "closed_at", "location", "view"}
)
# What a category an admin marks public adds: its description, the exact point (and so the distance to a
# point asked about), and the "after" photos.
PUBLIC_CATEGORY_FIELDS = frozenset({"description", "distance_m"})
PUBLIC_CATEGORY_PHOTO_STAGES = frozenset({"after"})
# The list filters that read only what the public view shows; any other filter a non-staff caller sends
# matches only their own cases, so no filter can reveal what the view leaves out (a point, a clock, a cell).
PUBLIC_FILTERS = frozenset({"status", "category_code", "created_from", "created_to", "case_number"})
STAFF_FILTERS = frozenset({"assignee_id"})
# The contact fields an Open311 client may send with a request (ContactOut field: Report column).
CONTACT_COLUMNS = {
    "email": "contact_email",
    "phone": "contact_phone",
    "first_name": "contact_first_name",
    "last_name": "contact_last_name",
    "device_id": "device_id",
    "account_id": "account_id",
}


def is_staff(user: User | None) -> bool:
    return user is not None and user.role in STAFF_ROLES


def sees_in_full(user: User | None, report: Report) -> bool:
    """The reporter, and staff (who reach a case only through their scope), see it in full; anyone else (a
    follower, an Open311 reader, an anonymous caller) gets its public view."""
    return sees_in_full_as(user, report.reporter_id)


def sees_in_full_as(user: User | None, reporter_id: int) -> bool:
    return user is not None and (user.role in STAFF_ROLES or reporter_id == user.id)


def full_view_scope(user: User, visibility: ColumnElement[bool]) -> ColumnElement[bool]:
    """Of the reports `visibility` lets the user see, those they see in full."""
    return visibility if is_staff(user) else Report.reporter_id == user.id


def list_scope(user: User, visibility: ColumnElement[bool], filters: Iterable[str]) -> ColumnElement[bool]:
    """The reports a list with these filters may match: a filter on what the public view leaves out matches only
    the cases the caller sees in full, and staff-only filters are refused to anyone else."""
    filters = set(filters)
    refused = sorted(filters & STAFF_FILTERS) if not is_staff(user) else []
    if refused:
        raise ValidationFailed(errors={name: [tr("Only staff filter by this.")] for name in refused})
    return full_view_scope(user, visibility) if filters - PUBLIC_FILTERS else visibility


def may_see_personal_data(user: User | None, report: Report) -> bool:
    """The reporter's name and phone and an Open311 contact: the reporter themselves, supervisors of the case's
    subtree, admins. Grid workers handle the case without them."""
    if user is None:
        return False
    if report.reporter_id == user.id or user.role == Role.admin.value:
        return True
    return user.role == Role.supervisor.value and report_scope.in_subtree(user, report)


def personal_data_scope(user: User, visibility: ColumnElement[bool]) -> ColumnElement[bool] | None:
    """may_see_personal_data in SQL, for the reports `visibility` lets the user see: admins every one, supervisors
    their own and their subtree's (the root's triage queue included), exactly what their visibility holds. None
    for the roles that see no one else's (a resident sees only their own, which needs no search by phone)."""
    if user.role in (Role.admin.value, Role.supervisor.value):
        return visibility
    return None


def public_fields(report: Report) -> frozenset[str]:
    return PUBLIC_FIELDS | PUBLIC_CATEGORY_FIELDS if report.category.public else PUBLIC_FIELDS


# ---- location ---------------------------------------------------------------------------------------------------


def map_points(
    viewer: User | None, rows: list[tuple[int, bool, int | None, float, float]]
) -> list[tuple[tuple[float, float] | None, bool]]:
    """For map rows of (reporter_id, category public, handling cell id, exact lon, exact lat): the point to show
    and whether the viewer sees the case in full; in the public view a point inside the handling cell."""
    public = [(reporter, open_category, cell) for reporter, open_category, cell, _x, _y in rows]
    points = cell_label_points(
        cell for reporter, open_category, cell in public if not open_category and not sees_in_full_as(viewer, reporter)
    )
    shown = []
    for reporter, open_category, cell, x, y in rows:
        full = sees_in_full_as(viewer, reporter)
        if full or open_category:
            shown.append(((x, y), full))
        else:
            point = points.get(cell)
            shown.append((point, False))
    return shown


def exact_location(report: Report) -> tuple[float, float]:
    # A page read as rows (app.services.cases.rows) carries its point already.
    point = getattr(report, "point", None)
    if point is not None:
        return point
    pt = to_shape(report.location)
    return pt.x, pt.y


def public_location(report: Report) -> dict[str, Any] | None:
    """The exact point for a public category, else a point inside the handling cell (none in triage)."""
    if report.category.public:
        lon, lat = exact_location(report)
        precision = "exact"
    else:
        point = cell_label_points([report.handling_cell_id]).get(report.handling_cell_id)
        if point is None:
            return None
        lon, lat = point
        precision = "cell"
    return {"lon": lon, "lat": lat, "crs": "wgs84", "precision": precision}


# ---- reports ----------------------------------------------------------------------------------------------------


class CaseView:
    """A case as one viewer may see it, decided before it is dumped: `view` (full or public), the fields shown
    (`shown`, None for all), its location, its lights and lateness (app.services.cases.sla), and the personal data
    and staff names the viewer may see. Anything else reads through to the report."""

    def __init__(self, report: Any, viewer: User | None, now: datetime) -> None:
        if isinstance(report, SimpleNamespace):
            # A row's values (app.services.cases.rows) read directly, not through __getattr__ for each field of the
            # dump; what the view sets below replaces them, as it hides them from __getattr__ for an ORM report.
            self.__dict__.update(vars(report))
        self.report = report
        full = sees_in_full(viewer, report)
        self.view = "full" if full else "public"
        self.shown = None if full else public_fields(report)
        self.sla_state = sla.sla_state(report, now)
        self.level_sla_state = sla.level_sla_state(report, now)
        self.level_deadline_at = report.deadline_at
        self.late_since = sla.late_since(report, now)
        self.late = self.late_since is not None
        if not full:
            self.location = public_location(report)
            return
        lon, lat = exact_location(report)
        self.location = {"lon": lon, "lat": lat, "crs": "wgs84"}
        personal = may_see_personal_data(viewer, report)
        reporter = report.reporter if personal else None
        self.personal_data_of_reporter = reporter and {
            "id": reporter.id,
            "name": reporter.display_name,
            "phone": reporter.phone,
        }
        contact = {field: getattr(report, column) for field, column in CONTACT_COLUMNS.items()} if personal else {}
        self.personal_data_of_contact = contact if any(v is not None for v in contact.values()) else None
        if not is_staff(viewer):
            self.assignee = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.report, name)


def present(viewer: User | None, report: Any) -> CaseView:
    return present_all(viewer, [report])[0]


def present_all(viewer: User | None, reports: Iterable[Any]) -> list[CaseView]:
    """Each case as `viewer` may see it; the points of the handling cells the public views show in one query."""
    reports = list(reports)
    cell_label_points(r.handling_cell_id for r in reports if not sees_in_full(viewer, r) and not r.category.public)
    now = utcnow()
    return [CaseView(report, viewer, now) for report in reports]


def present_page(viewer: User | None, page: Page) -> Page:
    return replace(page, items=present_all(viewer, page.items))


# ---- history ----------------------------------------------------------------------------------------------------


def public_event(viewer: User | None, reporter_id: int, event: CaseEvent) -> dict[str, Any] | None:
    """One event of the public history, or None: status changes, public notes and the viewer's own steps, the
    actor as a role (you, reporter, staff, system), no actor ids and no data."""
    own = viewer is not None and event.actor_id == viewer.id
    public_note = event.action in PUBLIC_NOTE_ACTIONS
    if not (own or public_note or event.from_status != event.to_status):
        return None
    return {
        "id": event.id,
        "report_id": event.report_id,
        "action": event.action,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "actor": _actor(viewer, reporter_id, event),
        "note": event.note if own or public_note else None,
        "created_at": event.created_at,
    }


def _actor(viewer: User | None, reporter_id: int, event: CaseEvent) -> str:
    if viewer is not None and event.actor_id == viewer.id:
        return "you"
    if event.actor_id is None:
        return "system"
    if event.actor_id == reporter_id:
        return "reporter"
    return "staff"


def events_for(viewer: User | None, events: Iterable[CaseEvent]) -> list[Any]:
    """Staff: every event as it is. Anyone else, the reporter included: the public history (one query for the
    reporters of the events' cases)."""
    events = list(events)
    if is_staff(viewer):
        return events
    reporters = (
        {
            rid: reporter
            for rid, reporter in db.session.execute(
                select(Report.id, Report.reporter_id).where(Report.id.in_({e.report_id for e in events}))
            )
        }
        if events
        else {}
    )
    shown = (public_event(viewer, reporters[event.report_id], event) for event in events)
    return [event for event in shown if event is not None]


# ---- photos -----------------------------------------------------------------------------------------------------


def visible_photo_stages(viewer: User | None, report: Report) -> frozenset[str] | None:
    """The photo stages `viewer` may see on the case: None for all (full view), else the public ones."""
    if sees_in_full(viewer, report):
        return None
    return PUBLIC_CATEGORY_PHOTO_STAGES if report.category.public else frozenset()


def photos_filter(viewer: User | None, report: Report) -> ColumnElement[bool] | None:
    stages = visible_photo_stages(viewer, report)
    if stages is None:
        return None
    return Attachment.stage.in_(sorted(stages)) if stages else false()


class PhotoView:
    """A photo as one viewer may see it: who uploaded it and the file's own name stay with the staff and the
    uploader."""

    def __init__(self, attachment: Attachment, viewer: User | None) -> None:
        self.attachment = attachment
        if not is_staff(viewer) and (viewer is None or attachment.uploader_id != viewer.id):
            self.uploader_id = None
            self.original_name = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.attachment, name)


def present_photos(viewer: User | None, attachments: Iterable[Attachment]) -> list[PhotoView]:
    return [PhotoView(attachment, viewer) for attachment in attachments]
