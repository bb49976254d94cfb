"""Attachments: photos on reports (metadata; bytes in the blob store), and categories.requires_after_photo.

Revision ID: b3d5f7a9c2e1
Revises: b5d2f8a41c37
Create Date: 2026-11-27 01:00:00
"""

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision = "b3d5f7a9c2e1"
down_revision = "b5d2f8a41c37"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("uploader_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=8), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("original_name", sa.String(length=200), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("stage IN ('before', 'after', 'verify')", name=op.f("ck_attachments_stage")),
        sa.CheckConstraint("size_bytes > 0", name=op.f("ck_attachments_size_positive")),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_attachments_report_id_reports"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["uploader_id"], ["users.id"], name=op.f("fk_attachments_uploader_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index("ix_attachments_report_id_id", "attachments", ["report_id", "id"])
    op.create_index("ix_attachments_sha256", "attachments", ["sha256"])
    # A plain ADD COLUMN on both backends: no table rebuild.
    op.add_column(
        "categories", sa.Column("requires_after_photo", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade():
    with op.batch_alter_table("categories") as batch:
        batch.drop_column("requires_after_photo")
    op.drop_index("ix_attachments_sha256", table_name="attachments")
    op.drop_index("ix_attachments_report_id_id", table_name="attachments")
    op.drop_table("attachments")
