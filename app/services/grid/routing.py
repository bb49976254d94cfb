"""Routing a location to the grid cell that owns it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import shapely
from flask import current_app
from geoalchemy2.shape import to_shape
from sqlalchemy import Float, Integer, and_, select

from app.dialect import queries, spatial
from app.extensions import db
from app.lib.coords import to_wgs84
from app.models import Cell, CellLevel, RoutedBy
from app.services import versions
from app.services.versions import attach


@dataclass(frozen=True)
class Routing:
    """Where a point goes: the cell's id and code at once, the Cell itself (`cell`) when first asked for, built from
    the routing query's own row where it has one (its polygon and timestamps load only if read)."""

    lon: float
    lat: float
    cell_id: int | None
    cell_code: str | None
    routed_by: str | None
    distance_m: float | None
    _cell: Cell | None = field(default=None, repr=False, compare=False)
    _cell_values: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def cell(self) -> Cell | None:
        if self.cell_id is None:
            return None
        if self._cell is None:
            # Why: the filing path read the cell back with its polygon, a second round trip for what it had.
            found = attach(Cell, self._cell_values) if self._cell_values else db.session.get(Cell, self.cell_id)
            object.__setattr__(self, "_cell", found)
        return self._cell


class LeafIndex:
    """The active grid cells' polygons in an R-tree of the process's own (shapely's STRtree), ordered by code."""

    def __init__(self, rows: list[tuple[int, str, str, int | None, Any]]) -> None:
        self.rows = [(cell_id, code, name, parent_id) for cell_id, code, name, parent_id, _ in rows]
        self.tree = shapely.STRtree([to_shape(geom) for *_, geom in rows])

    def covering(self, lon: float, lat: float) -> tuple[int, str, str, int | None] | None:
        """As spatial.covering_leaf: boundary included (GEOS's covers, as ST_Covers), lowest code first."""
        hits = self.tree.query(shapely.Point(lon, lat), predicate="covered_by")
        return self.rows[int(hits.min())] if len(hits) else None


# A grid this large is routed by the database (spatial.covering_leaf); below it each worker keeps its own index.
INDEXED_LEAVES_UP_TO = 20_000
_INDEX = ("leaf index",)


def leaf_index() -> LeafIndex | None:
    """The index under the cells version this request sees, read whole at a worker's first routing after a change;
    None when the grid is larger than INDEXED_LEAVES_UP_TO (or no version is kept)."""
    # The autoflush a query would do: the session's own pending cell changes move the version first.
    db.session.flush()
    version = versions.current_version(versions.CELLS)
    if version is None:
        return None
    cache = versions.cache(versions.CELLS, "routing", max_entries=1)
    entries = cache.entries_under(version)
    if _INDEX in entries:
        return entries[_INDEX]
    rows = db.session.execute(
        select(Cell.id, Cell.code, Cell.name, Cell.parent_id, Cell.geom)
        .where(Cell.level == CellLevel.grid.value, Cell.active.is_(True))
        .order_by(Cell.code)
        .limit(INDEXED_LEAVES_UP_TO + 1)
    ).all()
    index = LeafIndex(rows) if len(rows) <= INDEXED_LEAVES_UP_TO else None
    cache.put(_INDEX, index, version)
    return index


def covering_leaf(lon: float, lat: float) -> tuple[int, str, str, int | None] | None:
    """(id, code, name, parent_id) of the active grid cell covering the point, lowest code first: from the worker's
    index, without a round trip (every filing routes), or from the database for a grid too large to keep."""
    index = leaf_index()
    return spatial.covering_leaf(lon, lat) if index is None else index.covering(lon, lat)


def route_wgs84(lon: float, lat: float, max_distance_m: float | None = None) -> Routing:
    covering = covering_leaf(lon, lat)
    if covering is not None:
        cell_id, code, name, parent_id = covering
        values = {"id": cell_id, "code": code, "name": name, "level": CellLevel.grid.value, "parent_id": parent_id}
        return Routing(lon, lat, cell_id, code, RoutedBy.covers.value, 0.0, _cell_values={**values, "active": True})

    max_m = current_app.config["ROUTING_MAX_DISTANCE_M"] if max_distance_m is None else max_distance_m
    if max_m > 0:
        distance = spatial.distance_m(Cell.geom, lon, lat)
        nearest = db.session.execute(
            select(Cell, distance.label("distance_m"))
            .where(
                Cell.level == CellLevel.grid.value,
                Cell.active.is_(True),
                spatial.within_distance(Cell.geom, Cell.id, lon, lat, max_m),
            )
            .order_by(distance, Cell.code)
            .limit(1)
        ).first()
        if nearest is not None:
            cell = nearest[0]
            return Routing(lon, lat, cell.id, cell.code, RoutedBy.nearest.value, float(nearest[1]), cell)
    return Routing(lon, lat, None, None, None, None)


def route(lon: float, lat: float, crs: str = "wgs84") -> Routing:
    wgs_lon, wgs_lat = to_wgs84(lon, lat, crs)
    return route_wgs84(wgs_lon, wgs_lat)


def route_many_wgs84(points: list[tuple[float, float]]) -> list[int | None]:
    """The cell id route_wgs84 would pick for each (lon, lat), or None, in two queries for a whole batch.

    One query finds the covering cells of every point, a second the nearest cell within the fallback distance
    of the points none covers; the per-point choices (lowest code, then nearest) match route_wgs84's."""
    leaf = and_(Cell.level == CellLevel.grid.value, Cell.active.is_(True))
    columns = {"idx": Integer, "lon": Float, "lat": Float}
    pts = queries.rows_table("pts", columns, [(i, lon, lat) for i, (lon, lat) in enumerate(points)])
    covering: dict[int, tuple[str, int]] = {}
    point = spatial.point_expr(pts.c.lon, pts.c.lat)
    for idx, cell_id, code in db.session.execute(
        select(pts.c.idx, Cell.id, Cell.code)
        .select_from(spatial.join_boxes(pts, Cell.geom, Cell.id, (pts.c.lon, pts.c.lat, pts.c.lon, pts.c.lat)))
        .where(leaf, spatial.covers(Cell.geom, point))
    ):
        if idx not in covering or code < covering[idx][0]:
            covering[idx] = (code, cell_id)
    chosen = {idx: cell_id for idx, (_, cell_id) in covering.items()}

    max_m = current_app.config["ROUTING_MAX_DISTANCE_M"]
    missing = [i for i in range(len(points)) if i not in chosen]
    if missing and max_m > 0:
        box_columns = {**columns, "min_lon": Float, "min_lat": Float, "max_lon": Float, "max_lat": Float}
        near = queries.rows_table(
            "near", box_columns, [(i, *points[i], *spatial.degree_box(*points[i], max_m)) for i in missing]
        )
        distance = spatial.geodesic_m(Cell.geom, spatial.point_expr(near.c.lon, near.c.lat))
        box = (near.c.min_lon, near.c.min_lat, near.c.max_lon, near.c.max_lat)
        nearest: dict[int, tuple[float, str, int]] = {}
        for idx, cell_id, code, metres in db.session.execute(
            select(near.c.idx, Cell.id, Cell.code, distance)
            .select_from(spatial.join_boxes(near, Cell.geom, Cell.id, box))
            .where(leaf, distance <= max_m)
        ):
            if idx not in nearest or (metres, code) < nearest[idx][:2]:
                nearest[idx] = (metres, code, cell_id)
        chosen.update({idx: cell_id for idx, (_, _, cell_id) in nearest.items()})
    return [chosen.get(i) for i in range(len(points))]
