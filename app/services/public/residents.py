"""What residents do: their own reports, rating, following the cases offered to them, similar open cases."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, Select, bindparam, delete, exists, select
from sqlalchemy.orm import aliased

from app.dialect import spatial
from app.dialect.engine import DriverStatement, compiled_once
from app.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TransitionNotAllowed,
    VersionMismatch,
)
from app.extensions import db
from app.lib.i18n import tr
from app.models import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    CaseEvent,
    Category,
    Report,
    ReportFollower,
    ReportStatus,
    Role,
    User,
)
from app.models.base import utcnow
from app.models.labels import STATUS_LABELS, label
from app.services.cases import reports as report_service
from app.services.cases.rows import first_rows, rows_of_driver
from app.services.public import view as public_view

MAX_SIMILAR = 5


def my_reports_query(user: User, *, status: list[str] | None = None) -> Select:
    """The caller's own reports, newest first (ix_reports_reporter_created), in any of `status`."""
    stmt = report_service.listed_reports().where(Report.reporter_id == user.id)
    if status:
        stmt = stmt.where(Report.status.in_(status))
    return stmt.order_by(Report.created_at.desc(), Report.id.desc())


def _check_if_match(report: Report, if_match: Collection[int] | None) -> None:
    # Residents' apps may leave If-Match out; one that sends it gets the usual check.
    if if_match is not None and report.version not in if_match:
        raise VersionMismatch(
            tr("The case is now at ETag {etag}; read it again and retry.", etag=f'"{report.version}"')
        )


def rate(
    user: User, report: Report, if_match: Collection[int] | None, *, score: int, comment: str | None = None
) -> Report:
    """Once, by the reporter, on their closed case; writes one `rate` event and moves the ETag."""
    if report.reporter_id != user.id:
        raise Forbidden(tr("Only the resident who filed the case may rate it."), code="action_forbidden")
    _check_if_match(report, if_match)
    if report.status != ReportStatus.closed.value:
        raise TransitionNotAllowed(
            tr(
                "Cannot rate a case that is {status}; wait until it is closed.",
                status=label(STATUS_LABELS, report.status),
            ),
            action="rate",
            case_status=report.status,
        )
    if report.rating is not None:
        raise Conflict(tr("You rated this case already."), code="already_rated")
    now = utcnow()
    report.rating, report.rating_comment, report.rated_at = score, comment, now
    db.session.add(CaseEvent.of(report, user, "rate", report.status, now, note=comment, data={"score": score}))
    db.session.flush()
    return report


def _offered_to(user: User) -> ColumnElement[bool]:
    """The open cases offered to the user (what similar_open_cases shows them): of a category they filed a report
    of, within that category's duplicate radius of one of their reports."""
    mine = aliased(Report)
    return Report.status.in_(OPEN_STATUSES) & exists().where(
        mine.reporter_id == user.id,
        mine.category_id == Report.category_id,
        mine.id != Report.id,
        Category.duplicate_radius_m > 0,
        spatial.geodesic_m(mine.location, Report.location) <= Category.duplicate_radius_m,
    )


def _followable(user: User, report_id: int) -> Report:
    """A case the user sees (their own, one they follow) or one offered to them, of an active category; any
    other case is unseen (404), whether it exists or not."""
    if user.role != Role.resident.value:
        raise Forbidden(tr("Only residents follow cases."), code="action_forbidden")
    report = db.session.scalars(
        select(Report)
        .join(Category, Category.id == Report.category_id)
        .where(Report.id == report_id, Category.active.is_(True), report_service.visibility(user) | _offered_to(user))
    ).first()
    if report is None:
        raise NotFound(tr("No report with id {report_id} to follow.", report_id=report_id), code="report_not_found")
    return report


def _following(user: User, report: Report) -> ReportFollower | None:
    return db.session.get(ReportFollower, (report.id, user.id))


def follow(user: User, report_id: int, if_match: Collection[int] | None) -> dict[str, Any]:
    """Follow an open case instead of filing a duplicate; again is a no-op. The case itself does not change."""
    report = _followable(user, report_id)
    _check_if_match(report, if_match)
    if report.reporter_id == user.id:
        raise Conflict(tr("You filed this case; you hear of it already."), code="own_case")
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
    db.session.execute(
        delete(ReportFollower).where(ReportFollower.report_id == report.id, ReportFollower.user_id == user.id)
    )
    db.session.flush()
    return {"report_id": report.id, "following": False, "since": None}


def file_with_similar_cases(user: User, **fields: Any) -> Report:
    """File a report (report_service.file_report) with its similar_open_cases, for the filing answer: read in the
    same round trip as the write, just before it."""
    report, similar = report_service.file_report(user, read_beside=similar_cases_read, **fields)
    # Offered to whoever files: each in its public view, whatever the filer may see of it otherwise.
    report.similar_open_cases = public_view.present_all(None, rows_of_driver(similar or [], True))
    return report


def similar_cases_read(category: Category, lon: float, lat: float) -> tuple[DriverStatement, dict[str, Any]] | None:
    """The read of up to 5 open cases of the category within its duplicate radius of the point, nearest first,
    through the spatial index, as rows (app.services.cases.rows); None when the category has no radius."""
    radius = category.duplicate_radius_m
    if not radius:
        return None
    params = {**spatial.within_distance_values(lon, lat, radius), "category_id": category.id}
    return _similar_statement(), params


_SIMILAR: dict[str, DriverStatement] = {}


def _similar_statement() -> DriverStatement:
    """Filing answers with it every time (app.dialect.engine.compiled_once); SQLAlchemy's execution path also cost
    more than running it."""
    placeholders = {**spatial.within_distance_values(0.0, 0.0, 1.0), "category_id": 0}
    return compiled_once(_SIMILAR, _similar_select, **placeholders)


def _similar_select() -> Select:
    lon, lat = bindparam("lon", type_=Float), bindparam("lat", type_=Float)
    return first_rows(
        [
            spatial.points_within_distance_bound(Report.location, Report.id),
            Report.category_id == bindparam("category_id", type_=Integer),
            # The open cases, said as the open cases' spatial index says it on PostgreSQL (its predicate): no btree
            # index serves a NOT IN, so the planner does not AND the status index into that one.
            Report.status.not_in(FINAL_STATUSES),
        ],
        [spatial.local_distance_m(Report.location, lon, lat), Report.id],
        MAX_SIMILAR,
        spatial.distance_m(Report.location, lon, lat),
    )
