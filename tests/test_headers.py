"""Headers on every answer: no-store for credentialed and changing requests, nosniff, a CSP, strict on the docs."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import threading

import pytest
from werkzeug.serving import make_server

from app.api.headers import DATA_CSP, docs_csp
from tests.factories import auth_header, make_api_key, make_case, make_category, make_test_grid, make_user
from tests.test_attachments import png

API = "/api/v1"
SW = "11010500100101"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture()
def world(db):
    cells = make_test_grid()
    resident = make_user("resident", phone="13800138001")
    worker = make_user("worker", served=[cells[SW]])
    case = make_case(resident, make_category(), cells[SW], status="in_progress", assignee_id=worker.id)
    return resident, worker, case


def assert_common(resp) -> None:
    assert resp.headers["X-Content-Type-Options"] == "nosniff", resp.request.path
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"], resp.request.path


# ---- nosniff and a CSP everywhere -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, status",
    [
        ("/healthz", 200),
        ("/readyz", 200),
        (f"{API}/openapi.json", 200),
        (f"{API}/categories", 200),
        (f"{API}/docs/assets/swagger-ui.css", 200),
        (f"{API}/docs/swagger-init.js", 200),
        (f"{API}/nope", 404),
        (f"{API}/me", 401),
        ("/open311/v2/services.xml", 200),
        ("/open311/v2/services.yaml", 404),
        ("/open311/v2/requests/nope.xml", 404),
    ],
)
def test_every_answer_is_nosniff_and_unframeable(client, path, status):
    resp = client.get(path)
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert_common(resp)
    assert resp.headers["Content-Security-Policy"] == DATA_CSP


def test_errors_before_the_view_and_405_carry_them_too(client):
    for resp in (
        client.post(f"{API}/auth/login", data="x", content_type="text/plain"),  # 415 before the view
        client.put(f"{API}/categories"),  # 405
        client.post(f"{API}/auth/login", data="{", content_type="application/json"),
    ):  # 400
        assert resp.status_code in (400, 405, 415)
        assert_common(resp)
        assert resp.headers["Cache-Control"] == "no-store"


# ---- Cache-Control: no-store ----------------------------------------------------------------------------------


def test_answers_to_a_bearer_token_are_no_store(client, world):
    resident, _, case = world
    headers = auth_header(resident)
    for path in ("/me", "/me/reports", f"/reports/{case.id}", "/categories"):
        resp = client.get(API + path, headers=headers)
        assert resp.status_code == 200, path
        assert resp.headers["Cache-Control"] == "no-store", path
    # A wrong token was a credential too: its 401 is no one's to keep.
    resp = client.get(f"{API}/me", headers={"Authorization": "Bearer not-a-token"})
    assert resp.status_code == 401
    assert resp.headers["Cache-Control"] == "no-store"


def test_answers_that_change_or_sign_in_are_no_store(client, world):
    resident, _, _ = world
    resp = client.post(f"{API}/auth/login", json={"username": resident.username, "password": "correct-horse-9"})
    assert resp.status_code == 200 and resp.json["access_token"]
    assert resp.headers["Cache-Control"] == "no-store"
    resp = client.post(f"{API}/auth/login", json={"username": resident.username, "password": "wrong-password"})
    assert resp.status_code == 401
    assert resp.headers["Cache-Control"] == "no-store"


def test_open311_api_key_answers_are_no_store(client, db):
    make_test_grid()
    make_category("0101")
    key = make_api_key().key
    resp = client.get(f"/open311/v2/requests.json?api_key={key}")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    resp = client.post(
        "/open311/v2/requests.json", data={"api_key": key, "service_code": "0101", "lat": 39.905, "long": 116.405}
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["Cache-Control"] == "no-store"
    resp = client.post("/open311/v2/requests.xml", data={"api_key": "wrong", "service_code": "0101"})
    assert resp.status_code == 403
    assert_common(resp)
    assert resp.headers["Cache-Control"] == "no-store"


def test_public_anonymous_reads_stay_cacheable(client, db):
    for path in (f"{API}/categories", "/open311/v2/services.json", f"{API}/openapi.json", f"{API}/docs"):
        resp = client.get(path)
        assert resp.status_code == 200
        assert "no-store" not in resp.headers.get("Cache-Control", ""), path


def test_photo_downloads_are_no_store_and_still_revalidate(client, world, app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "UPLOAD_DIR", str(tmp_path))
    resident, worker, case = world
    data = png()
    resp = client.post(
        f"{API}/reports/{case.id}/attachments",
        headers=auth_header(worker),
        data={"stage": "after", "file": (io.BytesIO(data), "x.png", "image/png")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 201, resp.json
    path = f"{API}/reports/{case.id}/attachments/{resp.json['id']}/content"
    got = client.get(path, headers=auth_header(resident))
    assert got.status_code == 200 and got.data == data
    assert got.headers["Cache-Control"] == "no-store"
    assert_common(got)
    again = client.get(path, headers={**auth_header(resident), "If-None-Match": got.headers["ETag"]})
    assert again.status_code == 304
    assert again.headers["Cache-Control"] == "no-store"


# ---- the docs page ----------------------------------------------------------------------------------------------


def test_the_docs_page_has_a_strict_csp_and_no_inline_code(client):
    resp = client.get(f"{API}/docs")
    assert resp.status_code == 200
    csp = resp.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert "unsafe" not in csp
    html = resp.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    assert "<style" not in html and not re.search(r"\s(style|on[a-z]+)=", html)


def test_a_swagger_ui_elsewhere_is_allowed_by_its_origin_only():
    csp = docs_csp("https://cdn.example.org/swagger-ui/5/")
    assert "script-src 'self' https://cdn.example.org;" in csp
    assert "style-src 'self' https://cdn.example.org;" in csp
    assert docs_csp("/api/v1/docs/assets/") == docs_csp("/elsewhere/")


@pytest.fixture()
def live_server(app):
    """The app on a loopback port for a real browser; the docs page and the spec need no database."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


# Under CI (.ci/run installs it) a missing Chromium fails the test instead of skipping it.
@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="needs Chromium (Debian's chromium package)")
def test_swagger_ui_renders_under_its_csp_in_chromium(live_server, client, tmp_path):
    operations = sum(
        1
        for item in client.get(f"{API}/openapi.json").json["paths"].values()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )
    run = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--dump-dom",
            f"{live_server}{API}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert not [line for line in console if "Content Security Policy" in line or "Refused" in line], console
    # Every operation of the spec is drawn: the bundle ran, started by the script file, and fetched the spec.
    assert run.stdout.count('class="opblock opblock-') == operations, console
