"""Partition patrol_checkins by UTC day and sync_changes by UTC month (PostgreSQL only; SQLite keeps plain tables).

Each table is rebuilt as a declaratively partitioned one with the same columns, defaults, sequence, constraints
and indexes, and its rows copied over. A primary key of a partitioned table must hold the partition column, so
the keys become (id, recorded_at) and (seq, changed_at); ids and seqs still come from one sequence each and stay
unique. The check-ins' unique key (user_id, recorded_at) holds it already, so ON CONFLICT DO NOTHING keeps its
meaning. Check-in ids become bigint: ten million a day would pass 2^31 in seven months.

Revision ID: 5920be478a5d
Revises: 60c3853c3707
Create Date: 2026-11-27 18:00:00
"""

from datetime import UTC, datetime, timedelta

from alembic import op
from sqlalchemy import text

from app.dialect import partitions

revision = "5920be478a5d"
down_revision = "60c3853c3707"
branch_labels = None
depends_on = None

# (scheme, key column, key column's type once partitioned, before)
TABLES = (
    (partitions.CHECKINS, "id", "bigint", "integer"),
    (partitions.SYNC_CHANGES, "seq", "bigint", "bigint"),
)
DAYS_AHEAD = 7


def _definitions(conn, table):
    """The table's constraints other than its primary key, its primary key's name, and the indexes no
    constraint owns, as SQL that recreates them on a table of the same name."""
    rows = conn.execute(
        text(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = to_regclass(:t) ORDER BY conname"
        ),
        {"t": table},
    ).all()
    primary = next(name for name, kind, _ in rows if kind == "p")
    constraints = [f"ALTER TABLE {table} ADD CONSTRAINT {name} {sql}" for name, kind, sql in rows if kind != "p"]
    indexes = conn.scalars(
        text(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = to_regclass(:t) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
            "ORDER BY i.indexrelid"
        ),
        {"t": table},
    ).all()
    # ONLY: the definition of an index on a partitioned table reads "ON ONLY t"; recreated on the parent it
    # must reach the partitions.
    return primary, constraints, [sql.replace(" ON ONLY ", " ON ") for sql in indexes]


def _rebuild(conn, scheme, key, key_type, partitioned):
    """Copy the table into a new one of the same name, partitioned by the scheme's column or plain."""
    table, old = scheme.table, f"{scheme.table}_before_rebuild"
    primary, constraints, indexes = _definitions(conn, table)
    sequence = conn.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table, "c": key})
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    how = f" PARTITION BY RANGE ({scheme.column})" if partitioned else ""
    op.execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS){how}")
    op.execute(f"ALTER TABLE {table} ALTER COLUMN {key} TYPE {key_type}")
    if partitioned:
        partitions.create_default(conn, scheme)
        today = datetime.now(UTC).date()
        days = set(conn.scalars(text(f"SELECT DISTINCT ({scheme.column} AT TIME ZONE 'UTC')::date FROM {old}")).all())
        days |= {today + timedelta(days=n) for n in range(DAYS_AHEAD + 1)}
        for start in sorted({scheme.first_day(day) for day in days}):
            partitions.create_partition(conn, scheme, start)
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    op.execute(f"DROP TABLE {old}")
    op.execute(f"ALTER SEQUENCE {sequence} AS {key_type} OWNED BY {table}.{key}")
    columns = f"{key}, {scheme.column}" if partitioned else key
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {primary} PRIMARY KEY ({columns})")
    for sql in constraints + indexes:
        op.execute(sql)


def upgrade():
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    partitions.lock(conn)
    for scheme, key, key_type, _before in TABLES:
        if not partitions.is_partitioned(conn, scheme.table):
            _rebuild(conn, scheme, key, key_type, partitioned=True)


def downgrade():
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    for scheme, key, _key_type, before in TABLES:
        if partitions.is_partitioned(conn, scheme.table):
            _rebuild(conn, scheme, key, before, partitioned=False)
