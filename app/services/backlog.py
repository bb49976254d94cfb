"""What is waiting in the database, read at a metrics scrape: unread notifications, the change log, stored answers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from app.extensions import db
from app.models import IdempotencyKey, Notification, Report
from app.models.base import utcnow
from app.models.sync import SyncChange
from app.services.cases.escalation import TOP_LEVEL
from app.services.cases.sla import level_overdue_filter


@dataclass(frozen=True)
class Figure:
    name: str
    doc: str
    value: float


def backlog_figures() -> list[Figure]:
    """Each figure one cheap statement: counts over indexed columns, and the change log's ends by its primary key
    (a count of a log that grows by millions a day would read all of it at every scrape)."""
    now = utcnow()
    unread = db.session.scalar(select(func.count()).select_from(Notification).where(Notification.read_at.is_(None)))
    first_seq, last_seq = db.session.execute(select(func.min(SyncChange.seq), func.max(SyncChange.seq))).one()
    oldest = None
    if first_seq is not None:
        oldest = db.session.scalar(select(SyncChange.changed_at).where(SyncChange.seq == first_seq))
    # What the next sweep would escalate, wherever and however the sweeps run (cron on any host): its oldest
    # deadline, read by the (status, deadline_at) index. Sweeps every minute keep it under a couple of minutes.
    overdue_since = db.session.scalar(
        select(func.min(Report.deadline_at)).where(
            level_overdue_filter(now), Report.escalation_level < TOP_LEVEL, Report.cell_id.is_not(None)
        )
    )
    stored = db.session.scalar(select(func.count()).select_from(IdempotencyKey))
    expired = db.session.scalar(
        select(func.count()).select_from(IdempotencyKey).where(IdempotencyKey.expires_at <= now)
    )
    return [
        Figure("grid_notifications_unread", "Notifications not yet read by their recipients.", unread or 0),
        Figure(
            "grid_sync_changes_span",
            "Change-log rows between the oldest and the newest kept (last seq - first seq + 1; pruning lowers it).",
            (last_seq - first_seq + 1) if first_seq is not None else 0,
        ),
        Figure(
            "grid_sync_changes_oldest_age_seconds",
            "Age of the oldest change-log row kept (grows when `flask sync prune` does not run).",
            (now - oldest).total_seconds() if oldest is not None else 0,
        ),
        Figure(
            "grid_escalation_overdue_seconds",
            "How long the most overdue case the next sweep would escalate has waited (0: none waits).",
            (now - overdue_since).total_seconds() if overdue_since is not None else 0,
        ),
        Figure("grid_idempotency_keys", "Responses stored under an Idempotency-Key.", stored or 0),
        Figure(
            "grid_idempotency_keys_expired",
            "Stored responses past their TTL that `flask idempotency purge` has not deleted yet.",
            expired or 0,
        ),
    ]
