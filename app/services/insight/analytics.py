"""Hotspots (DBSCAN clusters), heat-map squares and filed/closed trends over the reports a user may see."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from geoalchemy2.shape import to_shape
from sqlalchemy import Select, func

from app.dialect import clustering, queries
from app.errors import ValidationFailed
from app.extensions import db
from app.lib.i18n import tr
from app.models import OPEN_STATUSES, Category, Cell, Report, User
from app.models.base import utcnow
from app.services.insight import geoqueries

DEFAULT_SPAN = timedelta(days=30)
TREND_SPANS = {"day": timedelta(days=30), "week": timedelta(weeks=26), "month": timedelta(days=365)}
MAX_TREND_PERIODS = 400
MAX_SQUARES = 250_000
TOP_CATEGORIES = 3


def _period(
    created_from: datetime | None, created_to: datetime | None, span: timedelta = DEFAULT_SPAN
) -> tuple[datetime, datetime]:
    """The time window: both ends as given, else `span` back from `to` (default now)."""
    end = created_to or utcnow()
    start = created_from or end - span
    if start >= end:
        raise ValidationFailed(errors={"to": [tr("to must be later than from.")]})
    return start, end


def _filtered(user: User, *, start: datetime, end: datetime, category_code: str | None, cell_id: int | None) -> Select:
    """Reports filed in [start, end), scoped exactly like GET /reports."""
    if cell_id is not None and db.session.get(Cell, cell_id) is None:
        raise ValidationFailed(errors={"cell": [tr("No cell with id {cell_id}.", cell_id=cell_id)]})
    codes = [category_code] if category_code else None
    return geoqueries.reports_query(
        user, category_code=codes, cell_id=cell_id, created_from=start, created_to=end
    ).order_by(None)


def _local(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo(current_app.config["TIMEZONE"])).isoformat()


def hotspots(
    user: User,
    *,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    category_code: str | None = None,
    cell_id: int | None = None,
    eps_m: float = 100.0,
    min_points: int = 5,
) -> dict[str, Any]:
    """Density-based clusters, largest first, each with its hull (or centroid), categories and times."""
    start, end = _period(created_from, created_to)
    points = (
        _filtered(user, start=start, end=end, category_code=category_code, cell_id=cell_id)
        .with_only_columns(
            Report.id,
            Report.location,
            Category.code.label("category"),
            Report.status.in_(OPEN_STATUSES).label("open"),
            Report.created_at,
        )
        .join(Category, Category.id == Report.category_id)
    )
    clusters = sorted(
        clustering.cluster_summaries(points, eps_m, min_points), key=lambda c: (-c["count"], c["first_id"])
    )
    return {
        "type": "FeatureCollection",
        "features": [_cluster_feature(c) for c in clusters],
        "parameters": {"eps_m": eps_m, "min_points": min_points, "from": _local(start), "to": _local(end)},
    }


def _cluster_feature(cluster: dict[str, Any]) -> dict[str, Any]:
    top = sorted(cluster["categories"].items(), key=lambda item: (-item[1], item[0]))[:TOP_CATEGORIES]
    hull = cluster["hull"]
    return {
        "type": "Feature",
        # A cluster whose points all lie on a line has no area: its centroid stands for it.
        "geometry": hull
        if hull["type"] == "Polygon"
        else {"type": "Point", "coordinates": [cluster["lon"], cluster["lat"]]},
        "properties": {
            "count": cluster["count"],
            "centroid": [cluster["lon"], cluster["lat"]],
            "top_categories": [{"category": code, "count": n} for code, n in top],
            "open_count": cluster["open_count"],
            "first_at": _local(cluster["first_at"]),
            "last_at": _local(cluster["last_at"]),
        },
    }


def _metres_per_degree(lat: float) -> tuple[float, float]:
    """Metres per degree of longitude and of latitude on WGS-84 at `lat` (series to a few cm)."""
    phi = math.radians(lat)
    per_lon = 111_412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi) + 0.118 * math.cos(5 * phi)
    per_lat = 111_132.92 - 559.82 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi) - 0.0023 * math.cos(6 * phi)
    return per_lon, per_lat


def heatmap(
    user: User,
    *,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    category_code: str | None = None,
    cell_id: int | None = None,
    size_m: int = 200,
) -> dict[str, Any]:
    """Counts on squares of size_m metres laid from the area's south-west corner; empty squares left out.

    The area is the cell's bounding box when a cell is given, else that of the matching reports. Every
    matching report falls in exactly one square, so the counts add up to the filtered total.
    """
    start, end = _period(created_from, created_to)
    base = _filtered(user, start=start, end=end, category_code=category_code, cell_id=cell_id)
    x, y = func.ST_X(Report.location), func.ST_Y(Report.location)
    if cell_id is not None:
        min_lon, min_lat, max_lon, max_lat = to_shape(db.session.get(Cell, cell_id).geom).bounds
    else:
        min_lon, min_lat, max_lon, max_lat = db.session.execute(
            base.with_only_columns(func.min(x), func.min(y), func.max(x), func.max(y))
        ).one()
        if min_lon is None:
            return _squares([], size_m, 0.0, 0.0, 1.0, 1.0)
    per_lon, per_lat = _metres_per_degree((min_lat + max_lat) / 2)
    kx, ky = per_lon / size_m, per_lat / size_m
    if ((max_lon - min_lon) * kx + 1) * ((max_lat - min_lat) * ky + 1) > MAX_SQUARES:
        raise ValidationFailed(
            errors={
                "size_m": [
                    tr(
                        "The area would need more than {squares} squares; choose a larger size_m or a smaller cell.",
                        squares=MAX_SQUARES,
                    )
                ]
            }
        )
    i = func.floor((x - min_lon) * kx).label("i")
    j = func.floor((y - min_lat) * ky).label("j")
    rows = db.session.execute(base.with_only_columns(i, j, func.count()).group_by(i, j).order_by(i, j)).all()
    return _squares(rows, size_m, min_lon, min_lat, kx, ky)


def _squares(rows, size_m: int, x0: float, y0: float, kx: float, ky: float) -> dict[str, Any]:
    features = []
    for i, j, n in rows:
        west, south = x0 + i / kx, y0 + j / ky
        east, north = x0 + (i + 1) / kx, y0 + (j + 1) / ky
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
                },
                "properties": {"count": n},
            }
        )
    return {
        "type": "FeatureCollection",
        "features": features,
        "size_m": size_m,
        "total": sum(f["properties"]["count"] for f in features),
    }


def _period_starts(start: datetime, end: datetime, interval: str) -> list[date]:
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    day = start.astimezone(zone).date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    starts = []
    while day <= last:
        starts.append(day)
        if len(starts) > MAX_TREND_PERIODS:
            raise ValidationFailed(
                errors={
                    "from": [
                        tr(
                            "More than {periods} periods ({interval}); narrow the range.",
                            periods=MAX_TREND_PERIODS,
                            interval=interval,
                        )
                    ]
                }
            )
        if interval == "day":
            day += timedelta(days=1)
        elif interval == "week":
            day += timedelta(weeks=1)
        else:
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return starts


def trend(
    user: User,
    *,
    interval: str = "day",
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    category_code: str | None = None,
    cell_id: int | None = None,
) -> dict[str, Any]:
    """Reports filed and closed per local day, ISO week or month, zero periods included."""
    start, end = _period(created_from, created_to, TREND_SPANS[interval])
    tz = current_app.config["TIMEZONE"]
    filed = queries.local_period_counts(
        _filtered(user, start=start, end=end, category_code=category_code, cell_id=cell_id),
        Report.created_at,
        interval,
        tz,
    )
    codes = [category_code] if category_code else None
    closed_stmt = geoqueries.reports_query(user, category_code=codes, cell_id=cell_id).order_by(None)
    closed = queries.local_period_counts(
        closed_stmt.where(Report.closed_at >= start, Report.closed_at < end), Report.closed_at, interval, tz
    )
    zone = ZoneInfo(tz)
    return {
        "interval": interval,
        "timezone": tz,
        "from": _local(start),
        "to": _local(end),
        "items": [
            {
                "start": datetime(d.year, d.month, d.day, tzinfo=zone).isoformat(),
                "filed": filed.get(d, 0),
                "closed": closed.get(d, 0),
            }
            for d in _period_starts(start, end, interval)
        ],
    }
