"""Row claims, row locks and named locks: PostgreSQL's locks, SQLite's single writer."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable

from sqlalchemy import Select, func, select

from app.dialect.engine import is_postgis
from app.extensions import db


def claim(stmt: Select, *of) -> Select:
    """Lock the selected rows for this transaction and pass over rows another one holds.

    PostGIS: FOR UPDATE [OF ...] SKIP LOCKED, so concurrent sweeps split the work. SpatiaLite has one writer
    at a time (every transaction begins IMMEDIATE), so the statement needs no clause there."""
    if is_postgis():
        return stmt.with_for_update(skip_locked=True, of=list(of) or None)
    return stmt


def lock_rows(stmt: Select) -> Select:
    """Lock the selected rows until this transaction ends, so a rule checked on them holds until the commit.

    PostGIS: FOR UPDATE; a second locker waits, then (READ COMMITTED) re-checks its WHERE against the first one's
    committed rows, so it sees what the first changed. SpatiaLite has one writer at a time (every transaction
    begins IMMEDIATE), so the statement needs no clause there."""
    if is_postgis():
        return stmt.with_for_update()
    return stmt


def try_transaction_lock(lock_id: int) -> bool:
    """Take the exclusive lock named by lock_id (a signed 64-bit number) until this transaction ends.

    False, at once, when another transaction holds it. PostGIS: pg_try_advisory_xact_lock, which every
    process and host shares and which commit, rollback or a lost connection release. SpatiaLite: every
    transaction begins IMMEDIATE, so beginning one takes the database's single write lock; no other
    transaction runs until this one ends, and the lock is always ours (a second one waits, busy_timeout)."""
    if is_postgis():
        return bool(db.session.scalar(select(func.pg_try_advisory_xact_lock(lock_id))))
    db.session.connection()
    return True


def try_host_lock(lock_dir: str, lock_id: int) -> Callable[[], None] | None:
    """Before the request touches the database: take the lock named by lock_id on this host; its release, or
    None at once when another process or thread holds it.

    SpatiaLite only, where the first statement of a request already waits for the single write lock, so
    try_transaction_lock could never see a request still running: an flock on a file per lock_id (every
    process of the host shares it, and so does every user of an embedded database) answers first. The file
    goes with the release; a race with that unlink can only let a second request through, which then waits
    for the write lock and finds the first one's outcome, so it is a fast answer, not the safeguard.
    PostGIS: nothing to do here (a release that does nothing); the advisory lock covers every host."""
    if is_postgis():
        return lambda: None
    os.makedirs(lock_dir, exist_ok=True)
    path = os.path.join(lock_dir, f"{lock_id & 0xFFFFFFFFFFFFFFFF:016x}.lock")
    handle = open(path, "a+b")  # noqa: SIM115 - held until the release
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None

    def release() -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        handle.close()

    return release
