"""Which database this is, and the engine set-up each needs (SpatiaLite loading, PostgreSQL planner settings)."""

from __future__ import annotations

import os
import re
import select
from collections.abc import Callable
from typing import Any

from flask import Flask, has_request_context, request
from geoalchemy2.admin.dialects.sqlite import init_spatialite, load_spatialite_driver
from sqlalchemy import Select, event, exc
from sqlalchemy.engine import Dialect, Engine

from app.extensions import db


def is_sqlite_url(url: str) -> bool:
    return url.startswith("sqlite")


def engine_options(app: Flask) -> dict[str, Any]:
    """Driver options that must be in place before Flask-SQLAlchemy builds the engine."""
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if is_sqlite_url(app.config["SQLALCHEMY_DATABASE_URI"]):
        # The stdlib sqlite3 here cannot load extensions; pysqlite3 can.
        import pysqlite3.dbapi2 as pysqlite3

        options["module"] = pysqlite3
        options.setdefault("connect_args", {})
        options["connect_args"].update(
            {"check_same_thread": False, "timeout": app.config["SQLITE_BUSY_TIMEOUT_MS"] / 1000}
        )
    else:
        # A pooled connection is checked without a round trip instead (install_engine_hooks: _closed_by_server).
        options["pool_pre_ping"] = False
        options.setdefault("pool_size", 10)
        options.setdefault("max_overflow", 10)
        # PostGIS functions carry high planner costs, so plain index-backed queries cross jit_above_cost and
        # parallel_setup_cost: they would pay tens of milliseconds of JIT compilation and worker start-up for
        # a few milliseconds of work. A web tier already runs many requests at once; one core each serves it.
        # psycopg prepares a statement it has sent 5 times, and PostgreSQL may then plan it once for any
        # parameters: how many rows a box or a time window holds is then unknown, and a spatial page falls
        # back to reading every candidate (measured: 30 ms instead of 5). Plan each execution for its values.
        options.setdefault("connect_args", {}).setdefault(
            "options", "-c jit=off -c max_parallel_workers_per_gather=0 -c plan_cache_mode=force_custom_plan"
        )
    return options


# Where the boundary marks a read request (GET, HEAD): the request's own environ.
READ_REQUEST_KEY = "grid.read_request"
_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|MERGE|CREATE|DROP|ALTER|TRUNCATE|COPY|LOCK|GRANT|REVOKE)\b", re.I)


class ReadRequestWrote(RuntimeError):
    """A read request (GET, HEAD) sent a statement that writes: a bug (its reads run without a transaction)."""


def mark_read_request() -> None:
    """This request only reads: on PostgreSQL its statements run without a transaction, and none may write."""
    request.environ[READ_REQUEST_KEY] = True


def _in_read_request() -> bool:
    return has_request_context() and request.environ.get(READ_REQUEST_KEY, False)


def _refuse_writes_in_read_requests(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:
    if _in_read_request() and _WRITE.match(statement):
        raise ReadRequestWrote(f"A {request.method} request may not write: {statement[:80]}")


def _read_without_transaction(conn) -> None:
    """A read request's connection runs in autocommit: no BEGIN and no ROLLBACK, two round trips of every read.

    The same answers: at READ COMMITTED each statement takes its own snapshot inside a transaction too, and a read
    request holds no locks and writes nothing (_refuse_writes_in_read_requests)."""
    if _in_read_request():
        conn.connection.dbapi_connection.autocommit = True


# What a write request's transaction opens with on PostgreSQL (app.services.versions registers its versions read),
# and what takes its rows.
_opening: tuple[str, Callable[[list[tuple]], None]] | None = None


def open_write_transactions_with(sql: str, take_rows: Callable[[list[tuple]], None]) -> None:
    """Every write request's transaction on PostgreSQL starts with `sql` (a statement that binds no values), sent
    in one message with its BEGIN; take_rows gets its rows, so the request has them without asking."""
    global _opening
    _opening = (sql, take_rows)


def _begin_with_opening(conn) -> None:
    """A write request's transaction: BEGIN and the opening statement in one round trip (the simple query protocol
    takes several statements that bind no values), where psycopg would send its BEGIN and wait, then the statement.

    The driver's connection is then left in autocommit, so it sends no BEGIN of its own; the server's transaction
    holds every statement all the same, and commit and rollback end it (psycopg asks the server whether one is
    open, not its own flag). Back in the pool the connection takes transactions again (_transactions_again)."""
    if _opening is None or not has_request_context() or _in_read_request():
        return
    dbapi = conn.connection.dbapi_connection
    # A connection set to another isolation level or to read only keeps psycopg's BEGIN, which says so.
    if dbapi.isolation_level is not None or dbapi.read_only is not None or dbapi.info.transaction_status:
        return
    sql, take_rows = _opening
    dbapi.autocommit = True
    # No values: psycopg sends it in the simple query protocol, and the second result is the statement's.
    take_rows(_cursor_rows(conn, f"BEGIN; {sql}", None, skip=1))


def _transactions_again(dbapi_conn, _record) -> None:
    # The pool hands the connection to the next request as the driver's default has it: in transactions.
    if dbapi_conn is not None and not dbapi_conn.closed and dbapi_conn.autocommit:
        dbapi_conn.autocommit = False


def install_engine_hooks(app: Flask, engine: Engine) -> None:
    event.listen(engine, "before_cursor_execute", _refuse_writes_in_read_requests)
    if engine.dialect.name != "sqlite":
        event.listen(engine, "checkout", _closed_by_server)
        event.listen(engine, "begin", _read_without_transaction)
        event.listen(engine, "begin", _begin_with_opening)
        event.listen(engine, "checkin", _transactions_again)
        return
    os.environ.setdefault("SPATIALITE_LIBRARY_PATH", app.config["SPATIALITE_LIBRARY_PATH"])
    busy_ms = int(app.config["SQLITE_BUSY_TIMEOUT_MS"])

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not the driver, decide when transactions start (SAVEPOINTs need this).
        dbapi_conn.isolation_level = None
        load_spatialite_driver(dbapi_conn)
        dbapi_conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        dbapi_conn.execute("PRAGMA foreign_keys = ON")
        if dbapi_conn.execute("PRAGMA database_list").fetchone()[2]:
            dbapi_conn.execute("PRAGMA journal_mode = WAL")
            dbapi_conn.execute("PRAGMA synchronous = NORMAL")
        init_spatialite(dbapi_conn, transaction=True, init_mode="WGS84")

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # IMMEDIATE takes the write lock up front, so two writers wait (busy_timeout) instead of
        # failing with SQLITE_BUSY when a read transaction later tries to write.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _closed_by_server(dbapi_conn, _record, _proxy) -> None:
    """A pooled PostgreSQL connection the server has closed (a restart, a terminated backend) is replaced at checkout.

    An idle connection has nothing to read; once the server ends it, its socket turns readable (the server's
    goodbye, then end of file). Looking costs a poll of the socket, not the round trip pool_pre_ping's SELECT costs
    every request. DisconnectionError makes the pool drop the connection and open another (or fail, if the server
    is still down: database_unavailable, as with the ping)."""
    # poll, not select: select refuses descriptors above 1023, which a busy worker's connections can reach.
    poller = select.poll()
    try:
        poller.register(dbapi_conn.fileno(), select.POLLIN)
    except (OSError, ValueError) as error:  # closed already
        raise exc.DisconnectionError() from error
    if poller.poll(0):
        raise exc.DisconnectionError()


def raw_rows(
    sql: str | dict[str, str],
    params: tuple | dict[str, tuple],
    limit: int | None = None,
    described: list | None = None,
) -> list[tuple]:
    """A hand-written statement's rows (at most `limit`) through the driver's cursor on the session's own connection
    and transaction, after the autoflush an ORM query would do: for the few statements every request sends, where
    SQLAlchemy's execution path cost more than the statement. The engine's cursor hooks still see it, and a
    driver error becomes SQLAlchemy's DBAPIError as on its own path (a lost server is 503 upstream). A statement
    spelled per dialect comes as a dict by dialect name, and its positional values too. `described`, when given, is
    filled with the cursor's description (the driver's type of each column)."""
    session = db.session
    session.flush()
    conn = session.connection()
    if isinstance(sql, dict):
        sql, params = sql[conn.dialect.name], params[conn.dialect.name]
    return _cursor_rows(conn, sql, params, limit, described)


def _cursor_rows(
    conn, sql: str, params: tuple | None, limit: int | None = None, described: list | None = None, skip: int = 0
) -> list[tuple]:
    """raw_rows on this SQLAlchemy connection: the rows of the statement's result after `skip` others (a message of
    several statements has a result each)."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        if conn.dispatch.before_cursor_execute:
            conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, False)
        cursor.execute(sql, params)
        for _ in range(skip):
            cursor.nextset()
        if described is not None:
            described.extend(cursor.description or ())
        if limit == 1:
            row = cursor.fetchone()
            rows = [] if row is None else [row]
        else:
            rows = cursor.fetchall() if limit is None else cursor.fetchmany(limit)
        if conn.dispatch.after_cursor_execute:
            conn.dispatch.after_cursor_execute(conn, cursor, sql, params, None, False)
    except Exception as exc:
        # A dead connection is invalidated as on SQLAlchemy's own path.
        conn._handle_dbapi_exception(exc, sql, params, cursor, None)
    finally:
        cursor.close()
    return rows


class DriverStatement:
    """A select compiled for the session's dialect, its bound values and the types' own conversions of values in
    and out, to run through the driver's cursor (raw_rows) as SQLAlchemy would run it: for a statement on a hot
    path, where SQLAlchemy's execution path cost more than the statement."""

    def __init__(self, stmt: Select, dialect: Dialect, **placeholders: Any) -> None:
        """`placeholders`: a value for each parameter that run() is given."""
        # The statement with its IN lists written out for these values (the run's own values must not change them).
        compiled = stmt.compile(dialect=dialect)
        state = compiled.construct_expanded_state(placeholders)
        self.dialect, self.sql = dialect, state.statement
        self.order = state.positiontup if dialect.positional else None
        # Each value's conversion by its type (a geometry, JSON, an aware time), as SQLAlchemy's own path does; the
        # expanded state gives those of the IN lists' values only.
        self.binds = {
            name: convert
            for bind, name in compiled.bind_names.items()
            if (convert := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        self.binds.update(state.processors)
        self.values = self._bound(state.parameters)
        self.types = [column.type.dialect_impl(dialect) for column in stmt.selected_columns]
        # Some conversions depend on the driver's type of the column (a numeric or a float, say): known after a run.
        # (column position, conversion) for the columns that have one.
        self.results: list[tuple[int, Callable[[Any], Any]]] | None = None

    def _bound(self, values: dict[str, Any]) -> dict[str, Any]:
        return {name: self.binds[name](value) if name in self.binds else value for name, value in values.items()}

    def params(self, values: dict[str, Any]) -> tuple | dict[str, Any]:
        """The driver's parameters for a run with these values."""
        bound = {**self.values, **self._bound(values)}
        return tuple(bound[name] for name in self.order) if self.order is not None else bound

    def run(self, values: dict[str, Any]) -> list[tuple]:
        described: list | None = [] if self.results is None else None
        return self.converted(raw_rows(self.sql, self.params(values), described=described), described)

    def converted(self, rows: list[tuple], described: list | None) -> list[tuple]:
        """The driver's rows with each column's conversion applied; `described`, the cursor's description."""
        if self.results is None:
            processors = (
                kind.result_processor(self.dialect, column[1])
                for kind, column in zip(self.types, described, strict=True)
            )
            self.results = [(i, convert) for i, convert in enumerate(processors) if convert is not None]
        if not self.results:
            return rows
        converting = self.results
        converted = []
        for row in rows:
            values = list(row)
            for i, convert in converting:
                values[i] = convert(values[i])
            converted.append(tuple(values))
        return converted


def run_together(*runs: tuple[DriverStatement, dict[str, Any]]) -> list[list[tuple]]:
    """Each statement's converted rows, run in the order given on the session's connection and transaction: on
    PostgreSQL in one round trip (psycopg's pipeline mode), elsewhere one after the other (SQLite is in process)."""
    found = raw_rows_together(
        [(stmt.sql, stmt.params(values)) for stmt, values in runs], [stmt.results is None for stmt, _ in runs]
    )
    return [stmt.converted(rows, described) for (stmt, _), (rows, described) in zip(runs, found, strict=True)]


def raw_rows_together(
    statements: list[tuple[str, Any]], describe: list[bool] | None = None
) -> list[tuple[list[tuple], list | None]]:
    """raw_rows for several statements, with the description of those `describe` asks for (else None): on
    PostgreSQL sent in one message and answered in one (each statement still its own, run in order, in the session's
    transaction); one alone as raw_rows."""
    describe = describe or [True] * len(statements)
    session = db.session
    session.flush()
    conn = session.connection()
    if conn.dialect.name != "postgresql" or len(statements) == 1:
        found = []
        for (sql, params), wanted in zip(statements, describe, strict=True):
            described: list | None = [] if wanted else None
            found.append((_cursor_rows(conn, sql, params, described=described), described))
        return found
    dbapi, cursors = conn.connection.dbapi_connection, []
    sql, params, cursor = None, None, None
    try:
        with dbapi.pipeline():
            for sql, params in statements:
                cursor = dbapi.cursor()
                cursors.append(cursor)
                if conn.dispatch.before_cursor_execute:
                    conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, False)
                cursor.execute(sql, params)
        # Leaving the pipeline waited for every answer.
        # A description costs psycopg a column object per column: only a statement's first run needs it.
        found = [
            (cursor.fetchall(), list(cursor.description or ()) if wanted else None)
            for cursor, wanted in zip(cursors, describe, strict=True)
        ]
        if conn.dispatch.after_cursor_execute:
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                conn.dispatch.after_cursor_execute(conn, cursor, sql, params, None, False)
    except Exception as exc:
        conn._handle_dbapi_exception(exc, sql, params, cursor, None)
    finally:
        for cursor in cursors:
            cursor.close()
    return found


def compiled_once(
    store: dict[str, DriverStatement], build: Callable[[], Select], **placeholders: Any
) -> DriverStatement:
    """build() compiled once per process and dialect (DriverStatement) and kept in `store`, for a hot statement whose
    only inputs are its bound values: building it (and its cache key) cost more than running it."""
    dialect = db.session.get_bind().dialect
    found = store.get(dialect.name)
    if found is None:
        found = store.setdefault(dialect.name, DriverStatement(build(), dialect, **placeholders))
    return found


def dialect_name() -> str:
    return db.session.get_bind().dialect.name


def is_postgis() -> bool:
    return dialect_name() == "postgresql"
