"""make soak: two app hosts behind HAProxy, two sweepers, PostGIS and Redis on loopback, driven by clients through faults."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PASSWORD = "grid-demo-2026"
# worker1's primary cell of the demo district; reports land there or next door (worker2's).
POINT = (120.1012, 30.2411)
SOAK_CATEGORY = "SOAK1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(seed: bytes) -> bytes:
    """A valid 8x8 RGB PNG whose pixels come from the seed, so every photo has its own bytes and hash."""
    pixels = hashlib.sha256(seed).digest() * 6  # 192 bytes = 8 rows x 8 px x 3
    raw = b"".join(b"\x00" + pixels[r * 24 : (r + 1) * 24] for r in range(8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


# ---- processes ------------------------------------------------------------------------------------------------------


class Proc:
    """A child in its own process group (a host's processes: gunicorn's master and workers die together)."""

    def __init__(self, name: str, argv: list[str], out: Path, env: dict[str, str]):
        self.name, self.argv, self.out, self.env = name, argv, out, env
        self.popen: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        log = open(self.out / f"{self.name}.log", "ab")  # noqa: SIM115 - kept open by the child
        self.popen = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, grace: float = 8.0) -> None:
        if not self.popen:
            return
        self.kill(signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.popen.wait(5)
        # Stragglers of the group (a worker whose master was SIGKILLed) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def wait_http(url: str, timeout: float, want: int = 200) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).status_code == want:
                return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer {want} within {timeout} s")


def pg_ctl(action: str) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", action], check=True, timeout=60)


def pg_is_up() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], timeout=10).returncode == 0


HAPROXY_CFG = """global
    maxconn 512
    log stdout format raw local0 info
defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check 2s
    # A request whose connection failed or whose host died before answering goes to the other host.
    retries 3
    option redispatch
    retry-on conn-failure empty-response
    option forwardfor
    errorfile 502 {out}/e502.http
    errorfile 503 {out}/e503.http
    errorfile 504 {out}/e504.http
frontend api
    bind 127.0.0.1:{port}
    default_backend app
backend app
    balance roundrobin
    option httpchk GET /readyz
    option log-health-checks
    http-check expect status 200
    default-server check inter 1s fall 2 rise 2
    http-response set-header X-Served-By %s
    server app1 127.0.0.1:{app1}
    server app2 127.0.0.1:{app2}
"""


def error_file(status: int, reason: str, code: str, detail: str) -> str:
    # The balancer's own answers (no host ready, a host gone) read like the service's: problem+json, Retry-After.
    body = json.dumps({"type": f"/problems/{code}", "title": reason, "status": status, "detail": detail, "code": code})
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/problem+json\r\nRetry-After: 5\r\n"
        f"Cache-Control: no-store\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    )


# ---- what the clients saw -------------------------------------------------------------------------------------------


@dataclass
class Answer:
    kind: str
    started: float
    ended: float
    status: int | str  # an HTTP status, or "conn_error" / "timeout"
    problem: bool = False
    retry_after: bool = False
    code: str | None = None
    served_by: str | None = None


@dataclass
class Record:
    answers: list[Answer] = field(default_factory=list)
    reports: dict[str, dict] = field(default_factory=dict)  # idempotency key -> outcome
    photos: list[dict] = field(default_factory=list)
    actions: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)


RETRYABLE = {429, 500, 502, 503, 504}


class Client:
    """A mobile app: every write carries an Idempotency-Key, and a failed or timed-out write is sent again with it."""

    def __init__(self, base: str, username: str, record: Record, t0: float, stop_at: float, give_up_at: float):
        self.base, self.username, self.record, self.t0 = base, username, record, t0
        self.stop_at, self.give_up_at = stop_at, give_up_at
        self.http = requests.Session()
        self.token = self.refresh_token = None
        self.refreshed = 0.0
        self.rng = random.Random(username)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def call(self, kind: str, method: str, path: str, **kw) -> requests.Response | None:
        started = self.now()
        headers = kw.pop("headers", {})
        if self.token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            resp = self.http.request(method, self.base + path, headers=headers, timeout=10, **kw)
        except requests.Timeout:
            self.record.add(Answer(kind, started, self.now(), "timeout"))
            return None
        except requests.RequestException:
            self.record.add(Answer(kind, started, self.now(), "conn_error"))
            return None
        problem = resp.headers.get("Content-Type", "").startswith("application/problem+json")
        code = None
        if problem:
            with contextlib.suppress(ValueError):
                code = resp.json().get("code")
        self.record.add(
            Answer(
                kind,
                started,
                self.now(),
                resp.status_code,
                problem,
                "Retry-After" in resp.headers,
                code,
                resp.headers.get("X-Served-By"),
            )
        )
        return resp

    def backoff(self, resp: requests.Response | None, attempt: int) -> None:
        wait = min(4.0, 0.25 * 2**attempt) * (0.5 + self.rng.random())
        if resp is not None and resp.headers.get("Retry-After", "").isdigit():
            wait = min(wait, float(resp.headers["Retry-After"]))
        time.sleep(wait)

    def send(self, kind: str, method: str, path: str, **kw) -> requests.Response | None:
        """The write until it is answered for good (2xx or a 4xx that a retry cannot change) or the client gives up."""
        attempt = 0
        self.attempts = 0
        while True:
            self.attempts += 1
            resp = self.call(kind, method, path, **dict(kw, headers=dict(kw.get("headers", {}))))
            if resp is not None and resp.status_code == 401 and self.refresh_token:
                self.login()
            elif resp is not None and resp.status_code not in RETRYABLE and not self.in_progress(resp):
                return resp
            if self.now() > self.give_up_at:
                return resp
            attempt += 1
            self.backoff(resp, attempt)

    @staticmethod
    def in_progress(resp: requests.Response) -> bool:
        # The first try under this key still runs (its answer was lost to a timeout): ask again shortly.
        return resp.status_code == 409 and "idempotency_request_in_progress" in resp.text

    def login(self) -> None:
        resp = self.send("login", "POST", "/api/v1/auth/login", json={"username": self.username, "password": PASSWORD})
        if resp is None or resp.status_code != 200:
            raise RuntimeError(f"{self.username} could not sign in: {resp and resp.status_code}")
        body = resp.json()
        self.token, self.refresh_token, self.refreshed = body["access_token"], body["refresh_token"], self.now()

    def refresh(self) -> None:
        # An app refreshes its token now and then: the sign-in throttle (Redis) sees traffic through its restart.
        resp = self.send("refresh", "POST", "/api/v1/auth/refresh", json={"refresh_token": self.refresh_token})
        if resp is not None and resp.status_code == 200:
            body = resp.json()
            self.token, self.refresh_token, self.refreshed = body["access_token"], body["refresh_token"], self.now()
        else:
            self.login()

    def file_report(self, category: str) -> int | None:
        key = str(uuid.uuid4())
        lon, lat = POINT[0] + self.rng.uniform(-2e-4, 2e-4), POINT[1] + self.rng.uniform(-2e-4, 2e-4)
        body = {
            "category_code": category,
            "description": f"soak {key}",
            "location": {"lon": round(lon, 6), "lat": round(lat, 6), "crs": "wgs84"},
        }
        resp = self.send("report", "POST", "/api/v1/reports", json=body, headers={"Idempotency-Key": key})
        ok = resp is not None and 200 <= resp.status_code < 300
        with self.record.lock:
            self.record.actions["report_attempts"] += self.attempts
            self.record.reports[key] = {
                "status": resp.status_code if resp is not None else None,
                "id": resp.json()["id"] if ok else None,
                "replayed": bool(resp is not None and resp.headers.get("Idempotent-Replayed")),
                "by": self.username,
            }
        return resp.json()["id"] if ok else None

    def add_photo(self, report_id: int, stage: str) -> None:
        key = str(uuid.uuid4())
        data = png(key.encode())
        resp = self.send(
            "photo",
            "POST",
            f"/api/v1/reports/{report_id}/attachments",
            data={"stage": stage},
            files={"file": ("photo.png", data, "image/png")},
            headers={"Idempotency-Key": key},
        )
        if resp is not None and resp.status_code == 201:
            body = resp.json()
            with self.record.lock:
                self.record.photos.append(
                    {
                        "report": report_id,
                        "id": body["id"],
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "by": self.username,
                    }
                )

    def act(self, report_id: int, action: str, body: dict) -> bool:
        """Read the case's ETag, then the action with If-Match; a 412 (someone, or our own lost try, moved it) reads again."""
        for _ in range(4):
            read = self.send("read", "GET", f"/api/v1/reports/{report_id}")
            if read is None or read.status_code != 200:
                return False
            resp = self.send(
                "action",
                "POST",
                f"/api/v1/reports/{report_id}/actions/{action}",
                json=body,
                headers={"If-Match": read.headers["ETag"], "Idempotency-Key": str(uuid.uuid4())},
            )
            if resp is not None and resp.status_code == 200:
                self.record.actions[action] += 1
                return True
            if resp is None or resp.status_code != 412:
                self.record.actions[f"{action}_refused_{resp.status_code if resp is not None else 'none'}"] += 1
                return False
        return False

    def run(self) -> None:
        self.login()
        worker = self.username.startswith("worker")
        while self.now() < self.stop_at:
            if self.now() - self.refreshed > 20:
                self.refresh()
            if worker and self.rng.random() < 0.6:
                self.work_a_case()
            else:
                # Most reports are in the one-minute class so the sweepers escalate them during the run.
                report_id = self.file_report(SOAK_CATEGORY if self.rng.random() < 0.7 else "0103")
                if report_id and not worker and self.rng.random() < 0.3:
                    self.add_photo(report_id, "before")
            time.sleep(self.rng.uniform(0.05, 0.3))

    def work_a_case(self) -> None:
        tasks = self.send("read", "GET", "/api/v1/me/tasks?page_size=20")
        if tasks is None or tasks.status_code != 200:
            return
        items = tasks.json().get("items", [])
        assigned = [t for t in items if t["status"] == "assigned"]
        started = [t for t in items if t["status"] == "in_progress"]
        if started and self.rng.random() < 0.5:
            case = self.rng.choice(started)
            self.add_photo(case["id"], "after")
            self.act(case["id"], "resolve", {"note": "soak"})
        elif assigned:
            self.act(self.rng.choice(assigned)["id"], "start", {})


# ---- the run --------------------------------------------------------------------------------------------------------


class Soak:
    def __init__(self, args):
        self.args = args
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.out = ROOT / "bench" / "out" / f"soak-{stamp}"
        self.out.mkdir(parents=True, exist_ok=True)
        self.db = f"grid_soak_{os.getpid()}"
        self.procs: dict[str, Proc] = {}
        self.ports = {name: free_port() for name in ("redis", "app1", "app2", "lb")}
        self.base = f"http://127.0.0.1:{self.ports['lb']}"
        self.faults: list[dict] = []
        self.readyz: list[tuple[float, str, int | str]] = []
        self.record = Record()
        self.env = dict(
            os.environ,
            FLASK_APP="wsgi",
            APP_ENV="production",
            DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.db}",
            JWT_SECRET=secrets.token_urlsafe(48),
            DEMO_PASSWORD=PASSWORD,
            REDIS_URL=f"redis://127.0.0.1:{self.ports['redis']}/0",
            UPLOAD_DIR=str(self.out / "uploads"),
            INSTANCE_PATH=str(self.out / "instance"),
            TRUSTED_PROXIES="1",
            LOG_LEVEL="WARNING",
            # Argon2 at full cost would make the few sign-ins the slowest requests of the run; it is not under test.
            PASSWORD_TIME_COST="1",
            PASSWORD_MEMORY_KIB="8192",
        )

    # -- set-up and tear-down --

    def start_redis(self) -> None:
        self.procs["redis"] = Proc(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.ports["redis"]),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.out),
            ],
            self.out,
            self.env,
        )
        for _ in range(50):
            if (
                subprocess.run(
                    ["redis-cli", "-p", str(self.ports["redis"]), "ping"], capture_output=True
                ).stdout.strip()
                == b"PONG"
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def start_app(self, name: str) -> None:
        argv = [
            str(BIN / "gunicorn"),
            "--config",
            "gunicorn.conf.py",
            "--workers",
            "2",
            "--timeout",
            "30",
            "--graceful-timeout",
            "5",
            "--bind",
            f"127.0.0.1:{self.ports[name]}",
            "--access-logfile",
            str(self.out / f"{name}.access.log"),
            "wsgi:app",
        ]
        if name in self.procs:
            self.procs[name].start()
        else:
            self.procs[name] = Proc(name, argv, self.out, self.env)

    def set_up(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.db}")
        for cmd in (["db", "upgrade"], ["seed-demo"]):
            subprocess.run([str(BIN / "flask"), *cmd], cwd=ROOT, env=self.env, check=True, capture_output=True)
        self.start_redis()
        self.start_app("app1")
        self.start_app("app2")
        for name in ("app1", "app2"):
            wait_http(f"http://127.0.0.1:{self.ports[name]}/readyz", 60)
        for status, reason, code, detail in (
            (502, "Bad Gateway", "bad_gateway", "An application host failed; try again shortly."),
            (503, "Service Unavailable", "service_unavailable", "No application host is ready; try again shortly."),
            (504, "Gateway Timeout", "gateway_timeout", "An application host did not answer in time; try again."),
        ):
            (self.out / f"e{status}.http").write_text(error_file(status, reason, code, detail))
        cfg = self.out / "haproxy.cfg"
        cfg.write_text(
            HAPROXY_CFG.format(out=self.out, port=self.ports["lb"], app1=self.ports["app1"], app2=self.ports["app2"])
        )
        self.procs["haproxy"] = Proc("haproxy", ["haproxy", "-db", "-f", str(cfg)], self.out, self.env)
        wait_http(self.base + "/readyz", 20)
        admin = requests.post(
            self.base + "/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=10
        )
        token = admin.json()["access_token"]
        resp = requests.post(
            self.base + "/api/v1/categories",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "code": SOAK_CATEGORY,
                "name": "浸泡测试",
                "group": "演示",
                "time_limit_value": 1,
                "time_limit_unit": "minutes",
                "escalation_window_value": 1,
                "escalation_window_unit": "minutes",
                "auto_accept": True,
                "auto_dispatch": True,
                "duplicate_radius_m": 0,
            },
            timeout=10,
        )
        if resp.status_code != 201:
            raise RuntimeError(f"could not create the one-minute category: {resp.status_code} {resp.text}")
        for n in range(self.args.clients - 2):
            phone = f"1390000{n:04d}"
            resp = requests.post(
                self.base + "/api/v1/auth/register", json={"phone": phone, "password": PASSWORD}, timeout=10
            )
            if resp.status_code != 201:
                raise RuntimeError(f"could not register {phone}: {resp.status_code} {resp.text}")
        for n in (1, 2):
            self.procs[f"sweeper{n}"] = Proc(
                f"sweeper{n}",
                [str(BIN / "flask"), "escalate", "--every", str(self.args.sweep_every)],
                self.out,
                self.env,
            )

    def tear_down(self) -> None:
        for name in ("sweeper1", "sweeper2", "haproxy", "app1", "app2", "redis"):
            if name in self.procs:
                self.procs[name].stop()
        if not pg_is_up():
            pg_ctl("start")
        if not self.args.keep_db:
            with contextlib.suppress(psycopg.Error), psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")

    # -- during the run --

    def watch_readyz(self, t0: float, stop: threading.Event) -> None:
        targets = {"app1": self.ports["app1"], "app2": self.ports["app2"], "lb": self.ports["lb"]}
        while not stop.is_set():
            for name, port in targets.items():
                t = time.monotonic() - t0
                try:
                    status: int | str = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code
                except requests.RequestException:
                    status = "down"
                self.readyz.append((t, name, status))
            stop.wait(0.5)

    def inject_faults(self, t0: float, stop: threading.Event) -> None:
        a = self.args
        plan = [
            (a.pg_at, "postgresql restart", self.fault_postgres),
            (a.kill_at, "app1 SIGKILL", self.fault_app),
            (a.redis_at, "redis restart", self.fault_redis),
        ]
        for at, name, action in plan:
            if stop.wait(max(0.0, at - (time.monotonic() - t0))):
                return
            started = time.monotonic() - t0
            detail = action()
            self.faults.append({"fault": name, "started": started, "restored": time.monotonic() - t0, **detail})
            print(f"  t={started:6.1f}s {name}: restored at t={self.faults[-1]['restored']:.1f}s {detail}", flush=True)

    def fault_postgres(self) -> dict:
        pg_ctl("stop")
        down_from = time.monotonic() - self.t0
        time.sleep(self.args.outage)
        down_to = time.monotonic() - self.t0
        pg_ctl("start")
        return {"down_s": self.args.outage, "down_from": round(down_from, 2), "down_to": round(down_to, 2)}

    def fault_app(self) -> dict:
        self.procs["app1"].kill(signal.SIGKILL)
        self.procs["app1"].popen.wait(5)
        # The orphaned workers notice their master is gone and exit; the port is free before the restart.
        time.sleep(self.args.outage)
        self.start_app("app1")
        back = wait_http(f"http://127.0.0.1:{self.ports['app1']}/readyz", 60)
        return {"down_s": self.args.outage, "ready_after_restart_s": round(back, 2)}

    def fault_redis(self) -> dict:
        subprocess.run(
            ["redis-cli", "-p", str(self.ports["redis"]), "shutdown", "nosave"], capture_output=True, timeout=10
        )
        self.procs["redis"].popen.wait(10)
        time.sleep(self.args.outage)
        self.procs["redis"].start()
        return {"down_s": self.args.outage}

    def run(self) -> dict:
        a = self.args
        t0 = self.t0 = time.monotonic()
        stop = threading.Event()
        users = ["worker1", "worker2"] + [f"1390000{n:04d}" for n in range(a.clients - 2)]
        clients = [Client(self.base, u, self.record, t0, a.seconds, a.seconds + a.grace) for u in users]
        threads = [
            threading.Thread(target=self.watch_readyz, args=(t0, stop), daemon=True),
            threading.Thread(target=self.inject_faults, args=(t0, stop), daemon=True),
        ]
        threads += [threading.Thread(target=c.run, daemon=True) for c in clients]
        for t in threads:
            t.start()
        for t in threads[2:]:
            t.join(a.seconds + a.grace + 30)
        # The sweeps of the last minute's cases run before the count.
        time.sleep(2 * a.sweep_every)
        stop.set()
        threads[1].join(60)
        threads[0].join(5)
        return self.verify(time.monotonic() - t0)

    # -- the verdict --

    def verify(self, elapsed: float) -> dict:
        rec = self.record
        checks: dict[str, bool] = {}
        acked = {k: v for k, v in rec.reports.items() if v["id"] is not None}
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{self.db}") as conn:
            rows = conn.execute("SELECT id, description FROM reports WHERE description LIKE 'soak %'").fetchall()
            by_key = defaultdict(list)
            for rid, desc in rows:
                by_key[desc.removeprefix("soak ")].append(rid)
            dup_levels = conn.execute(
                "SELECT report_id, data->>'to_level', count(*) FROM case_events WHERE action = 'escalate' "
                "GROUP BY 1, 2 HAVING count(*) > 1"
            ).fetchall()
            dup_critical = conn.execute(
                "SELECT report_id FROM case_events WHERE action = 'critical' GROUP BY 1 HAVING count(*) > 1"
            ).fetchall()
            escalations = conn.execute("SELECT count(*) FROM case_events WHERE action = 'escalate'").fetchone()[0]
            escalated_cases = conn.execute(
                "SELECT count(DISTINCT report_id) FROM case_events WHERE action = 'escalate'"
            ).fetchone()[0]
        checks["every report answered 2xx exists exactly once"] = all(
            by_key.get(k) == [v["id"]] for k, v in acked.items()
        )
        checks["no retry created a duplicate"] = all(len(ids) == 1 for ids in by_key.values())
        unacked_rows = sum(1 for k in by_key if k not in acked)
        checks["no case escalated twice at one level"] = not dup_levels and not dup_critical
        checks["cases escalated during the run"] = escalations > 0

        admin = requests.post(
            self.base + "/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=10
        )
        auth = {"Authorization": f"Bearer {admin.json()['access_token']}"}
        unreadable = []
        for photo in rec.photos:
            resp = requests.get(
                f"{self.base}/api/v1/reports/{photo['report']}/attachments/{photo['id']}/content",
                headers=auth,
                timeout=10,
            )
            if resp.status_code != 200 or hashlib.sha256(resp.content).hexdigest() != photo["sha256"]:
                unreadable.append(photo["id"])
        checks["every photo answered 2xx is readable"] = bool(rec.photos) and not unreadable

        pg = next((f for f in self.faults if f["fault"] == "postgresql restart"), None)
        outage_answers = []
        if pg:
            # Answers that ended while the database was down or coming back (the first second after its start).
            outage_answers = [x for x in rec.answers if pg["started"] <= x.ended <= pg["restored"] + 1.0]
        errors_in_outage = [x for x in outage_answers if isinstance(x.status, int) and x.status >= 500]
        checks["database outage: 5xx answers were 503 problem+json with Retry-After"] = bool(errors_in_outage) and all(
            x.status == 503 and x.problem and x.retry_after for x in errors_in_outage
        )
        checks["no bare 500 (or any 5xx without problem+json) in the whole run"] = not any(
            isinstance(x.status, int) and x.status >= 500 and (x.status == 500 or not x.problem) for x in rec.answers
        )
        not_ready = {
            name: sorted(
                {s for t, n, s in self.readyz if n == name and pg and pg["down_from"] <= t <= pg["down_to"]},
                key=str,
            )
            for name in ("app1", "app2")
        }
        checks["database outage: /readyz said not ready"] = bool(pg) and all(
            seen and 200 not in seen for seen in not_ready.values()
        )
        checks["the run saw all three faults"] = len(self.faults) == 3

        by_status = Counter(str(x.status) for x in rec.answers)
        by_code = Counter(f"{x.status} {x.code}" for x in rec.answers if x.code)
        by_kind = Counter(x.kind for x in rec.answers)
        recovery = []
        for f in self.faults:
            # The first report filed (2xx) by a request sent after the fault began, and after the service was restored.
            ok_after = [
                x.ended
                for x in rec.answers
                if x.kind == "report" and x.status in (200, 201) and x.started >= f["started"]
            ]
            errs = Counter(
                str(x.status)
                for x in rec.answers
                if f["started"] <= x.ended <= f["restored"] + 5 and x.status not in (200, 201, 204)
            )
            in_window = [x for x in rec.answers if f["started"] <= x.ended <= f["restored"] + 5]
            recovery.append(
                {
                    "fault": f["fault"],
                    "at_s": round(f["started"], 1),
                    "restored_after_s": round(f["restored"] - f["started"], 1),
                    "first_2xx_report_after_s": round(min(ok_after) - f["started"], 2) if ok_after else None,
                    "first_2xx_report_after_restore_s": round(
                        min((t for t in ok_after if t >= f["restored"]), default=float("nan")) - f["restored"], 2
                    ),
                    "answers_in_window": len(in_window),
                    "non_2xx_in_window": dict(errs),
                }
            )
        lb_503 = sum(1 for x in errors_in_outage if x.served_by is None)
        figures = {
            "elapsed_s": round(elapsed, 1),
            "clients": self.args.clients,
            "requests": len(rec.answers),
            "by_kind": dict(by_kind),
            "by_status": dict(sorted(by_status.items())),
            "problems_by_code": dict(sorted(by_code.items())),
            "reports_acknowledged": len(acked),
            "reports_replayed_on_retry": sum(1 for v in acked.values() if v["replayed"]),
            "reports_not_acknowledged": len(rec.reports) - len(acked),
            "rows_of_unacknowledged_keys": unacked_rows,
            "report_attempts": rec.actions["report_attempts"],
            "case_actions": {k: v for k, v in rec.actions.items() if k != "report_attempts"},
            "photos_acknowledged": len(rec.photos),
            "photos_unreadable": unreadable,
            "escalate_events": escalations,
            "escalated_cases": escalated_cases,
            "db_outage_5xx": len(errors_in_outage),
            "db_outage_5xx_from_app": len(errors_in_outage) - lb_503,
            "db_outage_5xx_from_haproxy": lb_503,
            "db_outage_readyz_seen": not_ready,
            "faults": recovery,
        }
        return {"checks": checks, "figures": figures, "out": str(self.out)}


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--clients", type=int, default=8, help="concurrent clients: 2 workers, the rest residents")
    p.add_argument("--seconds", type=float, default=150, help="how long clients send new requests")
    p.add_argument("--grace", type=float, default=30, help="how long a client keeps retrying after that")
    p.add_argument("--outage", type=float, default=5, help="seconds each backing service stays down")
    p.add_argument("--pg-at", type=float, default=30)
    p.add_argument("--kill-at", type=float, default=65)
    p.add_argument("--redis-at", type=float, default=100)
    p.add_argument("--sweep-every", type=float, default=5)
    p.add_argument("--keep-db", action="store_true", help="leave the soak database for a look afterwards")
    args = p.parse_args(argv)
    if args.clients < 3:
        p.error("--clients must be at least 3 (two workers and a resident)")
    soak = Soak(args)
    # SIGTERM (the script's overall timeout) unwinds through the finally below like Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        print(f"soak: output in {soak.out}", flush=True)
        soak.set_up()
        print(f"soak: {args.clients} clients for {args.seconds:.0f} s through HAProxy at {soak.base}", flush=True)
        result = soak.run()
    finally:
        soak.tear_down()
    (soak.out / "result.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps(result["figures"], indent=2, ensure_ascii=False))
    print()
    for name, ok in result["checks"].items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
