"""Sync change log: sync_changes, filled by triggers on reports, case_events and notifications.

Revision ID: 14e14457806c
Revises: b3d5f7a9c1e2
Create Date: 2026-11-27 01:00:00
"""

import sqlalchemy as sa
from alembic import op

from app.dialect.sync_log import sync_xid_default
from app.models.base import UTCDateTime

revision = "14e14457806c"
down_revision = "b3d5f7a9c1e2"
branch_labels = None
depends_on = None

# (source table, kind, report_id column, user_id column): what each logged row records.
SOURCES = (
    ("reports", "case", "id", "NULL"),
    ("case_events", "event", "report_id", "NULL"),
    ("notifications", "notification", "NULL", "user_id"),
)
# Events are append-only: only inserts are logged. Reports and notifications (read) also change.
EVENTS = {"reports": ("INSERT", "UPDATE"), "case_events": ("INSERT",), "notifications": ("INSERT", "UPDATE")}


def _row_values(kind, report_col, user_col, alias):
    report, user = (col if col == "NULL" else f"{alias}.{col}" for col in (report_col, user_col))
    return f"'{kind}', {alias}.id, {report}, {user}"


def upgrade():
    dialect = op.get_bind().dialect.name
    op.create_table(
        "sync_changes",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("xid", sa.BigInteger(), nullable=False, server_default=sa.text(sync_xid_default(dialect))),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer()),
        sa.Column("user_id", sa.Integer()),
        sa.Column("changed_at", UTCDateTime(), nullable=False, server_default=sa.text("CURRENT_TIMESTAMP")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sync_changes_position", "sync_changes", ["xid", "seq"])
    for name, column in (
        ("ix_sync_changes_report_position", "report_id"),
        ("ix_sync_changes_user_position", "user_id"),
    ):
        op.create_index(
            name,
            "sync_changes",
            [column, "xid", "seq"],
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
        )
    columns = "kind, entity_id, report_id, user_id"
    # What exists already is the first full sync's content.
    for table, kind, report_col, user_col in SOURCES:
        op.execute(
            f"INSERT INTO sync_changes ({columns}) SELECT {_row_values(kind, report_col, user_col, 't')} "
            f"FROM {table} t ORDER BY t.id"
        )
    if dialect == "postgresql":
        # Statement-level triggers with a transition table: a set-based UPDATE of many cases costs one
        # INSERT ... SELECT, not one trigger call per row.
        for table, kind, report_col, user_col in SOURCES:
            op.execute(f"""
                CREATE FUNCTION sync_log_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO sync_changes ({columns})
                    SELECT {_row_values(kind, report_col, user_col, "n")} FROM changed_rows n;
                    RETURN NULL;
                END
                $$
            """)
            for event in EVENTS[table]:
                op.execute(
                    f"CREATE TRIGGER sync_log_{table}_{event.lower()} AFTER {event} ON {table} "
                    f"REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT "
                    f"EXECUTE FUNCTION sync_log_{table}()"
                )
    else:
        for table, kind, report_col, user_col in SOURCES:
            for event in EVENTS[table]:
                op.execute(
                    f"CREATE TRIGGER sync_log_{table}_{event.lower()} AFTER {event} ON {table} "
                    f"FOR EACH ROW BEGIN INSERT INTO sync_changes ({columns}) "
                    f"VALUES ({_row_values(kind, report_col, user_col, 'NEW')}); END"
                )


def downgrade():
    dialect = op.get_bind().dialect.name
    for table, _kind, _report_col, _user_col in SOURCES:
        for event in EVENTS[table]:
            suffix = f" ON {table}" if dialect == "postgresql" else ""
            op.execute(f"DROP TRIGGER IF EXISTS sync_log_{table}_{event.lower()}{suffix}")
        if dialect == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS sync_log_{table}()")
    op.drop_table("sync_changes")
