"""Patrols: batches of GPS check-ins from workers' phones, and who covered which grid cell on a day."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, exists, func, select

from app.dialect import queries, spatial
from app.errors import Forbidden, ValidationFailed
from app.extensions import db
from app.lib.coords import to_wgs84
from app.lib.i18n import tr
from app.models import Cell, CellLevel, PatrolCheckin, Role, User, in_subtree
from app.models.base import utcnow
from app.models.patrols import PatrolPoint, reason
from app.services.calendar.worktime import local_day, local_day_bounds
from app.services.grid.routing import route_many_wgs84
from app.services.people.workers import check_manages, served_cell_ids


def record_checkins(
    user: User, points: list[PatrolPoint], rejected: list[dict[str, Any]], now: datetime | None = None
) -> dict[str, Any]:
    """Store the batch's possible points in one INSERT; a point already stored (same worker, same instant) is
    skipped. `rejected` holds the points the request's schema already refused; this adds the ones whose time
    lies beyond PATROL_MAX_CLOCK_SKEW_S of the server's clock. Nothing is stored when no point is possible."""
    if user.role != Role.worker.value:
        raise Forbidden(tr("Only grid workers check in on patrol."))
    now = now or utcnow()
    latest = now + timedelta(seconds=current_app.config["PATROL_MAX_CLOCK_SKEW_S"])
    reasons = {r["index"]: list(r["reasons"]) for r in rejected}
    kept: list[tuple[PatrolPoint, float, float]] = []
    for p in points:
        lon, lat = to_wgs84(p.lon, p.lat, p.crs)
        if p.time > latest:
            reasons.setdefault(p.index, []).append(
                reason(
                    "time",
                    "in_the_future",
                    f"{p.time.isoformat()} is more than "
                    f"{current_app.config['PATROL_MAX_CLOCK_SKEW_S']} s ahead of the server's clock.",
                )
            )
        elif not (-180 <= lon <= 180 and -90 <= lat <= 90):
            # A BD-09 point at the antimeridian or a pole converts to no WGS-84 position.
            reasons.setdefault(p.index, []).append(
                reason(
                    "lon", "out_of_range", f"({p.lon}, {p.lat}) in {p.crs} lies outside WGS-84's range once converted."
                )
            )
        else:
            kept.append((p, lon, lat))
    refused = [{"index": i, "reasons": reasons[i]} for i in sorted(reasons)]
    if not kept:
        raise ValidationFailed(
            tr("Every point of the batch was refused; nothing was stored."),
            code="no_valid_points",
            errors={"points": refused},
        )
    cell_ids = route_many_wgs84([(lon, lat) for _, lon, lat in kept])
    rows = [
        {
            "user_id": user.id,
            "cell_id": cell_id,
            "recorded_at": p.time,
            "received_at": now,
            "location": spatial.point(lon, lat),
            "accuracy_m": p.accuracy,
            "input_crs": p.crs,
            "input_lon": p.lon,
            "input_lat": p.lat,
        }
        for (p, lon, lat), cell_id in zip(kept, cell_ids, strict=True)
    ]
    # RETURNING counts the rows really inserted; the driver's rowcount is -1 for this statement on psycopg.
    stored = len(
        db.session.execute(
            queries.insert_ignoring_duplicates(PatrolCheckin.__table__).values(rows).returning(PatrolCheckin.id)
        ).all()
    )
    return {
        "accepted": len(kept),
        "stored": stored,
        "duplicates": len(kept) - stored,
        "unrouted": sum(1 for cell_id in cell_ids if cell_id is None),
        "rejected": refused,
    }


# ---- coverage -----------------------------------------------------------------------------------


def coverage_cells(actor: User, cell: Cell) -> Select:
    """The grid cells under `cell` (itself when it is one) whose patrols the actor may see, by code.

    Admins: all; supervisors: only inside their subtree (else 403); workers: the ones they serve today."""
    stmt = select(Cell).where(Cell.level == CellLevel.grid.value, in_subtree(Cell.code, cell.code))
    if actor.role == Role.worker.value:
        stmt = stmt.where(Cell.id.in_(served_cell_ids(actor.id)))
        if not db.session.scalar(select(exists(stmt))):
            raise Forbidden(tr("You serve no grid cell under {code} today.", code=cell.code), code="cell_not_served")
    elif actor.role != Role.admin.value:
        check_manages(actor, cell)
    return stmt.order_by(Cell.code)


def coverage(cells: list[Cell], day: date | None = None) -> list[dict[str, Any]]:
    """Per cell, each worker who checked in there on the local day: points, first and last time, and metres
    walked (geodesic steps between their consecutive points in that cell, in time order). One query."""
    start, end = local_day_bounds(day or local_day())
    pc = PatrolCheckin
    previous = func.lag(pc.location).over(partition_by=(pc.cell_id, pc.user_id), order_by=(pc.recorded_at, pc.id))
    steps = (
        select(pc.cell_id, pc.user_id, pc.recorded_at, pc.location.label("location"), previous.label("previous"))
        .where(pc.cell_id.in_([c.id for c in cells]), pc.recorded_at >= start, pc.recorded_at < end)
        .subquery("steps")
    )
    walked = func.coalesce(func.sum(spatial.geodesic_m(steps.c.location, steps.c.previous)), 0.0)
    rows = db.session.execute(
        select(
            steps.c.cell_id,
            User,
            func.count().label("points"),
            func.min(steps.c.recorded_at).label("first_at"),
            func.max(steps.c.recorded_at).label("last_at"),
            walked.label("distance_m"),
        )
        .join(User, User.id == steps.c.user_id)
        .group_by(steps.c.cell_id, User.id)
        .order_by(steps.c.cell_id, User.username, User.id)
    )
    workers: dict[int, list[dict[str, Any]]] = {c.id: [] for c in cells}
    for cell_id, user, points, first_at, last_at, distance in rows:
        workers[cell_id].append(
            {"user": user, "points": points, "first_at": first_at, "last_at": last_at, "distance_m": float(distance)}
        )
    return [{"cell": c, "workers": workers[c.id]} for c in cells]
