"""Observe: GET /metrics behind METRICS_TOKEN, the request id, one JSON log line per request and per sweep batch."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from app import logs
from app.models import IdempotencyKey, Notification
from app.redaction import MASK, redact
from config import ConfigError, load_config
from tests.factories import (
    PASSWORD,
    auth_header,
    make_api_key,
    make_category,
    make_test_grid,
    make_user,
    tokens_for,
)
from tests.test_escalation import HOUR, build_world, overdue_case
from tests.test_run_script import ROOT, free_port

TOKEN = "metrics-token-for-tests-0123456789"
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}
PHONE = "13800138066"
NEW_PHONE = "13900139011"
REPORT_RULE = "/api/v1/reports/<int:report_id>"


@pytest.fixture()
def metrics_on(app, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", TOKEN)


def scrape(client) -> dict[tuple[str, frozenset], float]:
    resp = client.get("/metrics", headers=SCRAPE)
    assert resp.status_code == 200, resp.data
    assert resp.mimetype == "text/plain"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(resp.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@contextmanager
def app_log_output(log_format: str = "json"):
    """What the app's own stderr handler writes, in `log_format`: the real handler, its filters and formatter."""
    root = logging.getLogger()
    handler = next(h for h in root.handlers if isinstance(h, logs._AppHandler))  # noqa: SLF001 - the real one
    buffer = io.StringIO()
    old_stream, old_formatter, old_level = handler.setStream(buffer), handler.formatter, root.level
    handler.setFormatter(logs.formatter(log_format))
    root.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        handler.setStream(old_stream)
        handler.setFormatter(old_formatter)
        root.setLevel(old_level)


def json_lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


# ---- GET /metrics ----------------------------------------------------------------------------------------------------


def test_metrics_is_404_while_no_token_is_configured(app, client):
    assert app.config["METRICS_TOKEN"] == ""
    resp = client.get("/metrics", headers=SCRAPE)
    assert resp.status_code == 404
    assert resp.mimetype == "application/problem+json"
    assert b"grid_http_requests_total" not in resp.data


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789abcdef"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer"},
    ],
)
def test_metrics_refuses_a_missing_or_wrong_token(client, metrics_on, headers):
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 401
    assert resp.mimetype == "application/problem+json"
    assert resp.json["code"] == "invalid_token"
    assert b"grid_http_requests_total" not in resp.data


def test_metrics_is_not_in_the_api_document(client):
    spec = client.get("/api/v1/openapi.json").json
    assert not any("metrics" in path for path in spec["paths"])


def test_a_request_is_counted_by_its_route_template_method_and_status(client, metrics_on):
    before = scrape(client)
    assert client.get("/api/v1/reports/777").status_code == 401
    after = scrape(client)
    key = {"route": REPORT_RULE, "method": "GET", "status": "401"}
    assert value(after, "grid_http_requests_total", **key) == value(before, "grid_http_requests_total", **key) + 1
    count = {"route": REPORT_RULE, "method": "GET"}
    assert value(after, "grid_http_request_duration_seconds_count", **count) == (
        value(before, "grid_http_request_duration_seconds_count", **count) + 1
    )
    assert value(after, "grid_http_request_duration_seconds_bucket", le="+Inf", **count) >= 1
    # The path itself never becomes a series.
    assert not any(dict(labels).get("route") == "/api/v1/reports/777" for _name, labels in after)


def test_an_unmatched_path_counts_under_one_route(client, metrics_on):
    before = scrape(client)
    assert client.get("/no/such/13800138000").status_code == 404
    after = scrape(client)
    key = {"route": "<unmatched>", "method": "GET", "status": "404"}
    assert value(after, "grid_http_requests_total", **key) == value(before, "grid_http_requests_total", **key) + 1


def test_the_scrape_reads_the_backlog_gauges_and_the_pool(db, client, metrics_on):
    user = make_user("resident")
    db.session.add(Notification(user_id=user.id, kind="test", title="t"))
    db.session.commit()
    samples = scrape(client)
    unread = db.session.scalar(select(func.count()).select_from(Notification).where(Notification.read_at.is_(None)))
    assert unread >= 1
    assert value(samples, "grid_notifications_unread") == unread
    assert value(samples, "grid_idempotency_keys") == db.session.scalar(
        select(func.count()).select_from(IdempotencyKey)
    )
    for name in (
        "grid_sync_changes_span",
        "grid_sync_changes_oldest_age_seconds",
        "grid_idempotency_keys_expired",
        "grid_escalation_overdue_seconds",
        "grid_db_pool_checked_out",
        "grid_db_pool_capacity",
    ):
        assert (name, frozenset()) in samples, name
    # The notification's insert wrote a change-log row (a trigger), so the log is not empty.
    assert value(samples, "grid_sync_changes_span") >= 1
    assert value(samples, "grid_db_up") == 1
    assert value(samples, "grid_db_pool_capacity") >= 1


def test_a_sweep_is_counted_and_logs_one_line_per_batch(app, db, client, metrics_on):
    world = build_world()
    overdue_case(world, deadline_at=datetime.now(UTC) - HOUR)
    overdue_case(world, deadline_at=datetime.now(UTC) - HOUR)
    before = scrape(client)
    with app_log_output("json") as output:
        result = app.test_cli_runner().invoke(args=["escalate", "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    after = scrape(client)
    assert value(after, "grid_escalation_sweeps_total") == value(before, "grid_escalation_sweeps_total") + 1
    assert value(after, "grid_escalation_cases_escalated_total") == (
        value(before, "grid_escalation_cases_escalated_total") + 2
    )
    assert value(after, "grid_escalation_cases_claimed_total") >= value(before, "grid_escalation_cases_claimed_total")
    assert value(after, "grid_escalation_sweep_duration_seconds_count") == (
        value(before, "grid_escalation_sweep_duration_seconds_count") + 1
    )
    assert value(after, "grid_escalation_last_sweep_timestamp_seconds") > datetime.now(UTC).timestamp() - 3600
    # Overdue for an hour before the sweep; nothing waits after it (the next level's deadline is ahead).
    assert value(before, "grid_escalation_overdue_seconds") >= 3500
    assert value(after, "grid_escalation_overdue_seconds") == 0

    batches = [line for line in json_lines(output) if line["logger"] == "app.sweep"]
    # Batches of one: one escalated each, then one that finds nothing left (marking critical and reminding waited
    # for the escalations, so they come in the last batches).
    assert [line["batch"] for line in batches] == list(range(1, len(batches) + 1))
    assert sum(line["escalated"] for line in batches) == 2
    assert batches[-1]["claimed"] == 0
    for line in batches:
        assert line["command"] == "escalate"
        assert line["level"] == "info"
        assert isinstance(line["duration_ms"], float)
        assert {"time", "claimed", "critical", "reminded", "notifications", "request_id"} <= set(line)
    # One sweep, one id across its batches.
    assert len({line["request_id"] for line in batches}) == 1
    assert re.fullmatch(r"[0-9a-f]{32}", batches[0]["request_id"])


def test_the_purge_and_prune_sweeps_log_their_batches(app, db):
    with app_log_output("json") as output:
        assert app.test_cli_runner().invoke(args=["idempotency", "purge"]).exit_code == 0
        assert app.test_cli_runner().invoke(args=["sync", "prune", "--days", "30"]).exit_code == 0
    lines = [line for line in json_lines(output) if line["logger"] == "app.sweep"]
    assert [(line["command"], line["batch"]) for line in lines] == [("idempotency purge", 1), ("sync prune", 1)]
    assert all(isinstance(line["deleted"], int) for line in lines)


# ---- the request id and the request's log line -----------------------------------------------------------------------


def test_a_request_id_is_generated_and_echoed(client):
    with app_log_output("json") as output:
        resp = client.get("/healthz")
    request_id = resp.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    (line,) = [line for line in json_lines(output) if line["logger"] == "app.request"]
    assert line["request_id"] == request_id
    assert client.get("/healthz").headers["X-Request-ID"] != request_id


def test_a_clients_request_id_is_echoed_and_logged(client):
    with app_log_output("json") as output:
        resp = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.01:retry-2"})
    assert resp.headers["X-Request-ID"] == "lb-7f3a.01:retry-2"
    (line,) = [line for line in json_lines(output) if line["logger"] == "app.request"]
    assert line["request_id"] == "lb-7f3a.01:retry-2"


@pytest.mark.parametrize(
    "sent",
    [
        "x" * 129,  # too long
        "has space",
        "semi;colon",
        '"quoted"',
        "-starts-with-a-dash",
        "ünïcode",
        PHONE,  # safe characters, but a phone number must not be logged or echoed
        "g311_abcdefgh",  # nor an Open311 key
    ],
)
def test_an_unsafe_request_id_is_replaced(client, sent):
    resp = client.get("/healthz", headers={"X-Request-ID": sent})
    assert resp.headers["X-Request-ID"] != sent
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"])


def test_the_request_id_reaches_the_apps_other_log_lines(app, client, monkeypatch):
    from app.api import health

    def noisy(_app):
        logging.getLogger("app.test").warning("checking the database")
        raise RuntimeError("probe failed")

    monkeypatch.setattr(health, "database_state", noisy)
    with app_log_output("json") as output:
        resp = client.get("/readyz", headers={"X-Request-ID": "probe-1"})
    assert resp.status_code == 500
    lines = json_lines(output)
    assert {line["request_id"] for line in lines} == {"probe-1"}
    assert {"app.test", "app.request"} <= {line["logger"] for line in lines}


def test_the_json_line_of_a_signed_in_request(db, client):
    user = make_user("worker")
    with app_log_output("json") as output:
        resp = client.get("/api/v1/me", headers={**auth_header(user), "X-Request-ID": "req-42"})
    assert resp.status_code == 200
    (line,) = [line for line in json_lines(output) if line["logger"] == "app.request"]
    assert set(line) >= {"time", "level", "message", "request_id", "route", "method", "status", "duration_ms"}
    assert line["request_id"] == "req-42"
    assert line["route"] == "/api/v1/me" and line["method"] == "GET" and line["status"] == 200
    assert line["user_id"] == user.id and line["role"] == "worker"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert datetime.fromisoformat(line["time"]).tzinfo is not None


def test_an_anonymous_request_logs_no_user(client):
    with app_log_output("json") as output:
        assert client.get("/api/v1/reports/5").status_code == 401
    (line,) = [line for line in json_lines(output) if line["logger"] == "app.request"]
    assert line["route"] == REPORT_RULE and line["status"] == 401
    assert line["user_id"] is None and line["role"] is None


def test_the_text_format_names_the_request_id(client):
    with app_log_output("text") as output:
        client.get("/healthz", headers={"X-Request-ID": "text-1"})
    assert re.search(r" INFO app\.request \[text-1\]: GET /healthz 200 [\d.]+ ms", output.getvalue())


# ---- no secret in any log line -------------------------------------------------------------------------------


def test_requests_carrying_secrets_leave_none_in_the_json_log(db, client):
    make_test_grid()
    make_category("0101")
    resident = make_user("resident", username=PHONE, phone=PHONE)
    key = make_api_key().key
    tokens = tokens_for(resident)
    secrets = [PASSWORD, PHONE, NEW_PHONE, key, tokens.access_token, tokens.refresh_token]
    with app_log_output("json") as output:
        assert client.post("/api/v1/auth/login", json={"username": PHONE, "password": PASSWORD}).status_code == 200
        assert (
            client.post("/api/v1/auth/login", json={"username": PHONE, "password": "x" + PASSWORD}).status_code == 401
        )
        assert client.post("/api/v1/auth/register", json={"phone": NEW_PHONE, "password": PASSWORD}).status_code == 201
        assert client.post("/api/v1/auth/refresh", json={"refresh_token": tokens.refresh_token}).status_code == 200
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens.access_token}", "X-Request-ID": PHONE})
        assert me.status_code == 200
        filed = client.post(
            f"/open311/v2/requests.json?api_key={key}",
            data={"service_code": "0101", "lat": 39.905, "long": 116.405, "phone": PHONE, "email": "a@b.example"},
        )
        assert filed.status_code == 200, filed.data
        assert client.post("/open311/v2/requests.json", data={"api_key": key, "phone": PHONE}).status_code == 400
        # A key and a phone number in a path: the route template is logged, never the path.
        assert client.get(f"/open311/v2/tokens/{key}").status_code in (200, 404)
    text = output.getvalue()
    lines = json_lines(output)
    routes = {(line["method"], line["route"]) for line in lines if line["logger"] == "app.request"}
    assert {
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/refresh"),
        ("GET", "/api/v1/me"),
        ("POST", "/open311/v2/requests.<fmt>"),
    } <= routes
    filed_line = next(line for line in lines if line.get("route") == "/open311/v2/requests.<fmt>")
    assert filed_line["user_id"] is not None and filed_line["role"] == "resident"
    for secret in secrets:
        assert secret not in text, secret


def test_the_json_formatter_redacts_fields_beside_the_message():
    record = logging.LogRecord("app.test", logging.INFO, __file__, 1, "sign-in by %s", (PHONE,), None)
    record.body = json.dumps({"password": "hunter2", "refresh_token": "r3fresh"})
    record.caller = PHONE
    record.key = "g311_secretkey"
    line = logs.formatter("json").format(record)
    parsed = json.loads(line)
    assert parsed["message"] == f"sign-in by {MASK}"
    assert parsed["caller"] == MASK and parsed["key"] == MASK
    assert json.loads(parsed["body"]) == {"password": MASK, "refresh_token": MASK}
    for secret in (PHONE, "hunter2", "r3fresh", "g311_secretkey"):
        assert secret not in line


def test_redact_masks_secrets_inside_an_escaped_json_string():
    inner = json.dumps({"api_key": "k1", "password": 'a"b', "name": "ok"})
    outer = json.dumps({"body": inner})
    clean = redact(outer)
    assert json.loads(json.loads(clean)["body"]) == {"api_key": MASK, "password": MASK, "name": "ok"}


# ---- configuration ---------------------------------------------------------------------------------------------


def test_log_format_and_metrics_token_are_checked(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.delenv("METRICS_TOKEN", raising=False)
    assert load_config("development").LOG_FORMAT == "text"
    assert load_config("development").METRICS_TOKEN == ""
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    assert load_config("development").LOG_FORMAT == "json"
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        load_config("development")
    monkeypatch.delenv("LOG_FORMAT")
    monkeypatch.setenv("METRICS_TOKEN", "short")
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        load_config("development")


def test_production_logs_json_by_default(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.setenv("JWT_SECRET", "s" * 32)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://grid@db.internal:5432/grid")
    assert load_config("production").LOG_FORMAT == "json"


# ---- for real: gunicorn with two workers and a sweep sharing one directory ------------------------------------------


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), dict(err.headers)


def _samples(body: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_gunicorn_workers_and_a_sweep_are_summed_in_one_scrape(app, tmp_path):
    """gunicorn.conf.py as scripts/run.sh starts it: two workers, JSON logs, the sweep given the same directory."""
    port = free_port()
    directory = tmp_path / "prometheus"
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "INSTANCE_PATH": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "METRICS_TOKEN": TOKEN,
        "LOG_FORMAT": "json",
        "FLASK_APP": "wsgi",
    }
    bin_dir = Path(sys.executable).parent
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log_file:
        server = subprocess.Popen(
            [str(bin_dir / "gunicorn"), "--config", "gunicorn.conf.py", "--workers", "2"]
            + ["--bind", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    _get(f"{base}/healthz")
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.2)
            before = _samples(_get(f"{base}/metrics", SCRAPE)[1])
            requests = 20
            for i in range(requests):
                status, _body, headers = _get(f"{base}/healthz", {"X-Request-ID": f"soak-{i}"})
                assert status == 200 and headers["X-Request-ID"] == f"soak-{i}"
            sweep = subprocess.run(
                [str(bin_dir / "flask"), "escalate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
            )
            assert sweep.returncode == 0, sweep.stderr
            assert _get(f"{base}/metrics")[0] == 401
            status, body, headers = _get(f"{base}/metrics", SCRAPE)
        finally:
            server.terminate()
            server.wait(timeout=60)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = _samples(body)
    healthz = {"route": "/healthz", "method": "GET", "status": "200"}
    assert value(samples, "grid_http_requests_total", **healthz) == (
        value(before, "grid_http_requests_total", **healthz) + requests
    )
    assert value(samples, "grid_escalation_sweeps_total") == 1
    assert value(samples, "grid_escalation_last_sweep_timestamp_seconds") > 0
    assert value(samples, "grid_db_pool_capacity") > 0
    # Both workers wrote their own files (and the sweep its own): the sum is over processes, not one worker's.
    pids = {path.stem.rsplit("_", 1)[-1] for path in directory.glob("counter_*.db")}
    assert len(pids) >= 3, pids
    # One JSON line per request in the server's output, with the client's id.
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    ids = {line["request_id"] for line in lines if line.get("logger") == "app.request" and line["route"] == "/healthz"}
    assert {f"soak-{i}" for i in range(requests)} <= ids
    sweep_lines = [json.loads(line) for line in sweep.stderr.splitlines() if line.startswith("{")]
    assert [line["command"] for line in sweep_lines if line.get("logger") == "app.sweep"] == ["escalate"]
