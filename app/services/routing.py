"""Routing a location to the grid cell that owns it."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import Float, Select, bindparam, select

from app import spatial
from app.coords import to_wgs84
from app.extensions import db
from app.models import Cell, CellLevel, RoutedBy


@dataclass(frozen=True)
class Routing:
    lon: float
    lat: float
    cell: Cell | None
    routed_by: str | None
    distance_m: float | None


def _leaf_cells():
    return select(Cell).where(Cell.level == CellLevel.grid.value, Cell.active.is_(True))


_COVERING: dict[str, Select] = {}


def _covering_statement() -> Select:
    """The covering-cell query, built once per dialect with bind parameters for the point.

    Building it anew for every call cost more than running it (SQLAlchemy construction and
    GeoAlchemy2 function wrappers); the statement and its compiled SQL are now reused."""
    dialect = spatial.dialect_name()
    stmt = _COVERING.get(dialect)
    if stmt is None:
        lon, lat = bindparam("lon", type_=Float), bindparam("lat", type_=Float)
        stmt = (_leaf_cells().where(spatial.covers_point(Cell.geom, Cell.id, lon, lat))
                .order_by(Cell.code).limit(1))
        _COVERING[dialect] = stmt
    return stmt


def route_wgs84(lon: float, lat: float, max_distance_m: float | None = None) -> Routing:
    covering = db.session.scalars(_covering_statement(), {"lon": float(lon), "lat": float(lat)}).first()
    if covering is not None:
        return Routing(lon, lat, covering, RoutedBy.covers.value, 0.0)

    max_m = current_app.config["ROUTING_MAX_DISTANCE_M"] if max_distance_m is None else max_distance_m
    if max_m > 0:
        distance = spatial.distance_m(Cell.geom, lon, lat)
        nearest = db.session.execute(
            select(Cell, distance.label("distance_m"))
            .where(Cell.level == CellLevel.grid.value, Cell.active.is_(True),
                   spatial.within_distance(Cell.geom, Cell.id, lon, lat, max_m))
            .order_by(distance, Cell.code).limit(1)
        ).first()
        if nearest is not None:
            return Routing(lon, lat, nearest[0], RoutedBy.nearest.value, float(nearest[1]))
    return Routing(lon, lat, None, None, None)


def route(lon: float, lat: float, crs: str = "wgs84") -> Routing:
    wgs_lon, wgs_lat = to_wgs84(lon, lat, crs)
    return route_wgs84(wgs_lon, wgs_lat)
