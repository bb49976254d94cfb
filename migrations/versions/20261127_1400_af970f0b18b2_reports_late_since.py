"""reports.late_since: the first due time a case missed, kept while it moves up the levels, filled for existing cases.

Revision ID: af970f0b18b2
Revises: e2a7c5d9f104
Create Date: 2026-11-27 14:00:00
"""

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision = "af970f0b18b2"
down_revision = "e2a7c5d9f104"
branch_labels = None
depends_on = None

# What the sweep and the case actions record from now on, derived for the cases that exist (the rule:
# app/services/cases/sla.py). Cases still open and not escalated need nothing: their lateness is read from due_at
# until an action or the sweep records it.
FILL = (
    # Escalated: the grid level's deadline, which was its due time, passed before the first escalation since the
    # case was last accepted. When an extension has since moved due_at past that escalation, the escalation's
    # moment is the closest bound left.
    """
    UPDATE reports SET late_since = (
        SELECT MIN(e.created_at) FROM case_events e
        WHERE e.report_id = reports.id AND e.action = 'escalate' AND e.created_at >= reports.accepted_at
    )
    WHERE escalation_level > 0 AND late_since IS NULL
    """,
    """
    UPDATE reports SET late_since = due_at
    WHERE escalation_level > 0 AND due_at IS NOT NULL AND (late_since IS NULL OR due_at < late_since)
    """,
    # Closed after the due time.
    """
    UPDATE reports SET late_since = due_at
    WHERE late_since IS NULL AND status = 'closed' AND due_at IS NOT NULL AND closed_at > due_at
    """,
    # Marked a duplicate when its clock (stopped on hold) was past the due time.
    """
    UPDATE reports SET late_since = due_at
    WHERE late_since IS NULL AND status = 'duplicate' AND due_at IS NOT NULL
      AND COALESCE(
        hold_started_at,
        (SELECT MAX(e.created_at) FROM case_events e WHERE e.report_id = reports.id AND e.action = 'mark_duplicate')
      ) > due_at
    """,
)


def fill(bind) -> None:
    """Set late_since on the existing cases that have missed a due time (also run by tests/test_sla.py)."""
    for statement in FILL:
        bind.execute(sa.text(statement))


def upgrade():
    # A nullable column without a default: a plain ADD COLUMN on both backends (no batch rebuild).
    op.add_column("reports", sa.Column("late_since", UTCDateTime(), nullable=True))
    fill(op.get_bind())


def downgrade():
    # Native DROP COLUMN on PostgreSQL and SQLite >= 3.35 (no batch rebuild).
    op.execute("ALTER TABLE reports DROP COLUMN late_since")
