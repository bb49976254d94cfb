"""Test set-up: one app and one migrated schema per session and backend; every test in a rolled-back transaction."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from flask_migrate import upgrade
from sqlalchemy import orm

BACKEND = os.environ.get("TEST_BACKEND", "spatialite")
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/{db}"


def pytest_report_header(config):
    return f"backend: {BACKEND}"


def _fresh_postgis_database() -> tuple[str, callable]:
    """A new database with PostGIS on the local server, dropped after the session."""
    name = f"grid_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(LOCAL_PG.format(db="postgres"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(LOCAL_PG.format(db=name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    def drop():
        with psycopg.connect(LOCAL_PG.format(db="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


@pytest.fixture(scope="session")
def database_url():
    if BACKEND == "spatialite":
        tmp = tempfile.mkdtemp(prefix="grid-test-")
        yield f"sqlite:///{Path(tmp) / 'test.sqlite'}"
        return
    if BACKEND != "postgis":
        pytest.exit(f"TEST_BACKEND must be spatialite or postgis, not {BACKEND!r}", returncode=2)
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    try:
        url, drop = _fresh_postgis_database()
    except Exception as exc:  # noqa: BLE001 - any failure means PostGIS is not there
        message = (
            f"PostGIS is not available on 127.0.0.1:5432 ({exc}). Install postgresql-15-postgis-3 "
            "and start PostgreSQL, or set TEST_DATABASE_URL."
        )
        if os.environ.get("CI"):
            pytest.exit("FAILED: " + message, returncode=3)
        pytest.exit("SKIPPED THE WHOLE POSTGIS RUN: " + message, returncode=0)
    yield url
    drop()


@pytest.fixture(scope="session")
def app(database_url):
    os.environ["TEST_DATABASE_URL"] = database_url
    from app import create_app

    application = create_app("testing")
    with application.app_context():
        upgrade()
    return application


class _TestSession(orm.Session):
    """A plain Session (Flask-SQLAlchemy's would pick the engine over our connection)."""

    def __init__(self, db=None, **kwargs):
        super().__init__(**kwargs)


@pytest.fixture()
def db(app):
    """Each test runs inside one outer transaction that is rolled back; request commits become savepoints."""
    from app.extensions import db as _db

    with app.app_context():
        connection = _db.engine.connect()
        outer = connection.begin()
        original = _db.session
        _db.session = _db._make_scoped_session(  # noqa: SLF001 - the documented way to rebind the session
            {"class_": _TestSession, "bind": connection, "join_transaction_mode": "create_savepoint"}
        )
        try:
            yield _db
        finally:
            _db.session.remove()
            _db.session = original
            outer.rollback()
            connection.close()


@pytest.fixture()
def client(app, db):
    return app.test_client()


@pytest.fixture()
def backend(app):
    return BACKEND
