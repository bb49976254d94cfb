"""Trigram indexes on reports.description and reports.address for GET /reports?q= (PostgreSQL only).

Revision ID: 60c3853c3707
Revises: dd9617e0d774
Create Date: 2026-11-27 17:10:00
"""

from alembic import op

revision = "60c3853c3707"
down_revision = "dd9617e0d774"
branch_labels = None
depends_on = None

INDEXES = {"idx_reports_description_trgm": "description", "idx_reports_address_trgm": "address"}


def upgrade():
    # SQLite has no trigram index: its search reads the rows (app/dialect/queries.py, contains_text).
    if op.get_bind().dialect.name != "postgresql":
        return
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it without superuser.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, column in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON reports USING gin ({column} gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    # The extension stays: something else may use it, and dropping it would need its owner.
