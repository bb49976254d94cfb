"""Spatial filters for report lists (near, box, cell polygon, any polygon), map GeoJSON and cell summaries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from geoalchemy2.shape import to_shape
from sqlalchemy import Select, func, not_, select
from sqlalchemy.orm import aliased, with_expression

from app.dialect import spatial
from app.errors import ValidationFailed
from app.extensions import db
from app.lib.coords import to_wgs84
from app.lib.geofilter import COUNT_CAP, GeoFilter
from app.lib.i18n import tr
from app.models import Category, Cell, Report, User, in_subtree, subtree_cell_ids
from app.models.base import utcnow
from app.models.reports import case_number
from app.services.cases import reports as report_service
from app.services.cases.rows import ReportRow, rows_of_statement, run_rows_of
from app.services.cases.sla import overdue_backlog_filter, sla_state_expr
from app.services.insight import search
from app.services.pagination import Page, paginate
from app.services.public import view as public_view

MAX_FEATURES = 5_000
# Newest-first pages of a spatial filter try the last week first, then the last 8 weeks, then all time:
# the box and the time window meet in the indexes, so a dense box reads a few hundred rows, not all of them.
RECENT_WINDOWS = (timedelta(days=7), timedelta(days=56))
NEWEST_FIRST = (Report.created_at.desc(), Report.id.desc())


def _near_point(geo: GeoFilter) -> tuple[float, float]:
    return to_wgs84(geo.near[0], geo.near[1], geo.crs)


def restrict(stmt: Select, geo: GeoFilter) -> Select:
    """Add every spatial filter in `geo`; each one goes through the spatial index."""
    loc, pk = Report.location, Report.id
    if geo.near is not None:
        lon, lat = _near_point(geo)
        stmt = stmt.where(spatial.points_within_distance(loc, pk, lon, lat, geo.radius))
    if geo.bbox is not None:
        stmt = stmt.where(spatial.in_box(loc, pk, geo.bbox))
    if geo.within is not None:
        cell = db.session.get(Cell, geo.within)
        if cell is None:
            raise ValidationFailed(errors={"within": [tr("No cell with id {within}.", within=geo.within)]})
        stmt = stmt.where(spatial.in_polygon(loc, pk, to_shape(cell.geom)))
    if geo.polygon is not None:
        stmt = stmt.where(spatial.in_polygon(loc, pk, geo.polygon))
    return stmt


def nearest_first(stmt: Select, geo: GeoFilter) -> Select:
    """Order by distance to the `near` point, then id, and give each report its exact geodesic distance_m.

    The order uses the local estimate (within 2 mm of the geodesic at 5 km), so the exact distance is
    computed only for the rows of the page."""
    lon, lat = _near_point(geo)
    return stmt.options(_with_distance(lon, lat)).order_by(
        spatial.local_distance_m(Report.location, lon, lat), Report.id
    )


def reports_query(
    user: User,
    *,
    geo: GeoFilter | None = None,
    **filters: Any,
) -> Select:
    """The reports a list shows the user, filtered (filtered_reports); newest first, or nearest first with `near`."""
    stmt = filtered_reports(user, spatial_filter=geo is not None, **filters)
    if geo is not None:
        stmt = restrict(stmt, geo)
        if geo.near is not None:
            return nearest_first(stmt, geo)
    return stmt.order_by(*NEWEST_FIRST)


def filtered_reports(
    user: User,
    *,
    spatial_filter: bool = False,
    q: str | None = None,
    case_number: str | None = None,
    status: list[str] | None = None,
    category_code: list[str] | None = None,
    cell_id: int | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    triage: bool | None = None,
    sla_state: list[str] | None = None,
    escalation_level: list[int] | None = None,
    assignee_id: int | None = None,
    overdue: bool | None = None,
) -> Select:
    """The reports a list shows the user, with every filter but the spatial ones (whose presence, spatial_filter,
    still narrows the scope), in no order. A list filter matches any of its values."""
    now = utcnow()
    visibility = report_service.visibility(user)
    found = search.q_filter(user, visibility, q) if q is not None else None
    sent = {
        "case_number": case_number,
        "status": status,
        "category_code": category_code,
        "cell_id": cell_id,
        "created_from": created_from,
        "created_to": created_to,
        "triage": triage,
        "sla_state": sla_state,
        "escalation_level": escalation_level,
        "assignee_id": assignee_id,
        "overdue": overdue,
        "geo": True if spatial_filter else None,
    }
    filters = [name for name, value in sent.items() if value is not None] + ([found[0]] if found else [])
    stmt = report_service.listed_reports().where(public_view.list_scope(user, visibility, filters))
    if found is not None:
        stmt = stmt.where(found[1])
    if case_number is not None:
        stmt = stmt.where(search.case_number_filter(case_number))
    if status:
        stmt = stmt.where(Report.status.in_(status))
    if category_code:
        stmt = stmt.where(Report.category_id.in_(_category_ids(category_code)))
    if cell_id is not None:
        cell = db.session.get(Cell, cell_id)
        if cell is None:
            raise ValidationFailed(errors={"cell_id": [tr("No cell with id {cell_id}.", cell_id=cell_id)]})
        stmt = stmt.where(Report.cell_id.in_(subtree_cell_ids(cell.code)))
    if created_from is not None:
        stmt = stmt.where(Report.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(Report.created_at < created_to)
    if triage is not None:
        stmt = stmt.where(Report.needs_triage.is_(triage))
    if sla_state:
        stmt = stmt.where(sla_state_expr(now).in_(sla_state))
    if escalation_level:
        stmt = stmt.where(Report.escalation_level.in_(escalation_level))
    if assignee_id is not None:
        stmt = stmt.where(Report.assignee_id == assignee_id)
    if overdue is not None:
        stmt = stmt.where(overdue_backlog_filter(now) if overdue else not_(overdue_backlog_filter(now)))
    return stmt


def _category_ids(codes: list[str]) -> list[int]:
    """The ids of the categories with these codes; a code of none is refused by name."""
    ids = {
        code: id_
        for code, id_ in db.session.execute(select(Category.code, Category.id).where(Category.code.in_(codes)))
    }
    unknown = [code for code in codes if code not in ids]
    if unknown:
        raise ValidationFailed(errors={"category": [tr("No category {codes}.", codes=", ".join(unknown))]})
    return list(ids.values())


def paginate_reports(stmt: Select, geo: GeoFilter | None, page: int, page_size: int) -> Page:
    """A page of a reports_query; with spatial filters the total is capped (COUNT_CAP) and the page found
    by the cheapest exact route: a distance bound for near, recent time windows for newest first."""
    if geo is None:
        return paginate(stmt, page, page_size, fetch=lambda offset: _page(stmt, offset, page_size))

    def fetch(offset: int) -> list[Report]:
        if geo.near is not None:
            return _nearest_page(stmt, geo, offset, page_size)
        return _newest_page(stmt, offset, page_size)

    # Counted by id alone: the same rows, without 55 columns for the database to parse and for SQLAlchemy to key.
    counted = stmt.with_only_columns(Report.id)
    return paginate(stmt, page, page_size, count_cap=COUNT_CAP, fetch=fetch, counted=counted)


def _page(stmt: Select, offset: int, page_size: int, distance=None) -> list[ReportRow]:
    return run_rows_of(page_statement(stmt, offset, page_size, distance), distance is not None)


def page_statement(stmt: Select, offset, page_size: int, distance=None) -> Select:
    """The rows of stmt's page (offset a value or a bind parameter), as ReportRow columns (rows_of_statement)."""
    # The page's ids from the reports alone (joined before the LIMIT, the planner would join every candidate,
    # hashing all the cells, to keep 50), numbered in the list's order; its rows joined to them in the same
    # statement.
    position = func.row_number().over(order_by=list(stmt._order_by_clauses)).label("n")
    page = stmt.with_only_columns(Report.id, position).limit(page_size).offset(offset)
    return rows_of_statement(page, distance)


def _nearest_page(stmt: Select, geo: GeoFilter, offset: int, page_size: int) -> list[ReportRow]:
    # Every row of the page lies within the n-th nearest row's distance, so that bound loses none of them.
    lon, lat = _near_point(geo)
    bound = spatial.nearest_bound(stmt, Report.location, lon, lat, offset + page_size)
    if bound is not None:
        stmt = stmt.where(spatial.points_within_estimate(Report.location, Report.id, lon, lat, bound))
    return _page(stmt, offset, page_size, spatial.distance_m(Report.location, lon, lat))


def _newest_page(stmt: Select, offset: int, page_size: int) -> list[ReportRow]:
    # A window that fills the page holds the newest offset + page_size rows: all the others are older.
    now = utcnow()
    for window in RECENT_WINDOWS:
        rows = _page(stmt.where(Report.created_at >= now - window), offset, page_size)
        if len(rows) == page_size:
            return rows
    return _page(stmt, offset, page_size)


def _with_distance(lon: float, lat: float):
    return with_expression(Report.distance_m, spatial.distance_m(Report.location, lon, lat))


def feature_collection(viewer: User, stmt: Select) -> dict[str, Any]:
    """Map points for a report query: no reporter, no free text, nothing that could name a person; a case the
    viewer gets in its public view shows a point inside its handling cell and no SLA state."""
    now = utcnow()
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    columns = (
        stmt.with_only_columns(
            Report.id,
            Report.case_day,
            Category.code,
            Report.status,
            sla_state_expr(now).label("sla_state"),
            Report.created_at,
            Report.reporter_id,
            Category.public,
            Report.handling_cell_id,
            func.ST_X(Report.location),
            func.ST_Y(Report.location),
        )
        .join(Category, Category.id == Report.category_id)
        .limit(MAX_FEATURES + 1)
    )
    fetched = db.session.execute(columns).all()
    rows = fetched[:MAX_FEATURES]
    shown = public_view.map_points(viewer, [tuple(row[6:]) for row in rows])
    features = [
        {
            "type": "Feature",
            "id": rid,
            "geometry": {"type": "Point", "coordinates": list(point)} if point else None,
            "properties": {
                "id": rid,
                "case_number": case_number(day, rid),
                "category": code,
                "status": status,
                "sla_state": sla if full else None,
                "created_at": created.astimezone(zone).isoformat(),
            },
        }
        for (rid, day, code, status, sla, created, *_), (point, full) in zip(rows, shown, strict=True)
    ]
    return {"type": "FeatureCollection", "features": features, "truncated": len(fetched) > MAX_FEATURES}


def cell_summary(user: User, cell: Cell) -> dict[str, Any]:
    """Counts by status and by SLA state for the cell's subtree and for each child, in one grouped query."""
    children = list(db.session.scalars(select(Cell).where(Cell.parent_id == cell.id).order_by(Cell.code)))
    routed, child = aliased(Cell), aliased(Cell)
    sla = sla_state_expr(utcnow())
    # Reports routed anywhere in the subtree; the outer join names the child whose code range holds them.
    stmt = (
        select(child.id, Report.status, sla, func.count())
        .join(routed, routed.id == Report.cell_id)
        .outerjoin(child, (child.parent_id == cell.id) & in_subtree(routed.code, child.code))
        .where(
            in_subtree(routed.code, cell.code),
            # Counts by grid cell and SLA state are not in the public view: residents count their own.
            public_view.full_view_scope(user, report_service.visibility(user)),
        )
        .group_by(child.id, Report.status, sla)
    )
    totals = {None: _empty_counts()}
    totals.update({c.id: _empty_counts() for c in children})
    for child_id, status, state, n in db.session.execute(stmt):
        for key in {None, child_id}:
            _add(totals[key], status, state, n)
    return {"cell": cell, **totals[None], "children": [{"cell": c, **totals[c.id]} for c in children]}


def _empty_counts() -> dict[str, Any]:
    return {"total": 0, "by_status": {}, "by_sla_state": {}}


def _add(counts: dict[str, Any], status: str, state: str | None, n: int) -> None:
    counts["total"] += n
    counts["by_status"][status] = counts["by_status"].get(status, 0) + n
    key = state or "none"
    counts["by_sla_state"][key] = counts["by_sla_state"].get(key, 0) + n
