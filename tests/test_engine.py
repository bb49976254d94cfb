"""app.dialect.engine: a pooled PostgreSQL connection the server closed is replaced at checkout, with no round trip;
read requests run without a transaction and may not write."""

from __future__ import annotations

import contextlib
import os
import socket
import time

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import create_engine, event, exc, text

from app.dialect import engine as engine_module
from app.models import Role
from tests.conftest import BACKEND
from tests.factories import PASSWORD, committed_world, make_user, tokens_for

IDLE, INTRANS = TransactionStatus.IDLE, TransactionStatus.INTRANS


class _Connection:
    """What the checkout hook needs of a DBAPI connection: its socket's descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


@pytest.fixture
def high_socket_pair():
    """A connected pair whose near end sits above descriptor 1023, where select() gives up and poll() does not."""
    near, far = socket.socketpair()
    high = os.dup2(near.fileno(), 1500)
    near.close()
    try:
        yield high, far
    finally:
        far.close()
        with contextlib.suppress(OSError):
            os.close(high)


def test_an_idle_connection_passes_even_above_descriptor_1023(high_socket_pair):
    high, _far = high_socket_pair
    engine_module._closed_by_server(_Connection(high), None, None)  # nothing to read: kept


def test_a_connection_the_server_ended_is_dropped(high_socket_pair):
    high, far = high_socket_pair
    far.close()  # the server's side goes away: our end turns readable (end of file)
    with pytest.raises(exc.DisconnectionError):
        engine_module._closed_by_server(_Connection(high), None, None)


def test_a_closed_descriptor_is_dropped(high_socket_pair):
    high, _far = high_socket_pair
    os.close(high)
    with pytest.raises(exc.DisconnectionError):
        engine_module._closed_by_server(_Connection(high), None, None)


@pytest.mark.skipif(BACKEND != "postgis", reason="the checkout hook is PostgreSQL's")
def test_a_terminated_backend_is_replaced_on_the_next_checkout(app, database_url):
    pool_of_one = create_engine(
        database_url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=1, max_overflow=0
    )
    engine_module.install_engine_hooks(app, pool_of_one)
    try:
        with pool_of_one.connect() as connection:
            first_pid = connection.scalar(text("SELECT pg_backend_pid()"))
        with psycopg.connect(
            database_url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True
        ) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
            # Wait until the backend is gone, so its goodbye has reached our socket. Each look is its own statement
            # (autocommit): a transaction reads pg_stat_activity once, and a loop inside one would never see it go.
            deadline = time.monotonic() + 10
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (first_pid,)).fetchone():
                assert time.monotonic() < deadline, "the terminated backend did not end"
                time.sleep(0.01)
        with pool_of_one.connect() as connection:
            assert connection.scalar(text("SELECT 1")) == 1
            assert connection.scalar(text("SELECT pg_backend_pid()")) != first_pid
    finally:
        pool_of_one.dispose()


def test_a_read_request_may_not_write(app, db):
    """GET and HEAD run without a transaction on PostgreSQL: a statement that writes is refused on both backends."""
    touch = text("UPDATE users SET display_name = display_name")
    for method in ("GET", "HEAD"):
        with app.test_request_context("/api/v1/me", method=method):
            engine_module.mark_read_request()
            with pytest.raises(engine_module.ReadRequestWrote):
                db.session.execute(touch)
            db.session.rollback()
            assert db.session.execute(text("SELECT count(*) FROM users")).scalar() >= 0
    with app.test_request_context("/api/v1/me", method="POST"):
        db.session.execute(touch)


@pytest.mark.skipif(BACKEND != "postgis", reason="reads without a transaction are PostgreSQL's")
def test_reads_run_in_autocommit_and_their_connection_goes_back_in_transactions(app):
    from app.extensions import db as _db

    seen: list[tuple[str, object, bool, int]] = []

    def record(conn, _cursor, statement, _parameters, _context, _executemany):
        dbapi = conn.connection.dbapi_connection
        seen.append((statement.split()[0].upper(), dbapi, dbapi.autocommit, dbapi.info.transaction_status))

    # The app's own pool, as a worker has it (not the tests' session bound to an outer transaction).
    with committed_world(app):
        user = make_user(Role.resident)
        token, username = tokens_for(user).access_token, user.username
        _db.session.commit()
        engine = _db.engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            client = app.test_client()
            assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            reads = list(seen)
            seen.clear()
            login = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
            assert login.status_code == 200
            writes = list(seen)
        finally:
            event.remove(engine, "before_cursor_execute", record)
    assert reads and all(autocommit and status == IDLE for _verb, _conn, autocommit, status in reads)
    # A write request's transaction opens with BEGIN and the versions read in one message; every later statement
    # runs inside it.
    assert writes[0][0] == "BEGIN;" and writes[0][3] == IDLE
    assert writes[1:] and all(status == INTRANS for _verb, _conn, _autocommit, status in writes[1:])
    assert any(verb == "INSERT" for verb, _conn, _autocommit, _status in writes)
    # Back in the pool, both connections take transactions again, as the next request expects.
    assert not any(conn.autocommit for _verb, conn, _autocommit, _status in reads + writes)


@pytest.mark.skipif(BACKEND != "postgis", reason="the BEGIN that carries a statement is PostgreSQL's")
def test_a_write_request_s_transaction_opens_with_the_versions_and_ends_whole(app, database_url):
    """The versions read rides with the BEGIN, and the request does not read them again. What the request writes
    after it is one transaction: a rollback leaves none of it, a commit all of it."""
    from app.extensions import db as _db
    from app.services import versions

    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        sent.append(statement)

    def stored_names() -> set[str]:
        with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://", 1)) as other:
            return {row[0] for row in other.execute("SELECT display_name FROM users")}

    with committed_world(app):
        user_id = make_user(Role.resident).id
        _db.session.commit()
        event.listen(_db.engine, "before_cursor_execute", record)
        try:
            for ending, kept in ((_db.session.rollback, False), (_db.session.commit, True)):
                sent.clear()
                with app.test_request_context("/api/v1/me", method="POST"):
                    assert versions.current_version(versions.AUTH) is not None
                    name = f"renamed by {ending.__name__}"
                    _db.session.execute(
                        text("UPDATE users SET display_name = :name WHERE id = :id"),
                        {
                            "name": name,
                            "id": user_id,
                        },
                    )
                    _db.session.execute(text("UPDATE users SET phone = NULL WHERE id = :id"), {"id": user_id})
                    ending()
                assert sent[0] == f"BEGIN; {versions._READ}"
                assert sum("cache_versions" in statement for statement in sent) == 1
                assert (name in stored_names()) is kept
                _db.session.remove()
        finally:
            event.remove(_db.engine, "before_cursor_execute", record)


def test_an_error_in_statements_run_together_is_sqlalchemy_s_and_the_session_goes_on(app, db):
    """engine.run_together: a driver error is SQLAlchemy's DBAPIError, as on its own path, whichever statement
    fails; after the rollback the session runs statements again."""
    from sqlalchemy import Integer, bindparam, func, literal, select

    dialect = db.session.get_bind().dialect
    fine = engine_module.DriverStatement(select(literal(1, Integer) + bindparam("n", type_=Integer)), dialect, n=0)
    broken = engine_module.DriverStatement(select(func.no_such_function(1)), dialect)
    assert engine_module.run_together((fine, {"n": 1}), (fine, {"n": 2})) == [[(2,)], [(3,)]]
    for runs in (((fine, {"n": 1}), (broken, {})), ((broken, {}), (fine, {"n": 1}))):
        with pytest.raises(exc.DBAPIError):
            engine_module.run_together(*runs)
        db.session.rollback()
        assert engine_module.run_together((fine, {"n": 4})) == [[(5,)]]


def test_a_driver_statement_converts_its_values_by_their_types_as_sqlalchemy_does(app, db):
    """An aware time compared with a stored one (SQLite keeps them as text in SQLAlchemy's format) finds the same
    rows through the driver as through SQLAlchemy, the boundary included."""
    from datetime import UTC, datetime

    from sqlalchemy import bindparam, select

    from app.models import Report
    from tests.factories import make_category, make_report, make_test_grid, make_user

    make_test_grid()
    report = make_report(make_user(Role.resident), make_category(), 116.405, 39.905)
    # A whole second: the driver's own text for it would end "+00:00" where the stored one ends ".000000".
    report.created_at = at = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    db.session.flush()
    up_to = select(Report.id).where(Report.created_at <= bindparam("at", type_=Report.created_at.type))
    through_sqlalchemy = db.session.execute(up_to, {"at": at}).all()
    through_the_driver = engine_module.DriverStatement(up_to, db.session.get_bind().dialect, at=at).run({"at": at})
    assert [tuple(row) for row in through_sqlalchemy] == through_the_driver == [(report.id,)]
