"""Demo smoke: after `flask seed-demo`, every GET of the OpenAPI document as every demo account, and the README's curl
walk-through run by bash with curl answered by the test client, answer without a 5xx."""

from __future__ import annotations

import io
import mimetypes
import os
import re
import select
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Category, Report
from app.models.base import utcnow
from app.services.cases.escalation import escalate_batch
from app.services.demo import DEMO_GRID, demo_accounts
from tests.factories import set_case
from tests.test_attachments import jpeg

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"
# The README's point: inside worker1's primary grid cell.
LON, LAT = 120.1012, 30.2411
ACCOUNTS = [account.username for account in demo_accounts()] + [None]  # None: anonymous


@dataclass
class Exchange:
    method: str
    path: str
    status: int


@dataclass
class Demo:
    password: str
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, username: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"} if username else {}


@pytest.fixture()
def demo(app, client, db, tmp_path, monkeypatch) -> Demo:
    monkeypatch.setitem(app.config, "UPLOAD_DIR", str(tmp_path / "uploads"))
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    world = Demo(password=app.config["DEMO_PASSWORD"])
    for username in ACCOUNTS[:-1]:
        resp = client.post(f"{API}/auth/login", json={"username": username, "password": world.password})
        assert resp.status_code == 200, (username, resp.json)
        world.tokens[username] = resp.json["access_token"]
    return world


# ---- every GET of the OpenAPI document, as every demo account ----------------------------------------------------


def _act(client, demo: Demo, username: str, report_id: int, action: str, body: dict) -> dict:
    headers = demo.headers(username)
    etag = client.get(f"{API}/reports/{report_id}", headers=headers).headers["ETag"]
    resp = client.post(f"{API}/reports/{report_id}/actions/{action}", json=body, headers={**headers, "If-Match": etag})
    assert resp.status_code == 200, (action, resp.json)
    return resp.json


def _file(client, demo: Demo, username: str, category: str, description: str) -> dict:
    resp = client.post(
        f"{API}/reports",
        headers=demo.headers(username),
        json={
            "category_code": category,
            "description": description,
            "address": "演示路 1 号",
            "location": {"lon": LON, "lat": LAT, "crs": "wgs84"},
            "attributes": ANSWERS.get(category, {}),
        },
    )
    assert resp.status_code == 201, resp.json
    return resp.json


# The demo's required Open311 attributes (app/services/demo.py), which POST /reports asks for as Open311 does.
ANSWERS = {"0102": {"volume": "small"}, "0502": {"diameter_m": 1.5}}


@pytest.fixture()
def demo_ids(client, db, demo) -> dict:
    """A demo day through the API: cases accepted, rejected and in progress, a photo, a rejection notice, a patrol,
    an Open311 request and an escalation; returns the ids and values the GETs' parameters take."""
    resident, worker, supervisor = "13800138000", "worker1", "street_supervisor"
    case = _file(client, demo, resident, "0102", "楼下垃圾堆了三天")
    _act(client, demo, supervisor, case["id"], "accept", {})
    photo = client.post(
        f"{API}/reports/{case['id']}/attachments",
        headers=demo.headers(resident),
        data={"stage": "before", "file": (io.BytesIO(jpeg()), "现场.jpg")},
        content_type="multipart/form-data",
    )
    assert photo.status_code == 201, photo.json
    rejected = _file(client, demo, resident, "0101", "不是违建")
    _act(client, demo, supervisor, rejected["id"], "reject", {"reason": "经核实为合法建筑"})
    own = _file(client, demo, worker, "0104", "路面油污")
    _act(client, demo, worker, own["id"], "start", {})
    checkin = client.post(
        f"{API}/patrols/checkins",
        headers=demo.headers(worker),
        json={"points": [{"time": utcnow().isoformat(), "lon": LON, "lat": LAT, "accuracy": 5}]},
    )
    assert checkin.status_code == 201, checkin.json
    key = client.post(f"{API}/api-keys", headers=demo.headers("admin"), json={"name": "civic app"})
    assert key.status_code == 201, key.json
    filed = client.post(
        "/open311/v2/requests.json",
        data={"api_key": key.json["key"], "service_code": "0101", "lat": LAT, "long": LON, "description": "违建"},
    )
    assert filed.status_code == 200, filed.get_data(as_text=True)
    # Past its deadline, the accepted case climbs one level in the sweep.
    report = db.session.get(Report, case["id"])
    set_case(report, deadline_at=utcnow() - timedelta(hours=1), warn_at=utcnow() - timedelta(hours=2))
    escalated = client.application.test_cli_runner().invoke(args=["escalate"])
    assert escalated.exit_code == 0, escalated.output

    me = client.get(f"{API}/me", headers=demo.headers(worker)).json
    tz = ZoneInfo(client.application.config["TIMEZONE"])
    today = datetime.now(tz).date()
    now = datetime.now(tz).replace(microsecond=0)
    return {
        "cell_id": report.cell_id,
        "report_id": case["id"],
        "attachment_id": photo.json["id"],
        "user_id": me["id"],
        "day": today.isoformat(),
        "lon": LON,
        "lat": LAT,
        ("cell", "string"): DEMO_GRID.district_code,
        ("from", "date"): (today - timedelta(days=30)).isoformat(),
        ("to", "date"): today.isoformat(),
        ("from", "date-time"): (now - timedelta(days=30)).isoformat(),
        ("to", "date-time"): (now + timedelta(days=1)).isoformat(),
        "open311_code": "0102",
        "open311_request": filed.json[0]["service_request_id"],
        "open311_token": filed.json[0].get("token") or "none",
        "api_key": key.json["key"],
    }


def _get_operations(spec: dict) -> list[tuple[str, list[dict]]]:
    ops = []
    for path, item in spec["paths"].items():
        if "get" in item:
            params = item.get("parameters", []) + item["get"].get("parameters", [])
            # A cell (`cell` or `cell_id`) is needed by some operations, which OpenAPI cannot mark as "one of the
            # two required": every operation that takes one gets the district's code.
            ops.append((path, [p for p in params if p["in"] == "path" or p.get("required") or p["name"] == "cell"]))
    return ops


def _url(path: str, params: list[dict], ids: dict) -> str:
    query = {}
    for param in params:
        schema = param.get("schema", {})
        key = param["name"] if param["name"] in ids else (param["name"], schema.get("format") or schema.get("type"))
        if key not in ids:
            pytest.fail(f"GET {path} needs {param['name']} ({schema}): give the demo smoke a value for it")
        if param["in"] == "path":
            path = path.replace("{%s}" % param["name"], str(ids[key]))
        else:
            query[param["name"]] = ids[key]
    return path + ("?" + urlencode(query) if query else "")


def test_every_documented_get_answers_every_demo_account(client, demo, demo_ids):
    operations = _get_operations(client.get(f"{API}/openapi.json").json)
    assert len(operations) >= 30
    seen: list[Exchange] = []
    for username in ACCOUNTS:
        for path, params in operations:
            url = _url(path, params, demo_ids)
            resp = client.get(url, headers=demo.headers(username))
            seen.append(Exchange(username or "anonymous", url, resp.status_code))
    assert len(seen) == len(operations) * len(ACCOUNTS)
    server_errors = [e for e in seen if e.status >= 500]
    assert not server_errors, server_errors
    # With real ids, the admin reads everything; anonymous callers get the public reads or 401.
    assert [e for e in seen if e.method == "admin" and not 200 <= e.status < 300] == []
    assert {e.status for e in seen if e.method == "anonymous"} <= {200, 401}


def test_open311_gets_answer_anonymous_and_key_callers(client, demo, demo_ids):
    ids = demo_ids
    paths = [
        "discovery",
        "services",
        f"services/{ids['open311_code']}",
        "requests",
        f"requests/{ids['open311_request']}",
        f"tokens/{ids['open311_token']}",
    ]
    for query in ("", f"?api_key={ids['api_key']}"):
        for path in paths:
            for fmt in ("json", "xml"):
                resp = client.get(f"/open311/v2/{path}.{fmt}{query}")
                assert resp.status_code < 500, (path, fmt, resp.get_data(as_text=True))
                assert resp.status_code == 200 or path.startswith("tokens/"), (path, fmt, resp.status_code)


# ---- the README's curl walk-through ---------------------------------------------------------------------------

CURL_SHIM = """
curl() {{  # answered by the test client: argv out on fd {req}, "<size>\\n<output>" back on fd {resp}
  printf '%s\\0' "$PWD" "$#" "$@" >&{req}
  local size
  IFS= read -r size <&{resp}
  head -c "$size" <&{resp}
}}
python3() {{ "{python}" "$@"; }}
sleep() {{  # the walk-through's wait: the test runs the escalation sweep that much later instead of waiting
  printf '%s\\0' "$PWD" 2 __sleep__ "$1" >&{req}
  local size
  IFS= read -r size <&{resp}
  head -c "$size" <&{resp}
}}
"""


def readme_walkthrough(password: str) -> str:
    """The ```sh blocks of the README's walk-through, in order, as one shell session (the README says "same shell")."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## API walk-through (curl)", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) >= 3, "the README's walk-through lost its ```sh blocks"
    # The README shows the development password; the test app's is DEMO_PASSWORD.
    return "\n".join(blocks).replace("grid-demo-2026", password)


def _curl_request(args: list[str]) -> dict:
    """curl's command line as the README uses it; an option this does not know fails loudly."""
    request = {"method": None, "headers": {}, "data": [], "form": [], "dump": None, "output": None, "url": None}
    options = {
        "-X": "method",
        "--request": "method",
        "-D": "dump",
        "--dump-header": "dump",
        "-o": "output",
        "--output": "output",
    }
    it = iter(args)
    for arg in it:
        if arg in ("-s", "--silent", "-S", "--show-error", "-sS", "-L"):
            continue
        if arg in options:
            request[options[arg]] = next(it)
        elif arg in ("-H", "--header"):
            name, _, value = next(it).partition(":")
            request["headers"][name.strip()] = value.strip()
        elif arg in ("-d", "--data", "--data-raw"):
            request["data"].append(next(it))
        elif arg in ("-F", "--form"):
            request["form"].append(next(it))
        elif arg.startswith("-"):
            raise AssertionError(f"the README's curl uses {arg}; teach tests/test_demo_smoke.py what it means")
        else:
            request["url"] = arg
    return request


@dataclass
class Clock:
    """How far the walk-through's `sleep`s have moved time on: `make run`'s sweep, run at that later moment."""

    slept: timedelta = timedelta(0)

    def sleep(self, seconds: str) -> None:
        self.slept += timedelta(seconds=float(seconds))
        now = utcnow() + self.slept
        while escalate_batch(now).claimed:
            # As `flask escalate` does: each batch commits (inside the test's outer transaction).
            db.session.commit()
        db.session.commit()


def _answer(client, args: list[str], cwd: str, log: list[Exchange], clock: Clock) -> bytes:
    if args[0] == "__sleep__":
        clock.sleep(args[1])
        return b""
    req = _curl_request(args)
    url = urlsplit(req["url"])
    path = url.path + (f"?{url.query}" if url.query else "")
    headers = dict(req["headers"])
    kwargs: dict = {}
    if req["form"]:
        form = {}
        for item in req["form"]:
            name, _, value = item.partition("=")
            if value.startswith("@"):
                file = Path(cwd) / value[1:]
                form[name] = (io.BytesIO(file.read_bytes()), file.name, mimetypes.guess_type(file.name)[0])
            else:
                form[name] = value
        kwargs.update(data=form, content_type="multipart/form-data")
    elif req["data"]:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        kwargs["data"] = "&".join(req["data"]).encode()
    method = req["method"] or ("POST" if req["form"] or req["data"] else "GET")
    resp = client.open(path, method=method, headers=headers, **kwargs)
    log.append(Exchange(method, path, resp.status_code))
    out = b""
    if req["dump"] == "-":
        out += f"HTTP/1.1 {resp.status}\r\n".encode()
        out += "".join(f"{name}: {value}\r\n" for name, value in resp.headers.items()).encode() + b"\r\n"
    elif req["dump"] is not None:
        raise AssertionError(f"curl -D {req['dump']}: only -D - is replayed")
    if req["output"] in (None, "-"):
        out += resp.data
    elif req["output"] != "/dev/null":
        raise AssertionError(f"curl -o {req['output']}: only -o /dev/null is replayed")
    return out


def replay(client, script: str, cwd: Path, timeout_s: float = 120) -> tuple[list[Exchange], int, str]:
    """Run the script in bash with curl answered, request by request, by the test client (inside the test's
    transaction): the shell expands $TOKEN, $ID, $(...) and the README's act function as a reader's would."""
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    prologue = CURL_SHIM.format(req=req_w, resp=resp_r, python=sys.executable)
    (cwd / "walkthrough.sh").write_text(prologue + script)
    with open(cwd / "stdout", "wb") as stdout:
        proc = subprocess.Popen(
            ["bash", "walkthrough.sh"],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            pass_fds=(req_w, resp_r),
        )
    os.close(req_w)
    os.close(resp_r)
    log: list[Exchange] = []
    clock = Clock()
    pending = b""
    try:
        while True:
            ready, _, _ = select.select([req_r], [], [], timeout_s)
            if not ready:
                raise AssertionError(f"the walk-through sent nothing for {timeout_s} s")
            chunk = os.read(req_r, 65536)
            if not chunk:
                break  # bash and everything it started have exited
            pending += chunk
            while True:
                fields = pending.split(b"\0")
                if len(fields) < 3 or len(fields) - 1 < 2 + int(fields[1]):
                    break
                argc = int(fields[1])
                cwd_field, args = fields[0].decode(), [f.decode() for f in fields[2 : 2 + argc]]
                pending = b"\0".join(fields[2 + argc :])
                out = _answer(client, args, cwd_field, log, clock)
                os.write(resp_w, f"{len(out)}\n".encode())
                view = memoryview(out)
                while view:
                    view = view[os.write(resp_w, view) :]
        code = proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(req_r)
        os.close(resp_w)
    return log, code, (cwd / "stdout").read_text(errors="replace")


def test_the_readme_walkthrough_runs_against_the_demo(client, db, demo, tmp_path):
    script = readme_walkthrough(demo.password)
    log, code, output = replay(client, script, tmp_path)
    assert code == 0, output
    # The README made its own photo (a JPEG the service takes) and uploaded it before the case was closed.
    assert (tmp_path / "photo.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    uploads = [n for n, e in enumerate(log) if e.path.endswith("/attachments") and e.method == "POST"]
    verify = next(n for n, e in enumerate(log) if e.path.endswith("/actions/verify"))
    assert uploads and log[uploads[0]].status == 201 and uploads[0] < verify, log
    # Every curl ran: the ones written out, and the act function's two per call.
    calls = len(re.findall(r"\bcurl\b", script))
    acts = len(re.findall(r"^act ", script, re.M))
    assert len(log) == calls - 2 + 2 * acts, (log, output)
    assert not [e for e in log if e.status >= 500], log
    # The walk-through is a story that works: every step succeeds (a 4xx means the README and the service drifted).
    assert [e for e in log if not 200 <= e.status < 300] == [], (log, output)
    assert any(e.path.endswith("/actions/verify") and e.status == 200 for e in log)
    # The 演示 case escalated once its five minutes had passed (the sleep ran the sweep that much later).
    db.session.expire_all()
    demo_case = db.session.scalars(
        sa.select(Report).join(Category, Category.id == Report.category_id).where(Category.code == "0999")
    ).one()
    assert (demo_case.escalation_level, demo_case.late_since is not None) == (1, True), output
    assert f"{demo_case.case_number} 1 True" in output, output
    assert f'"case_number":"{demo_case.case_number}"' in output.replace(" ", ""), "GET /escalations lists it"


def test_the_replay_hands_the_shell_what_curl_would(client, db, demo, tmp_path):
    script = (
        """
TOKEN=$(curl -s -X POST http://127.0.0.1:8000/api/v1/auth/login -H 'Content-Type: application/json' \\
  -d '{"username": "admin", "password": "%s"}' \\
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -s -D - -o /dev/null "http://127.0.0.1:8000/api/v1/me" -H "Authorization: Bearer $TOKEN" | tr -d '\\r' \\
  | sed -n 's/^HTTP[^ ]* //p'
curl -s "http://127.0.0.1:8000/api/v1/me" -H "Authorization: Bearer ${TOKEN}x"
"""
        % demo.password
    )
    log, code, output = replay(client, script, tmp_path)
    assert code == 0, output
    assert [(e.method, e.path, e.status) for e in log] == [
        ("POST", "/api/v1/auth/login", 200),
        ("GET", "/api/v1/me", 200),
        ("GET", "/api/v1/me", 401),
    ]
    assert output.startswith("200 OK\n"), output
    assert '"code":"invalid_token"' in output.replace(" ", ""), output
