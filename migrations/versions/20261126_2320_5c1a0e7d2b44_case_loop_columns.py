"""Case loop columns: statuses' bookkeeping, escalation, optimistic versions, category rules, notifications.

Revision ID: 5c1a0e7d2b44
Revises: 340b7f3979a1
Create Date: 2026-11-26 23:20:00
"""

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision = "5c1a0e7d2b44"
down_revision = "340b7f3979a1"
branch_labels = None
depends_on = None

UNITS = "('hours', 'working_hours', 'working_days')"


def upgrade():
    with op.batch_alter_table("categories") as batch:
        batch.drop_constraint(op.f("ck_categories_time_limit_unit"), type_="check")
        batch.create_check_constraint(op.f("ck_categories_time_limit_unit"), f"time_limit_unit IN {UNITS}")
        batch.add_column(sa.Column("escalation_window_value", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(
            sa.Column("escalation_window_unit", sa.String(16), nullable=False, server_default="working_days")
        )
        batch.add_column(sa.Column("auto_accept", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("auto_dispatch", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("self_handling", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_check_constraint(op.f("ck_categories_escalation_window_positive"), "escalation_window_value > 0")
        batch.create_check_constraint(
            op.f("ck_categories_escalation_window_unit"), f"escalation_window_unit IN {UNITS}"
        )

    # SQLite adds a column with a REFERENCES clause in place; no table rebuild of the spatial table.
    columns = [
        sa.Column("warn_at", UTCDateTime(), nullable=True),
        sa.Column("due_at", UTCDateTime(), nullable=True),
        sa.Column(
            "assignee_id",
            sa.Integer(),
            sa.ForeignKey("users.id", name="fk_reports_assignee_id_users", ondelete="RESTRICT"),
            nullable=True,
        ),
        sa.Column("assigned_at", UTCDateTime(), nullable=True),
        sa.Column("accepted_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("time_limit_value", sa.Integer(), nullable=True),
        sa.Column("time_limit_unit", sa.String(16), nullable=True),
        sa.Column("extension_value", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("extension_requested", sa.Integer(), nullable=True),
        sa.Column("hold_started_at", UTCDateTime(), nullable=True),
        sa.Column("held_seconds", sa.Float(), nullable=False, server_default="0"),
        sa.Column(
            "duplicate_of_id",
            sa.Integer(),
            sa.ForeignKey("reports.id", name="fk_reports_duplicate_of_id_reports", ondelete="RESTRICT"),
            nullable=True,
        ),
        sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0"),
        sa.Column(
            "handling_cell_id",
            sa.Integer(),
            sa.ForeignKey("cells.id", name="fk_reports_handling_cell_id_cells", ondelete="RESTRICT"),
            nullable=True,
        ),
        sa.Column("escalated_at", UTCDateTime(), nullable=True),
        sa.Column("critical", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("reminded_level", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
    ]
    sqlite = op.get_bind().dialect.name == "sqlite"
    for column in columns:
        foreign_key = next(iter(column.foreign_keys), None)
        if sqlite and foreign_key is not None:
            # Alembic would ask for a table rebuild to add the constraint; SQLite takes it inline.
            target = foreign_key.target_fullname.replace(".", "(") + ")"
            op.execute(
                f"ALTER TABLE reports ADD COLUMN {column.name} INTEGER "
                f"CONSTRAINT {foreign_key.name} REFERENCES {target} "
                f"ON DELETE {foreign_key.ondelete}"
            )
        else:
            op.add_column("reports", column)
    op.create_index("ix_reports_status_deadline", "reports", ["status", "deadline_at"])
    op.create_index("ix_reports_assignee_status", "reports", ["assignee_id", "status"])
    op.create_index("ix_reports_handling_cell_id", "reports", ["handling_cell_id"])
    # Cases filed before this revision are handled by the cell they were routed to.
    op.execute("UPDATE reports SET handling_cell_id = cell_id, due_at = deadline_at")

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("dedupe_key", sa.String(120), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("read_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notifications_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_notifications_report_id_reports"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notifications_dedupe_key")),
    )
    op.create_index("ix_notifications_user_id_id", "notifications", ["user_id", "id"])
    op.create_index(op.f("ix_notifications_report_id"), "notifications", ["report_id"])


def downgrade():
    op.drop_index(op.f("ix_notifications_report_id"), table_name="notifications")
    op.drop_index("ix_notifications_user_id_id", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("ix_reports_handling_cell_id", table_name="reports")
    op.drop_index("ix_reports_assignee_status", table_name="reports")
    op.drop_index("ix_reports_status_deadline", table_name="reports")
    with op.batch_alter_table("reports") as batch:
        for name in (
            "version",
            "reminded_level",
            "critical",
            "escalated_at",
            "handling_cell_id",
            "escalation_level",
            "duplicate_of_id",
            "held_seconds",
            "hold_started_at",
            "extension_requested",
            "extension_value",
            "time_limit_unit",
            "time_limit_value",
            "closed_at",
            "resolved_at",
            "accepted_at",
            "assigned_at",
            "assignee_id",
            "due_at",
            "warn_at",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("categories") as batch:
        batch.drop_constraint(op.f("ck_categories_escalation_window_unit"), type_="check")
        batch.drop_constraint(op.f("ck_categories_escalation_window_positive"), type_="check")
        for name in (
            "self_handling",
            "auto_dispatch",
            "auto_accept",
            "escalation_window_unit",
            "escalation_window_value",
        ):
            batch.drop_column(name)
        batch.drop_constraint(op.f("ck_categories_time_limit_unit"), type_="check")
        batch.create_check_constraint(op.f("ck_categories_time_limit_unit"), "time_limit_unit IN ('hours')")
