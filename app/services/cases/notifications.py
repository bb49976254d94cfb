"""Notifications: written in the same transaction as the change that causes them (an outbox)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, func, literal, select

from app.dialect import queries
from app.errors import NotFound
from app.extensions import db
from app.models import Cell, Notification, Report, ReportFollower, Role, User
from app.models.base import utcnow

# The columns, in order, of the select that notify_from_select takes.
BULK_COLUMNS = ("user_id", "report_id", "kind", "title", "data", "dedupe_key", "created_at")


def supervisors_over(cell: Cell) -> Select:
    """Ids of active supervisors whose subtree holds `cell` (their cell is the cell or one of its ancestors)."""
    own = Cell.__table__.alias("supervised")
    return (
        select(User.id)
        .join(own, own.c.id == User.cell_id)
        .where(
            User.role == Role.supervisor.value,
            User.active.is_(True),
            func.substr(literal(cell.code), 1, func.length(own.c.code)) == own.c.code,
        )
        .order_by(User.id)
    )


def notify(
    user_ids: Iterable[int],
    *,
    kind: str,
    title: str,
    report: Report | None = None,
    body: str | None = None,
    data: dict[str, Any] | None = None,
    dedupe_prefix: str | None = None,
) -> int:
    """Queue one notification per user; with a dedupe prefix a repeat for the same user is skipped."""
    keys = {user_id: f"{dedupe_prefix}:{user_id}" if dedupe_prefix else None for user_id in user_ids}
    # One look-up for every key instead of one per user.
    sent = (
        set(
            db.session.scalars(
                select(Notification.dedupe_key).where(
                    Notification.dedupe_key.in_([k for k in keys.values() if k is not None])
                )
            )
        )
        if dedupe_prefix
        else set()
    )
    fresh = [(user_id, key) for user_id, key in keys.items() if key is None or key not in sent]
    db.session.add_all(
        Notification(
            user_id=user_id,
            kind=kind,
            title=title,
            body=body,
            data=data,
            report_id=report.id if report is not None else None,
            dedupe_key=key,
        )
        for user_id, key in fresh
    )
    db.session.flush()
    return len(fresh)


def notify_from_select(rows: Select) -> int:
    """Queue one notification per row of `rows` (BULK_COLUMNS, in order) in one statement.

    A row whose dedupe_key exists already is skipped, so a repeated sweep cannot send a notice twice."""
    stmt = queries.insert_ignoring_duplicates(Notification.__table__).from_select(list(BULK_COLUMNS), rows)
    return db.session.execute(stmt.execution_options(preserve_rowcount=True)).rowcount


def notifications_query(user: User, *, unread: bool | None = None) -> Select:
    """The user's own notifications, newest first."""
    stmt = select(Notification).where(Notification.user_id == user.id)
    if unread is True:
        stmt = stmt.where(Notification.read_at.is_(None))
    elif unread is False:
        stmt = stmt.where(Notification.read_at.is_not(None))
    return stmt.order_by(Notification.created_at.desc(), Notification.id.desc())


def mark_read(user: User, notification_id: int) -> Notification:
    """Mark one of the user's notifications read (again: keeps the first time); anyone else's is 404."""
    notification = db.session.scalars(
        select(Notification).where(Notification.id == notification_id, Notification.user_id == user.id)
    ).first()
    if notification is None:
        raise NotFound(f"No notification with id {notification_id}.", code="notification_not_found")
    if notification.read_at is None:
        notification.read_at = utcnow()
        db.session.flush()
    return notification


def notify_case_ended(actor: User, report: Report, public_note: str | None = None) -> int:
    """Tell the reporter (a resident) and the followers that the case has ended, once each, never the actor.

    `public_note` is the note of a PUBLIC_NOTE_ACTIONS step (the reason of a reject, the closing note)."""
    resident_reporter = select(User.id).where(User.id == report.reporter_id, User.role == Role.resident.value)
    followers = select(ReportFollower.user_id).where(ReportFollower.report_id == report.id)
    recipients = sorted(set(db.session.scalars(resident_reporter.union(followers))) - {actor.id})
    return notify(
        recipients,
        kind=f"case_{report.status}",
        title=f"Case {report.case_number} is {report.status}",
        report=report,
        body=public_note,
        data={"status": report.status},
        dedupe_prefix=f"case_ended:{report.id}:{report.status}",
    )
