"""Reports: index filing time, so a spatial list's newest-first page meets a recent time window in the indexes.

Revision ID: a7c3e1f09b42
Revises: 83e4f299cf63
Create Date: 2026-11-26 23:50:00
"""

from alembic import op

revision = "a7c3e1f09b42"
down_revision = "83e4f299cf63"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_reports_created_id", "reports", ["created_at", "id"])


def downgrade():
    op.drop_index("ix_reports_created_id", table_name="reports")
