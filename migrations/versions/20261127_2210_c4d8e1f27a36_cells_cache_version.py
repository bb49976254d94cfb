"""cache_versions gains `cells`, and a new user moves `auth`: workers keep cells' names, codes and label points and
people's names (app.services.cases.rows, app.services.public.view) instead of joining or querying them per request.

Any change to a cell moves `cells`. A user's INSERT now moves `auth` too: a row cached by id inside a transaction
that is then rolled back must not outlive it (SQLite gives the id to the next user). The same triggers as
b7e2c41d9a05's: once per statement on PostgreSQL, per row on SQLite.

Revision ID: c4d8e1f27a36
Revises: b7e2c41d9a05
Create Date: 2026-11-27 22:10:00
"""

from alembic import op

revision = "c4d8e1f27a36"
down_revision = "b7e2c41d9a05"
branch_labels = None
depends_on = None

# (cache, table, events, trigger name)
WATCHED = (
    ("cells", "cells", ("INSERT", "UPDATE", "DELETE"), "cells_bump_cells"),
    ("auth", "users", ("INSERT",), "users_insert_bump_auth"),
)


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    version = "nextval('cache_version_seq')" if postgres else "abs(random())"
    op.execute(f"INSERT INTO cache_versions (name, version) VALUES ('cells', {version})")
    for cache, table, events, name in WATCHED:
        if postgres:
            op.execute(
                f"CREATE TRIGGER {name} AFTER {' OR '.join(events)} ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION bump_cache_version('{cache}')"
            )
            continue
        for event in events:
            op.execute(
                f"CREATE TRIGGER {name}_{event.lower()} AFTER {event} ON {table} "
                f"BEGIN UPDATE cache_versions SET version = abs(random()) WHERE name = '{cache}'; END"
            )


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for _cache, table, events, name in WATCHED:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        else:
            for event in events:
                op.execute(f"DROP TRIGGER IF EXISTS {name}_{event.lower()}")
    op.execute("DELETE FROM cache_versions WHERE name = 'cells'")
