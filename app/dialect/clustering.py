"""DBSCAN hotspots: ST_ClusterDBSCAN on PostGIS, the same algorithm in Python on SpatiaLite."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping
from sqlalchemy import Select, func, literal, select

from app.dialect.dbscan import dbscan
from app.dialect.engine import is_postgis
from app.extensions import db

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
    PostGIS runs ST_ClusterDBSCAN; SpatiaLite gets the same algorithm in Python (app.dialect.dbscan).
    """
    sub = _projectable(points).subquery()
    others = [c for c in sub.c if c.name != "location"]
    lon, lat = func.ST_X(sub.c.location).label("lon"), func.ST_Y(sub.c.location).label("lat")
    if is_postgis():
        cid = (
            func.ST_ClusterDBSCAN(
                func.ST_Transform(sub.c.location, 3857),
                literal(float(eps_m)) / _mercator_scale_sql(sub),
                int(min_points),
            )
            .over()
            .label("cid")
        )
        labelled = select(*others, lon, lat, cid).subquery()
        rows = db.session.execute(select(labelled).where(labelled.c.cid.is_not(None))).mappings()
        return [dict(r) for r in rows]
    rows = [dict(r) for r in db.session.execute(select(*others, lon, lat)).mappings()]
    if not rows:
        return []
    scale = math.cos(math.radians(sum(r["lat"] for r in rows) / len(rows)))
    labels = dbscan([mercator_xy(r["lon"], r["lat"], scale) for r in rows], eps_m, min_points)
    return [{**r, "cid": c} for r, c in zip(rows, labels, strict=True) if c is not None]


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
    cid = func.ST_ClusterDBSCAN(
        func.ST_Transform(sub.c.location, 3857), literal(float(eps_m)) / _mercator_scale_sql(sub), int(min_points)
    ).over()
    clustered = select(sub, cid.label("cid")).cte("clustered")
    clustered = select(clustered).where(clustered.c.cid.is_not(None)).cte("in_clusters")
    per_category = (
        select(clustered.c.cid, clustered.c.category, func.count().label("n"))
        .group_by(clustered.c.cid, clustered.c.category)
        .cte("per_category")
    )
    categories = (
        select(func.json_object_agg(per_category.c.category, per_category.c.n))
        .where(per_category.c.cid == clustered.c.cid)
        .scalar_subquery()
    )
    collected = func.ST_Collect(clustered.c.location)
    stmt = select(
        func.count().label("count"),
        func.count().filter(clustered.c.open).label("open_count"),
        func.min(clustered.c.created_at).label("first_at"),
        func.max(clustered.c.created_at).label("last_at"),
        func.min(clustered.c.id).label("first_id"),
        func.ST_X(func.ST_Centroid(collected)).label("lon"),
        func.ST_Y(func.ST_Centroid(collected)).label("lat"),
        func.ST_AsGeoJSON(func.ST_ConvexHull(collected)).label("hull"),
        categories.label("categories"),
    ).group_by(clustered.c.cid)
    return [{**r, "hull": json.loads(r["hull"])} for r in db.session.execute(stmt).mappings()]


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    cloud = shapely.multipoints(np.array([(r["lon"], r["lat"]) for r in rows]))
    centroid = cloud.centroid
    categories: dict[str, int] = {}
    for r in rows:
        categories[r["category"]] = categories.get(r["category"], 0) + 1
    times = [r["created_at"] for r in rows]
    return {
        "count": len(rows),
        "open_count": sum(1 for r in rows if r["open"]),
        "first_at": min(times),
        "last_at": max(times),
        "first_id": min(r["id"] for r in rows),
        "lon": centroid.x,
        "lat": centroid.y,
        "hull": mapping(cloud.convex_hull),
        "categories": categories,
    }
