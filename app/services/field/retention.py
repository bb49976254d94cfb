"""Partitions created ahead and check-ins kept for a number of days: whole partitions on PostGIS, batches on SQLite."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, select

from app.dialect import partitions
from app.dialect.engine import is_postgis
from app.extensions import db
from app.models import PatrolCheckin
from app.models.base import utcnow

PRUNE_BATCH = 10_000


def ensure_partitions(days_ahead: int, today: date | None = None) -> list[str]:
    """The partitions of today (UTC) and the next `days_ahead` days, and the default ones; the names created.
    Nothing on SQLite. The caller commits."""
    if not is_postgis():
        return []
    first = today or utcnow().date()
    return partitions.ensure(db.session.connection(), first, first + timedelta(days=days_ahead))


def checkin_cutoff(keep_days: int, now: datetime | None = None) -> date:
    """The UTC midnight before which check-ins go: today and the `keep_days` days before it are kept."""
    return (now or utcnow()).date() - timedelta(days=keep_days)


def drop_checkin_partitions(cutoff: date) -> list[str]:
    """PostGIS: drop the day partitions wholly before `cutoff`; the names dropped (none on SQLite). The caller
    commits."""
    if not is_postgis():
        return []
    return partitions.drop_before(db.session.connection(), partitions.CHECKINS, cutoff)


def delete_checkins_batch(cutoff: date, limit: int = PRUNE_BATCH) -> int:
    """Delete up to `limit` check-ins recorded before `cutoff` that are still there (SQLite: any; PostGIS: the
    default partition's strays); the caller commits and repeats while this returns `limit`."""
    if is_postgis():
        return partitions.delete_default_before(db.session.connection(), partitions.CHECKINS, cutoff, limit)
    start = datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC)
    doomed = select(PatrolCheckin.id).where(PatrolCheckin.recorded_at < start).limit(limit)
    stmt = delete(PatrolCheckin).where(PatrolCheckin.id.in_(doomed.scalar_subquery()))
    return db.session.execute(stmt.execution_options(synchronize_session=False, preserve_rowcount=True)).rowcount
