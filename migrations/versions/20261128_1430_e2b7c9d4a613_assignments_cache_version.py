"""cache_versions gains `assignments`: each worker process keeps which cells a worker serves on a day
(app.services.people.workers.cells_served_on), which every filing by a worker asks, instead of reading it per filing.

Any change to a worker's assignments moves it. The same triggers as b7e2c41d9a05's: once per statement on
PostgreSQL, per row on SQLite.

Revision ID: e2b7c9d4a613
Revises: d5a9e3c7b812
Create Date: 2026-11-28 14:30:00
"""

from alembic import op

revision = "e2b7c9d4a613"
down_revision = "d5a9e3c7b812"
branch_labels = None
depends_on = None

EVENTS = ("INSERT", "UPDATE", "DELETE")
TRIGGER = "worker_cells_bump_assignments"


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    version = "nextval('cache_version_seq')" if postgres else "abs(random())"
    op.execute(f"INSERT INTO cache_versions (name, version) VALUES ('assignments', {version})")
    if postgres:
        op.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER {' OR '.join(EVENTS)} ON worker_cells "
            "FOR EACH STATEMENT EXECUTE FUNCTION bump_cache_version('assignments')"
        )
        return
    for event in EVENTS:
        op.execute(
            f"CREATE TRIGGER {TRIGGER}_{event.lower()} AFTER {event} ON worker_cells "
            "BEGIN UPDATE cache_versions SET version = abs(random()) WHERE name = 'assignments'; END"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON worker_cells")
    else:
        for event in EVENTS:
            op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}_{event.lower()}")
    op.execute("DELETE FROM cache_versions WHERE name = 'assignments'")
