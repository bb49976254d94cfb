"""No Open311 api_key, token, password or phone number in any log: the app's, werkzeug's and gunicorn's."""

from __future__ import annotations

import logging
import os
import re
import runpy
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from werkzeug.serving import make_server

from app.extensions import db as _db
from app.redaction import MASK, RedactingFilter, redact, redact_atoms, redact_query
from app.services.cases import categories as category_service
from app.services.people import users as user_service
from tests.factories import PASSWORD, make_api_key, make_category, make_test_grid, make_user, tokens_for

ROOT = Path(__file__).resolve().parent.parent
PHONE = "13800138077"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


# ---- redact() ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, secret, kept",
    [
        ('"GET /open311/v2/requests.json?api_key=g311_abc123&status=open HTTP/1.1" 200', "g311_abc123", "status=open"),
        ("GET /x?api%5Fkey=plainsecret&page=2 HTTP/1.1", "plainsecret", "page=2"),
        ("POST /x?API_KEY=plainsecret;a=1", "plainsecret", "a=1"),
        ("GET /x?password=hunter2&refresh_token=r3fresh HTTP/1.1", "hunter2", "GET /x?password="),
        ("GET /x?password=hunter2&refresh_token=r3fresh HTTP/1.1", "r3fresh", "HTTP/1.1"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi", "Authorization: Bearer"),
        (f"token {JWT} expired", JWT, "expired"),
        ("key g311_Zm9vYmFy-x_y given", "g311_Zm9vYmFy-x_y", "given"),
        ('body {"username": "u", "password": "hunter\\"2", "x": 1}', 'hunter\\"2', '"x": 1'),
        (f"Key (phone)=({PHONE}) already exists", PHONE, "already exists"),
        (f"/api/v1/users?q={PHONE}", PHONE, "/api/v1/users?q="),
    ],
)
def test_redact_masks_credentials_and_phones(line, secret, kept):
    clean = redact(line)
    assert secret not in clean
    assert kept in clean and MASK in clean


def test_redact_leaves_case_numbers_ids_and_ordinary_params():
    line = "GET /api/v1/reports/202611270000123?cursor=abc&page_size=20&near=120.1,30.2 HTTP/1.1 138000 bytes"
    assert redact(line) == line
    assert redact_query("status=open&service_code=0101") == "status=open&service_code=0101"


def test_redact_takes_the_configured_phone_pattern():
    filt = RedactingFilter(r"\+44\d{10}")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "call %s", ("+447700900123",), None)
    filt.filter(record)
    assert record.getMessage() == f"call {MASK}"


def test_the_filter_redacts_the_traceback_too():
    try:
        raise RuntimeError(f"boom api_key={JWT} phone {PHONE}")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed on %s", ("/x?api_key=k1",), sys.exc_info())
    RedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "Traceback" in formatted and "RuntimeError" in formatted
    for secret in (JWT, PHONE, "k1"):
        assert secret not in formatted


# ---- the app's own loggers --------------------------------------------------------------------------------------


@pytest.fixture()
def world(db):
    make_test_grid()
    make_category("0101")
    resident = make_user("resident", username=PHONE, phone=PHONE)
    return SimpleNamespace(resident=resident, key=make_api_key().key, tokens=tokens_for(resident))


def _bad_sql_with(phone):
    # A database error raised with a phone number among the statement's parameters.
    def query(*_args, **_kwargs):
        _db.session.execute(text("SELECT no_such_column FROM users WHERE phone = :phone"), {"phone": phone})

    return query


def _duplicate_phone(*_args, **_kwargs):
    # What PostgreSQL says when a unique race loses: the DETAIL line repeats the value.
    raise IntegrityError(
        "INSERT INTO users ...",
        {"phone": PHONE},
        Exception(
            f'duplicate key value violates unique constraint "uq_users_phone"\nDETAIL:  Key (phone)=({PHONE}) exists.'
        ),
    )


@contextmanager
def unfiltered_root():
    """The root's handlers without the redacting filter, so a test sees what the app's log calls themselves write
    (create_app put the filter on whatever handlers the root had then, pytest's included). Entered in the test's
    body: pytest attaches other handlers while fixtures are set up."""
    removed = [(h, f) for h in logging.getLogger().handlers for f in h.filters if isinstance(f, RedactingFilter)]
    for handler, filt in removed:
        handler.removeFilter(filt)
    try:
        yield
    finally:
        for handler, filt in removed:
            handler.addFilter(filt)


def test_requests_with_credentials_leave_none_in_the_apps_logs(client, world, caplog, monkeypatch):
    with unfiltered_root():
        _drive_requests_with_credentials(client, world, caplog, monkeypatch)


def _drive_requests_with_credentials(client, world, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    w = world
    bearer = {"Authorization": f"Bearer {w.tokens.access_token}"}
    secrets = [w.key, w.tokens.access_token, w.tokens.refresh_token, PASSWORD, PHONE]

    assert (
        client.post(
            f"/open311/v2/requests.json?api_key={w.key}",
            data={"service_code": "0101", "lat": 39.905, "long": 116.405, "phone": PHONE},
        ).status_code
        == 200
    )
    assert client.post("/open311/v2/requests.xml", data={"api_key": w.key, "service_code": "nope"}).status_code == 400
    assert client.get(f"/open311/v2/requests.json?api_key={w.key}&service_request_id=x").status_code == 200
    assert client.post("/api/v1/auth/login", json={"username": PHONE, "password": PASSWORD}).status_code == 200
    assert client.post("/api/v1/auth/login", json={"username": PHONE, "password": PASSWORD + "x"}).status_code == 401
    assert client.get("/api/v1/me", headers=bearer).status_code == 200
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": w.tokens.refresh_token}).status_code == 200
    # Error paths that log: an unexpected exception, a database error with parameters, a unique race.
    # Secrets in an /api/v1 query string: parameters the operation does not take are refused (422) before it runs.
    assert client.get(f"/api/v1/categories?api_key={w.key}&password={PASSWORD}", headers=bearer).status_code == 422
    monkeypatch.setattr(category_service, "active_categories_query", _bad_sql_with(PHONE))
    assert client.get("/api/v1/categories?page=1", headers=bearer).status_code in (500, 503)
    monkeypatch.setattr(user_service, "register_resident", _duplicate_phone)
    assert client.post("/api/v1/auth/register", json={"phone": PHONE, "password": PASSWORD}).status_code == 409

    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "unhandled error" in logged or "database unavailable" in logged
    assert "integrity error turned into 409" in logged
    for secret in secrets:
        assert secret not in logged, secret


def test_database_errors_hide_their_parameters(db):
    assert db.engine.hide_parameters is True


# ---- werkzeug's development server ------------------------------------------------------------------------------


def test_the_development_servers_request_log_is_redacted(app, caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/healthz?api_key=g311_devserver&password=hunter2&x={PHONE}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {JWT}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
    finally:
        server.shutdown()
        thread.join(10)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("/healthz?api_key=" + MASK in line for line in lines), lines
    for secret in ("g311_devserver", "hunter2", PHONE, JWT):
        assert not any(secret in line for line in lines), lines


# ---- gunicorn ---------------------------------------------------------------------------------------------------

ENVIRON = {
    "REQUEST_METHOD": "POST",
    "RAW_URI": f"/open311/v2/requests.json?api_key=g311_gkey&phone={PHONE}",
    "PATH_INFO": "/open311/v2/requests.json",
    "QUERY_STRING": f"api_key=g311_gkey&phone={PHONE}",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "HTTP_USER_AGENT": "civic-app/1.0",
    "HTTP_REFERER": "https://civic.example/form?token=t0ken&x=1",
    "HTTP_AUTHORIZATION": f"Bearer {JWT}",
}
GUNICORN_SECRETS = ("g311_gkey", PHONE, "t0ken", JWT)


def test_redact_atoms_masks_every_atom_a_format_may_pick():
    atoms = {
        "r": f"POST {ENVIRON['RAW_URI']} HTTP/1.1",
        "q": ENVIRON["QUERY_STRING"],
        "U": ENVIRON["PATH_INFO"],
        "f": ENVIRON["HTTP_REFERER"],
        "{authorization}i": f"Bearer {JWT}",
        "{cookie}i": "session=s3ss",
        "{query_string}e": ENVIRON["QUERY_STRING"],
        "{raw_uri}e": ENVIRON["RAW_URI"],
        "B": 12,
        "s": "200",
    }
    clean = redact_atoms(atoms)
    assert clean["q"] == f"api_key={MASK}&phone={MASK}"
    assert clean["r"] == f"POST /open311/v2/requests.json?api_key={MASK}&phone={MASK} HTTP/1.1"
    assert clean["U"] == "/open311/v2/requests.json" and clean["B"] == 12 and clean["s"] == "200"
    assert clean["{authorization}i"] == clean["{cookie}i"] == MASK
    for secret in (*GUNICORN_SECRETS, "s3ss"):
        assert secret not in repr(clean)


def test_gunicorn_conf_logs_access_and_errors_without_credentials(tmp_path, monkeypatch):
    from gunicorn.config import Config

    # The file sets a default directory for Prometheus's files; the test process keeps its own (none).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    logger_class = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["logger_class"]
    cfg = Config()
    cfg.set("accesslog", str(tmp_path / "access.log"))
    cfg.set("errorlog", str(tmp_path / "error.log"))
    # Everything a careless format could pick: request line, query, referer, the Authorization header.
    cfg.set("access_log_format", '%(h)s "%(r)s" %(s)s q=%(q)s ref=%(f)s auth=%({authorization}i)s raw=%({raw_uri}e)s')
    logger = logger_class(cfg)
    try:
        resp = SimpleNamespace(status="200 OK", sent=42, headers=[("Content-Type", "application/json")])
        req = SimpleNamespace(headers=[("AUTHORIZATION", f"Bearer {JWT}"), ("USER-AGENT", "civic-app/1.0")])
        logger.access(resp, req, ENVIRON, timedelta(milliseconds=5))
        logger.exception("Error handling request %s", ENVIRON["RAW_URI"])
    finally:
        for log in (logger.error_log, logger.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
                handler.close()
    access = (tmp_path / "access.log").read_text()
    errors = (tmp_path / "error.log").read_text()
    assert "POST /open311/v2/requests.json?api_key=" + MASK in access and "auth=" + MASK in access
    assert "Error handling request /open311/v2/requests.json?api_key=" + MASK in errors
    for secret in GUNICORN_SECRETS:
        assert secret not in access and secret not in errors


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_started_like_run_sh_keeps_the_key_out_of_its_access_log(app, tmp_path):
    """scripts/run.sh's command line, for real: gunicorn reads gunicorn.conf.py and logs the request redacted."""
    port = _free_port()
    env = {**os.environ, "APP_ENV": "testing", "INSTANCE_PATH": str(tmp_path)}
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--config",
            "gunicorn.conf.py",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--access-logfile",
            "-",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/healthz?api_key=g311_live&password=hunter2"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(url, headers={"Authorization": f"Bearer {JWT}"}), timeout=5
                ) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert re.search(r'"GET /healthz\?api_key=\[redacted\]&password=\[redacted\] HTTP/1\.1" 200', output), output
    for secret in ("g311_live", "hunter2", JWT):
        assert secret not in output
