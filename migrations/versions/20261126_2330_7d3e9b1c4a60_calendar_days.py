"""Work calendar: per-date overrides (holidays, make-up working days, custom hours).

Revision ID: 7d3e9b1c4a60
Revises: 5c1a0e7d2b44
Create Date: 2026-11-26 23:30:00
"""

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision = "7d3e9b1c4a60"
down_revision = "5c1a0e7d2b44"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "calendar_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("hours", sa.String(200), nullable=True),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('workday', 'holiday')", name=op.f("ck_calendar_days_kind")),
        sa.CheckConstraint("source IN ('library', 'admin')", name=op.f("ck_calendar_days_source")),
        sa.CheckConstraint("kind = 'workday' OR hours IS NULL", name=op.f("ck_calendar_days_hours_on_workdays")),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_calendar_days")),
    )


def downgrade():
    op.drop_table("calendar_days")
