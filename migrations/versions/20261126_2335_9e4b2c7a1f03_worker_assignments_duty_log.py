"""Worker assignments (surrogate id, primary/backup duty, validity dates) and the duty log.

Revision ID: 9e4b2c7a1f03
Revises: 7d3e9b1c4a60
Create Date: 2026-11-26 23:30:00
"""

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision = "9e4b2c7a1f03"
down_revision = "7d3e9b1c4a60"
branch_labels = None
depends_on = None


def upgrade():
    sqlite = op.get_bind().dialect.name == "sqlite"
    if not sqlite:
        # PostgreSQL numbers the existing rows as it adds the column.
        op.execute("ALTER TABLE worker_cells ADD COLUMN id SERIAL NOT NULL")
    # resolve_fks=False: reflecting the referred users table would only warn about its expression index.
    with op.batch_alter_table(
        "worker_cells", recreate="always" if sqlite else "auto", reflect_kwargs={"resolve_fks": False}
    ) as batch:
        if sqlite:
            # The rebuilt table's INTEGER PRIMARY KEY numbers the copied rows.
            batch.add_column(sa.Column("id", sa.Integer(), nullable=True))
        batch.drop_constraint(op.f("pk_worker_cells"), type_="primary")
        batch.create_primary_key(op.f("pk_worker_cells"), ["id"])
        batch.add_column(sa.Column("duty", sa.String(8), nullable=False, server_default="primary"))
        batch.add_column(sa.Column("valid_from", sa.Date(), nullable=True))
        batch.add_column(sa.Column("valid_to", sa.Date(), nullable=True))
    # Existing rows become primary assignments from the (UTC) day they were made.
    op.execute(
        "UPDATE worker_cells SET valid_from = "
        + ("date(created_at)" if sqlite else "(created_at AT TIME ZONE 'UTC')::date")
    )
    with op.batch_alter_table("worker_cells", reflect_kwargs={"resolve_fks": False}) as batch:
        batch.alter_column("valid_from", existing_type=sa.Date(), nullable=False)
        batch.alter_column("duty", existing_type=sa.String(8), server_default=None)
        batch.create_check_constraint(op.f("ck_worker_cells_duty"), "duty IN ('primary', 'backup')")
        batch.create_check_constraint(op.f("ck_worker_cells_valid_range"), "valid_to IS NULL OR valid_to >= valid_from")
        batch.create_index("ix_worker_cells_user_id_cell_id", ["user_id", "cell_id"])

    op.create_table(
        "duty_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("on_duty", sa.Boolean(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_duty_log_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duty_log")),
    )
    op.create_index("ix_duty_log_user_id_id", "duty_log", ["user_id", "id"])


def downgrade():
    op.drop_index("ix_duty_log_user_id_id", table_name="duty_log")
    op.drop_table("duty_log")
    # Back to one row per worker and cell: keep the earliest assignment of each pair.
    op.execute("DELETE FROM worker_cells WHERE id NOT IN (SELECT min(id) FROM worker_cells GROUP BY user_id, cell_id)")
    with op.batch_alter_table("worker_cells", reflect_kwargs={"resolve_fks": False}) as batch:
        batch.drop_index("ix_worker_cells_user_id_cell_id")
        batch.drop_constraint(op.f("ck_worker_cells_valid_range"), type_="check")
        batch.drop_constraint(op.f("ck_worker_cells_duty"), type_="check")
        batch.drop_constraint(op.f("pk_worker_cells"), type_="primary")
        batch.create_primary_key(op.f("pk_worker_cells"), ["user_id", "cell_id"])
        batch.drop_column("valid_to")
        batch.drop_column("valid_from")
        batch.drop_column("duty")
        batch.drop_column("id")
