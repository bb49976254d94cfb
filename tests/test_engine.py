"""app.dialect.engine: a pooled PostgreSQL connection the server closed is replaced at checkout, with no round trip."""

from __future__ import annotations

import contextlib
import os
import socket

import psycopg
import pytest
from sqlalchemy import create_engine, exc, text

from app.dialect import engine as engine_module
from tests.conftest import BACKEND


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
            admin.execute(  # wait until the backend is gone, so its goodbye has reached our socket
                "DO $$ BEGIN WHILE EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s) LOOP "
                "PERFORM pg_sleep(0.01); END LOOP; END $$" % int(first_pid)
            )
        with pool_of_one.connect() as connection:
            assert connection.scalar(text("SELECT 1")) == 1
            assert connection.scalar(text("SELECT pg_backend_pid()")) != first_pid
    finally:
        pool_of_one.dispose()
