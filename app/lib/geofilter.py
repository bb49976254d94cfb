"""The spatial part of a report list query as a client sends it, and the limits every such list keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.lib.geometry import GeometryProblem, parse_polygonal

MAX_POLYGON_VERTICES = 1_000
# A spatially filtered list counts at most this many matches; past it, `total` is this cap and
# `total_is_lower_bound` is true. An exact total would visit every match (~8,000 in 500 m of a dense city).
COUNT_CAP = 1_000


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
