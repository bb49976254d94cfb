"""reports: a spatial index of the open cases by category (PostgreSQL), for a filing's similar cases: the open cases
of its category near the point. With the index of every case, PostgreSQL also read the category's index and ANDed
the two (with 1,000,000 reports, 200,000 index entries per filing: 12-23 ms); the open cases are the few a city has
at once, and the category leads the index, so the read touches only the open cases of its own category nearby.

Revision ID: d5a9e3c7b812
Revises: ae641248fe7d
Create Date: 2026-11-28 12:20:00
"""

from alembic import op

revision = "d5a9e3c7b812"
down_revision = "ae641248fe7d"
branch_labels = None
depends_on = None

# app.models.reports.FINAL_STATUSES as of this revision: the index holds the cases not in them, the open ones
# (tests/test_residents.py checks that they still agree).
FINAL_STATUSES = ("cancelled", "closed", "duplicate", "rejected")


def upgrade():
    # SpatiaLite's spatial index is an R*Tree table of every row; its filing reads stay as they were.
    if op.get_bind().dialect.name != "postgresql":
        return
    # btree_gist puts an integer beside the geometry in one GiST index; a trusted extension (PostgreSQL 13+), as
    # pg_trgm, so the database's owner may create it without superuser.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    statuses = ", ".join(f"'{status}'" for status in FINAL_STATUSES)
    op.execute(
        "CREATE INDEX ix_reports_open_category_location ON reports USING gist (category_id, location) "
        f"WHERE status NOT IN ({statuses})"
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_reports_open_category_location")
    # The extension stays: something else may use it, and dropping it would need its owner.
