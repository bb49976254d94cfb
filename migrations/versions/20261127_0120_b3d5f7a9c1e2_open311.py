"""Open311: API keys, categories' attribute definitions, and reports' Open311 fields.

Revision ID: b3d5f7a9c1e2
Revises: b3d5f7a9c2e1
Create Date: 2026-11-27 01:00:00
"""

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision = "b3d5f7a9c1e2"
down_revision = "b3d5f7a9c2e1"
branch_labels = None
depends_on = None

REPORT_COLUMNS = [
    sa.Column("source", sa.String(16), nullable=False, server_default="api"),
    sa.Column("open311_token", sa.String(36), nullable=True),
    sa.Column("media_url", sa.String(2000), nullable=True),
    sa.Column("address_id", sa.String(100), nullable=True),
    sa.Column("zipcode", sa.String(20), nullable=True),
    sa.Column("attributes", sa.JSON(), nullable=True),
    sa.Column("contact_email", sa.String(254), nullable=True),
    sa.Column("contact_phone", sa.String(32), nullable=True),
    sa.Column("contact_first_name", sa.String(100), nullable=True),
    sa.Column("contact_last_name", sa.String(100), nullable=True),
    sa.Column("device_id", sa.String(100), nullable=True),
    sa.Column("account_id", sa.String(100), nullable=True),
]


def upgrade():
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(8), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_api_keys_created_by_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    # A plain nullable column: SQLite adds it in place, no table rebuild needed.
    op.add_column("categories", sa.Column("attributes", sa.JSON(), nullable=True))
    for column in REPORT_COLUMNS:
        op.add_column("reports", column)
    # SQLite takes a REFERENCES clause in ADD COLUMN; Alembic would rebuild the spatial table for it.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE reports ADD COLUMN api_key_id INTEGER CONSTRAINT fk_reports_api_key_id_api_keys "
            "REFERENCES api_keys(id) ON DELETE RESTRICT"
        )
    else:
        op.add_column(
            "reports",
            sa.Column(
                "api_key_id",
                sa.Integer(),
                sa.ForeignKey("api_keys.id", name="fk_reports_api_key_id_api_keys", ondelete="RESTRICT"),
                nullable=True,
            ),
        )
    op.create_index("ix_reports_open311_token", "reports", ["open311_token"], unique=True)


def downgrade():
    op.drop_index("ix_reports_open311_token", table_name="reports")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_reports_api_key_id_api_keys", "reports", type_="foreignkey")
    with op.batch_alter_table("reports") as batch:
        for name in ["api_key_id", *(c.name for c in reversed(REPORT_COLUMNS))]:
            batch.drop_column(name)
    op.drop_column("categories", "attributes")
    op.drop_table("api_keys")
