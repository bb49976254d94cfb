"""Test set-up: one app and one migrated schema per session and backend; every test in a rolled-back transaction."""

from __future__ import annotations

import os
import socket
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


# ---- an S3-compatible object store ----------------------------------------------------------------------------------

S3_SETTINGS = {
    "S3_REGION": "us-east-1",
    "S3_ACCESS_KEY_ID": "test-access-key",
    "S3_SECRET_ACCESS_KEY": "test-secret-key",
    "S3_PREFIX": "photos/",
    "S3_ADDRESSING_STYLE": "path",
    # A store that is down must answer 503 at once, not after boto3's default minute of retries.
    "S3_CONNECT_TIMEOUT_S": 1,
    "S3_READ_TIMEOUT_S": 5,
    "S3_MAX_ATTEMPTS": 1,
}


def free_port() -> int:
    """A loopback port nothing listens on (the OS hands out a fresh one; it stays free for the moment we need)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 HTTP endpoint for the session: moto's standalone server on a free loopback port."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def use_s3(app, monkeypatch, endpoint: str, bucket: str):
    """Point the app's photo store at a bucket of the endpoint (for the test only); returns that store."""
    from app.services.field.storage import blob_store

    for name, value in {**S3_SETTINGS, "BLOB_STORE": "s3", "S3_ENDPOINT_URL": endpoint, "S3_BUCKET": bucket}.items():
        monkeypatch.setitem(app.config, name, value)
    with app.app_context():
        return blob_store()


@pytest.fixture()
def s3_store(app, monkeypatch, s3_endpoint):
    """The app's photo store is a fresh bucket of the session's S3 endpoint."""
    store = use_s3(app, monkeypatch, s3_endpoint, f"photos-{uuid.uuid4().hex[:12]}")
    store.client.create_bucket(Bucket=store.bucket)
    return store


@pytest.fixture()
def s3_down(app, monkeypatch):
    """The app's photo store is an S3 endpoint that does not answer: a loopback port nobody listens on."""
    return use_s3(app, monkeypatch, f"http://127.0.0.1:{free_port()}", "photos-down")
