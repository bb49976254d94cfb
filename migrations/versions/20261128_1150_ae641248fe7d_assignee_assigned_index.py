"""reports: index (assignee_id, assigned_at), so auto-dispatch's "longest since their last assignment" is an index
probe per candidate worker (app.services.cases.dispatch), not a read of every case the worker ever had.

Revision ID: ae641248fe7d
Revises: c4d8e1f27a36
Create Date: 2026-11-28 11:50:00
"""

from alembic import op

revision = "ae641248fe7d"
down_revision = "c4d8e1f27a36"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_reports_assignee_assigned", "reports", ["assignee_id", "assigned_at"])


def downgrade():
    op.drop_index("ix_reports_assignee_assigned", table_name="reports")
