"""`make bench-volume`: a day of patrol check-ins at city scale through the API, beside a COPY floor, and coverage.

1. A fresh PostGIS database (dropped at the end, even on failure), migrated (patrol_checkins partitioned by day),
   with the 10,000-cell bench grid through the app's import service, W workers and as many floor workers in bulk
   SQL, and the day's partitions created by the app's `flask partitions ensure` code.
2. Each worker walks the district for H hours, one GPS point every 30 s (a random walk at walking pace), and
   uploads the track in 1,000-point batches: `POST /api/v1/patrols/checkins` through the in-process Flask test
   client with the worker's token. Beside each batch, the floor writes the same rows (as the matching floor
   worker, in the cells ours chose) with one `COPY ... FROM STDIN` on a plain psycopg connection (autocommit):
   what writing them costs with nothing else, no routing, no validation, no HTTP.
3. `GET /api/v1/patrols/coverage?cell_id=<street>&date=<day>` as an admin: the first page (100 grid cells) and
   the whole street (every page), p50 over R runs.

The full-day figure (10,000 workers x 8 h = 9.6 million points) is extrapolated from the measured rate;
`--workers 10000 --hours 8` runs it for real. See bench/README.md ("A day of check-ins").
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from datetime import UTC, datetime, time as dtime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from bench.field_bench import PG_OPTIONS, stats
from bench.gen_grid import extent, feature_collection, progress_bar, spec_for
from bench.geo_bench import PASSWORD, bench_app
from bench.run_bench import OUT_DIR, pg_url, say

STEP_S = 30
WALK_M = 30.0  # about 1 m/s between two points
CITY_WORKERS, CITY_HOURS = 10_000, 8
COPY_SQL = (
    "COPY patrol_checkins (user_id, cell_id, recorded_at, received_at, location, accuracy_m, input_crs, input_lon, "
    "input_lat) FROM STDIN"
)
USERS_SQL = """
INSERT INTO users (username, password_hash, role, active, created_at, updated_at)
SELECT %(prefix)s || lpad(n::text, 5, '0'), %(hash)s, 'worker', true, now(), now()
FROM generate_series(1, %(n)s) AS n
RETURNING id, username
"""


def track(rng: random.Random, bbox, start: datetime, points: int, margin: float = 0.005) -> list[dict]:
    """A worker's walk: a point every STEP_S seconds from `start`, about WALK_M metres apart, kept in the box."""
    lon = rng.uniform(bbox[0] + margin, bbox[2] - margin)
    lat = rng.uniform(bbox[1] + margin, bbox[3] - margin)
    heading = rng.uniform(0, 2 * math.pi)
    per_deg_lat = 111_320.0
    per_deg_lon = per_deg_lat * math.cos(math.radians(lat))
    out = []
    for i in range(points):
        out.append(
            {
                "time": (start + timedelta(seconds=i * STEP_S)).isoformat(),
                "lon": round(lon, 7),
                "lat": round(lat, 7),
                "accuracy": round(rng.uniform(3, 30), 1),
            }
        )
        heading += rng.gauss(0, 0.5)
        step = WALK_M * rng.uniform(0.5, 1.5)
        lon += step * math.cos(heading) / per_deg_lon
        lat += step * math.sin(heading) / per_deg_lat
        if not (bbox[0] + margin < lon < bbox[2] - margin and bbox[1] + margin < lat < bbox[3] - margin):
            heading += math.pi  # turn back at the district's edge
            lon = min(max(lon, bbox[0] + margin), bbox[2] - margin)
            lat = min(max(lat, bbox[1] + margin), bbox[3] - margin)
    return out


@click.command()
@click.option("--workers", default=100, show_default=True, help="Grid workers on patrol (the city: 10,000).")
@click.option("--hours", default=8.0, show_default=True, help="Hours each one patrols, a point every 30 s.")
@click.option("--batch", "batch_size", default=1_000, show_default=True, help="Points per upload.")
@click.option("--cells", default=10_000, show_default=True)
@click.option("--coverage-runs", default=20, show_default=True)
@click.option("--city", is_flag=True, help="The real scale: --workers 10000 --hours 8.")
@click.option("--seed", default=2026, show_default=True)
def main(workers, hours, batch_size, cells, coverage_runs, city, seed):
    import psycopg

    if city:
        workers, hours = CITY_WORKERS, CITY_HOURS
    # Workers sign in once each, without 64 MiB of Argon2 per login (the bench times check-ins, not sign-ins).
    os.environ.update(PASSWORD_TIME_COST="1", PASSWORD_MEMORY_KIB="1024", ACCESS_TOKEN_TTL_S="86400")
    rng = random.Random(seed)
    spec = spec_for(cells)
    bbox = extent(spec)
    features = feature_collection(spec)["features"]
    per_worker = int(hours * 3600 / STEP_S)
    results: dict = {
        "settings": {
            "workers": workers,
            "hours": hours,
            "points_per_worker": per_worker,
            "points": workers * per_worker,
            "batch_points": batch_size,
            "cells": cells,
            "coverage_runs": coverage_runs,
            "api": "in-process Flask test client",
            "floor": "COPY FROM STDIN, same rows, autocommit",
        }
    }
    started = time.perf_counter()
    with bench_app(features) as (dbname, app):
        with app.app_context():
            from app.auth.passwords import hash_password
            from app.extensions import db
            from app.services.calendar.worktime import local_day, local_day_bounds
            from app.services.field.retention import ensure_partitions

            zone = ZoneInfo(app.config["TIMEZONE"])
            day = local_day() - timedelta(days=1)  # a whole day in the past: no point is ahead of the clock
            first, last = local_day_bounds(day)
            created = ensure_partitions((last.date() - first.date()).days, today=first.date())
            db.session.commit()
            say(f"partitions created for {day}: {created}")
            streets = db.session.execute(
                db.text("SELECT id, code FROM cells WHERE level = 'street' ORDER BY code")
            ).all()
            db.engine.dispose()
        with app.app_context():
            password_hash = hash_password(PASSWORD)
        with psycopg.connect(pg_url(dbname), autocommit=True) as conn:
            ours_ids = conn.execute(USERS_SQL, {"prefix": "bench-w", "hash": password_hash, "n": workers}).fetchall()
            floor_ids = conn.execute(USERS_SQL, {"prefix": "bench-f", "hash": password_hash, "n": workers}).fetchall()
        start = datetime.combine(day, dtime(8, 0), tzinfo=zone).astimezone(UTC)
        client = app.test_client()
        raw = psycopg.connect(pg_url(dbname), autocommit=True, options=PG_OPTIONS)
        try:
            ingest(results, rng, bbox, start, per_worker, batch_size, client, raw, ours_ids, floor_ids)
            raw.execute("ANALYZE patrol_checkins")
            coverage(results, app, client, streets, day, coverage_runs, raw)
            results["partitions"] = dict(
                raw.execute(
                    "SELECT tableoid::regclass::text, count(*) FROM patrol_checkins GROUP BY 1 ORDER BY 1"
                ).fetchall()
            )
            results["table_bytes"] = raw.execute(
                "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                "WHERE inhparent = 'patrol_checkins'::regclass"
            ).fetchone()[0]
            bytes_per_point = results["table_bytes"] / (2 * results["settings"]["points"])
            results["city_day"]["gib_per_day"] = round(bytes_per_point * results["city_day"]["points"] / 2**30, 1)
        finally:
            raw.close()
            with app.app_context():
                from app.extensions import db

                db.session.remove()
                db.engine.dispose()
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    report(results)


def ingest(results, rng, bbox, start, per_worker, batch_size, client, raw, ours_ids, floor_ids) -> None:
    """Every worker's day in batches; each batch through the API, then the same rows by COPY (alternating, so
    neither side gets a quieter moment or a warmer cache). Only the two writes are timed."""
    times: tuple[list[float], list[float]] = ([], [])
    stored = {"ours": 0, "floor": 0, "unrouted": 0}
    jobs = []
    for (uid, username), (fid, _) in zip(ours_ids, floor_ids, strict=True):
        jobs.append((uid, username, fid))
    for uid, username, fid in progress_bar(jobs, "Workers' days (API + COPY)"):
        login = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
        if login.status_code != 200:
            raise click.ClickException(f"login: {login.status_code} {login.get_data(as_text=True)[:300]}")
        headers = {"Authorization": f"Bearer {login.json['access_token']}"}
        points = track(rng, bbox, start, per_worker)
        for i in range(0, len(points), batch_size):
            chunk = points[i : i + batch_size]
            t0 = time.perf_counter()
            resp = client.post("/api/v1/patrols/checkins", json={"points": chunk}, headers=headers)
            times[0].append((time.perf_counter() - t0) * 1000)
            if resp.status_code != 201:
                raise click.ClickException(f"checkins: {resp.status_code} {resp.get_data(as_text=True)[:300]}")
            stored["ours"] += resp.json["stored"]
            stored["unrouted"] += resp.json["unrouted"]
            routed = dict(
                raw.execute(
                    "SELECT recorded_at, cell_id FROM patrol_checkins WHERE user_id = %s AND recorded_at >= %s "
                    "AND recorded_at <= %s",
                    (uid, chunk[0]["time"], chunk[-1]["time"]),
                ).fetchall()
            )
            now = datetime.now(UTC)
            rows = []
            for p in chunk:
                moment = datetime.fromisoformat(p["time"])
                rows.append(
                    (
                        fid,
                        routed.get(moment),
                        moment,
                        now,
                        f"SRID=4326;POINT({p['lon']} {p['lat']})",
                        p["accuracy"],
                        "wgs84",
                        p["lon"],
                        p["lat"],
                    )
                )
            t0 = time.perf_counter()
            with raw.cursor() as cur, cur.copy(COPY_SQL) as copy:
                for row in rows:
                    copy.write_row(row)
            times[1].append((time.perf_counter() - t0) * 1000)
            stored["floor"] += len(rows)
    total = sum(len(range(0, per_worker, batch_size)) for _ in jobs)
    if stored["ours"] != stored["floor"] or stored["ours"] != per_worker * len(jobs):
        raise click.ClickException(f"check-ins disagree: {stored}")
    ours_s, floor_s = sum(times[0]) / 1000, sum(times[1]) / 1000
    results["ingest"] = {
        "batches": total,
        "stored": stored,
        "ours": {**stats(times[0]), "seconds": round(ours_s, 1), "points_per_s": round(stored["ours"] / ours_s)},
        "floor": {**stats(times[1]), "seconds": round(floor_s, 1), "points_per_s": round(stored["floor"] / floor_s)},
        "ratio": round(ours_s / floor_s, 2),
    }
    city_points = CITY_WORKERS * CITY_HOURS * 3600 // STEP_S
    results["city_day"] = {
        "points": city_points,
        "arrival_points_per_s": round(CITY_WORKERS / STEP_S),
        "ours_seconds_one_process": round(city_points / results["ingest"]["ours"]["points_per_s"]),
        "floor_seconds": round(city_points / results["ingest"]["floor"]["points_per_s"]),
    }


def coverage(results, app, client, streets, day, runs, raw) -> None:
    """The busiest street's coverage for the day as an admin: its first page and all its pages."""
    login = client.post("/api/v1/auth/login", json={"username": "bench-admin", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json['access_token']}"}
    busiest = raw.execute(
        """SELECT s.id, s.code, count(*) FROM patrol_checkins p JOIN cells g ON g.id = p.cell_id
           JOIN cells s ON s.level = 'street' AND g.code LIKE s.code || '%%' GROUP BY s.id, s.code
           ORDER BY 3 DESC LIMIT 1"""
    ).fetchone()
    street_id, street_code, street_points = busiest

    def page(n: int) -> dict:
        resp = client.get(
            "/api/v1/patrols/coverage",
            query_string={"cell_id": street_id, "date": day.isoformat(), "page": n, "page_size": 100},
            headers=headers,
        )
        if resp.status_code != 200:
            raise click.ClickException(f"coverage: {resp.status_code} {resp.get_data(as_text=True)[:300]}")
        return resp.json

    first_times, all_times, seen = [], [], {}
    page(1)  # warm-up
    for _ in progress_bar(range(runs), f"Coverage of street {street_code}"):
        t0 = time.perf_counter()
        body = page(1)
        first_times.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        pages, points, n = 1, sum(w["points"] for c in body["items"] for w in c["workers"]), 1
        while n * 100 < body["total"]:
            n += 1
            more = page(n)
            pages += 1
            points += sum(w["points"] for c in more["items"] for w in c["workers"])
        all_times.append((time.perf_counter() - t0) * 1000 + first_times[-1])
        seen = {"pages": pages, "cells": body["total"], "points": points}
    if seen["points"] != street_points:
        raise click.ClickException(f"coverage counted {seen['points']} points, the street holds {street_points}")
    plan = raw.execute(
        "EXPLAIN SELECT count(*) FROM patrol_checkins WHERE recorded_at >= %s AND recorded_at < %s",
        [*day_bounds(app, day)],
    ).fetchall()
    results["coverage"] = {
        "street": street_code,
        **seen,
        "first_page": stats(first_times),
        "whole_street": stats(all_times),
        "partitions_scanned": sorted(
            {line[0].split(" on ")[1].split()[0] for line in plan if " on patrol_checkins_" in line[0]}
        ),
    }


def day_bounds(app, day):
    with app.app_context():
        from app.services.calendar.worktime import local_day_bounds

        return local_day_bounds(day)


def report(results: dict) -> None:
    ing, cov, city = results["ingest"], results["coverage"], results["city_day"]
    s = results["settings"]
    say("")
    say(f"{s['workers']:,} workers x {s['hours']} h = {s['points']:,} points in {ing['batches']:,} batches")
    say(
        f"  ours (API):  p50 {ing['ours']['p50_ms']} ms, p95 {ing['ours']['p95_ms']} ms per batch; "
        f"{ing['ours']['seconds']} s, {ing['ours']['points_per_s']:,} points/s"
    )
    say(
        f"  floor (COPY): p50 {ing['floor']['p50_ms']} ms, p95 {ing['floor']['p95_ms']} ms per batch; "
        f"{ing['floor']['seconds']} s, {ing['floor']['points_per_s']:,} points/s"
    )
    say(f"  ratio ours/floor (total time): {ing['ratio']}")
    say(
        f"a city day ({city['points']:,} points, {city['arrival_points_per_s']} points/s arriving): ours "
        f"{city['ours_seconds_one_process']:,} s of one app process, the floor {city['floor_seconds']:,} s"
    )
    say(
        f"coverage of street {cov['street']} ({cov['cells']} cells, {cov['points']:,} points): first page p50 "
        f"{cov['first_page']['p50_ms']} ms (p95 {cov['first_page']['p95_ms']}), whole street ({cov['pages']} pages) "
        f"p50 {cov['whole_street']['p50_ms']} ms; partitions scanned for the day: {cov['partitions_scanned']}"
    )
    say(
        f"partitions: {results['partitions']}; table {results['table_bytes'] / 2**20:.0f} MiB "
        f"(a city day: about {city['gib_per_day']} GiB with its indexes)"
    )
    say(f"(total {results['total_seconds']} s)")
    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in (OUT_DIR / f"volume-{stamp}.json", OUT_DIR / "volume-latest.json"):
        Path(path).write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    say(f"wrote bench/out/volume-{stamp}.json")


if __name__ == "__main__":
    main()
