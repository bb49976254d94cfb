"""Declarative range partitions of the big append-only tables on PostgreSQL; SQLite keeps plain tables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Connection

# pg_advisory_xact_lock key of partition maintenance (ensure and drop): one host at a time, the others wait
# and then find the work done. Any fixed 64-bit number no other lock of the service uses.
PARTITION_LOCK_ID = 0x67726964_70617274  # "gridpart"


@dataclass(frozen=True)
class Scheme:
    """One partitioned table: its range column, and whether a partition spans a UTC day or a UTC month."""

    table: str
    column: str
    monthly: bool

    @property
    def default(self) -> str:
        return f"{self.table}_default"

    def first_day(self, day: date) -> date:
        return day.replace(day=1) if self.monthly else day

    def next_start(self, start: date) -> date:
        if not self.monthly:
            return start + timedelta(days=1)
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)

    def name(self, start: date) -> str:
        return f"{self.table}_p{start:%Y%m}" if self.monthly else f"{self.table}_p{start:%Y%m%d}"

    def start_of(self, name: str) -> date | None:
        """The first day of the partition called `name`, or None when it is not one of ours (default, foreign)."""
        match = re.fullmatch(re.escape(self.table) + r"_p(\d{6}|\d{8})", name)
        if not match:
            return None
        digits = match.group(1)
        if self.monthly and len(digits) == 6:
            return date(int(digits[:4]), int(digits[4:]), 1)
        if not self.monthly and len(digits) == 8:
            return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
        return None


# Ten million check-ins a day at city scale: a partition per UTC day, dropped whole by `flask patrols prune`.
CHECKINS = Scheme("patrol_checkins", "recorded_at", monthly=False)
# The change log is read by (xid, seq) across all of it and pruned row by row (cursors never expire), so its
# partitions only bound index and vacuum sizes: a month each keeps their number small for every plan.
SYNC_CHANGES = Scheme("sync_changes", "changed_at", monthly=True)
SCHEMES = (CHECKINS, SYNC_CHANGES)


def _utc(day: date) -> str:
    # A date renders only digits and dashes, so the literal is safe; DDL takes no bind parameters.
    return f"'{day.isoformat()} 00:00:00+00'"


def is_partitioned(conn: Connection, table: str) -> bool:
    return bool(conn.scalar(text("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}))


def lock(conn: Connection) -> None:
    """Wait for the maintenance lock until this transaction ends (every host shares it)."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": PARTITION_LOCK_ID})


def create_default(conn: Connection, scheme: Scheme) -> None:
    """The catch-all partition: a row outside every range (a phone's clock years off, a day not created ahead)
    is stored there, never refused."""
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {scheme.default} PARTITION OF {scheme.table} DEFAULT"))


def create_partition(conn: Connection, scheme: Scheme, start: date) -> str | None:
    """The partition starting on `start` (a day, or the first of a month), or None when it exists already.

    Rows the default partition holds for that range are moved into it in the same transaction: PostgreSQL
    refuses a new range that rows in the default partition fall into."""
    name = scheme.name(start)
    # Checked first, so a run that finds everything in place takes no lock on the table at all.
    if conn.scalar(text("SELECT to_regclass(:n)"), {"n": name}) is not None:
        return None
    low, high = _utc(start), _utc(scheme.next_start(start))
    in_range = f"{scheme.column} >= {low} AND {scheme.column} < {high}"
    stray = conn.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {scheme.default} WHERE {in_range})"))
    if stray:
        holding = f"{scheme.table}_moving"
        conn.execute(text(f"CREATE TEMP TABLE {holding} (LIKE {scheme.table}) ON COMMIT DROP"))
        conn.execute(
            text(
                f"WITH moved AS (DELETE FROM {scheme.default} WHERE {in_range} RETURNING *) "
                f"INSERT INTO {holding} SELECT * FROM moved"
            )
        )
    conn.execute(text(f"CREATE TABLE {name} PARTITION OF {scheme.table} FOR VALUES FROM ({low}) TO ({high})"))
    if stray:
        conn.execute(text(f"INSERT INTO {scheme.table} SELECT * FROM {holding}"))
        conn.execute(text(f"DROP TABLE {holding}"))
    return name


def ensure(conn: Connection, first: date, last: date) -> list[str]:
    """Every table's default partition and its partitions covering the UTC days first..last; the names created.

    Safe from cron on many hosts at once: the advisory lock serialises the runs, and what exists is kept."""
    lock(conn)
    created = []
    for scheme in SCHEMES:
        create_default(conn, scheme)
        start = scheme.first_day(first)
        while start <= last:
            name = create_partition(conn, scheme, start)
            if name:
                created.append(name)
            start = scheme.next_start(start)
    return created


def partitions(conn: Connection, scheme: Scheme) -> dict[str, date]:
    """The table's partitions named by this module, with their first days."""
    names = conn.scalars(
        text(
            "SELECT child.relname FROM pg_inherits i JOIN pg_class child ON child.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": scheme.table},
    ).all()
    found = {name: scheme.start_of(name) for name in names}
    return {name: start for name, start in found.items() if start is not None}


def drop_before(conn: Connection, scheme: Scheme, cutoff: date) -> list[str]:
    """Drop the partitions whose whole range lies before `cutoff` (UTC midnight); the names dropped."""
    lock(conn)
    dropped = []
    for name, start in sorted(partitions(conn, scheme).items(), key=lambda item: item[1]):
        if scheme.next_start(start) <= cutoff:
            conn.execute(text(f"DROP TABLE {name}"))
            dropped.append(name)
    return dropped


def delete_default_before(conn: Connection, scheme: Scheme, cutoff: date, limit: int) -> int:
    """Delete up to `limit` rows of the default partition older than `cutoff`; the count deleted."""
    return conn.execute(
        text(
            f"DELETE FROM {scheme.default} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {scheme.default} "
            f"WHERE {scheme.column} < {_utc(cutoff)} LIMIT :limit))"
        ),
        {"limit": limit},
    ).rowcount
