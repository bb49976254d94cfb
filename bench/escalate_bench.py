"""Benchmark of the escalation sweep: `flask escalate` over 1,000,000 open cases against a one-statement SQL floor.

    python -m bench.escalate_bench --cases 1000000 --overdue 100000

See bench/README.md ("Escalation sweep") for what it builds and how to read the figures.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import click

from bench.gen_grid import feature_collection, spec_for
from bench.run_bench import OUT_DIR, PG_ADMIN_URL, app_env, flask_db_upgrade, load_grid, make_app, pg_url, say

CHUNK = 50_000
CATEGORY = {
    "code": "bench-escalate",
    "name": "暴露垃圾（基准）",
    "group": "市容环境",
    "time_limit_value": 24,
    "window_value": 1,
    "window_unit": "working_days",
}
# The levels overdue cases sit at, by (i / step) % 10: mostly still at the grid, some already escalated.
LEVEL_SQL = "CASE WHEN (i / %(step)s) %% 10 < 7 THEN 0 WHEN (i / %(step)s) %% 10 < 9 THEN 1 ELSE 2 END"

LEAVES_SQL = """
CREATE TEMP TABLE bench_leaf AS
SELECT (row_number() OVER (ORDER BY g.code) - 1)::int AS n, g.id, ST_PointOnSurface(g.geom) AS pt,
       (SELECT c.id FROM cells c WHERE c.code = substr(g.code, 1, 12)) AS community_id,
       (SELECT c.id FROM cells c WHERE c.code = substr(g.code, 1, 9)) AS street_id
FROM cells g WHERE g.level = 'grid'
"""

# One chunk of cases [lo, hi): every `step`-th case is overdue; yellow ones follow them (i % step = 1).
INSERT_SQL = """
INSERT INTO reports (case_day, category_id, reporter_id, cell_id, handling_cell_id, status, description, location,
                     input_crs, input_lon, input_lat, routed_by, needs_triage, created_at, updated_at, accepted_at,
                     assignee_id, assigned_at, time_limit_value, time_limit_unit, extension_value, held_seconds,
                     deadline_at, warn_at, due_at, escalation_level, escalated_at, critical, version)
SELECT (%(now)s::timestamptz)::date, %(category)s, %(reporter)s, l.id,
       CASE x.level WHEN 0 THEN l.id WHEN 1 THEN l.community_id ELSE l.street_id END,
       x.status, 'bench case', l.pt, 'wgs84', ST_X(l.pt), ST_Y(l.pt), 'covers', false,
       %(now)s::timestamptz - interval '3 days', %(now)s::timestamptz - interval '3 days',
       %(now)s::timestamptz - interval '3 days',
       CASE WHEN x.status = 'accepted' THEN NULL ELSE %(worker)s END,
       CASE WHEN x.status = 'accepted' THEN NULL ELSE %(now)s::timestamptz - interval '2 days' END,
       24, 'hours', 0, 0, x.deadline_at, x.deadline_at - interval '288 minutes', x.deadline_at, x.level,
       CASE WHEN x.level > 0 THEN %(now)s::timestamptz - interval '1 day' END, false, 1
FROM generate_series(%(lo)s, %(hi)s - 1) AS i
CROSS JOIN LATERAL (
    SELECT (ARRAY['accepted', 'assigned', 'in_progress'])[1 + (i / 7) %% 3] AS status,
           CASE WHEN i %% %(step)s = 0 THEN {level} ELSE 0 END AS level,
           CASE WHEN i %% %(step)s = 0 THEN %(now)s::timestamptz - (1 + i %% 48) * interval '1 hour'
                WHEN i %% %(step)s = 1 AND i / %(step)s < %(yellow)s THEN %(now)s::timestamptz + interval '1 hour'
                ELSE %(now)s::timestamptz + (10 + i %% 200) * interval '1 hour' END AS deadline_at
) AS x
JOIN bench_leaf l ON l.n = i %% %(leaves)s
"""

# The floor: one statement doing the sweep's update and its event insert, as hand-written SQL would.
FLOOR_SQL = """
WITH due AS (
    SELECT r.id, t.id AS target_id, t.code AS target_code
    FROM reports r
    JOIN cells g ON g.id = r.cell_id
    JOIN cells t ON t.code = substr(g.code, 1, CASE r.escalation_level WHEN 0 THEN 12 WHEN 1 THEN 9 ELSE 6 END)
    WHERE r.status IN ('accepted', 'assigned', 'in_progress') AND r.deadline_at < %(now)s
      AND r.escalation_level < 3
    FOR UPDATE OF r SKIP LOCKED
), moved AS (
    UPDATE reports r
    SET escalation_level = r.escalation_level + 1, handling_cell_id = due.target_id, escalated_at = %(now)s,
        deadline_at = %(deadline)s, warn_at = %(warn)s, version = r.version + 1, updated_at = %(now)s
    FROM due WHERE r.id = due.id
    RETURNING r.id, r.status, r.escalation_level, r.assignee_id, due.target_code
){tail}
"""
FLOOR_EVENTS = """
INSERT INTO case_events (report_id, actor_role, action, from_status, to_status, data, created_at)
SELECT id, 'system', 'escalate', status, status,
       json_build_object('from_level', escalation_level - 1, 'to_level', escalation_level, 'cell_code', target_code),
       %(now)s
FROM moved
"""
# The "full" floor also writes the notifications, as the sweep does: the supervisors' (the bench has one, at the
# district, so the new level's nearest) and the worker's.
FLOOR_FULL_TAIL = (
    """, events AS ("""
    + FLOOR_EVENTS
    + """ RETURNING 1
)
INSERT INTO notifications (user_id, report_id, kind, title, data, dedupe_key, created_at)
SELECT u.id, m.id, 'escalation', 'Case escalated', json_build_object('level', m.escalation_level, 'cell_code',
       m.target_code), 'escalation:' || m.id || ':' || m.escalation_level || ':' || u.id, %(now)s
FROM moved m
JOIN cells s ON substr(m.target_code, 1, length(s.code)) = s.code
JOIN users u ON u.cell_id = s.id AND u.role = 'supervisor' AND u.active
UNION ALL
SELECT u.id, m.id, 'escalation', 'Case escalated', json_build_object('level', m.escalation_level, 'cell_code',
       m.target_code), 'escalation:' || m.id || ':' || m.escalation_level || ':' || u.id, %(now)s
FROM moved m
JOIN users u ON u.id = m.assignee_id AND u.active
ON CONFLICT DO NOTHING
"""
)

CHECK_SQL = """
SELECT (SELECT json_object_agg(level, n) FROM (SELECT escalation_level AS level, count(*) AS n FROM reports
                                             GROUP BY 1 ORDER BY 1) AS l),
       (SELECT count(*) FROM case_events WHERE action = 'escalate'),
       (SELECT count(*) FROM notifications),
       (SELECT count(*) FROM reports WHERE escalated_at >= %(since)s)
"""


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def build_data(app, dbname: str, cases: int, overdue: int, yellow: int, now: datetime) -> dict[str, Any]:
    """Category, accounts and the open cases, written by INSERT ... SELECT generate_series in chunks."""
    import psycopg

    from app.auth.passwords import hash_password
    from app.extensions import db
    from app.models import Category, Cell, Role, User

    with app.app_context():
        district = db.session.scalars(db.select(Cell).where(Cell.level == "district")).first()
        category = Category(
            code=CATEGORY["code"],
            name=CATEGORY["name"],
            group=CATEGORY["group"],
            time_limit_value=CATEGORY["time_limit_value"],
            time_limit_unit="hours",
            escalation_window_value=CATEGORY["window_value"],
            escalation_window_unit=CATEGORY["window_unit"],
        )
        password = hash_password(secrets.token_urlsafe(12))
        reporter = User(username="bench-resident", password_hash=password, role=Role.resident.value)
        worker = User(username="bench-worker", password_hash=password, role=Role.worker.value)
        # The district's supervision office: every escalation notifies it once.
        supervisor = User(
            username="bench-supervisor", password_hash=password, role=Role.supervisor.value, cell_id=district.id
        )
        db.session.add_all([category, reporter, worker, supervisor])
        db.session.commit()
        ids = {"category": category.id, "reporter": reporter.id, "worker": worker.id}
    release(app)

    step = cases // overdue
    sql = INSERT_SQL.replace("{level}", LEVEL_SQL)
    with psycopg.connect(pg_url(dbname)) as conn:
        conn.execute(LEAVES_SQL)
        leaves = conn.execute("SELECT count(*) FROM bench_leaf").fetchone()[0]
        conn.commit()
        chunks = range(0, cases, CHUNK)
        with click.progressbar(chunks, label=f"Writing {cases:,} open cases", file=sys.stderr, show_pos=True) as bar:
            for lo in bar:
                conn.execute(
                    sql,
                    {
                        **ids,
                        "now": now,
                        "lo": lo,
                        "hi": min(lo + CHUNK, cases),
                        "step": step,
                        "yellow": yellow,
                        "leaves": leaves,
                    },
                )
                conn.commit()
    with psycopg.connect(pg_url(dbname), autocommit=True) as conn:
        # As autovacuum would have left a live table: visibility map and planner statistics.
        conn.execute("VACUUM ANALYZE")
        due = conn.execute("SELECT count(*) FROM reports WHERE deadline_at < %s", (now,)).fetchone()[0]
    return {"leaves": leaves, "overdue": due, **ids}


def release(app) -> None:
    """Close the app's connections (a database with open sessions cannot serve as a template)."""
    from app.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def warm(dbname: str) -> None:
    import psycopg

    with psycopg.connect(pg_url(dbname), autocommit=True) as conn:
        conn.execute("SELECT count(*), max(deadline_at) FROM reports").fetchone()


def check(dbname: str, since: datetime) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(pg_url(dbname)) as conn:
        levels, events, notifications, moved = conn.execute(CHECK_SQL, {"since": since}).fetchone()
    return {"levels": levels, "escalate_events": events, "notifications": notifications, "moved": moved}


def run_ours(app) -> tuple[float, str]:
    """The real `flask escalate` command, invoked in-process through Flask's CLI runner."""
    runner = app.test_cli_runner()
    started = time.perf_counter()
    result = runner.invoke(args=["escalate"])
    elapsed = time.perf_counter() - started
    if result.exit_code != 0:
        raise click.ClickException(f"flask escalate failed: {result.output}\n{result.exception!r}")
    release(app)
    return elapsed, result.output.strip()


def run_floor(app, dbname: str, full: bool) -> float:
    import psycopg

    from app.services.calendar import worktime

    now = datetime.now(UTC)
    window, unit = CATEGORY["window_value"], CATEGORY["window_unit"]
    # The same window against the same work calendar as ours: the only Python the floor needs.
    with app.app_context():
        params = {
            "now": now,
            "deadline": worktime.deadline(now, window, unit),
            "warn": worktime.deadline(now, window * 0.8, unit),
        }
    release(app)
    sql = FLOOR_SQL.format(tail=FLOOR_FULL_TAIL if full else FLOOR_EVENTS)
    with psycopg.connect(pg_url(dbname)) as conn:
        started = time.perf_counter()
        conn.execute(sql, params)
        conn.commit()
        return time.perf_counter() - started


@click.command()
@click.option("--cases", default=1_000_000, show_default=True, help="Open cases written.")
@click.option("--overdue", default=100_000, show_default=True, help="Of those, past their deadline.")
@click.option(
    "--yellow", default=0, show_default=True, help="Of those, yellow with an assignee (reminders; the floor does none)."
)
@click.option("--cells", default=10_000, show_default=True, help="Grid cells (bench/gen_grid.py).")
@click.option(
    "--full-floor/--no-full-floor",
    default=True,
    show_default=True,
    help="Also time a floor that writes the notifications too (one more copy of the data).",
)
def main(cases: int, overdue: int, yellow: int, cells: int, full_floor: bool) -> None:
    """Time `flask escalate` over CASES open cases on PostGIS against a one-statement SQL floor."""
    if not 0 < overdue <= cases or yellow > overdue or (yellow and cases // overdue < 2):
        raise click.BadParameter(
            "need 0 < overdue <= cases, and yellow <= overdue < cases / 2 (each yellow case follows an overdue one)"
        )
    run_started = time.perf_counter()
    spec = spec_for(cells)
    features = feature_collection(spec)["features"]
    say(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{spec.grid_cells} grid cells, {cases:,} open cases, {overdue:,} overdue, {yellow:,} yellow"
    )
    source = f"grid_escalate_{uuid.uuid4().hex[:10]}"
    copies = {"floor": f"{source}_floor", "floor_full": f"{source}_full"}
    if not full_floor:
        del copies["floor_full"]
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "cases": cases,
            "overdue": overdue,
            "yellow": yellow,
            "cells": spec.grid_cells,
            "batch_size": 5000,
        },
    }
    with ExitStack() as cleanup:
        admin(f'CREATE DATABASE "{source}"')
        for name in (*copies.values(), source):
            cleanup.callback(say, f"dropped database {name}")
            cleanup.callback(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        import psycopg

        with psycopg.connect(pg_url(source), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        env = app_env(pg_url(source, "postgresql+psycopg"), secrets.token_urlsafe(48))
        say(f"PostGIS database {source}: flask db upgrade")
        flask_db_upgrade(env)
        app = make_app(env)
        load_grid(app, features)
        release(app)
        now = datetime.now(UTC)
        built = time.perf_counter()
        results["data"] = build_data(app, source, cases, overdue, yellow, now)
        results["data"]["seconds"] = round(time.perf_counter() - built, 1)
        say(f"wrote {cases:,} cases in {results['data']['seconds']} s; overdue now: {results['data']['overdue']:,}")
        for name in copies.values():
            copied = time.perf_counter()
            admin(f'CREATE DATABASE "{name}" TEMPLATE "{source}" STRATEGY FILE_COPY')
            say(f"copied to {name} in {time.perf_counter() - copied:.1f} s")

        sweep_from = datetime.now(UTC)
        warm(source)
        ours, output = run_ours(app)
        say(f"ours:  {output}")
        results["ours"] = {"seconds": round(ours, 3), "output": output, "after": check(source, sweep_from)}
        second, output = run_ours(app)
        say(f"again: {output}")
        results["ours"]["second_run"] = {"seconds": round(second, 3), "output": output}

        floors = {}
        for key, name in copies.items():
            warm(name)
            floors[key] = run_floor(app, name, full=key == "floor_full")
            results[key] = {"seconds": round(floors[key], 3), "after": check(name, sweep_from)}
    results["total_seconds"] = round(time.perf_counter() - run_started, 1)

    say()
    say(f"escalation sweep over {cases:,} open cases ({overdue:,} overdue) on PostGIS:")
    say(f"  ours: flask escalate (in-process, batches of 5000)    {ours:8.2f} s   {results['ours']['after']}")
    say(
        f"  floor: one CTE, update + events                       {floors['floor']:8.2f} s   "
        f"{results['floor']['after']}"
    )
    if "floor_full" in floors:
        say(
            f"  floor: one CTE, update + events + notifications       {floors['floor_full']:8.2f} s   "
            f"{results['floor_full']['after']}"
        )
    ratio = ours / floors["floor"]
    results["ratio_vs_floor"] = round(ratio, 2)
    say(f"  ours / floor (update + events) = {ratio:.2f}  (target <= 4)")
    if "floor_full" in floors:
        results["ratio_vs_floor_full"] = round(ours / floors["floor_full"], 2)
        say(f"  ours / floor (update + events + notifications) = {results['ratio_vs_floor_full']:.2f}")
    same = (
        results["ours"]["after"]["levels"] == results["floor"]["after"]["levels"]
        and results["ours"]["after"]["escalate_events"] == results["floor"]["after"]["escalate_events"]
    )
    results["same_outcome"] = same
    say(
        f"  same levels and events as the floor: {same}; second run of ours: {second:.2f} s, changed nothing: "
        f"{results['ours']['second_run']['output'].split(': ', 1)[1].startswith('0 escalated, 0 marked')}"
    )
    say(f"  whole run: {results['total_seconds']} s")

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    text = json.dumps(results, ensure_ascii=False, indent=2, default=str)
    (OUT_DIR / f"escalate-{stamp}.json").write_text(text, encoding="utf-8")
    (OUT_DIR / "escalate-latest.json").write_text(text, encoding="utf-8")
    say(f"results: {OUT_DIR / f'escalate-{stamp}.json'}")


if __name__ == "__main__":
    main()
