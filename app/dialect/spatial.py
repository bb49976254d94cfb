"""Index-backed spatial filters and metric distances, on PostGIS and on SpatiaLite alike."""

from __future__ import annotations

import math

from geoalchemy2 import Geography, WKTElement
from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    bindparam,
    cast,
    column,
    func,
    literal,
    select,
    table,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import Join

from app.dialect.engine import is_postgis, raw_rows
from app.extensions import db

SRID = 4326
# Conservative metres per degree, so a degree box drawn around a metric radius never cuts it short.
METRES_PER_DEGREE_LAT_MIN = 110_574.0
METRES_PER_DEGREE_EQUATOR = 111_320.0


def point(lon: float, lat: float) -> WKTElement:
    return WKTElement(f"POINT({float(lon)!r} {float(lat)!r})", srid=SRID)


def degree_box(lon: float, lat: float, metres: float) -> tuple[float, float, float, float]:
    """A lon/lat box that surely contains every point within `metres` of (lon, lat)."""
    dlat = metres / METRES_PER_DEGREE_LAT_MIN
    cos_lat = max(math.cos(math.radians(min(abs(lat) + dlat, 89.9))), 1e-6)
    dlon = min(metres / (METRES_PER_DEGREE_EQUATOR * cos_lat), 180.0)
    return lon - dlon, max(lat - dlat, -90.0), lon + dlon, min(lat + dlat, 90.0)


def _rtree(table_name: str, geom_column: str):
    # SpatiaLite keeps the R*Tree as a virtual table idx_<table>_<column>; querying it directly
    # is the documented way to use the index (SpatiaLite's planner never does on its own).
    return table(
        f"idx_{table_name}_{geom_column}",
        column("pkid"),
        column("xmin"),
        column("xmax"),
        column("ymin"),
        column("ymax"),
    )


def _number(value):
    # A bind parameter (or any SQL expression) passes through, so a statement can be built once and reused.
    return value if isinstance(value, ColumnElement) else float(value)


def point_expr(lon, lat):
    """The WGS-84 point as SQL, from floats or from bind parameters."""
    if not isinstance(lon, ColumnElement) and not isinstance(lat, ColumnElement):
        return point(lon, lat)
    if is_postgis():
        return func.ST_SetSRID(func.ST_MakePoint(lon, lat), SRID)
    return func.MakePoint(lon, lat, SRID)


def bbox_filter(geom_col, pk_col, bbox) -> ColumnElement[bool]:
    """Rows whose geometry's bounding box meets bbox, through the spatial index on both backends.

    bbox is (min_lon, min_lat, max_lon, max_lat) as floats or bind parameters."""
    min_lon, min_lat, max_lon, max_lat = (_number(v) for v in bbox)
    if is_postgis():
        return geom_col.intersects(func.ST_MakeEnvelope(min_lon, min_lat, max_lon, max_lat, SRID))
    idx = _rtree(geom_col.table.name, geom_col.name)
    ids = select(idx.c.pkid).where(
        idx.c.xmin <= max_lon, idx.c.xmax >= min_lon, idx.c.ymin <= max_lat, idx.c.ymax >= min_lat
    )
    return pk_col.in_(ids)


def join_boxes(points, geom_col, pk_col, bbox):
    """`points` (a table of rows) joined to the rows of geom_col's table whose bounding box meets `bbox`, a box of
    expressions over the points' columns, each point looking its candidates up in the spatial index.

    The join names the SpatiaLite R*Tree itself: as an IN (subquery) condition, SQLite's planner drove the join
    from the other table and ran the index query once per row of it (minutes for 1,000 points on 10,000 cells)."""
    min_lon, min_lat, max_lon, max_lat = bbox
    if is_postgis():
        return points.join(
            geom_col.table, geom_col.intersects(func.ST_MakeEnvelope(min_lon, min_lat, max_lon, max_lat, SRID))
        )
    idx = _rtree(geom_col.table.name, geom_col.name)
    in_box = (idx.c.xmin <= max_lon) & (idx.c.xmax >= min_lon) & (idx.c.ymin <= max_lat) & (idx.c.ymax >= min_lat)
    return _DrivingJoin(_DrivingJoin(points, idx, in_box), geom_col.table, pk_col == idx.c.pkid)


class _DrivingJoin(Join):
    """An inner join whose left side stays the outer loop: SQLite's planner never reorders a CROSS JOIN, and it
    cannot tell how many rows a json_each table holds, so left to itself it drove from the polygons' table."""

    inherit_cache = True


@compiles(_DrivingJoin, "sqlite")
def _compile_driving_join(element, compiler, **kw):
    return (
        f"{compiler.process(element.left, **kw)} CROSS JOIN {compiler.process(element.right, **kw)} "
        f"ON {compiler.process(element.onclause, **kw)}"
    )


def covers(geom, other) -> ColumnElement[bool]:
    """The exact test alone, boundary included (after an index join such as join_boxes)."""
    if is_postgis():
        return func.ST_Covers(geom, other)
    return func.ST_Covers(geom, other) == 1


def covers_point(geom_col, pk_col, lon, lat) -> ColumnElement[bool]:
    """Geometry covers the point (boundary included), index first on both backends.

    lon and lat are floats or bind parameters."""
    pt = point_expr(lon, lat)
    if is_postgis():
        return func.ST_Covers(geom_col, pt)
    return bbox_filter(geom_col, pk_col, (lon, lat, lon, lat)) & (func.ST_Covers(geom_col, pt) == 1)


def distance_m(geom_col, lon: float, lat: float) -> ColumnElement[float]:
    """Geodesic distance in metres from the geometry to the point (floats, or bind parameters)."""
    pt = point_expr(lon, lat)
    if is_postgis():
        return func.ST_Distance(cast(geom_col, Geography(srid=SRID)), cast(pt, Geography(srid=SRID)), type_=Float)
    return func.ST_Distance(geom_col, pt, literal(1), type_=Float)


WGS84_A = 6_378_137.0
WGS84_E2 = 0.00669437999014
# local_distance_m is within 4e-7 of the geodesic distance up to 5 km (checked against GeographicLib); only
# points this close to the radius, relatively, need the exact geodesic to decide.
LOCAL_DISTANCE_BAND = 1e-5


class _LocalDistance(FunctionElement):
    """local_distance_m as one small SQL element: the formula is written out only when compiled.

    Built from dozens of function calls, the expression made every statement's cache key (computed per
    execution) and its construction cost milliseconds of Python per request; this one has three children."""

    type = Float()
    name = "local_distance_m"
    inherit_cache = True


@compiles(_LocalDistance)
def _compile_local_distance(element, compiler, **kw):
    geom, lon, lat = (compiler.process(c, **kw) for c in element.clauses)
    # Float all the way: an integer divisor would make the database use NUMERIC, ten times slower per row.
    x, y = f"ST_X({geom})", f"ST_Y({geom})"
    mid = f"radians(({y} + {lat}) / 2.0)"
    w = f"(1.0 - {WGS84_E2!r} * power(sin({mid}), 2.0))"
    dx = f"(radians({x} - {lon}) * {WGS84_A!r} * cos({mid}) / sqrt({w}))"
    dy = f"(radians({y} - {lat}) * {WGS84_A * (1 - WGS84_E2)!r} / power({w}, 1.5))"
    return f"sqrt(power({dx}, 2.0) + power({dy}, 2.0))"


def local_distance_m(geom_col, lon: float, lat: float) -> ColumnElement[float]:
    """Metres from a point geometry to (lon, lat) with the ellipsoid's radii at the mid-latitude.

    Plain arithmetic, the same on both backends and about a quarter of the cost of the exact geodesic
    per row, so radius queries and distance ordering over thousands of candidates stay cheap."""
    return _LocalDistance(geom_col, _float(lon), _float(lat))


def _float(value):
    # A bind parameter passes through, so that a statement can be built once and reused.
    return value if isinstance(value, ColumnElement) else literal(float(value), Float)


def geodesic_m(geom_a, geom_b) -> ColumnElement[float]:
    """Geodesic distance in metres between two geometry expressions (NULL when either is NULL)."""
    if is_postgis():
        return func.ST_Distance(cast(geom_a, Geography(srid=SRID)), cast(geom_b, Geography(srid=SRID)), type_=Float)
    return func.ST_Distance(geom_a, geom_b, literal(1), type_=Float)


def within_distance(geom_col, pk_col, lon: float, lat: float, metres: float) -> ColumnElement[bool]:
    """Index-backed prefilter by a degree box, then the exact metric test."""
    return bbox_filter(geom_col, pk_col, degree_box(lon, lat, metres)) & (distance_m(geom_col, lon, lat) <= metres)


def points_within_distance(geom_col, pk_col, lon: float, lat: float, metres: float) -> ColumnElement[bool]:
    """For point columns: within_distance, with the local estimate deciding all but the edge.

    The estimate settles every point clearly inside or outside; the exact geodesic runs only for the
    few within LOCAL_DISTANCE_BAND of the radius, so the answer stays exact."""
    estimate = local_distance_m(geom_col, lon, lat)
    edge = (estimate <= metres * (1 + LOCAL_DISTANCE_BAND)) & (distance_m(geom_col, lon, lat) <= metres)
    return bbox_filter(geom_col, pk_col, degree_box(lon, lat, metres)) & (
        (estimate <= metres * (1 - LOCAL_DISTANCE_BAND)) | edge
    )


def points_within_distance_bound(geom_col, pk_col) -> ColumnElement[bool]:
    """points_within_distance with every value a bind parameter, for a statement built once: lon, lat, radius_m and
    the ones within_distance_values(lon, lat, metres) gives."""
    lon, lat = bindparam("lon", type_=Float), bindparam("lat", type_=Float)
    metres = bindparam("radius_m", type_=Float)
    box = tuple(bindparam(name, type_=Float) for name in ("box_min_lon", "box_min_lat", "box_max_lon", "box_max_lat"))
    estimate = local_distance_m(geom_col, lon, lat)
    edge = (estimate <= bindparam("edge_outer_m", type_=Float)) & (distance_m(geom_col, lon, lat) <= metres)
    return bbox_filter(geom_col, pk_col, box) & ((estimate <= bindparam("edge_inner_m", type_=Float)) | edge)


def within_distance_values(lon: float, lat: float, metres: float) -> dict[str, float]:
    """The values of points_within_distance_bound's parameters (the same as points_within_distance computes)."""
    min_lon, min_lat, max_lon, max_lat = degree_box(lon, lat, metres)
    return {
        "lon": float(lon),
        "lat": float(lat),
        "radius_m": metres,
        "box_min_lon": min_lon,
        "box_min_lat": min_lat,
        "box_max_lon": max_lon,
        "box_max_lat": max_lat,
        "edge_outer_m": metres * (1 + LOCAL_DISTANCE_BAND),
        "edge_inner_m": metres * (1 - LOCAL_DISTANCE_BAND),
    }


def nearest_bound(stmt: Select, geom_col, lon: float, lat: float, n: int) -> float | None:
    """A local distance (local_distance_m) within which at least n rows of `stmt` lie, or None.

    Any n matching rows bound the n-th nearest; PostGIS finds a tight bound cheaply by walking the GiST
    index nearest first (KNN, `<->`, in degrees: it reads about n rows, however many match). Degrees are
    not metres, so the bound is only a filter: the exact metric order is still decided over the rows
    within it. SpatiaLite's R*Tree has no distance order, so there is no cheap bound (None)."""
    if not walks_nearest_first():
        return None
    found, furthest = db.session.execute(nearest_bound_statement(stmt, geom_col, lon, lat, n)).one()
    return furthest if found >= n else None


def walks_nearest_first() -> bool:
    """Whether the spatial index can walk nearest first (PostGIS's KNN), so nearest_bound_statement has a cheap
    answer; SpatiaLite's R*Tree cannot."""
    return is_postgis()


def nearest_bound_statement(stmt: Select, geom_col, lon, lat, n) -> Select:
    """nearest_bound's statement on PostGIS, (how many of the n nearest were found, the furthest one's local
    distance); lon, lat and n as values or bind parameters."""
    knn = (
        stmt.with_only_columns(local_distance_m(geom_col, lon, lat).label("estimate"))
        .order_by(None)
        .order_by(geom_col.distance_centroid(point_expr(lon, lat)))
        .limit(n)
        .subquery()
    )
    return select(func.count(), func.max(knn.c.estimate))


def points_within_estimate(geom_col, pk_col, lon: float, lat: float, metres: float) -> ColumnElement[bool]:
    """Points whose local distance estimate is at most `metres`, through the spatial index."""
    return bbox_filter(geom_col, pk_col, _estimate_box(lon, lat, metres)) & (
        local_distance_m(geom_col, lon, lat) <= metres
    )


def _estimate_box(lon: float, lat: float, metres: float) -> tuple[float, float, float, float]:
    # The box's metres per degree are about the ellipsoid's smallest; 0.1 % more keeps every such point in it.
    return degree_box(lon, lat, metres * 1.001)


_ESTIMATE_BOX = ("estimate_min_lon", "estimate_min_lat", "estimate_max_lon", "estimate_max_lat")


def points_within_estimate_bound(geom_col, pk_col) -> ColumnElement[bool]:
    """points_within_estimate with every value a bind parameter, for a statement built once: lon, lat,
    estimate_m and the ones within_estimate_values(lon, lat, metres) gives."""
    lon, lat = bindparam("lon", type_=Float), bindparam("lat", type_=Float)
    box = tuple(bindparam(name, type_=Float) for name in _ESTIMATE_BOX)
    return bbox_filter(geom_col, pk_col, box) & (
        local_distance_m(geom_col, lon, lat) <= bindparam("estimate_m", type_=Float)
    )


def within_estimate_values(lon: float, lat: float, metres: float) -> dict[str, float]:
    """The values of points_within_estimate_bound's parameters (the same as points_within_estimate computes)."""
    return {
        "lon": float(lon),
        "lat": float(lat),
        "estimate_m": metres,
        **dict(zip(_ESTIMATE_BOX, _estimate_box(lon, lat, metres), strict=True)),
    }


def envelope(bbox):
    """The lon/lat box as a WGS-84 polygon."""
    min_lon, min_lat, max_lon, max_lat = (_number(v) for v in bbox)
    if is_postgis():
        return func.ST_MakeEnvelope(min_lon, min_lat, max_lon, max_lat, SRID)
    return func.BuildMbr(min_lon, min_lat, max_lon, max_lat, SRID)


def in_box(geom_col, pk_col, bbox) -> ColumnElement[bool]:
    """Geometry meets the box, edges included, exactly.

    Both indexes keep float32 boxes rounded outwards, so the index alone would also take points a
    metre outside; the exact test after it decides."""
    if is_postgis():
        return func.ST_Intersects(geom_col, envelope(bbox))
    return bbox_filter(geom_col, pk_col, bbox) & (func.ST_Intersects(geom_col, envelope(bbox)) == 1)


def in_polygon(geom_col, pk_col, polygon) -> ColumnElement[bool]:
    """Geometry lies in the (shapely) polygon, boundary included, index first on both backends."""
    shape = WKTElement(polygon.wkt, srid=SRID)
    if is_postgis():
        return func.ST_Covers(shape, geom_col)
    return bbox_filter(geom_col, pk_col, polygon.bounds) & (func.ST_Covers(shape, geom_col) == 1)


# The leaf cell covering a point, lowest code first, as covers_point writes it for each backend, by hand: routing
# runs on every report filed and every locate, and SQLAlchemy's ORM query around it (statement, result, a Cell with
# its polygon) cost five times the query (`make bench`, locate on SpatiaLite).
_COVERING_LEAF_SQL = {
    "sqlite": (
        "SELECT c.id, c.code, c.name, c.parent_id FROM cells AS c WHERE c.level = 'grid' AND c.active = 1 AND c.id IN "
        "(SELECT pkid FROM idx_cells_geom WHERE xmin <= ? AND xmax >= ? AND ymin <= ? AND ymax >= ?) "
        "AND ST_Covers(c.geom, MakePoint(?, ?, 4326)) = 1 ORDER BY c.code LIMIT 1"
    ),
    "postgresql": (
        "SELECT c.id, c.code, c.name, c.parent_id FROM cells AS c WHERE c.level = 'grid' AND c.active "
        "AND ST_Covers(c.geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) ORDER BY c.code LIMIT 1"
    ),
}


def covering_leaf(lon: float, lat: float) -> tuple[int, str, str, int | None] | None:
    """(id, code, name, parent_id) of the active grid cell covering the point (boundary included, lowest code
    first), or None.

    Sent on the session's own connection and transaction, after the same autoflush an ORM query would do."""
    lon, lat = float(lon), float(lat)
    params = {"sqlite": (lon, lon, lat, lat, lon, lat), "postgresql": (lon, lat)}
    rows = raw_rows(_COVERING_LEAF_SQL, params, limit=1)
    row = rows[0] if rows else None
    return None if row is None else (row[0], row[1], row[2], row[3])
