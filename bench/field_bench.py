"""`make bench-field`: the field clients' two hot paths, patrol check-in batches and the sync feed, beside raw SQL.

1. A fresh PostGIS database (dropped at the end, even on failure): `flask db upgrade`, the 10,000-cell bench
   grid through the app's import service, categories, an admin, residents, two workers serving one grid cell
   each and a supervisor of one community (about 1/100 of the grid).
2. Patrols: `POST /api/v1/patrols/checkins` with batches of 1,000 random points inside the district and random
   times in the last hour, through the in-process Flask test client as a worker, beside a psycopg floor that
   routes and inserts the same batch (as the other worker) in one statement.
3. Sync: N reports in bulk SQL (bench.geo_bench.load_reports) and one case_events row each; the triggers write
   the change log. `GET /api/v1/sync?limit=200` for an admin, the supervisor and a worker: the first page of a
   full sync, a poll with the latest cursor that finds nothing, and paging through a whole scope; beside each a
   floor sending the same change-log query and loading the same rows by id, without serialisation.

See bench/README.md ("Field clients") for how to read it.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from app.dialect.sync_log import _PG_SYNC_WATERMARK
from bench.gen_grid import extent, feature_collection, progress_bar, spec_for
from bench.geo_bench import PASSWORD, alternate_times, bench_app, load_reports
from bench.run_bench import OUT_DIR, percentile, pg_url, say

BATCH = 1000
LIMIT = 200
PG_OPTIONS = "-c jit=off -c max_parallel_workers_per_gather=0 -c plan_cache_mode=force_custom_plan"

# ---- patrols: the floor ------------------------------------------------------------------------------
# Route each point to its grid cell (ST_Covers on the GiST-indexed cells, lowest code first) and insert, in
# one statement. No nearest-cell fallback: every point lies inside a cell (checked: unrouted must be 0).
# `level || ''` keeps the planner off ix_cells_level: ANDed into the bitmap, it read all 10,000 grid entries per
# point (0.2 ms a point instead of the GiST probe alone).
RAW_CHECKINS = """
WITH pts AS (SELECT * FROM json_to_recordset(%(points)s::json) AS p(time timestamptz, lon float8, lat float8,
                                                                    accuracy float8))
INSERT INTO patrol_checkins (user_id, cell_id, recorded_at, received_at, location, accuracy_m, input_crs,
                             input_lon, input_lat)
SELECT %(user)s,
       (SELECT c.id FROM cells c
        WHERE c.level || '' = 'grid' AND c.active AND ST_Covers(c.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326))
        ORDER BY c.code LIMIT 1),
       p.time, now(), ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326), p.accuracy, 'wgs84', p.lon, p.lat
FROM pts p
ON CONFLICT DO NOTHING
RETURNING id, cell_id
"""

# ---- sync: the floor ---------------------------------------------------------------------------------
# The reports each caller may see (app.services.reports.visibility), by hand.
VISIBILITY = {
    "admin": "true",
    "supervisor": "(r.reporter_id = %(user)s OR r.cell_id IN (SELECT id FROM cells WHERE code >= %(low)s "
    "AND code < %(high)s))",
    "worker": "(r.reporter_id = %(user)s OR r.assignee_id = %(user)s OR r.cell_id IN (SELECT cell_id FROM "
    "worker_cells WHERE user_id = %(user)s AND valid_from <= %(today)s AND (valid_to IS NULL OR "
    "valid_to >= %(today)s)))",
}
# app.services.sync._scoped_changes: cases and events through the visible reports (latest case row only), and
# the caller's notifications, each branch index-ordered and cut, then merged in (xid, seq) order.
# A change row the page may hand out: after the cursor, final (below the watermark), and for a case its latest.
READY = "{after} AND s.xid < {watermark}"
LATEST_CASE_ROW = """(s.kind = 'event' OR NOT EXISTS (
            SELECT 1 FROM sync_changes l WHERE l.report_id = s.report_id AND l.kind = 'case'
              AND l.entity_id = s.entity_id AND (l.xid, l.seq) > (s.xid, s.seq)))"""
# The caller's notifications (latest row of each), and the merge of the two branches in (xid, seq) order.
MERGED_WITH_NOTIFICATIONS = (
    """SELECT kind, entity_id, xid, seq FROM (
    ({cases})
    UNION ALL
    (SELECT s.kind, s.entity_id, s.xid, s.seq FROM sync_changes s
     WHERE s.user_id = %(user)s AND """
    + READY
    + """
       AND NOT EXISTS (SELECT 1 FROM sync_changes l WHERE l.user_id = s.user_id AND l.entity_id = s.entity_id
                         AND (l.xid, l.seq) > (s.xid, s.seq))
     ORDER BY s.xid, s.seq LIMIT %(limit)s)
) both_branches ORDER BY xid, seq LIMIT %(limit)s"""
)
# app.services.sync._scoped_changes walking the log: cases and events through the visible reports, each branch
# index-ordered and cut, then merged.
RAW_CHANGES = MERGED_WITH_NOTIFICATIONS.replace(
    "{cases}",
    f"""SELECT s.kind, s.entity_id, s.xid, s.seq
     FROM sync_changes s JOIN reports r ON r.id = s.report_id
     WHERE {{vis}} AND {READY} AND {LATEST_CASE_ROW}
     ORDER BY s.xid, s.seq LIMIT %(limit)s""",
)
AFTER = "(s.xid, s.seq) > (%(xid)s, %(seq)s)"
# The same rows, driven by the visible reports: each one's change rows through ix_sync_changes_report_position
# (report_id, xid, seq), merged. For a small scope this avoids walking the whole log in (xid, seq) order.
RAW_CHANGES_BY_REPORT = (
    "WITH vis AS MATERIALIZED (SELECT r.id FROM reports r WHERE {vis})\n"
    + MERGED_WITH_NOTIFICATIONS.replace(
        "{cases}",
        f"""SELECT s.kind, s.entity_id, s.xid, s.seq FROM vis CROSS JOIN LATERAL (
        SELECT s.kind, s.entity_id, s.xid, s.seq FROM sync_changes s
        WHERE s.report_id = vis.id AND {READY} AND {LATEST_CASE_ROW}
        ORDER BY s.xid, s.seq LIMIT %(limit)s) s
     ORDER BY s.xid, s.seq LIMIT %(limit)s""",
    )
)
# The rows of the page by id, with what a list shows (app.services.reports.listed_reports).
RAW_REPORTS = """
SELECT r.*, k.code, k.name, k.group_name, c.id, c.code, c.name, c.level, h.id, h.code, h.name, h.level,
       a.id, a.username, a.display_name, p.id, p.display_name, p.phone
FROM reports r JOIN categories k ON k.id = r.category_id
LEFT JOIN cells c ON c.id = r.cell_id LEFT JOIN cells h ON h.id = r.handling_cell_id
LEFT JOIN users a ON a.id = r.assignee_id LEFT JOIN users p ON p.id = r.reporter_id
WHERE r.id = ANY(%(ids)s) AND {vis}
"""
RAW_EVENTS = "SELECT * FROM case_events WHERE id = ANY(%(ids)s)"
RAW_NOTIFICATIONS = "SELECT * FROM notifications WHERE id = ANY(%(ids)s) AND user_id = %(user)s"
LATEST_IN_SCOPE = """SELECT s.xid, s.seq FROM sync_changes s JOIN reports r ON r.id = s.report_id WHERE {vis}
ORDER BY s.xid DESC, s.seq DESC LIMIT 1"""

EVENTS_SQL = """
INSERT INTO case_events (report_id, actor_id, actor_role, action, from_status, to_status, created_at)
SELECT id, reporter_id, 'resident', 'submit', NULL, 'submitted', created_at FROM reports
WHERE id %% %(chunks)s = %(chunk)s
"""
EVENT_CHUNKS = 10


def stats(times: list[float]) -> dict:
    times = sorted(times)
    return {
        "n": len(times),
        "p50_ms": round(percentile(times, 50), 2),
        "p95_ms": round(percentile(times, 95), 2),
        "mean_ms": round(statistics.fmean(times), 2),
    }


def alternate(
    label: str, runs: list, ours: Callable[[Any], Any], floor: Callable[[Any], Any], warm: int = 2
) -> tuple[dict, dict]:
    """stats of alternate_times."""
    ours_times, floor_times = alternate_times(label, runs, ours, floor, warm)
    return stats(ours_times), stats(floor_times)


def random_batch(rng: random.Random, bbox, now: datetime, moments: list[int], margin: float = 0.01) -> list[dict]:
    """Points inside the district at the given moments (ms before `now`: distinct, so no duplicates)."""
    return [
        {
            "time": (now - timedelta(milliseconds=ms)).isoformat(),
            "lon": rng.uniform(bbox[0] + margin, bbox[2] - margin),
            "lat": rng.uniform(bbox[1] + margin, bbox[3] - margin),
            "accuracy": round(rng.uniform(3, 30), 1),
        }
        for ms in moments
    ]


@click.command()
@click.option("--reports", "n_reports", default=200_000, show_default=True)
@click.option("--cells", default=10_000, show_default=True)
@click.option("--batches", default=30, show_default=True, help="Timed check-in batches each (ours, floor).")
@click.option("--runs", default=30, show_default=True, help="Timed sync requests each, per caller and kind.")
@click.option("--page-runs", default=5, show_default=True, help="Timed walks through a whole scope.")
@click.option("--seed", default=2026, show_default=True)
def main(n_reports, cells, batches, runs, page_runs, seed):
    import psycopg

    rng = random.Random(seed)
    spec = spec_for(cells)
    bbox = extent(spec)
    features = feature_collection(spec)["features"]
    results: dict = {
        "settings": {
            "reports": n_reports,
            "cells": cells,
            "batches": batches,
            "batch_points": BATCH,
            "runs": runs,
            "page_runs": page_runs,
            "limit": LIMIT,
            "api": "in-process Flask test client",
        },
        "rows": {},
    }
    started = time.perf_counter()
    with bench_app(features) as (dbname, app):
        with app.app_context():
            from app.extensions import db
            from app.models import User, subtree_bounds
            from app.services.calendar.worktime import local_day
            from app.services.people.users import create_user

            grid = db.session.execute(db.text("SELECT code FROM cells WHERE level = 'grid' ORDER BY code")).all()
            community = db.session.execute(
                db.text("SELECT code FROM cells WHERE level = 'community' ORDER BY code")
            ).all()
            community = rng.choice(community).code
            users = {
                "admin": db.session.execute(db.select(User).where(User.username == "bench-admin")).scalar_one(),
                "supervisor": create_user(
                    username="bench-supervisor", password=PASSWORD, role="supervisor", cell_code=community
                ),
                "worker": create_user(
                    username="bench-worker", password=PASSWORD, role="worker", cell_code=rng.choice(grid).code
                ),
                "floor-worker": create_user(
                    username="bench-floor-worker", password=PASSWORD, role="worker", cell_code=rng.choice(grid).code
                ),
            }
            db.session.commit()
            user_ids = {role: u.id for role, u in users.items()}
            low, high = subtree_bounds(community)
            today = local_day()
            db.engine.dispose()

        client = app.test_client()
        headers = {}
        with app.app_context():
            for role in ("admin", "supervisor", "worker"):
                login = client.post("/api/v1/auth/login", json={"username": f"bench-{role}", "password": PASSWORD})
                headers[role] = {"Authorization": f"Bearer {login.json['access_token']}"}
        raw_conn = psycopg.connect(pg_url(dbname), autocommit=True, options=PG_OPTIONS)
        try:
            patrols(results, rng, bbox, batches, client, headers["worker"], raw_conn, user_ids)
            t0 = time.perf_counter()
            load_sync_data(results, dbname, n_reports, cells)
            results["load_seconds"] = round(time.perf_counter() - t0, 1)
            scopes = {
                role: {"user": user_ids[role], "low": low, "high": high, "today": today}
                for role in ("admin", "supervisor", "worker")
            }
            sync(results, runs, page_runs, client, headers, raw_conn, scopes)
        finally:
            raw_conn.close()
            with app.app_context():
                from app.extensions import db

                db.session.remove()
                db.engine.dispose()
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    report(results)


# ---- patrols -------------------------------------------------------------------------------------------


def patrols(
    results: dict, rng: random.Random, bbox, batches: int, client, headers: dict, raw_conn, user_ids: dict
) -> None:
    """Each run sends one batch through the API (as the worker) and the same points through the floor (as the
    other worker), so both store every point and route the same points; the cells they chose are compared."""
    now = datetime.now(UTC)
    moments = rng.sample(range(3_600_000), BATCH * (batches + 2))  # random times in the last hour, all distinct
    runs = [random_batch(rng, bbox, now, moments[i * BATCH : (i + 1) * BATCH]) for i in range(batches + 2)]
    outcome = {"stored_ours": 0, "stored_floor": 0, "unrouted_ours": 0, "unrouted_floor": 0}

    def ours(points: list[dict]) -> None:
        resp = client.post("/api/v1/patrols/checkins", json={"points": points}, headers=headers)
        if resp.status_code != 201:
            raise click.ClickException(f"checkins: {resp.status_code} {resp.get_data(as_text=True)[:500]}")
        outcome["stored_ours"] += resp.json["stored"]
        outcome["unrouted_ours"] += resp.json["unrouted"]

    def floor(points: list[dict]) -> None:
        rows = raw_conn.execute(
            RAW_CHECKINS, {"points": json.dumps(points), "user": user_ids["floor-worker"]}
        ).fetchall()
        outcome["stored_floor"] += len(rows)
        outcome["unrouted_floor"] += sum(1 for _, cell_id in rows if cell_id is None)

    api, raw = alternate("Check-in batches", runs, ours, floor)
    differ = raw_conn.execute(
        """SELECT count(*), count(*) FILTER (WHERE a.cell_id IS DISTINCT FROM b.cell_id)
           FROM patrol_checkins a JOIN patrol_checkins b ON b.recorded_at = a.recorded_at AND b.user_id = %s
           WHERE a.user_id = %s""",
        (user_ids["floor-worker"], user_ids["worker"]),
    ).fetchone()
    outcome["points_compared"], outcome["cells_differ"] = differ
    if (
        outcome["stored_ours"] != outcome["stored_floor"]
        or outcome["stored_ours"] != BATCH * len(runs)
        or differ[1]
        or outcome["unrouted_floor"]
    ):
        raise click.ClickException(f"check-ins disagree: {outcome}")
    results["patrols"] = outcome
    for side in (api, raw):
        side["points_per_s"] = round(BATCH / side["p50_ms"] * 1000)
    add_row(results, f"check-ins, batch of {BATCH:,}", api, raw)
    say(
        f"  check-ins: ours p50 {api['p50_ms']} ms ({api['points_per_s']:,} points/s), "
        f"floor p50 {raw['p50_ms']} ms ({raw['points_per_s']:,} points/s); {outcome}"
    )


# ---- sync ------------------------------------------------------------------------------------------------


def load_sync_data(results: dict, dbname: str, n_reports: int, cells: int) -> None:
    """The reports (geo_bench's bulk load), one case_events row per report, and a check that the triggers
    logged them all."""
    import psycopg

    results["reports_loaded"] = load_reports(dbname, n_reports, cells)
    with psycopg.connect(pg_url(dbname), autocommit=True) as conn:
        for chunk in progress_bar(range(EVENT_CHUNKS), "Writing case events"):
            conn.execute(EVENTS_SQL, {"chunks": EVENT_CHUNKS, "chunk": chunk})
        conn.execute("VACUUM ANALYZE")
        counts = dict(conn.execute("SELECT kind, count(*) FROM sync_changes GROUP BY kind").fetchall())
        events = conn.execute("SELECT count(*) FROM case_events").fetchone()[0]
    results["sync_changes"] = counts
    say(f"change log: {counts} ({results['reports_loaded']} reports, {events} events)")
    if counts.get("case") != results["reports_loaded"] or counts.get("event") != events:
        raise click.ClickException(f"the sync triggers did not log every row: {counts}")


def sync(results: dict, runs: int, page_runs: int, client, headers: dict, raw_conn, scopes: dict) -> None:
    from app.services.field.sync import decode_cursor, encode_cursor

    def ours(role: str) -> Callable[[str | None], dict]:
        def call(cursor: str | None) -> dict:
            query = {"limit": LIMIT, **({"cursor": cursor} if cursor else {})}
            resp = client.get("/api/v1/sync", query_string=query, headers=headers[role])
            if resp.status_code != 200:
                raise click.ClickException(f"sync: {resp.status_code} {resp.get_data(as_text=True)[:500]}")
            return resp.json

        return call

    def floor(role: str, changes: str = RAW_CHANGES) -> Callable[[tuple[int, int] | None], dict]:
        vis = VISIBILITY[role]
        sql = {after: changes.format(vis=vis, after=after, watermark=_PG_SYNC_WATERMARK) for after in (AFTER, "true")}
        reports_sql = RAW_REPORTS.format(vis=vis)

        def call(position: tuple[int, int] | None) -> dict:
            params = {**scopes[role], "limit": LIMIT + 1}
            if position:
                params.update(xid=position[0], seq=position[1])
            rows = raw_conn.execute(sql[AFTER if position else "true"], params).fetchall()
            has_more = len(rows) > LIMIT
            rows = rows[:LIMIT]
            ids = {kind: [r[1] for r in rows if r[0] == kind] for kind in ("case", "event", "notification")}
            found = {"case": set(), "event": set(), "notification": set()}
            if ids["case"]:
                found["case"] = {r[0] for r in raw_conn.execute(reports_sql, {**params, "ids": ids["case"]})}
            if ids["event"]:
                found["event"] = {r[0] for r in raw_conn.execute(RAW_EVENTS, {"ids": ids["event"]})}
            if ids["notification"]:
                found["notification"] = {
                    r[0] for r in raw_conn.execute(RAW_NOTIFICATIONS, {**params, "ids": ids["notification"]})
                }
            return {
                "changes": [(k, i) for k, i, _, _ in rows if i in found[k]],
                "position": (rows[-1][2], rows[-1][3]) if rows else position,
                "has_more": has_more,
            }

        return call

    results["sync"] = {}
    for role in ("admin", "supervisor", "worker"):
        api, raw = ours(role), floor(role)
        first_api, first_raw = api(None), raw(None)
        same = [(c["type"], c["id"]) for c in first_api["changes"]] == first_raw["changes"]
        latest = raw_conn.execute(LATEST_IN_SCOPE.format(vis=VISIBILITY[role]), scopes[role]).fetchone()
        poll_api, poll_raw = api(encode_cursor(*latest)), raw(tuple(latest))
        info = {
            "first_page_items": len(first_api["changes"]),
            "first_page_same_ids": same,
            "first_page_has_more": first_api["has_more"],
            "poll_items": len(poll_api["changes"]),
            "poll_items_floor": len(poll_raw["changes"]),
        }
        results["sync"][role] = info
        say(f"  {role}: {info}")
        if not same or poll_api["changes"] or poll_raw["changes"]:
            raise click.ClickException(f"sync for {role}: ours and the floor disagree: {info}")
        a, r = alternate(f"Sync first page, {role}", [None] * (runs + 2), api, raw)
        add_row(results, f"sync first page, {role}", a, r)
        a, r = alternate(
            f"Sync poll, {role}",
            [None] * (runs + 2),
            lambda _: api(encode_cursor(*latest)),
            lambda _: raw(tuple(latest)),
        )
        add_row(results, f"sync poll from its last change, {role}", a, r)
        # What a client really polls with: the last page's next_cursor, which the feed puts at its horizon.
        own = None
        while True:
            page = api(own)
            own = page["next_cursor"]
            if not page["has_more"]:
                break
        horizon = decode_cursor(own)
        a, r = alternate(
            f"Sync poll, own cursor, {role}", [None] * (runs + 2), lambda _: api(own), lambda _: raw(horizon)
        )
        add_row(results, f"sync poll from its own cursor, {role}", a, r)
        if role != "admin":
            by_report = floor(role, RAW_CHANGES_BY_REPORT)
            if by_report(None)["changes"] != first_raw["changes"]:
                raise click.ClickException(f"sync for {role}: the report-driven floor disagrees")
            a, r = alternate(f"Sync first page, {role}, floor by report", [None] * (runs + 2), api, by_report)
            add_row(results, f"sync first page, {role}, floor by report", a, r)

    for role in ("worker", "supervisor"):
        api, raw = ours(role), floor(role)
        pages = {}

        def walk_api(_, role=role, api=api) -> None:
            cursor, n, items = None, 0, 0
            while True:
                page = api(cursor)
                n, items, cursor = n + 1, items + len(page["changes"]), page["next_cursor"]
                if not page["has_more"]:
                    break
            pages[f"ours:{role}"] = (n, items)

        def walk_raw(_, role=role, raw=raw) -> None:
            position, n, items = None, 0, 0
            while True:
                page = raw(position)
                n, items, position = n + 1, items + len(page["changes"]), page["position"]
                if not page["has_more"]:
                    break
            pages[f"floor:{role}"] = (n, items)

        a, r = alternate(f"Sync whole scope, {role}", [None] * (page_runs + 1), walk_api, walk_raw, warm=1)
        if pages[f"ours:{role}"] != pages[f"floor:{role}"]:
            raise click.ClickException(f"whole scope for {role}: {pages}")
        n, items = pages[f"ours:{role}"]
        results["sync"][role].update(scope_pages=n, scope_items=items)
        add_row(results, f"sync whole scope, {role} ({n} pages, {items:,} items)", a, r)


def add_row(results: dict, name: str, ours: dict, floor: dict) -> None:
    results["rows"][name] = {"ours": ours, "floor": floor, "ratio_p50": round(ours["p50_ms"] / floor["p50_ms"], 2)}


def report(results: dict) -> None:
    say("")
    say(f"{'measure':58} {'ours p50':>9} {'ours p95':>9} {'floor p50':>9} {'floor p95':>9} {'ratio':>6}")
    for name, r in results["rows"].items():
        say(
            f"{name:58} {r['ours']['p50_ms']:9.2f} {r['ours']['p95_ms']:9.2f} {r['floor']['p50_ms']:9.2f} "
            f"{r['floor']['p95_ms']:9.2f} {r['ratio_p50']:6.2f}"
        )
    check = next((r for n, r in results["rows"].items() if n.startswith("check-ins")), None)
    if check:
        say(
            f"check-ins: ours {check['ours']['points_per_s']:,} points/s, floor {check['floor']['points_per_s']:,} "
            f"points/s (at p50)"
        )
    say(
        f"(ms; ours = in-process Flask test client; ratio = ours p50 / floor p50; "
        f"load {results.get('load_seconds')} s, total {results['total_seconds']} s)"
    )
    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in (OUT_DIR / f"field-{stamp}.json", OUT_DIR / "field-latest.json"):
        Path(path).write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    say(f"wrote bench/out/field-{stamp}.json")


if __name__ == "__main__":
    main()
