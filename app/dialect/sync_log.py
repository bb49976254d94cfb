"""The sync change log's ordering: transaction ids on PostgreSQL, the single writer's sequence on SQLite."""

from __future__ import annotations

from sqlalchemy import func, literal_column, select

from app.dialect.engine import is_postgis
from app.extensions import db

# PostgreSQL: the writing transaction's 64-bit id (xid8, epoch-extended, so it never wraps and fits a bigint).
SYNC_XID_DEFAULT_POSTGRESQL = "(pg_current_xact_id()::text::bigint)"
# SQLite has one writer at a time, so the commit order is already the seq order and every row shares xid 0.
SYNC_XID_DEFAULT_SQLITE = "0"


def sync_xid_default(dialect: str) -> str:
    """The SQL default of sync_changes.xid on this dialect (used by the migration)."""
    return SYNC_XID_DEFAULT_POSTGRESQL if dialect == "postgresql" else SYNC_XID_DEFAULT_SQLITE


# The lowest transaction id that may still add rows to this database's tables: the reader's own (a snapshot
# leaves it out of its running list) or the statement snapshot's oldest running transaction, passing over
# those a live backend shows connected to another database (they cannot write here); with none, its xmax.
# An id the activity view does not show (it ended since the snapshot, it is a subtransaction or a prepared
# one, or the view hides it) counts as ours: that may only delay rows, never hand one out early.
# backend_xid is 32 bits; ids running at the same time differ there.
_PG_SYNC_WATERMARK = """(SELECT least(pg_current_xact_id_if_assigned()::text::bigint, coalesce(
        (SELECT min(running::text::bigint) FROM pg_snapshot_xip(current_snap.snap) AS running
         WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity other
                           WHERE other.backend_xid::text::bigint = mod(running::text::bigint, 4294967296)
                             AND other.datname <> current_database())),
        pg_snapshot_xmax(current_snap.snap)::text::bigint))
    FROM (SELECT pg_current_snapshot() AS snap) AS current_snap)"""
# The largest seq a position can name: (xid, SEQ_MAX) lies after every row of transaction xid.
SEQ_MAX = 2**63 - 1


def sync_horizon(seq_col) -> tuple[int, int]:
    """The (xid, seq) position up to which every change row is final: a reader may hand out any row at or
    before it, and every row written later lands after it.

    PostgreSQL: every transaction of this database with an id below the watermark has ended, and any
    transaction still running or yet to write gets an id at or above it; rows below it are therefore final
    and anything that commits later sorts after them in (xid, seq). Rows at or above it wait for a later
    poll. (The plain pg_snapshot_xmin would be as safe, but a long transaction in any other database of the
    cluster would hold every client back.) Read in its own statement, it bounds the next one: those rows,
    final already, are all visible to a later snapshot.
    SQLite: writers are serialised (every transaction begins IMMEDIATE, a reader's too, until it ends) and
    seq is assigned inside the write transaction (AUTOINCREMENT, never reused), so what a reader sees is a
    prefix of the seq order: its end is the horizon."""
    if is_postgis():
        return db.session.scalar(select(literal_column(_PG_SYNC_WATERMARK))) - 1, SEQ_MAX
    return 0, db.session.scalar(select(func.coalesce(func.max(seq_col), 0)))
