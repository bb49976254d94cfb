"""GeoJSON polygon validation and metric measures done in Python with shapely."""

from __future__ import annotations

import math
from typing import Any

from geoalchemy2.shape import from_shape, to_shape
from shapely import make_valid
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.validation import explain_validity

POLYGONAL = ("Polygon", "MultiPolygon")
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQUATOR = 111_320.0
MAX_VERTICES = 100_000


class GeometryProblem(ValueError):
    """One reason a geometry cannot be used."""


def _walk_positions(coords: Any, depth: int):
    if depth == 0:
        yield coords
        return
    if not isinstance(coords, (list, tuple)):
        raise GeometryProblem("coordinates are not nested arrays as the geometry type requires")
    for item in coords:
        yield from _walk_positions(item, depth - 1)


def _check_rings(polygons: list) -> None:
    if not polygons:
        raise GeometryProblem("empty geometry")
    for rings in polygons:
        if not isinstance(rings, (list, tuple)) or not rings:
            raise GeometryProblem("empty geometry")
        for ring in rings:
            if not isinstance(ring, (list, tuple)) or len(ring) < 4:
                raise GeometryProblem("invalid polygon: a ring needs at least 4 positions")
            if list(ring[0]) != list(ring[-1]):
                raise GeometryProblem("invalid polygon: a ring is not closed (first and last positions differ)")


def parse_polygonal(geometry: Any) -> MultiPolygon:
    """Validate a GeoJSON Polygon or MultiPolygon (RFC 7946, lon/lat) and return it as a MultiPolygon."""
    if not isinstance(geometry, dict) or "type" not in geometry:
        raise GeometryProblem("geometry is missing or not a GeoJSON object")
    gtype = geometry.get("type")
    if gtype not in POLYGONAL:
        raise GeometryProblem(f"non-polygon type {gtype!r}: only Polygon and MultiPolygon are allowed")
    coords = geometry.get("coordinates")
    if coords is None or coords == []:
        raise GeometryProblem("empty geometry")
    polygons = [coords] if gtype == "Polygon" else coords
    if not isinstance(polygons, (list, tuple)):
        raise GeometryProblem("coordinates are not nested arrays as the geometry type requires")
    count = 0
    for pos in _walk_positions(polygons, 3):
        count += 1
        if (
            not isinstance(pos, (list, tuple))
            or len(pos) < 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pos)
        ):
            raise GeometryProblem("a position is not an array of numbers [lon, lat]")
        lon, lat = pos[0], pos[1]
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise GeometryProblem("a coordinate is not a finite number")
        if not (-180 <= lon <= 180) or not (-90 <= lat <= 90):
            raise GeometryProblem(
                f"coordinates out of range: ({lon}, {lat}); lon must be in [-180, 180], lat in [-90, 90]"
            )
    if count > MAX_VERTICES:
        raise GeometryProblem(f"too many vertices ({count} > {MAX_VERTICES})")
    _check_rings(polygons)
    try:
        geom = shape({"type": gtype, "coordinates": coords})
    except Exception as exc:  # noqa: BLE001 - shapely raises several types for malformed input
        raise GeometryProblem(f"invalid geometry: {exc}") from exc
    if geom.is_empty:
        raise GeometryProblem("empty geometry")
    if not geom.is_valid:
        reason = explain_validity(geom)
        if "Self-intersection" in reason or "Ring Self-intersection" in reason:
            raise GeometryProblem(f"self-intersecting polygon ({reason})")
        raise GeometryProblem(f"invalid polygon ({reason})")
    return geom if isinstance(geom, MultiPolygon) else MultiPolygon([geom])


def area_m2(geom) -> float:
    """Area in square metres by a local equirectangular scale; exact enough for metre-level thresholds."""
    if geom.is_empty:
        return 0.0
    lat = geom.centroid.y
    return geom.area * M_PER_DEG_LAT * M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat))


def overlap_m2(a, b) -> float:
    inter = a.intersection(b)
    if inter.is_empty:
        return 0.0
    if not inter.is_valid:
        inter = make_valid(inter)
    polys = [g for g in getattr(inter, "geoms", [inter]) if isinstance(g, (Polygon, MultiPolygon))]
    return sum(area_m2(p) for p in polys)


def to_db(geom) -> Any:
    return from_shape(geom, srid=4326)


def to_geojson(db_geom) -> dict[str, Any] | None:
    if db_geom is None:
        return None
    return mapping(to_shape(db_geom))
