"""Grid workers and the cells they serve."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models import Role, User, WorkerCell


def serves(user_id: int, cell_id: int, at: datetime | None = None) -> bool:
    """Whether an active worker serves the cell (at the given moment, once assignments carry dates)."""
    return db.session.scalar(
        select(WorkerCell.user_id).join(User, User.id == WorkerCell.user_id)
        .where(WorkerCell.user_id == user_id, WorkerCell.cell_id == cell_id,
               User.role == Role.worker.value, User.active.is_(True))) is not None
