"""Case history is append-only: on PostgreSQL a trigger refuses UPDATE and DELETE on case_events.

Revision ID: 8e3f1b6c2d90
Revises: 9e4b2c7a1f03
Create Date: 2026-11-26 23:30:00
"""

from alembic import op

revision = "8e3f1b6c2d90"
down_revision = "9e4b2c7a1f03"
branch_labels = None
depends_on = None


def upgrade():
    # The production database carries the guard; on the embedded SQLite file only the API's lack of any edit holds.
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
        CREATE FUNCTION case_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'case_events is append-only: % refused', TG_OP
                USING ERRCODE = 'restrict_violation';
        END
        $$
    """)
    op.execute("""
        CREATE TRIGGER case_events_append_only BEFORE UPDATE OR DELETE ON case_events
        FOR EACH ROW EXECUTE FUNCTION case_events_append_only()
    """)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS case_events_append_only ON case_events")
    op.execute("DROP FUNCTION IF EXISTS case_events_append_only()")
