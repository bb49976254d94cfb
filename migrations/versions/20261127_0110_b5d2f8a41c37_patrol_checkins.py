"""Patrol check-ins: workers' GPS points, routed to cells, one per worker and instant.

Revision ID: b5d2f8a41c37
Revises: c4d8e2a6b913
Create Date: 2026-11-27 01:00:00
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

from app.models.base import UTCDateTime

revision = "b5d2f8a41c37"
down_revision = "c4d8e2a6b913"
branch_labels = None
depends_on = None


def upgrade():
    op.create_geospatial_table(
        "patrol_checkins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("cell_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column(
            "location",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("input_crs", sa.String(length=8), nullable=False),
        sa.Column("input_lon", sa.Float(), nullable=False),
        sa.Column("input_lat", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_patrol_checkins_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["cell_id"], ["cells.id"], name=op.f("fk_patrol_checkins_cell_id_cells"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patrol_checkins")),
        sa.UniqueConstraint("user_id", "recorded_at", name="uq_patrol_checkins_user_id_recorded_at"),
    )
    op.create_geospatial_index(
        "idx_patrol_checkins_location",
        "patrol_checkins",
        ["location"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index("ix_patrol_checkins_cell_recorded", "patrol_checkins", ["cell_id", "recorded_at"])


def downgrade():
    op.drop_index("ix_patrol_checkins_cell_recorded", table_name="patrol_checkins")
    op.drop_geospatial_index(
        "idx_patrol_checkins_location", table_name="patrol_checkins", postgresql_using="gist", column_name="location"
    )
    op.drop_geospatial_table("patrol_checkins")
