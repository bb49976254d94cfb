"""`make bench`: our POST /api/v1/reports against a one-statement floor on PostGIS, and locate on SpatiaLite.

1. A fresh PostGIS database (dropped at the end): `flask db upgrade`, N grid cells from bench.gen_grid through
   the app's own import service, one category and K accounts (half residents, half workers).
2. Our app under gunicorn (APP_ENV=production, W sync workers) on 127.0.0.1: K logins, then authenticated
   POST /api/v1/reports at a fixed concurrency, random points inside the grid, bounded by count and time.
3. The floor (bench/floor_app.py) under gunicorn with the same W workers, the same load, on the same tables.
4. SpatiaLite, in-process: app.services.routing.route_wgs84 for random points, calls per second, beside a
   raw pysqlite3 R*Tree + ST_Covers query for the same points, and both query plans.

Results are printed and written to bench/out/results-<time>.json (and bench/out/latest.json).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bench.gen_grid import extent, feature_collection, progress_bar, spec_for

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = Path(__file__).resolve().parent / "out"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
HOST = "127.0.0.1"
CATEGORY = {"code": "bench-garbage", "name": "暴露垃圾（基准）", "group": "市容环境", "time_limit_value": 24}
PASSWORD = "bench-" + secrets.token_urlsafe(12)


def say(message: str = "") -> None:
    click.echo(message, err=True)


# ---- database ----------------------------------------------------------------------------------


def pg_url(name: str, driver: str = "postgresql") -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}".replace("postgresql://", f"{driver}://", 1)


@contextlib.contextmanager
def fresh_postgis_database() -> Iterator[str]:
    import psycopg

    name = f"grid_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(pg_url(name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        yield name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        say(f"dropped database {name}")


def app_env(database_url: str, jwt_secret: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        APP_ENV="production",
        DATABASE_URL=database_url,
        JWT_SECRET=jwt_secret,
        LOG_LEVEL="WARNING",
        FLASK_APP="wsgi",
        PYTHONPATH=str(ROOT),
        PYTHONDONTWRITEBYTECODE="1",
        # K logins from one address in a few seconds; the limiter stays on, as in production.
        AUTH_RATE_LIMIT="100000 per minute",
    )
    return env


def flask_db_upgrade(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise click.ClickException(f"flask db upgrade failed:\n{done.stdout}\n{done.stderr}")


def make_app(env: dict[str, str]):
    """An in-process app on the given database (the config classes read os.environ)."""
    from app import create_app

    for key in ("APP_ENV", "DATABASE_URL", "JWT_SECRET", "LOG_LEVEL", "AUTH_RATE_LIMIT"):
        os.environ[key] = env[key]
    return create_app("production")


def load_grid(app, features: list[dict]) -> None:
    from app.extensions import db
    from app.services.grid.cells import import_cells

    with app.app_context():
        result = import_cells(features, progress_bar)
        db.session.commit()
        say(f"imported {result.created} cells")


@dataclass
class Account:
    username: str
    role: str
    user_id: int
    cell_code: str | None = None


def create_accounts(app, count: int, grid_codes: list[str], rng: random.Random) -> tuple[int, list[Account]]:
    """One category and `count` accounts: residents and workers (each worker serves one random grid cell)."""
    from app.extensions import db
    from app.services.cases.categories import create_category
    from app.services.people.users import create_user

    accounts: list[Account] = []
    with app.app_context():
        category = create_category(dict(CATEGORY))
        roles = ["resident" if i % 2 == 0 else "worker" for i in range(count)]
        for i, role in enumerate(progress_bar(roles, "Creating accounts")):
            cell_code = rng.choice(grid_codes) if role == "worker" else None
            user = create_user(username=f"bench-{role}-{i:03d}", password=PASSWORD, role=role, cell_code=cell_code)
            accounts.append(Account(user.username, role, user.id, cell_code))
        db.session.commit()
        category_id = category.id
        db.engine.dispose()
    return category_id, accounts


def points_in_cell(features: list[dict], code: str, n: int, rng: random.Random) -> list[tuple[float, float]]:
    """n random points inside the grid cell `code` (its worker's own reports)."""
    from shapely.geometry import Point, shape

    geom = next(shape(f["geometry"]) for f in features if f["properties"]["code"] == code)
    min_x, min_y, max_x, max_y = geom.bounds
    found: list[tuple[float, float]] = []
    while len(found) < n:
        x, y = rng.uniform(min_x, max_x), rng.uniform(min_y, max_y)
        # Off the edges: a point on a shared edge is covered by two cells, and routing picks the lower code.
        if geom.buffer(-1e-6).contains(Point(x, y)):
            found.append((x, y))
    return found


def rows_per_report(dbname: str, after_id: int, upto_id: int) -> dict[str, Any]:
    """What the reports with ids in (after_id, upto_id] got: statuses and events / notifications per report."""
    import psycopg

    with psycopg.connect(pg_url(dbname)) as conn:
        statuses = dict(
            conn.execute(
                "SELECT status, count(*) FROM reports WHERE id > %s AND id <= %s GROUP BY status", (after_id, upto_id)
            ).fetchall()
        )
        per = {}
        for table in ("case_events", "notifications"):
            per[table] = dict(
                conn.execute(
                    f"SELECT n, count(*) FROM (SELECT r.id, count(t.report_id) AS n FROM reports r "
                    f"LEFT JOIN {table} t ON t.report_id = r.id WHERE r.id > %s AND r.id <= %s GROUP BY r.id) x "
                    "GROUP BY n ORDER BY n",
                    (after_id, upto_id),
                ).fetchall()
            )
    return {
        "statuses": statuses,
        "events_per_report": per["case_events"],
        "notifications_per_report": per["notifications"],
    }


def max_report_id(dbname: str) -> int:
    import psycopg

    with psycopg.connect(pg_url(dbname)) as conn:
        return conn.execute("SELECT coalesce(max(id), 0) FROM reports").fetchone()[0]


# ---- servers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_json(
    port: int, method: str, path: str, body: Any = None, headers: dict | None = None, timeout: float = 30
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body)
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        conn.request(method, path, payload, hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw.decode(errors="replace")
    finally:
        conn.close()


class Server:
    """A gunicorn master on 127.0.0.1 and a free port, with its CPU time readable from /proc."""

    def __init__(
        self,
        name: str,
        wsgi: str,
        workers: int,
        env: dict[str, str],
        health: str,
        worker_class: str = "sync",
        threads: int = 1,
    ):
        self.name, self.port = name, free_port()
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                str(workers),
                "--worker-class",
                worker_class,
                "--threads",
                str(threads),
                "--bind",
                f"{HOST}:{self.port}",
                "--log-level",
                "warning",
                "--graceful-timeout",
                "5",
                wsgi,
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise click.ClickException(f"{name} exited early:\n{Path(self.log.name).read_text()}")
            with contextlib.suppress(OSError):
                if http_json(self.port, "GET", health, timeout=5)[0] == 200:
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise click.ClickException(f"{name} did not answer {health} in 60 s")
            time.sleep(0.2)
        # Every worker answers before the clock starts (each one connects to the database lazily).
        for _ in range(workers * 4):
            http_json(self.port, "GET", health)

    def pids(self) -> list[int]:
        pids = [self.proc.pid]
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            pids += [int(p) for p in children]
        return pids

    def cpu_seconds(self) -> float:
        return sum(proc_cpu_seconds(pid) for pid in self.pids())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-lines:])


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def backend_pids(dbname: str | None) -> list[int]:
    """PostgreSQL's backend processes connected to the database (same host), for their CPU time."""
    if not dbname:
        return []
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)
        ).fetchall()
    return [r[0] for r in rows]


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLK_TCK, sum(values) / CLK_TCK


# ---- load driver -----------------------------------------------------------------------------


@dataclass
class LoadSpec:
    port: int
    path: str
    tokens: list[str | None]  # one per thread, across all client processes
    bbox: tuple[float, float, float, float]
    category_code: str
    max_requests: int
    seconds: float
    processes: int
    pg_db: str | None = None  # the database whose backends' CPU time is counted apart
    points: list[list[tuple[float, float]]] | None = None  # per connection: the points it files at, in turn


def _client_process(index: int, spec: LoadSpec, counter, start_evt, out_q) -> None:
    """One client process: a thread per connection, each on its own http.client (keep-alive when offered)."""
    threads = [t for i, t in enumerate(spec.tokens) if i % spec.processes == index]
    own_points = [p for i, p in enumerate(spec.points or []) if i % spec.processes == index]
    latencies: list[list[float]] = [[] for _ in threads]
    statuses: dict[int, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    start_evt.wait()
    t0 = time.perf_counter()
    deadline = t0 + spec.seconds
    usage0 = resource.getrusage(resource.RUSAGE_SELF)

    def run(slot: int, token: str | None) -> None:
        rng = random.Random(f"{index}-{slot}-{time.time_ns()}")
        min_lon, min_lat, max_lon, max_lat = spec.bbox
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection(HOST, spec.port, timeout=60)
        mine = latencies[slot]
        n = 0
        while time.perf_counter() < deadline:
            with counter.get_lock():
                if counter.value >= spec.max_requests:
                    break
                counter.value += 1
            n += 1
            if own_points:
                lon, lat = own_points[slot][n % len(own_points[slot])]
            else:
                lon, lat = rng.uniform(min_lon, max_lon), rng.uniform(min_lat, max_lat)
            body = json.dumps(
                {
                    "category_code": spec.category_code,
                    "description": f"基准测试 report {index}-{slot}-{n}",
                    "location": {"lon": lon, "lat": lat, "crs": "wgs84"},
                }
            )
            began = time.perf_counter()
            try:
                conn.request("POST", spec.path, body, headers)
                resp = conn.getresponse()
                raw = resp.read()
                elapsed = time.perf_counter() - began
                if resp.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                with lock:
                    statuses[-1] = statuses.get(-1, 0) + 1
                    if len(errors) < 5:
                        errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
            if resp.status == 201:
                mine.append(elapsed)
            elif len(errors) < 5:
                with lock:
                    errors.append(f"{resp.status}: {raw[:300].decode(errors='replace')}")
        conn.close()

    workers = [threading.Thread(target=run, args=(slot, token), daemon=True) for slot, token in enumerate(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    out_q.put(
        {
            "latencies": [x for lst in latencies for x in lst],
            "statuses": statuses,
            "errors": errors,
            "wall": time.perf_counter() - t0,
            "cpu": (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime),
        }
    )


@dataclass
class LoadResult:
    target: str
    requests_ok: int
    requests_failed: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    statuses: dict[str, int]
    errors: list[str]
    cpu_client_s: float
    cpu_server_s: float
    cpu_machine_busy_s: float
    cpu_machine_total_s: float
    cpu_pg_backends_s: float = 0.0
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    cpu_shares: dict[str, float] = field(default_factory=dict)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def drive(name: str, server: Server, spec: LoadSpec, show: bool = True, profile: Path | None = None) -> LoadResult:
    ctx = mp.get_context("spawn")
    counter = ctx.Value("l", 0)
    start_evt = ctx.Event()
    out_q = ctx.Queue()
    procs = [
        ctx.Process(target=_client_process, args=(i, spec, counter, start_evt, out_q), daemon=True)
        for i in range(spec.processes)
    ]
    for p in procs:
        p.start()
    time.sleep(0.5 + 0.2 * spec.processes)  # let the spawned clients import and reach the start line
    spy = None
    if profile is not None:
        # Samples every worker (py-spy's --subprocesses from the master) while the load runs; idle threads left out.
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--subprocesses",
                "--format",
                "raw",
                "--rate",
                "200",
            ]
            + [
                "--duration",
                str(max(1, int(spec.seconds) - 1)),
                "--output",
                str(profile),
                "--pid",
                str(server.proc.pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    pg_cpu0 = {pid: proc_cpu_seconds(pid) for pid in backend_pids(spec.pg_db)}
    server_cpu0, (busy0, total0) = server.cpu_seconds(), machine_cpu_seconds()
    started = time.perf_counter()
    start_evt.set()
    results = []
    bar_ctx = (
        click.progressbar(length=spec.max_requests, label=f"{name:<28}", file=sys.stderr, show_pos=True)
        if show
        else contextlib.nullcontext()
    )
    with bar_ctx as bar:
        seen = 0
        while len(results) < len(procs):
            with contextlib.suppress(Exception):
                results.append(out_q.get(timeout=0.25))
            if show:
                now = counter.value
                bar.update(now - seen)
                seen = now
            crashed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if crashed or time.perf_counter() - started > spec.seconds + 120:
                for p in procs:
                    p.kill()
                raise click.ClickException(f"{name}: the load clients did not finish (exit codes {crashed})")
    wall = max(r["wall"] for r in results)
    server_cpu = server.cpu_seconds() - server_cpu0
    # Backends that ended during the run are lost; the app's pool and the floor's connections stay open.
    pg_cpu = sum(proc_cpu_seconds(pid) - pg_cpu0.get(pid, 0.0) for pid in backend_pids(spec.pg_db))
    if spy is not None:
        spy.wait(60)
    busy1, total1 = machine_cpu_seconds()
    for p in procs:
        p.join(5)
    latencies = sorted(x for r in results for x in r["latencies"])
    statuses: dict[str, int] = {}
    for r in results:
        for status, n in r["statuses"].items():
            key = "connection-error" if int(status) == -1 else str(status)
            statuses[key] = statuses.get(key, 0) + n
    ok = len(latencies)
    failed = sum(statuses.values()) - ok
    client_cpu = sum(r["cpu"] for r in results)
    busy, total = busy1 - busy0, total1 - total0
    ms = [x * 1000 for x in latencies]
    return LoadResult(
        target=name,
        requests_ok=ok,
        requests_failed=failed,
        seconds=round(wall, 3),
        rps=round(ok / wall, 1) if wall else 0.0,
        p50_ms=round(percentile(ms, 50), 2),
        p90_ms=round(percentile(ms, 90), 2),
        p99_ms=round(percentile(ms, 99), 2),
        max_ms=round(ms[-1], 2) if ms else float("nan"),
        mean_ms=round(statistics.fmean(ms), 2) if ms else float("nan"),
        statuses=statuses,
        errors=[e for r in results for e in r["errors"]][:5],
        cpu_client_s=round(client_cpu, 2),
        cpu_server_s=round(server_cpu, 2),
        cpu_machine_busy_s=round(busy, 2),
        cpu_machine_total_s=round(total, 2),
        cpu_pg_backends_s=round(pg_cpu, 2),
        # What one request costs the machine on the server side, whatever else runs beside it.
        cpu_ms_per_request={
            "gunicorn workers": round(1000 * server_cpu / ok, 3) if ok else float("nan"),
            "postgres backends": round(1000 * pg_cpu / ok, 3) if ok else float("nan"),
            "both": round(1000 * (server_cpu + pg_cpu) / ok, 3) if ok else float("nan"),
        },
        cpu_shares={
            "load clients": round(client_cpu / total, 3) if total else 0.0,
            "gunicorn workers": round(server_cpu / total, 3) if total else 0.0,
            "postgres backends": round(pg_cpu / total, 3) if total else 0.0,
            "the rest": round(max(busy - client_cpu - server_cpu - pg_cpu, 0) / total, 3) if total else 0.0,
            "idle": round(1 - busy / total, 3) if total else 0.0,
        },
    )


def warm_up(name: str, server: Server, spec: LoadSpec) -> None:
    """A short unmeasured burst: code paths, connection pools and PostgreSQL's caches warm up."""
    warm = LoadSpec(**{**asdict(spec), "max_requests": max(200, 10 * len(spec.tokens)), "seconds": 5.0})
    result = drive(f"{name} (warm-up)", server, warm, show=False)
    if result.requests_ok == 0:
        raise click.ClickException(
            f"{name}: every warm-up request failed: {result.statuses} {result.errors}\n{server.log_tail()}"
        )


# ---- SpatiaLite locate -------------------------------------------------------------------------

RAW_LOCATE_SQL = """
SELECT c.id FROM cells AS c
WHERE c.level = 'grid' AND c.active = 1
  AND c.id IN (SELECT pkid FROM idx_cells_geom WHERE xmin <= ? AND xmax >= ? AND ymin <= ? AND ymax >= ?)
  AND ST_Covers(c.geom, MakePoint(?, ?, 4326)) = 1
ORDER BY c.code LIMIT 1
"""


def uses_rtree(plan: list[str]) -> bool:
    return any("idx_cells_geom" in line and "VIRTUAL TABLE INDEX" in line for line in plan)


def locate_benchmark(features: list[dict], bbox, seconds: float, jwt_secret: str, rng: random.Random) -> dict:
    import pysqlite3.dbapi2 as pysqlite3
    from sqlalchemy import event

    from app.dialect import spatial
    from app.extensions import db
    from app.services import versions
    from app.services.grid import routing
    from app.services.grid.routing import route_wgs84

    tmp = tempfile.mkdtemp(prefix="grid-bench-")
    path = Path(tmp) / "bench.sqlite"
    env = app_env(f"sqlite:///{path}", jwt_secret)
    try:
        say(f"SpatiaLite database {path}: flask db upgrade")
        flask_db_upgrade(env)
        app = make_app(env)
        load_grid(app, features)
        min_lon, min_lat, max_lon, max_lat = bbox
        points = [(rng.uniform(min_lon, max_lon), rng.uniform(min_lat, max_lat)) for _ in range(20_000)]

        with app.app_context():
            probe = route_wgs84(*points[0])
            probe_result = {
                "point": points[0],
                "cell": probe.cell.code if probe.cell else None,
                "routed_by": probe.routed_by,
                "from_the_index": routing.leaf_index() is not None,
            }
            # The SQL the database path sends (a grid above routing.INDEXED_LEAVES_UP_TO), and SQLite's plan for it.
            captured: list[tuple[str, Any]] = []

            def capture(_conn, _cursor, statement, parameters, _context, _many):
                captured.append((statement, parameters))

            event.listen(db.engine, "before_cursor_execute", capture)
            spatial.covering_leaf(*points[0])
            event.remove(db.engine, "before_cursor_execute", capture)
            statement, parameters = next((s, p) for s, p in captured if "cells" in s)
            raw_conn = db.session.connection().connection.dbapi_connection
            app_plan = [row[-1] for row in raw_conn.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()]

            # Outside a request each routing reads the cache versions too (a request reads them once, for its token).
            ours = run_for(seconds, points, lambda p: route_wgs84(*p), "locate: route_wgs84 (the worker's index)")
            checks = [(route_wgs84(*p).cell.id) for p in points[:500]]
            kept, index_cache = routing.INDEXED_LEAVES_UP_TO, versions.cache(versions.CELLS, "routing")
            routing.INDEXED_LEAVES_UP_TO = -1
            index_cache.clear()
            try:
                by_database = run_for(seconds, points, lambda p: route_wgs84(*p), "locate: route_wgs84 (database)")
                database_checks = [(route_wgs84(*p).cell.id) for p in points[:500]]
                assert routing.leaf_index() is None
            finally:
                routing.INDEXED_LEAVES_UP_TO = kept
                index_cache.clear()
            db.session.rollback()
            db.engine.dispose()

        conn = pysqlite3.connect(str(path))
        conn.enable_load_extension(True)
        conn.load_extension(os.environ.get("SPATIALITE_LIBRARY_PATH", "mod_spatialite"))

        def raw(p):
            lon, lat = p
            return conn.execute(RAW_LOCATE_SQL, (lon, lon, lat, lat, lon, lat)).fetchone()

        raw_plan = [
            row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + RAW_LOCATE_SQL, (0, 0, 0, 0, 0, 0)).fetchall()
        ]
        floor = run_for(seconds, points, raw, "locate: raw pysqlite3 floor")
        raw_checks = [raw(p)[0] for p in points[:500]]
        conn.close()
        agree = sum(a == b == c for a, b, c in zip(checks, database_checks, raw_checks, strict=True))
        return {
            "cells": sum(1 for f in features if f["properties"]["level"] == "grid"),
            "route_wgs84": ours,
            "route_wgs84_by_database": by_database,
            "raw_floor": floor,
            "ratio": round(ours["calls_per_s"] / floor["calls_per_s"], 3) if floor["calls_per_s"] else None,
            "ratio_by_database": round(by_database["calls_per_s"] / floor["calls_per_s"], 3)
            if floor["calls_per_s"]
            else None,
            "same_cell_for_500_points": f"{agree}/{len(checks)}",
            "probe": probe_result,
            "app_sql": " ".join(statement.split()),
            "app_plan": app_plan,
            "app_plan_uses_rtree": uses_rtree(app_plan),
            "raw_plan": raw_plan,
            "raw_plan_uses_rtree": uses_rtree(raw_plan),
        }
    finally:
        for leftover in Path(tmp).glob("*"):
            leftover.unlink()
        os.rmdir(tmp)


def run_for(seconds: float, points: list, call, label: str) -> dict:
    n = 0
    deadline_steps = max(int(seconds * 10), 1)
    began = time.perf_counter()
    with click.progressbar(length=deadline_steps, label=f"{label:<28}", file=sys.stderr) as bar:
        step_end = began
        for step in range(deadline_steps):
            step_end += seconds / deadline_steps
            while time.perf_counter() < step_end:
                call(points[n % len(points)])
                n += 1
            bar.update(1)
    elapsed = time.perf_counter() - began
    return {
        "calls": n,
        "seconds": round(elapsed, 3),
        "calls_per_s": round(n / elapsed, 1),
        "mean_us": round(elapsed / n * 1e6, 1),
    }


# ---- the run ---------------------------------------------------------------------------------


def print_load(r: LoadResult) -> None:
    say(
        f"  {r.target:<34} {r.rps:>8.1f} req/s   p50 {r.p50_ms:>7.2f} ms   p99 {r.p99_ms:>7.2f} ms   "
        f"ok {r.requests_ok}  failed {r.requests_failed}  ({r.seconds:.1f} s)"
    )
    shares = "  ".join(f"{k} {v:.0%}" for k, v in r.cpu_shares.items())
    say(f"  {'':<34} CPU of the 2 cores: {shares}")
    per = r.cpu_ms_per_request
    say(
        f"  {'':<34} CPU ms per request: gunicorn {per['gunicorn workers']:.2f} + postgres {per['postgres backends']:.2f}"
        f" = {per['both']:.2f}"
    )
    if r.errors:
        say(f"  {'':<34} first errors: {r.errors[:2]}")


@click.command()
@click.option("--cells", default=10_000, show_default=True, help="Grid cells to generate and import.")
@click.option("--workers", default=2, show_default=True, help="gunicorn workers, for our app and the floor.")
@click.option("--concurrency", default=16, show_default=True, help="Client connections in flight.")
@click.option(
    "--client-processes", default=2, show_default=True, help="Load-driver processes (threads split among them)."
)
@click.option(
    "--requests", "max_requests", default=20_000, show_default=True, help="At most this many requests per target."
)
@click.option("--seconds", default=15.0, show_default=True, help="At most this long per target.")
@click.option(
    "--accounts", default=16, show_default=True, help="Accounts to log in (residents and workers, one per connection)."
)
@click.option(
    "--floor-modes",
    default="report,full",
    show_default=True,
    help="Floor variants to drive: report (one row) and/or full (the same rows we write).",
)
@click.option(
    "--locate-seconds", default=5.0, show_default=True, help="Seconds per locate loop on SpatiaLite (0 skips)."
)
@click.option("--seed", default=2026, show_default=True)
@click.option(
    "--worker-class",
    default="sync",
    show_default=True,
    help="gunicorn worker class for our app and the floor (sync, gthread, gevent).",
)
@click.option("--threads", default=1, show_default=True, help="Threads per gunicorn worker (gthread).")
@click.option(
    "--profile",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Record our workers with py-spy during the measured run into this directory, and print a summary.",
)
@click.option(
    "--own/--no-own",
    default=True,
    show_default=True,
    help="Also drive workers filing in their own cells (auto-accept, clock, auto-dispatch) against the own floor.",
)
def main(
    cells,
    workers,
    concurrency,
    client_processes,
    max_requests,
    seconds,
    accounts,
    floor_modes,
    locate_seconds,
    seed,
    worker_class,
    threads,
    profile,
    own,
):
    """Benchmark POST /api/v1/reports on PostGIS against the floor, and locate on SpatiaLite."""
    rng = random.Random(seed)
    jwt_secret = secrets.token_urlsafe(48)
    modes = [m.strip() for m in floor_modes.split(",") if m.strip()]
    if any(m not in ("report", "full") for m in modes):
        raise click.BadParameter("use report and/or full", param_hint="--floor-modes")
    client_processes = max(1, min(client_processes, concurrency))
    spec = spec_for(cells)
    bbox = extent(spec)
    say(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"grid {spec.streets} streets x {spec.communities_per_street} communities x "
        f"{spec.grid_side}x{spec.grid_side} = {spec.grid_cells} cells of ~{spec.cell_size_m:.0f} m"
    )
    features = feature_collection(spec)["features"]
    grid_codes = [f["properties"]["code"] for f in features if f["properties"]["level"] == "grid"]
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": {
            "cells": spec.grid_cells,
            "features": len(features),
            "workers": workers,
            "concurrency": concurrency,
            "client_processes": client_processes,
            "max_requests": max_requests,
            "max_seconds": seconds,
            "accounts": accounts,
            "floor_modes": modes,
            "bbox": bbox,
            "worker_class": worker_class,
            "threads": threads,
        },
        "http": {},
    }

    with fresh_postgis_database() as dbname:
        env = app_env(pg_url(dbname, "postgresql+psycopg"), jwt_secret)
        say(f"PostGIS database {dbname}: flask db upgrade")
        flask_db_upgrade(env)
        app = make_app(env)
        load_grid(app, features)
        category_id, users = create_accounts(app, accounts, grid_codes, rng)
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()
        import psycopg

        with psycopg.connect(pg_url(dbname), autocommit=True) as conn:
            # Planner statistics, as autovacuum would have them on a live server.
            conn.execute("ANALYZE")

        # Ours.
        server = Server("our app", "wsgi:app", workers, env, "/readyz", worker_class, threads)
        try:
            tokens = []
            for account in progress_bar(users, "Logging in"):
                status, body = http_json(
                    server.port, "POST", "/api/v1/auth/login", {"username": account.username, "password": PASSWORD}
                )
                if status != 200:
                    raise click.ClickException(f"login failed for {account.username}: {status} {body}")
                tokens.append(body["access_token"])
            status, body = http_json(
                server.port,
                "POST",
                "/api/v1/reports",
                {
                    "category_code": CATEGORY["code"],
                    "description": "probe",
                    "location": {"lon": (bbox[0] + bbox[2]) / 2, "lat": (bbox[1] + bbox[3]) / 2},
                },
                {"Authorization": f"Bearer {tokens[0]}"},
            )
            if status != 201 or not (body.get("cell") or {}).get("code"):
                raise click.ClickException(f"probe report failed: {status} {body}")
            say(f"probe report {body['case_number']} routed to {body['cell']['code']}")
            conn_tokens = [tokens[i % len(tokens)] for i in range(concurrency)]
            load = LoadSpec(
                server.port,
                "/api/v1/reports",
                conn_tokens,
                bbox,
                CATEGORY["code"],
                max_requests,
                seconds,
                client_processes,
                dbname,
            )
            warm_up("our app", server, load)
            if profile is not None:
                profile.mkdir(parents=True, exist_ok=True)
            ours = drive(
                "our app /api/v1/reports", server, load, profile=profile / "ours.txt" if profile is not None else None
            )
            if own:
                # Workers only, each connection filing inside its worker's own cell.
                workers_ = [(a, t) for a, t in zip(users, tokens, strict=True) if a.role == "worker"]
                picks = [workers_[i % len(workers_)] for i in range(concurrency)]
                own_points = [points_in_cell(features, a.cell_code, 500, rng) for a, _ in picks]
                own_load = LoadSpec(
                    **{
                        **asdict(load),
                        "tokens": [t for _, t in picks],
                        "points": own_points,
                        "max_requests": max_requests,
                    }
                )
                warm_up("our app (own)", server, own_load)
                first_own = max_report_id(dbname)
                ours_own = drive(
                    "our app, workers' own",
                    server,
                    own_load,
                    profile=profile / "ours-own.txt" if profile is not None else None,
                )
                report["http"]["ours_own_rows"] = rows_per_report(dbname, first_own, max_report_id(dbname))
        finally:
            server.stop()
        report["http"]["ours"] = asdict(ours)
        if own:
            report["http"]["ours_own"] = asdict(ours_own)

        floors: dict[str, LoadResult] = {}
        for mode in modes + (["own"] if own else []):
            floor_env = dict(
                env, FLOOR_DATABASE_URL=pg_url(dbname), FLOOR_MODE=mode, FLOOR_REPORTER_ID=str(users[0].user_id)
            )
            server = Server(
                f"floor ({mode})", "bench.floor_app:app", workers, floor_env, "/healthz", worker_class, threads
            )
            try:
                load = LoadSpec(
                    server.port,
                    "/reports",
                    [None] * concurrency,
                    bbox,
                    CATEGORY["code"],
                    max_requests,
                    seconds,
                    client_processes,
                    dbname,
                    own_points if mode == "own" else None,
                )
                warm_up(f"floor {mode}", server, load)
                first = max_report_id(dbname)
                floors[mode] = drive(f"floor ({mode}) /reports", server, load)
                if mode == "own":
                    report["http"]["floor_own_rows"] = rows_per_report(dbname, first, max_report_id(dbname))
            finally:
                server.stop()
            report["http"][f"floor_{mode}"] = asdict(floors[mode])

        with psycopg.connect(pg_url(dbname)) as conn:
            rows = conn.execute("SELECT count(*), count(cell_id), count(case_day) FROM reports").fetchone()
            events = conn.execute("SELECT count(*) FROM case_events").fetchone()[0]
        report["http"]["rows_written"] = {
            "reports": rows[0],
            "routed": rows[1],
            "with_case_day": rows[2],
            "case_events": events,
        }

    say()
    say(
        f"POST reports on PostGIS, {spec.grid_cells} cells, {workers} {worker_class} gunicorn workers "
        f"(x{threads} threads) each, "
        f"{concurrency} connections from {client_processes} client processes:"
    )
    print_load(ours)
    if own:
        print_load(ours_own)
    for mode, result in floors.items():
        print_load(result)
    for mode, result in floors.items():
        mine = ours_own if mode == "own" else ours
        ratio = mine.rps / result.rps if result.rps else float("nan")
        report["http"][f"ratio_vs_floor_{mode}"] = round(ratio, 3)
        cpu = result.cpu_ms_per_request["both"] / mine.cpu_ms_per_request["both"]
        report["http"][f"cpu_ratio_vs_floor_{mode}"] = round(cpu, 3)
        what = {
            "report": "one reports row",
            "full": "same rows as ours: report + event",
            "own": "a worker's own report: same rows as ours",
        }[mode]
        target = "0.4" if mode == "own" else "0.5"
        say(
            f"  ours / floor ({mode}: {what}) = {ratio:.2f} by throughput (target >= {target}); "
            f"{cpu:.2f} by server CPU per request"
        )
    if own:
        say(f"  workers' own reports, ours:  {report['http']['ours_own_rows']}")
        say(f"  workers' own reports, floor: {report['http']['floor_own_rows']}")
    say(f"  rows in the database after the runs: {report['http']['rows_written']}")

    if profile is not None and (profile / "ours.txt").exists():
        from bench.profile_summary import summarise

        say()
        say(summarise(profile / "ours.txt"))

    if locate_seconds > 0:
        say()
        locate = locate_benchmark(features, bbox, locate_seconds, jwt_secret, rng)
        report["locate_spatialite"] = locate
        say(f"locate on SpatiaLite, {locate['cells']} cells, in-process, one thread:")
        say(
            f"  route_wgs84, the worker's index    {locate['route_wgs84']['calls_per_s']:>9.1f} calls/s "
            f"({locate['route_wgs84']['mean_us']} us/call, with a versions read each; target >= 2000)"
        )
        say(
            f"  route_wgs84, the database          {locate['route_wgs84_by_database']['calls_per_s']:>9.1f} calls/s "
            f"({locate['route_wgs84_by_database']['mean_us']} us/call; a grid above the index's bound)"
        )
        say(
            f"  raw pysqlite3 R*Tree + ST_Covers   {locate['raw_floor']['calls_per_s']:>9.1f} calls/s "
            f"({locate['raw_floor']['mean_us']} us/call)"
        )
        say(
            f"  ours / raw = {locate['ratio']:.2f} (the index), {locate['ratio_by_database']:.2f} (the database); "
            f"the same cell all three ways for {locate['same_cell_for_500_points']} points"
        )
        say(f"  the database path's plan (uses R*Tree: {locate['app_plan_uses_rtree']}):")
        for line in locate["app_plan"]:
            say(f"    {line}")
        say(f"  raw plan (uses R*Tree: {locate['raw_plan_uses_rtree']}):")
        for line in locate["raw_plan"]:
            say(f"    {line}")

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    text = json.dumps(report, ensure_ascii=False, indent=2)
    (OUT_DIR / f"results-{stamp}.json").write_text(text, encoding="utf-8")
    (OUT_DIR / "latest.json").write_text(text, encoding="utf-8")
    say(f"\nresults: {OUT_DIR / f'results-{stamp}.json'}")


if __name__ == "__main__":
    main()
