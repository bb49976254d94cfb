"""Spatial filters for report lists (near, box, cell polygon, any polygon), map GeoJSON and cell summaries."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from geoalchemy2.shape import to_shape
from sqlalchemy import Select, func, select
from sqlalchemy.orm import aliased, with_expression

from app import spatial
from app.coords import to_wgs84
from app.errors import ValidationFailed
from app.extensions import db
from app.models import Category, Cell, Report, User, subtree_bounds
from app.models.base import utcnow
from app.services import reports as report_service
from app.services.geometry import GeometryProblem, parse_polygonal
from app.services.sla import sla_state_expr

MAX_POLYGON_VERTICES = 1_000
MAX_FEATURES = 5_000


@dataclass(frozen=True)
class GeoFilter:
    """The spatial part of a report query, as the client sent it (near in `crs`, the rest in WGS-84)."""

    near: tuple[float, float] | None = None
    radius: float | None = None
    crs: str = "wgs84"
    bbox: tuple[float, float, float, float] | None = None
    within: int | None = None
    polygon: Any = None


def polygon_from_geojson(geometry: Any):
    """A valid GeoJSON Polygon of at most 1,000 vertices, as shapely; GeometryProblem says what is wrong."""
    if not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
        raise GeometryProblem("only a GeoJSON Polygon is accepted")
    rings = geometry.get("coordinates")
    vertices = sum(len(r) for r in rings if isinstance(r, list)) if isinstance(rings, list) else 0
    if vertices > MAX_POLYGON_VERTICES:
        raise GeometryProblem(f"too many vertices ({vertices} > {MAX_POLYGON_VERTICES})")
    return parse_polygonal(geometry).geoms[0]


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
            raise ValidationFailed(errors={"within": [f"No cell with id {geo.within}."]})
        stmt = stmt.where(spatial.in_polygon(loc, pk, to_shape(cell.geom)))
    if geo.polygon is not None:
        stmt = stmt.where(spatial.in_polygon(loc, pk, geo.polygon))
    return stmt


def nearest_first(stmt: Select, geo: GeoFilter) -> Select:
    """Order by distance to the `near` point, then id, and give each report its exact geodesic distance_m.

    The order uses the local estimate (within 2 mm of the geodesic at 5 km), so the exact distance is
    computed only for the rows of the page."""
    lon, lat = _near_point(geo)
    return (stmt.options(with_expression(Report.distance_m, spatial.distance_m(Report.location, lon, lat)))
            .order_by(spatial.local_distance_m(Report.location, lon, lat), Report.id))


def feature_collection(stmt: Select) -> dict[str, Any]:
    """Map points for a report query: no reporter, no free text, nothing that could name a person."""
    now = utcnow()
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    columns = stmt.with_only_columns(
        Report.id, Report.case_day, Category.code, Report.status, sla_state_expr(now).label("sla_state"),
        Report.created_at, func.ST_X(Report.location), func.ST_Y(Report.location),
    ).join(Category, Category.id == Report.category_id).limit(MAX_FEATURES + 1)
    rows = db.session.execute(columns).all()
    features = [{
        "type": "Feature", "id": rid,
        "geometry": {"type": "Point", "coordinates": [x, y]},
        "properties": {"id": rid, "case_number": f"{day:%Y%m%d}{rid:07d}", "category": code, "status": status,
                       "sla_state": sla, "created_at": created.astimezone(zone).isoformat()},
    } for rid, day, code, status, sla, created, x, y in rows[:MAX_FEATURES]]
    return {"type": "FeatureCollection", "features": features, "truncated": len(rows) > MAX_FEATURES}


def cell_summary(user: User, cell: Cell) -> dict[str, Any]:
    """Counts by status and by SLA state for the cell's subtree and for each child, in one grouped query."""
    children = list(db.session.scalars(select(Cell).where(Cell.parent_id == cell.id).order_by(Cell.code)))
    routed, child = aliased(Cell), aliased(Cell)
    low, high = subtree_bounds(cell.code)
    sla = sla_state_expr(utcnow())
    # Reports routed anywhere in the subtree; the outer join names the child whose code range holds them.
    stmt = (select(child.id, Report.status, sla, func.count())
            .join(routed, routed.id == Report.cell_id)
            .outerjoin(child, (child.parent_id == cell.id) & (routed.code >= child.code)
                       & (routed.code < child.code + ":"))
            .where(routed.code >= low, routed.code < high, report_service.visibility(user))
            .group_by(child.id, Report.status, sla))
    totals = {None: _empty_counts()}
    totals.update({c.id: _empty_counts() for c in children})
    for child_id, status, state, n in db.session.execute(stmt):
        for key in {None, child_id}:
            _add(totals[key], status, state, n)
    return {"cell": cell, **totals[None],
            "children": [{"cell": c, **totals[c.id]} for c in children]}


def _empty_counts() -> dict[str, Any]:
    return {"total": 0, "by_status": {}, "by_sla_state": {}}


def _add(counts: dict[str, Any], status: str, state: str | None, n: int) -> None:
    counts["total"] += n
    counts["by_status"][status] = counts["by_status"].get(status, 0) + n
    key = state or "none"
    counts["by_sla_state"][key] = counts["by_sla_state"].get(key, 0) + n
