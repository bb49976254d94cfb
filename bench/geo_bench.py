"""`make bench-geo`: spatial report queries and analytics through the API beside the raw SQL, on 1,000,000 reports.

1. A fresh PostGIS database (dropped at the end): `flask db upgrade`, the 10,000-cell bench grid through the
   app's import service, five categories, an admin and a few residents.
2. N reports in bulk SQL (generate_series, in chunks under a progress bar): 70 % uniform over the district,
   30 % around 500 hotspot centres, each routed to its grid cell by ST_Covers in the same statement, filed
   at random over the last 365 days with a mix of statuses. The spatial index is built after the load.
3. In-process Flask test client (no HTTP server: the figures are the app's own cost, not gunicorn's or
   the network's), signed in as the admin, one request at a time:
   near r=500 m page 50, bbox of ~1 km² page 50, hotspots for one street over 30 days, heat map of the
   district at 200 m. Beside each, a raw psycopg 3 floor sends hand-written SQL for the same answer on the
   same data. Prints p50/p99 and the ratio API/raw.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from app.dialect.spatial import degree_box
from app.lib.geofilter import COUNT_CAP
from app.services.insight.geoqueries import RECENT_WINDOWS
from bench.gen_grid import extent, feature_collection, progress_bar, spec_for
from bench.run_bench import (
    OUT_DIR,
    app_env,
    flask_db_upgrade,
    fresh_postgis_database,
    load_grid,
    make_app,
    percentile,
    pg_url,
    say,
)

PASSWORD = "bench-" + secrets.token_urlsafe(12)
CATEGORIES = ["B01", "B02", "B03", "B04", "B05"]
CHUNKS = 20

LOAD_SQL = """
INSERT INTO reports (case_day, category_id, reporter_id, cell_id, handling_cell_id, status, description,
                     location, input_crs, input_lon, input_lat, routed_by, needs_triage, deadline_at, warn_at,
                     due_at, accepted_at, closed_at, created_at, updated_at)
SELECT (p.created AT TIME ZONE 'Asia/Shanghai')::date, p.category_id, p.reporter_id, p.cell_id, p.cell_id,
       p.status, 'bench report', p.geom, 'wgs84', ST_X(p.geom), ST_Y(p.geom), 'covers', false,
       CASE WHEN p.status <> 'submitted' THEN p.created + interval '24 hours' END,
       CASE WHEN p.status <> 'submitted' THEN p.created + interval '19 hours 12 minutes' END,
       CASE WHEN p.status <> 'submitted' THEN p.created + interval '24 hours' END,
       CASE WHEN p.status <> 'submitted' THEN p.created END,
       CASE WHEN p.status = 'closed' THEN p.created + random() * interval '48 hours' END,
       p.created, p.created
FROM (
    SELECT d.cell_id, d.geom,
           now() - d.r_created * interval '365 days' AS created,
           (%(categories)s::int[])[1 + floor(d.r_category * %(n_categories)s)::int] AS category_id,
           (%(reporters)s::int[])[1 + floor(d.r_reporter * %(n_reporters)s)::int] AS reporter_id,
           (ARRAY['closed','closed','closed','closed','closed','closed','resolved','in_progress','assigned',
                  'accepted','submitted'])[1 + floor(d.r_status * 11)::int] AS status
    -- Each draw its own column: in a select list over ORDER BY random(), PostgreSQL gave every random() of a row
    -- the same value, so each category held only some statuses (one only closed cases).
    FROM (SELECT g.cell_id, g.geom, random() AS r_created, random() AS r_category, random() AS r_reporter,
                 random() AS r_status
          FROM (SELECT c.id AS cell_id,
                       (ST_Dump(ST_GeneratePoints(c.geom, %(base)s + CASE WHEN h.cell_id IS NULL THEN 0 ELSE %(extra)s END))).geom
                FROM cells c LEFT JOIN bench_hot_cells h ON h.cell_id = c.id
                WHERE c.level = 'grid' AND c.id %% %(chunks)s = %(chunk)s) g
          OFFSET 0) d
    -- In the order they were filed, as a live table grows (that random() also ordered them, newest first).
    ORDER BY created
) p
"""

RAW_COLUMNS = """r.id, r.case_day, r.status, r.description, r.address, ST_AsBinary(r.location), r.routed_by,
    r.routing_distance_m, r.needs_triage, r.reporter_id, r.deadline_at, r.created_at, r.updated_at,
    k.code, k.name, k.group_name, c.id, c.code, c.name, c.level"""

# The same SQL the API sends for near (app.dialect.spatial.points_within_distance / local_distance_m), by hand.
_MID = "radians((ST_Y(r.location) + %(lat)s) / 2)"
_W = f"(1 - 0.00669437999014 * power(sin({_MID}), 2))"
ESTIMATE = (
    f"sqrt(power(radians(ST_X(r.location) - %(lon)s) * 6378137.0 * cos({_MID}) / sqrt({_W}), 2)"
    f" + power(radians(ST_Y(r.location) - %(lat)s) * 6335439.327083 / power({_W}, 1.5), 2))"
)
EXACT = "ST_Distance(r.location::geography, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography)"


def within_metres(radius: float) -> str:
    """The box, then the estimate, and the exact distance only within the estimate's error of the radius."""
    return f"""r.location && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)
  AND ({ESTIMATE} <= {radius * (1 - 1e-5):.10g} OR ({ESTIMATE} <= {radius * (1 + 1e-5):.10g} AND {EXACT} <= {radius:.10g}))"""


NEAR_WHERE = within_metres(500)
# Both lists, as the API answers them (app.services.geoqueries.paginate_reports): the page (joins after the
# LIMIT), then a count that stops at COUNT_CAP + 1, only when the page is full.
RAW_NEAR_BOUND = f"""SELECT count(*), max(d) FROM (
    SELECT {ESTIMATE} AS d FROM reports r WHERE {NEAR_WHERE}
    ORDER BY r.location <-> ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) LIMIT 50) knn"""
RAW_NEAR_PAGE = f"""SELECT {RAW_COLUMNS}, {EXACT}
FROM (SELECT r.id, {ESTIMATE} AS d FROM reports r
      WHERE {NEAR_WHERE} AND r.location && ST_MakeEnvelope(%(bx0)s, %(by0)s, %(bx1)s, %(by1)s, 4326)
        AND {ESTIMATE} <= %(bound)s
      ORDER BY 2, 1 LIMIT 50) p
JOIN reports r ON r.id = p.id JOIN categories k ON k.id = r.category_id LEFT JOIN cells c ON c.id = r.cell_id
ORDER BY p.d, p.id"""
RAW_NEAR_COUNT = f"SELECT count(*) FROM (SELECT 1 FROM reports r WHERE {NEAR_WHERE} LIMIT {COUNT_CAP + 1}) s"
BOX = "ST_Intersects(r.location, ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326))"
RAW_BOX_PAGE = f"""SELECT {RAW_COLUMNS}
FROM (SELECT r.id, r.created_at FROM reports r WHERE {BOX} AND r.created_at >= %(since)s
      ORDER BY r.created_at DESC, r.id DESC LIMIT 50) p
JOIN reports r ON r.id = p.id JOIN categories k ON k.id = r.category_id LEFT JOIN cells c ON c.id = r.cell_id
ORDER BY p.created_at DESC, p.id DESC"""
RAW_BOX_COUNT = f"SELECT count(*) FROM (SELECT 1 FROM reports r WHERE {BOX} LIMIT {COUNT_CAP + 1}) s"
# A filing's similar cases (app.services.public.residents.similar_cases_read): the 5 nearest open cases of the
# category within its radius (the default), whole rows with their distance.
SIMILAR_RADIUS_M = 250
RAW_SIMILAR = f"""SELECT r.*, ST_X(r.location), ST_Y(r.location), {EXACT}
FROM (SELECT r.id, {ESTIMATE} AS d FROM reports r
      WHERE {within_metres(SIMILAR_RADIUS_M)} AND r.category_id = %(category)s::integer
        AND r.status NOT IN ('rejected', 'closed', 'duplicate', 'cancelled')
      ORDER BY 2, 1 LIMIT 5) p
JOIN reports r ON r.id = p.id ORDER BY p.d, p.id"""
# The plain list (no spatial filter), newest first: the page with its joins after the LIMIT, then the exact count
# such a list keeps (no cap without spatial filters).
RAW_LIST_PAGE = f"""SELECT {RAW_COLUMNS}
FROM (SELECT r.id, r.created_at FROM reports r ORDER BY r.created_at DESC, r.id DESC LIMIT 50 OFFSET %(offset)s) p
JOIN reports r ON r.id = p.id JOIN categories k ON k.id = r.category_id LEFT JOIN cells c ON c.id = r.cell_id
ORDER BY p.created_at DESC, p.id DESC"""
RAW_LIST_COUNT = "SELECT count(*) FROM reports"
SUBTREE = "r.cell_id IN (SELECT id FROM cells WHERE code >= %(code)s AND code < %(code)s || ':')"
RAW_HOTSPOTS = f"""WITH pts AS (
    SELECT r.id, r.location, k.code AS category, r.status, r.created_at FROM reports r
    JOIN categories k ON k.id = r.category_id
    WHERE {SUBTREE} AND r.created_at >= %(t0)s AND r.created_at < %(t1)s),
lat0 AS (SELECT avg(ST_Y(location)) AS lat FROM pts),
clustered AS (
    SELECT pts.*, ST_ClusterDBSCAN(ST_Transform(location, 3857), 100.0 / cos(radians((SELECT lat FROM lat0))), 5)
           OVER () AS cid FROM pts),
cats AS (SELECT cid, category, count(*) AS n FROM clustered WHERE cid IS NOT NULL GROUP BY cid, category)
SELECT cid, count(*), ST_AsGeoJSON(ST_ConvexHull(ST_Collect(location))), ST_AsText(ST_Centroid(ST_Collect(location))),
       count(*) FILTER (WHERE status IN ('submitted','accepted','assigned','in_progress','on_hold','resolved')),
       min(created_at), max(created_at),
       (SELECT json_agg(json_build_object('category', category, 'count', n) ORDER BY n DESC, category)
        FROM (SELECT * FROM cats WHERE cats.cid = clustered.cid ORDER BY n DESC, category LIMIT 3) t)
FROM clustered WHERE cid IS NOT NULL GROUP BY cid ORDER BY count(*) DESC, min(id)"""
RAW_HEATMAP = f"""SELECT floor((ST_X(r.location) - %(x0)s) * %(kx)s) AS i, floor((ST_Y(r.location) - %(y0)s) * %(ky)s) AS j,
       count(*) FROM reports r
WHERE {SUBTREE} AND r.created_at >= %(t0)s AND r.created_at < %(t1)s
GROUP BY i, j ORDER BY i, j"""


@contextmanager
def _database(features, n_reports: int, cells: int, keep_db: str | None, results: dict):
    """(name, app, admin) of the loaded database: a fresh one, dropped after, or the kept one of --keep-db."""
    if keep_db:
        t0 = time.perf_counter()
        with kept_bench_app(keep_db, features, n_reports, cells) as (dbname, app, admin, loaded):
            results["reports_loaded"] = n_reports
            results["load_seconds"] = round(time.perf_counter() - t0, 1) if loaded else 0.0
            yield dbname, app, admin
        return
    with bench_app(features) as (dbname, app):
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()
        t0 = time.perf_counter()
        results["reports_loaded"] = load_reports(dbname, n_reports, cells)
        results["load_seconds"] = round(time.perf_counter() - t0, 1)
        say(f"loaded in {results['load_seconds']} s")
        yield dbname, app, "bench-admin"


def alternate_times(
    label: str, runs: list, ours: Callable[[Any], Any], floor: Callable[[Any], Any], warm: int = 2
) -> tuple[list[float], list[float]]:
    """Milliseconds per call for ours and the floor, alternating on each run (neither gets the other's warm
    cache or quieter moment); `warm` unmeasured runs first, which are taken from the front of `runs`.

    Both read the same rows on a run, so the second finds them in PostgreSQL's buffers: which goes first
    alternates too (ours always went first until 2026-11-28, and paid for the floor's warm pages)."""
    for run in runs[:warm]:
        ours(run)
        floor(run)
    times: tuple[list[float], list[float]] = ([], [])
    mine, theirs = (ours, times[0]), (floor, times[1])
    for i, run in enumerate(progress_bar(runs[warm:], label)):
        for call, bucket in (mine, theirs) if i % 2 == 0 else (theirs, mine):
            start = time.perf_counter()
            call(run)
            bucket.append((time.perf_counter() - start) * 1000)
    return times


def timed_pair(
    label: str, runs: list[dict], api_call: Callable[[dict], None], raw_call: Callable[[dict], None]
) -> tuple[dict, dict]:
    """Milliseconds per call for the API and the floor (alternate_times), with p99."""
    api_times, raw_times = alternate_times(label, runs, api_call, raw_call)
    return _stats(api_times), _stats(raw_times)


def _profile(targets: dict, near_runs: list, box_runs: list, n: int, n_reports: int) -> None:
    """pyinstrument over n near and n bbox requests through the API; the text summary goes to bench/out."""
    from pyinstrument import Profiler

    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name, runs in (("near r=500 m, page 50", near_runs), ("bbox ~1 km², page 50", box_runs)):
        call = targets[name][1]
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for i in range(n):
            call(runs[i % len(runs)])
        profiler.stop()
        text = profiler.output_text(unicode=True, color=False, show_all=False)
        path = OUT_DIR / f"geo-profile-{name.split()[0]}-{n_reports}-{stamp}.txt"
        path.write_text(text)
        say(f"profile of {n} {name} requests: {path}")


def _stats(times: list[float]) -> dict:
    times = sorted(times)
    return {
        "n": len(times),
        "p50_ms": round(percentile(times, 50), 2),
        "p99_ms": round(percentile(times, 99), 2),
        "mean_ms": round(statistics.fmean(times), 2),
    }


def load_reports(dbname: str, n: int, cells: int, hot_cells: int = 500) -> int:
    """n reports: 70 % spread evenly over the grid cells, 30 % on `hot_cells` random cells (the hotspots).

    Points come from ST_GeneratePoints inside each cell, so each report's cell is known without routing.
    A chunk takes every CHUNKS-th cell and goes in the order its reports were filed, so the table is not laid out
    by place (as reports filed over time would not be)."""
    import psycopg

    base, extra = round(n * 0.7 / cells), round(n * 0.3 / hot_cells)
    with psycopg.connect(pg_url(dbname), autocommit=True) as conn:
        categories = [r[0] for r in conn.execute("SELECT id FROM categories ORDER BY id")]
        reporters = [r[0] for r in conn.execute("SELECT id FROM users WHERE role = 'resident' ORDER BY id")]
        conn.execute(
            "CREATE TABLE bench_hot_cells AS SELECT id AS cell_id FROM cells WHERE level = 'grid' "
            "ORDER BY random() LIMIT %s",
            (hot_cells,),
        )
        # Building the GiST indexes once after the load is far quicker than growing them row by row.
        spatial = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'reports' AND indexdef LIKE '%% USING gist %%'"
        ).fetchall()
        for name, _definition in spatial:
            conn.execute(f"DROP INDEX {name}")
        params = {
            "categories": categories,
            "n_categories": len(categories),
            "reporters": reporters,
            "n_reporters": len(reporters),
            "base": base,
            "extra": extra,
        }
        for chunk in progress_bar(range(CHUNKS), "Loading reports"):
            conn.execute(LOAD_SQL, {**params, "chunks": CHUNKS, "chunk": chunk})
        conn.execute("DROP TABLE bench_hot_cells")
        say("building the spatial indexes, VACUUM ANALYZE")
        for _name, definition in spatial:
            conn.execute(definition)
        conn.execute("VACUUM ANALYZE")
        total = conn.execute("SELECT count(*) FROM reports").fetchone()[0]
        say(f"{total} reports loaded")
        return total


def _seed(app, admin: str = "bench-admin") -> None:
    with app.app_context():
        from app.extensions import db
        from app.services.cases.categories import create_category
        from app.services.people.users import create_user

        for code in CATEGORIES:
            create_category({"code": code, "name": f"类别 {code}", "group": "市容环境", "time_limit_value": 24})
        create_user(username=admin, password=PASSWORD, role="admin")
        for i in range(20):
            create_user(username=f"bench-resident-{i:02d}", password=PASSWORD, role="resident")
        db.session.commit()


@contextmanager
def bench_app(features: list[dict]) -> Iterator[tuple[str, Any]]:
    """A fresh PostGIS database (dropped after) migrated, with the grid imported through the app, the
    categories, an admin (bench-admin) and 20 residents committed; yields its name and the in-process app."""
    with fresh_postgis_database() as dbname:
        env = app_env(pg_url(dbname, "postgresql+psycopg"), secrets.token_urlsafe(32))
        say(f"PostGIS database {dbname}: flask db upgrade")
        flask_db_upgrade(env)
        app = make_app(env)
        load_grid(app, features)
        _seed(app)
        yield dbname, app


KEEP_PREFIX = "grid_bench_keep_"


@contextmanager
def kept_bench_app(name: str, features: list[dict], n_reports: int, cells: int) -> Iterator[tuple[str, Any, str, bool]]:
    """bench_app on a database that outlives the run (--keep-db): built and loaded the first time, reused as it is
    afterwards (each run signs in as an admin of its own). Yields its name, the app, the admin and whether it was
    loaded now."""
    import psycopg

    from bench.run_bench import PG_ADMIN_URL

    dbname = KEEP_PREFIX + name
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None
    if exists:
        with psycopg.connect(pg_url(dbname), autocommit=True) as conn:
            ready = conn.execute("SELECT to_regclass('bench_loaded')").fetchone()[0] is not None
            stored = conn.execute("SELECT reports, cells FROM bench_loaded").fetchone() if ready else None
        if stored != (n_reports, cells):
            raise click.ClickException(
                f"{dbname} holds {stored} (reports, cells), not {(n_reports, cells)}: drop it "
                f'(DROP DATABASE "{dbname}") or keep another name'
            )
    else:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        with psycopg.connect(pg_url(dbname), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    env = app_env(pg_url(dbname, "postgresql+psycopg"), secrets.token_urlsafe(32))
    admin = f"bench-admin-{secrets.token_hex(4)}"
    if exists:
        say(f"PostGIS database {dbname} kept from an earlier run: reused, brought to the code's migrations")
        flask_db_upgrade(env)  # the code may have moved on since the database was loaded
        app = make_app(env)
        with app.app_context():
            from app.extensions import db
            from app.services.people.users import create_user

            create_user(username=admin, password=PASSWORD, role="admin")
            db.session.commit()
        yield dbname, app, admin, False
        return
    try:
        say(f"PostGIS database {dbname} (kept after the run): flask db upgrade")
        flask_db_upgrade(env)
        app = make_app(env)
        load_grid(app, features)
        _seed(app, admin)
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()
        load_reports(dbname, n_reports, cells)
        with psycopg.connect(pg_url(dbname), autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_loaded AS SELECT %s::int AS reports, %s::int AS cells", (n_reports, cells))
    except BaseException:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        raise
    yield dbname, app, admin, True


@click.command()
@click.option("--reports", "n_reports", default=1_000_000, show_default=True)
@click.option("--cells", default=10_000, show_default=True)
@click.option("--runs", default=200, show_default=True, help="Requests per list query (near, bbox).")
@click.option("--analytics-runs", default=20, show_default=True, help="Requests per analytics query.")
@click.option(
    "--cluster/--no-cluster",
    default=True,
    show_default=True,
    help="Also time near and bbox after CLUSTER on the spatial index.",
)
@click.option(
    "--keep-db",
    default=None,
    help=f"Keep the loaded database as {KEEP_PREFIX}<name> and reuse it on later runs with the same --reports and "
    "--cells (drop it by hand when done); skips the CLUSTER pass, which would change it.",
)
@click.option(
    "--only",
    default=None,
    help="Comma-separated queries to time: near, bbox, hotspots, heatmap, list, similar (default: all).",
)
@click.option(
    "--profile",
    "profile_runs",
    default=0,
    show_default=True,
    help="After timing, profile this many near and bbox requests (pyinstrument) into bench/out/geo-profile-*.txt.",
)
@click.option("--seed", default=2026, show_default=True)
def main(n_reports, cells, runs, analytics_runs, cluster, keep_db, only, profile_runs, seed):
    import psycopg

    rng = random.Random(seed)
    spec = spec_for(cells)
    bbox = extent(spec)
    features = feature_collection(spec)["features"]
    results: dict = {
        "settings": {
            "reports": n_reports,
            "cells": cells,
            "runs": runs,
            "analytics_runs": analytics_runs,
            "api": "in-process Flask test client",
        }
    }
    started = time.perf_counter()
    with _database(features, n_reports, cells, keep_db, results) as (dbname, app, admin):
        if keep_db:
            cluster = False
        with app.app_context():
            from app.extensions import db

            district = db.session.execute(db.text("SELECT id, code FROM cells WHERE level = 'district'")).one()
            streets = db.session.execute(db.text("SELECT id, code FROM cells WHERE level = 'street'")).all()
            db.engine.dispose()

        client = app.test_client()
        with app.app_context():
            login = client.post("/api/v1/auth/login", json={"username": admin, "password": PASSWORD})
            headers = {"Authorization": f"Bearer {login.json['access_token']}"}

        def api(path: str, query: dict) -> Callable[[dict], None]:
            def call(run: dict) -> None:
                resp = client.get(
                    path, query_string={k: (v(run) if callable(v) else v) for k, v in query.items()}, headers=headers
                )
                if resp.status_code != 200:
                    raise click.ClickException(f"{path}: {resp.status_code} {resp.get_data(as_text=True)[:500]}")

            return call

        # The app's own connection settings (app.dialect.engine.engine_options): no JIT, no parallel workers.
        raw_conn = psycopg.connect(
            pg_url(dbname),
            autocommit=True,
            options="-c jit=off -c max_parallel_workers_per_gather=0 -c plan_cache_mode=force_custom_plan",
        )

        def raw(*statements: str) -> Callable[[dict], None]:
            def call(run: dict) -> None:
                for sql in statements:
                    raw_conn.execute(sql, run).fetchall()

            return call

        def raw_near(run: dict) -> None:
            # The KNN bound, the page within it, the capped count only for a full page: what the API sends.
            found, bound = raw_conn.execute(RAW_NEAR_BOUND, run).fetchone()
            if found < 50:
                bound = 500.0
            box = dict(
                zip(("bx0", "by0", "bx1", "by1"), degree_box(run["lon"], run["lat"], bound * 1.001), strict=True)
            )
            if len(raw_conn.execute(RAW_NEAR_PAGE, {**run, **box, "bound": bound}).fetchall()) == 50:
                raw_conn.execute(RAW_NEAR_COUNT, run).fetchall()

        def raw_box(run: dict) -> None:
            # Newest first: the last week, then 8 weeks, then all time, until a window fills the page.
            now = datetime.now(UTC)
            for since in [now - w for w in RECENT_WINDOWS] + [datetime(1970, 1, 1, tzinfo=UTC)]:
                if len(raw_conn.execute(RAW_BOX_PAGE, {**run, "since": since}).fetchall()) == 50:
                    raw_conn.execute(RAW_BOX_COUNT, run).fetchall()
                    return

        margin = 0.01
        now = datetime.now(UTC)
        t_from, t_to = now - timedelta(days=30), now
        near_runs, box_runs = [], []
        for _ in range(runs):
            lon = rng.uniform(bbox[0] + margin, bbox[2] - margin)
            lat = rng.uniform(bbox[1] + margin, bbox[3] - margin)
            dlat = 500 / 110_574.0
            dlon = 500 / (111_320.0 * math.cos(math.radians(lat + dlat)))
            near_runs.append(
                {"lon": lon, "lat": lat, "x0": lon - dlon, "y0": lat - dlat, "x1": lon + dlon, "y1": lat + dlat}
            )
            side_lat, side_lon = 1000 / 111_000.0, 1000 / (111_000.0 * math.cos(math.radians(lat)))
            box_runs.append({"x0": lon, "y0": lat, "x1": lon + side_lon, "y1": lat + side_lat})
        street_runs = [
            {"cell": s.id, "code": s.code, "t0": t_from, "t1": t_to}
            for s in (rng.choice(streets) for _ in range(analytics_runs))
        ]
        from geoalchemy2.shape import to_shape

        from app.services.insight.analytics import _metres_per_degree

        with app.app_context():
            from app.extensions import db
            from app.models import Cell

            x0, y0, x1, y1 = to_shape(db.session.get(Cell, district.id).geom).bounds
            db.session.remove()
        per_lon, per_lat = _metres_per_degree((y0 + y1) / 2)
        heat_runs = [
            {
                "cell": district.id,
                "code": district.code,
                "t0": t_from,
                "t1": t_to,
                "x0": x0,
                "y0": y0,
                "kx": per_lon / 200,
                "ky": per_lat / 200,
            }
        ] * max(analytics_runs // 2, 5)
        iso = {"from": t_from.isoformat(), "to": t_to.isoformat()}
        list_runs = [{"page": p, "offset": (p - 1) * 50} for p in (rng.randint(1, 20) for _ in range(runs))]
        with app.app_context():
            from app.extensions import db

            category_id = db.session.execute(
                db.text("SELECT id FROM categories WHERE code = :code"), {"code": CATEGORIES[0]}
            ).scalar()
            db.session.remove()
        # What the read takes of the category: its id and radius.
        similar_category = SimpleNamespace(id=category_id, duplicate_radius_m=SIMILAR_RADIUS_M)
        similar_runs = [
            {"lon": run["lon"], "lat": run["lat"], "category": category_id}
            | dict(zip(("x0", "y0", "x1", "y1"), degree_box(run["lon"], run["lat"], SIMILAR_RADIUS_M), strict=True))
            for run in near_runs
        ]

        def ours_similar(run: dict) -> None:
            # As a filing runs it, inside a transaction (measure() holds one app context across the runs).
            from app.services.public import residents

            statement, values = residents.similar_cases_read(similar_category, run["lon"], run["lat"])
            statement.run(values)

        targets = {
            "near r=500 m, page 50": (
                near_runs,
                api("/api/v1/reports", {"near": lambda r: f"{r['lon']},{r['lat']}", "radius": 500, "page_size": 50}),
                raw_near,
            ),
            "bbox ~1 km², page 50": (
                box_runs,
                api("/api/v1/reports", {"bbox": lambda r: f"{r['x0']},{r['y0']},{r['x1']},{r['y1']}", "page_size": 50}),
                raw_box,
            ),
            "hotspots, one street, 30 days": (
                street_runs,
                api("/api/v1/analytics/hotspots", {"cell_id": lambda r: r["cell"], **iso}),
                raw(RAW_HOTSPOTS),
            ),
            "heat map, district, 200 m, 30 days": (
                heat_runs,
                api("/api/v1/analytics/heatmap", {"cell_id": lambda r: r["cell"], "size_m": 200, **iso}),
                raw(RAW_HEATMAP),
            ),
            "list, newest first, page 50": (
                list_runs,
                api("/api/v1/reports", {"page": lambda r: r["page"], "page_size": 50}),
                raw(RAW_LIST_PAGE, RAW_LIST_COUNT),
            ),
            "a filing's similar cases (in-process read)": (similar_runs, ours_similar, raw(RAW_SIMILAR)),
        }
        results["queries"] = {}

        def measure(suffix: str, names) -> None:
            for name in names:
                run_list, api_call, raw_call = targets[name]
                # The similar cases' read runs in one app context, as in a filing's transaction; the API's requests
                # each push their own.
                with app.app_context() if api_call is ours_similar else nullcontext():
                    ours, floor = timed_pair(f"{name}{suffix}", run_list, api_call, raw_call)
                results["queries"][name + suffix] = {
                    "api": ours,
                    "raw": floor,
                    "ratio_p50": round(ours["p50_ms"] / floor["p50_ms"], 2),
                }
                say(f"  {name}{suffix}: API p50 {ours['p50_ms']} ms, raw p50 {floor['p50_ms']} ms")

        short = {
            "near": "near r=500 m, page 50",
            "bbox": "bbox ~1 km², page 50",
            "hotspots": "hotspots, one street, 30 days",
        }
        short["heatmap"] = "heat map, district, 200 m, 30 days"
        short["list"] = "list, newest first, page 50"
        short["similar"] = "a filing's similar cases (in-process read)"
        chosen = [short[name.strip()] for name in only.split(",")] if only else list(targets)
        measure("", chosen)
        if profile_runs:
            _profile(targets, near_runs, box_runs, profile_runs, n_reports)
        if cluster:
            # The same lists once the heap is in index order (a periodic CLUSTER on a live server): the
            # rows of one place then share pages, which is what the list queries mostly pay for.
            say("CLUSTER reports USING idx_reports_location, ANALYZE")
            t0 = time.perf_counter()
            raw_conn.execute("CLUSTER reports USING idx_reports_location")
            raw_conn.execute("ANALYZE reports")
            results["cluster_seconds"] = round(time.perf_counter() - t0, 1)
            measure(" (clustered)", [name for name in list(targets)[:2] if name in chosen])
        sample = client.get(
            "/api/v1/reports",
            query_string={"near": f"{near_runs[0]['lon']},{near_runs[0]['lat']}", "radius": 500, "page_size": 50},
            headers=headers,
        ).json
        results["near_total_sample"] = sample["total"]
        results["near_total_is_lower_bound"] = sample["total_is_lower_bound"]
        raw_conn.close()
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()
    results["total_seconds"] = round(time.perf_counter() - started, 1)

    say("")
    say(f"{'query':50} {'API p50':>9} {'API p99':>9} {'raw p50':>9} {'raw p99':>9} {'ratio':>6}")
    for name, r in results["queries"].items():
        say(
            f"{name:50} {r['api']['p50_ms']:9.2f} {r['api']['p99_ms']:9.2f} {r['raw']['p50_ms']:9.2f} "
            f"{r['raw']['p99_ms']:9.2f} {r['ratio_p50']:6.2f}"
        )
    say(
        f"(ms; API = in-process Flask test client as admin; ratio = API p50 / raw p50; "
        f"load {results['load_seconds']} s, total {results['total_seconds']} s)"
    )
    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in (OUT_DIR / f"geo-{stamp}.json", OUT_DIR / "geo-latest.json"):
        Path(path).write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
