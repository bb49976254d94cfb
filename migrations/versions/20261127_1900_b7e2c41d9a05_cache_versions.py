"""cache_versions: one row per process cache (auth, categories), a new version whenever what it holds changes.

Triggers write it, in the changing transaction, on every path (ORM, bulk UPDATE, CLI, SQL by hand): a change
to a user or a login (revocation, deactivation, password, role) moves `auth`; any change to a category moves
`categories`. A request reads both versions in one cheap statement and drops a process cache whose version is
not the current one (app.services.versions), so a revocation is seen by every worker and host on its next request.
Versions come from a sequence on PostgreSQL and random() on SQLite, never an earlier value again: a rolled-back
change (the tests roll back every test) must not bring back a version some process cached under.

Revision ID: b7e2c41d9a05
Revises: 5920be478a5d
Create Date: 2026-11-27 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "b7e2c41d9a05"
down_revision = "5920be478a5d"
branch_labels = None
depends_on = None

# (cache, table, events)
WATCHED = (
    ("auth", "users", ("UPDATE", "DELETE")),
    ("auth", "auth_sessions", ("UPDATE", "DELETE")),
    ("categories", "categories", ("INSERT", "UPDATE", "DELETE")),
)


def upgrade():
    op.create_table(
        "cache_versions",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cache_versions")),
    )
    op.execute("INSERT INTO cache_versions (name, version) VALUES ('auth', 1), ('categories', 1)")
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE SEQUENCE cache_version_seq START 2")
        op.execute("""
            CREATE FUNCTION bump_cache_version() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE cache_versions SET version = nextval('cache_version_seq') WHERE name = TG_ARGV[0];
                RETURN NULL;
            END
            $$
        """)
    for cache, table, events in WATCHED:
        if postgres:
            # Once per statement: a bulk revocation of a thousand logins moves the version once.
            op.execute(
                f"CREATE TRIGGER {table}_bump_{cache} AFTER {' OR '.join(events)} ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION bump_cache_version('{cache}')"
            )
            continue
        for event in events:
            op.execute(
                f"CREATE TRIGGER {table}_bump_{cache}_{event.lower()} AFTER {event} ON {table} "
                f"BEGIN UPDATE cache_versions SET version = abs(random()) WHERE name = '{cache}'; END"
            )


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for cache, table, events in WATCHED:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_bump_{cache} ON {table}")
        else:
            for event in events:
                op.execute(f"DROP TRIGGER IF EXISTS {table}_bump_{cache}_{event.lower()}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS bump_cache_version()")
        op.execute("DROP SEQUENCE IF EXISTS cache_version_seq")
    op.drop_table("cache_versions")
