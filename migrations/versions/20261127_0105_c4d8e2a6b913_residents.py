"""Residents: a closed case's rating, followers of a case, each category's duplicate-suggestion radius.

Revision ID: c4d8e2a6b913
Revises: b4d2f7a9c1e3
Create Date: 2026-11-27 01:00:00
"""

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision = "c4d8e2a6b913"
down_revision = "b4d2f7a9c1e3"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN on both backends: a batch rebuild of the spatial reports table would lose its index.
    op.execute(
        "ALTER TABLE reports ADD COLUMN rating INTEGER CONSTRAINT ck_reports_rating CHECK (rating BETWEEN 1 AND 5)"
    )
    op.add_column("reports", sa.Column("rating_comment", sa.Text(), nullable=True))
    op.add_column("reports", sa.Column("rated_at", UTCDateTime(), nullable=True))
    op.execute(
        "ALTER TABLE categories ADD COLUMN duplicate_radius_m INTEGER NOT NULL DEFAULT 250 "
        "CONSTRAINT ck_categories_duplicate_radius_m CHECK (duplicate_radius_m BETWEEN 0 AND 5000)"
    )
    op.create_table(
        "report_followers",
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_report_followers_report_id_reports"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_report_followers_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("report_id", "user_id", name=op.f("pk_report_followers")),
    )
    op.create_index("ix_report_followers_user_id_report_id", "report_followers", ["user_id", "report_id"])


def downgrade():
    op.drop_index("ix_report_followers_user_id_report_id", table_name="report_followers")
    op.drop_table("report_followers")
    # DROP COLUMN rewrites nothing on PostgreSQL and is native on SQLite >= 3.35 (no batch rebuild).
    op.execute("ALTER TABLE categories DROP COLUMN duplicate_radius_m")
    op.execute("ALTER TABLE reports DROP COLUMN rated_at")
    op.execute("ALTER TABLE reports DROP COLUMN rating_comment")
    op.execute("ALTER TABLE reports DROP COLUMN rating")
