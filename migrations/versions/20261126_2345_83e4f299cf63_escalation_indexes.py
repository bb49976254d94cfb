"""Escalation sweep: index the warning mark, so finding yellow cases to remind reads only those past it.

Revision ID: 83e4f299cf63
Revises: 8e3f1b6c2d90
Create Date: 2026-11-26 23:30:00
"""

from alembic import op

revision = "83e4f299cf63"
down_revision = "8e3f1b6c2d90"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_reports_status_warn", "reports", ["status", "warn_at"])


def downgrade():
    op.drop_index("ix_reports_status_warn", table_name="reports")
