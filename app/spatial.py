"""The only module that knows PostGIS from SpatiaLite: engine set-up, index-backed spatial filters, metric distances."""
from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from datetime import timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from flask import Flask
from geoalchemy2 import Geography, WKTElement
from geoalchemy2.admin.dialects.sqlite import init_spatialite, load_spatialite_driver
from shapely.geometry import mapping
from sqlalchemy import JSON, ColumnElement, Float, Insert, Select, Table, cast, column, event, func, literal, \
    literal_column, select, table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import Join

from app.extensions import db
from app.services.insight.dbscan import dbscan

SRID = 4326
# Conservative metres per degree, so a degree box drawn around a metric radius never cuts it short.
METRES_PER_DEGREE_LAT_MIN = 110_574.0
METRES_PER_DEGREE_EQUATOR = 111_320.0


def is_sqlite_url(url: str) -> bool:
    return url.startswith("sqlite")


def engine_options(app: Flask) -> dict[str, Any]:
    """Driver options that must be in place before Flask-SQLAlchemy builds the engine."""
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if is_sqlite_url(app.config["SQLALCHEMY_DATABASE_URI"]):
        # The stdlib sqlite3 here cannot load extensions; pysqlite3 can.
        import pysqlite3.dbapi2 as pysqlite3

        options["module"] = pysqlite3
        options.setdefault("connect_args", {})
        options["connect_args"].update({"check_same_thread": False,
                                        "timeout": app.config["SQLITE_BUSY_TIMEOUT_MS"] / 1000})
    else:
        options.setdefault("pool_size", 10)
        options.setdefault("max_overflow", 10)
        # PostGIS functions carry high planner costs, so plain index-backed queries cross jit_above_cost and
        # parallel_setup_cost: they would pay tens of milliseconds of JIT compilation and worker start-up for
        # a few milliseconds of work. A web tier already runs many requests at once; one core each serves it.
        # psycopg prepares a statement it has sent 5 times, and PostgreSQL may then plan it once for any
        # parameters: how many rows a box or a time window holds is then unknown, and a spatial page falls
        # back to reading every candidate (measured: 30 ms instead of 5). Plan each execution for its values.
        options.setdefault("connect_args", {}).setdefault(
            "options", "-c jit=off -c max_parallel_workers_per_gather=0 -c plan_cache_mode=force_custom_plan")
    return options


def install_engine_hooks(app: Flask, engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return
    os.environ.setdefault("SPATIALITE_LIBRARY_PATH", app.config["SPATIALITE_LIBRARY_PATH"])
    busy_ms = int(app.config["SQLITE_BUSY_TIMEOUT_MS"])

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not the driver, decide when transactions start (SAVEPOINTs need this).
        dbapi_conn.isolation_level = None
        load_spatialite_driver(dbapi_conn)
        dbapi_conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        dbapi_conn.execute("PRAGMA foreign_keys = ON")
        if dbapi_conn.execute("PRAGMA database_list").fetchone()[2]:
            dbapi_conn.execute("PRAGMA journal_mode = WAL")
            dbapi_conn.execute("PRAGMA synchronous = NORMAL")
        init_spatialite(dbapi_conn, transaction=True, init_mode="WGS84")

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # IMMEDIATE takes the write lock up front, so two writers wait (busy_timeout) instead of
        # failing with SQLITE_BUSY when a read transaction later tries to write.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def dialect_name() -> str:
    return db.session.get_bind().dialect.name


def is_postgis() -> bool:
    return dialect_name() == "postgresql"


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
    return table(f"idx_{table_name}_{geom_column}", column("pkid"), column("xmin"),
                 column("xmax"), column("ymin"), column("ymax"))


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
        return points.join(geom_col.table, geom_col.intersects(func.ST_MakeEnvelope(min_lon, min_lat, max_lon,
                                                                                     max_lat, SRID)))
    idx = _rtree(geom_col.table.name, geom_col.name)
    in_box = (idx.c.xmin <= max_lon) & (idx.c.xmax >= min_lon) & (idx.c.ymin <= max_lat) & (idx.c.ymax >= min_lat)
    return _DrivingJoin(_DrivingJoin(points, idx, in_box), geom_col.table, pk_col == idx.c.pkid)


class _DrivingJoin(Join):
    """An inner join whose left side stays the outer loop: SQLite's planner never reorders a CROSS JOIN, and it
    cannot tell how many rows a json_each table holds, so left to itself it drove from the polygons' table."""

    inherit_cache = True


@compiles(_DrivingJoin, "sqlite")
def _compile_driving_join(element, compiler, **kw):
    return (f"{compiler.process(element.left, **kw)} CROSS JOIN {compiler.process(element.right, **kw)} "
            f"ON {compiler.process(element.onclause, **kw)}")


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
    """Geodesic distance in metres from the geometry to the point."""
    pt = point(lon, lat)
    if is_postgis():
        return func.ST_Distance(cast(geom_col, Geography(srid=SRID)), cast(pt, Geography(srid=SRID)),
                                type_=Float)
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
    return _LocalDistance(geom_col, literal(float(lon), Float), literal(float(lat), Float))


def geodesic_m(geom_a, geom_b) -> ColumnElement[float]:
    """Geodesic distance in metres between two geometry expressions (NULL when either is NULL)."""
    if is_postgis():
        return func.ST_Distance(cast(geom_a, Geography(srid=SRID)), cast(geom_b, Geography(srid=SRID)), type_=Float)
    return func.ST_Distance(geom_a, geom_b, literal(1), type_=Float)


def rows_table(name: str, columns: dict[str, Any], rows: list[tuple]):
    """Python rows as a table to join in SQL, sent as one JSON parameter.

    A VALUES list would need a bind parameter per value and SQLite caps compound SELECTs at 500, so a batch of
    points travels as one JSON array: PostgreSQL reads it with json_to_recordset, SQLite with json_each."""
    if is_postgis():
        payload = json.dumps([dict(zip(columns, row)) for row in rows])
        return (func.json_to_recordset(cast(literal(payload), postgresql.JSON))
                .table_valued(*(column(n, t) for n, t in columns.items()))
                .render_derived(name=name, with_types=True))
    each = func.json_each(literal(json.dumps([list(row) for row in rows]))).table_valued("value")
    return select(*(cast(func.json_extract(each.c.value, f"$[{i}]"), t).label(n)
                    for i, (n, t) in enumerate(columns.items()))).subquery(name)


def within_distance(geom_col, pk_col, lon: float, lat: float, metres: float) -> ColumnElement[bool]:
    """Index-backed prefilter by a degree box, then the exact metric test."""
    return bbox_filter(geom_col, pk_col, degree_box(lon, lat, metres)) & (distance_m(geom_col, lon, lat) <= metres)


def materialized(cte):
    """Ask PostgreSQL to compute the CTE once, before the join (its row estimates can be far off); SQLite
    has no such hint and needs none."""
    return cte.prefix_with("MATERIALIZED") if is_postgis() else cte


def claim(stmt: Select, *of) -> Select:
    """Lock the selected rows for this transaction and pass over rows another one holds.

    PostGIS: FOR UPDATE [OF ...] SKIP LOCKED, so concurrent sweeps split the work. SpatiaLite has one writer
    at a time (every transaction begins IMMEDIATE), so the statement needs no clause there."""
    if is_postgis():
        return stmt.with_for_update(skip_locked=True, of=list(of) or None)
    return stmt


def lock_rows(stmt: Select) -> Select:
    """Lock the selected rows until this transaction ends, so a rule checked on them holds until the commit.

    PostGIS: FOR UPDATE; a second locker waits, then (READ COMMITTED) re-checks its WHERE against the first one's
    committed rows, so it sees what the first changed. SpatiaLite has one writer at a time (every transaction
    begins IMMEDIATE), so the statement needs no clause there."""
    if is_postgis():
        return stmt.with_for_update()
    return stmt


def insert_ignoring_duplicates(target: Table) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING: a row whose unique key exists already is skipped, not an error."""
    dialect = postgresql if is_postgis() else sqlite
    return dialect.insert(target).on_conflict_do_nothing()


def json_object(**pairs) -> ColumnElement:
    """A JSON object built in SQL from column expressions (keys are fixed names, not user input)."""
    fn = func.json_build_object if is_postgis() else func.json_object
    args = []
    for key, value in pairs.items():
        args += [literal_column(f"'{key}'"), value]
    return fn(*args, type_=JSON)


def seconds_between(start, end) -> ColumnElement[float]:
    """end - start in seconds, for two timestamp columns."""
    if is_postgis():
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def points_within_distance(geom_col, pk_col, lon: float, lat: float, metres: float) -> ColumnElement[bool]:
    """For point columns: within_distance, with the local estimate deciding all but the edge.

    The estimate settles every point clearly inside or outside; the exact geodesic runs only for the
    few within LOCAL_DISTANCE_BAND of the radius, so the answer stays exact."""
    estimate = local_distance_m(geom_col, lon, lat)
    edge = (estimate <= metres * (1 + LOCAL_DISTANCE_BAND)) & (distance_m(geom_col, lon, lat) <= metres)
    return (bbox_filter(geom_col, pk_col, degree_box(lon, lat, metres))
            & ((estimate <= metres * (1 - LOCAL_DISTANCE_BAND)) | edge))


def nearest_bound(stmt: Select, geom_col, lon: float, lat: float, n: int) -> float | None:
    """A local distance (local_distance_m) within which at least n rows of `stmt` lie, or None.

    Any n matching rows bound the n-th nearest; PostGIS finds a tight bound cheaply by walking the GiST
    index nearest first (KNN, `<->`, in degrees: it reads about n rows, however many match). Degrees are
    not metres, so the bound is only a filter: the exact metric order is still decided over the rows
    within it. SpatiaLite's R*Tree has no distance order, so there is no cheap bound (None)."""
    if not is_postgis():
        return None
    estimate = local_distance_m(geom_col, lon, lat)
    knn = (stmt.with_only_columns(estimate.label("estimate")).order_by(None)
           .order_by(geom_col.distance_centroid(point(lon, lat))).limit(n).subquery())
    found, furthest = db.session.execute(select(func.count(), func.max(knn.c.estimate))).one()
    return furthest if found >= n else None


def points_within_estimate(geom_col, pk_col, lon: float, lat: float, metres: float) -> ColumnElement[bool]:
    """Points whose local distance estimate is at most `metres`, through the spatial index."""
    # The box's metres per degree are about the ellipsoid's smallest; 0.1 % more keeps every such point in it.
    return (bbox_filter(geom_col, pk_col, degree_box(lon, lat, metres * 1.001))
            & (local_distance_m(geom_col, lon, lat) <= metres))


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


MERCATOR_RADIUS = 6_378_137.0


def mercator_xy(lon: float, lat: float, scale: float) -> tuple[float, float]:
    """EPSG:3857 coordinates times `scale`; with scale = cos(lat0) they are metres near lat0."""
    x = MERCATOR_RADIUS * math.radians(lon)
    y = MERCATOR_RADIUS * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))
    return x * scale, y * scale


# Web Mercator (EPSG:3857) ends at this latitude: the poles lie at infinity. A report beyond it (a point at a pole
# is valid WGS-84) cannot be measured there, so clustering leaves it out rather than fail for everyone.
MERCATOR_MAX_LAT = 85.05112878


def _projectable(points: Select) -> Select:
    sub = points.subquery()
    return select(sub).where(func.ST_Y(sub.c.location).between(-MERCATOR_MAX_LAT, MERCATOR_MAX_LAT))


def _mercator_scale_sql(sub):
    return func.cos(func.radians(select(func.avg(func.ST_Y(sub.c.location))).scalar_subquery()))


def clustered_points(points: Select, eps_m: float, min_points: int) -> list[dict[str, Any]]:
    """DBSCAN over the points of `points` (a select with a `location` column); the clustered ones only.

    Each row comes back as a dict of the select's other columns plus lon, lat and `cid` (the cluster).
    Both backends measure in Web Mercator scaled by cos(mean latitude): EPSG:3857 stretches distances
    by 1/cos(lat), so the scaled plane is metric at the points' mean latitude and within 0.1 % over a
    10 km city, and it is the one projection both PostGIS and plain Python compute identically.
    PostGIS runs ST_ClusterDBSCAN; SpatiaLite gets the same algorithm in Python (app.services.dbscan).
    """
    sub = _projectable(points).subquery()
    others = [c for c in sub.c if c.name != "location"]
    lon, lat = func.ST_X(sub.c.location).label("lon"), func.ST_Y(sub.c.location).label("lat")
    if is_postgis():
        cid = func.ST_ClusterDBSCAN(func.ST_Transform(sub.c.location, 3857),
                                    literal(float(eps_m)) / _mercator_scale_sql(sub),
                                    int(min_points)).over().label("cid")
        labelled = select(*others, lon, lat, cid).subquery()
        rows = db.session.execute(select(labelled).where(labelled.c.cid.is_not(None))).mappings()
        return [dict(r) for r in rows]
    rows = [dict(r) for r in db.session.execute(select(*others, lon, lat)).mappings()]
    if not rows:
        return []
    scale = math.cos(math.radians(sum(r["lat"] for r in rows) / len(rows)))
    labels = dbscan([mercator_xy(r["lon"], r["lat"], scale) for r in rows], eps_m, min_points)
    return [{**r, "cid": c} for r, c in zip(rows, labels) if c is not None]


def cluster_summaries(points: Select, eps_m: float, min_points: int) -> list[dict[str, Any]]:
    """clustered_points, summed up per cluster: one dict each with count, open_count, first_at, last_at,
    first_id, lon/lat (centroid), hull (GeoJSON convex hull) and categories ({category: count}).

    `points` needs the columns id, location, category, open (boolean) and created_at. PostGIS does it
    all in one statement; SpatiaLite sums the clustered rows here.
    """
    if not is_postgis():
        groups: dict[int, list[dict[str, Any]]] = {}
        for row in clustered_points(points, eps_m, min_points):
            groups.setdefault(row["cid"], []).append(row)
        return [_summary(rows) for rows in groups.values()]
    # A CTE, so the filtered points are read once for both their mean latitude and the clustering.
    sub = _projectable(points).cte("points")
    cid = func.ST_ClusterDBSCAN(func.ST_Transform(sub.c.location, 3857),
                                literal(float(eps_m)) / _mercator_scale_sql(sub), int(min_points)).over()
    clustered = select(sub, cid.label("cid")).cte("clustered")
    clustered = select(clustered).where(clustered.c.cid.is_not(None)).cte("in_clusters")
    per_category = (select(clustered.c.cid, clustered.c.category, func.count().label("n"))
                    .group_by(clustered.c.cid, clustered.c.category).cte("per_category"))
    categories = (select(func.json_object_agg(per_category.c.category, per_category.c.n))
                  .where(per_category.c.cid == clustered.c.cid).scalar_subquery())
    collected = func.ST_Collect(clustered.c.location)
    stmt = select(
        func.count().label("count"), func.count().filter(clustered.c.open).label("open_count"),
        func.min(clustered.c.created_at).label("first_at"), func.max(clustered.c.created_at).label("last_at"),
        func.min(clustered.c.id).label("first_id"),
        func.ST_X(func.ST_Centroid(collected)).label("lon"), func.ST_Y(func.ST_Centroid(collected)).label("lat"),
        func.ST_AsGeoJSON(func.ST_ConvexHull(collected)).label("hull"), categories.label("categories"),
    ).group_by(clustered.c.cid)
    return [{**r, "hull": json.loads(r["hull"])} for r in db.session.execute(stmt).mappings()]


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    cloud = shapely.multipoints(np.array([(r["lon"], r["lat"]) for r in rows]))
    centroid = cloud.centroid
    categories: dict[str, int] = {}
    for r in rows:
        categories[r["category"]] = categories.get(r["category"], 0) + 1
    times = [r["created_at"] for r in rows]
    return {"count": len(rows), "open_count": sum(1 for r in rows if r["open"]), "first_at": min(times),
            "last_at": max(times), "first_id": min(r["id"] for r in rows), "lon": centroid.x, "lat": centroid.y,
            "hull": mapping(cloud.convex_hull), "categories": categories}


def local_period_counts(stmt: Select, column, unit: str, tz: str) -> dict[Any, int]:
    """Counts of the rows of `stmt` by the local day, ISO week (Monday) or month start of `column`.

    Keys are the periods' first local days. PostgreSQL groups in SQL; SQLite knows no time zones, so its
    rows are bucketed here with zoneinfo."""
    if is_postgis():
        bucket = func.date(func.date_trunc(unit, func.timezone(tz, column)))
        rows = db.session.execute(stmt.with_only_columns(bucket, func.count()).order_by(None).group_by(bucket))
        return {day: n for day, n in rows}
    zone = ZoneInfo(tz)
    counts: dict[Any, int] = {}
    for (moment,) in db.session.execute(stmt.with_only_columns(column).order_by(None)):
        day = moment.astimezone(zone).date()
        if unit == "week":
            day -= timedelta(days=day.weekday())
        elif unit == "month":
            day = day.replace(day=1)
        counts[day] = counts.get(day, 0) + 1
    return counts


def try_transaction_lock(lock_id: int) -> bool:
    """Take the exclusive lock named by lock_id (a signed 64-bit number) until this transaction ends.

    False, at once, when another transaction holds it. PostGIS: pg_try_advisory_xact_lock, which every
    process and host shares and which commit, rollback or a lost connection release. SpatiaLite: every
    transaction begins IMMEDIATE, so beginning one takes the database's single write lock; no other
    transaction runs until this one ends, and the lock is always ours (a second one waits, busy_timeout)."""
    if is_postgis():
        return bool(db.session.scalar(select(func.pg_try_advisory_xact_lock(lock_id))))
    db.session.connection()
    return True


def try_host_lock(lock_dir: str, lock_id: int) -> Callable[[], None] | None:
    """Before the request touches the database: take the lock named by lock_id on this host; its release, or
    None at once when another process or thread holds it.

    SpatiaLite only, where the first statement of a request already waits for the single write lock, so
    try_transaction_lock could never see a request still running: an flock on a file per lock_id (every
    process of the host shares it, and so does every user of an embedded database) answers first. The file
    goes with the release; a race with that unlink can only let a second request through, which then waits
    for the write lock and finds the first one's outcome, so it is a fast answer, not the safeguard.
    PostGIS: nothing to do here (a release that does nothing); the advisory lock covers every host."""
    if is_postgis():
        return lambda: None
    os.makedirs(lock_dir, exist_ok=True)
    path = os.path.join(lock_dir, f"{lock_id & 0xFFFFFFFFFFFFFFFF:016x}.lock")
    handle = open(path, "a+b")  # noqa: SIM115 - held until the release
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None

    def release() -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        handle.close()

    return release
# ---- the sync change log ------------------------------------------------------------------------

# PostgreSQL: the writing transaction's 64-bit id (xid8, epoch-extended, so it never wraps and fits a bigint).
SYNC_XID_DEFAULT_POSTGRESQL = "(pg_current_xact_id()::text::bigint)"
# SQLite has one writer at a time, so the commit order is already the seq order and every row shares xid 0.
SYNC_XID_DEFAULT_SQLITE = "0"


def sync_xid_default(dialect: str) -> str:
    """The SQL default of sync_changes.xid on this dialect (used by the migration)."""
    return SYNC_XID_DEFAULT_POSTGRESQL if dialect == "postgresql" else SYNC_XID_DEFAULT_SQLITE


# The lowest transaction id that may still add rows to this database's tables: the reader's own (a snapshot
# leaves it out of its running list) or the statement snapshot's oldest running transaction, passing over
# those a live backend shows connected to another database (they cannot write here); with none, its xmax.
# An id the activity view does not show (it ended since the snapshot, it is a subtransaction or a prepared
# one, or the view hides it) counts as ours: that may only delay rows, never hand one out early.
# backend_xid is 32 bits; ids running at the same time differ there.
_PG_SYNC_WATERMARK = """(SELECT least(pg_current_xact_id_if_assigned()::text::bigint, coalesce(
        (SELECT min(running::text::bigint) FROM pg_snapshot_xip(current_snap.snap) AS running
         WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity other
                           WHERE other.backend_xid::text::bigint = mod(running::text::bigint, 4294967296)
                             AND other.datname <> current_database())),
        pg_snapshot_xmax(current_snap.snap)::text::bigint))
    FROM (SELECT pg_current_snapshot() AS snap) AS current_snap)"""


# The largest seq a position can name: (xid, SEQ_MAX) lies after every row of transaction xid.
SEQ_MAX = 2**63 - 1


def sync_horizon(seq_col) -> tuple[int, int]:
    """The (xid, seq) position up to which every change row is final: a reader may hand out any row at or
    before it, and every row written later lands after it.

    PostgreSQL: every transaction of this database with an id below the watermark has ended, and any
    transaction still running or yet to write gets an id at or above it; rows below it are therefore final
    and anything that commits later sorts after them in (xid, seq). Rows at or above it wait for a later
    poll. (The plain pg_snapshot_xmin would be as safe, but a long transaction in any other database of the
    cluster would hold every client back.) Read in its own statement, it bounds the next one: those rows,
    final already, are all visible to a later snapshot.
    SQLite: writers are serialised (every transaction begins IMMEDIATE, a reader's too, until it ends) and
    seq is assigned inside the write transaction (AUTOINCREMENT, never reused), so what a reader sees is a
    prefix of the seq order: its end is the horizon."""
    if is_postgis():
        return db.session.scalar(select(literal_column(_PG_SYNC_WATERMARK))) - 1, SEQ_MAX
    return 0, db.session.scalar(select(func.coalesce(func.max(seq_col), 0)))
