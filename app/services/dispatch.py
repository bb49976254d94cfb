"""Automatic dispatch of accepted cases to a worker of their cell (the rule itself belongs to issue 5)."""
from __future__ import annotations

from datetime import datetime

from app.models import Report, User


def auto_dispatch(report: Report, now: datetime) -> User | None:
    """Assign the case to the chosen worker and write its event; None when nobody is picked."""
    return None
