"""Notifications: written in the same transaction as the change that causes them (an outbox)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, func, literal, select

from app.extensions import db
from app.models import Cell, Notification, Report, Role, User


def supervisors_over(cell: Cell) -> Select:
    """Ids of active supervisors whose subtree holds `cell` (their cell is the cell or one of its ancestors)."""
    own = Cell.__table__.alias("supervised")
    return (select(User.id)
            .join(own, own.c.id == User.cell_id)
            .where(User.role == Role.supervisor.value, User.active.is_(True),
                   func.substr(literal_code(cell), 1, func.length(own.c.code)) == own.c.code)
            .order_by(User.id))


def literal_code(cell: Cell):
    return literal(cell.code)


def notify(user_ids: Iterable[int], *, kind: str, title: str, report: Report | None = None,
           body: str | None = None, data: dict[str, Any] | None = None, dedupe_prefix: str | None = None) -> int:
    """Queue one notification per user; with a dedupe prefix a repeat for the same user is skipped."""
    count = 0
    for user_id in dict.fromkeys(user_ids):
        key = f"{dedupe_prefix}:{user_id}" if dedupe_prefix else None
        if key is not None and db.session.scalar(select(Notification.id).where(Notification.dedupe_key == key)):
            continue
        db.session.add(Notification(user_id=user_id, kind=kind, title=title, body=body, data=data,
                                    report_id=report.id if report is not None else None, dedupe_key=key))
        count += 1
    db.session.flush()
    return count
