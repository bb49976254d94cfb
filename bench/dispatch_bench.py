"""Auto-dispatch's choice (app.services.dispatch.pick_worker) against a one-statement psycopg floor on PostGIS.

A fresh PostGIS database (dropped at the end) gets, set-based: C grid cells, 4 workers per cell (two
primary, two backup, plus an ended assignment for one in ten), a duty log of D changes per worker and R
reports assigned to random workers in every status. Then, for random cells, in one thread:
- ours: pick_worker(cell_id, now) in an app context (the ORM query auto_dispatch runs);
- floor: the same ranking as one hand-written SQL statement over a plain psycopg connection.
Both must pick the same worker for every sampled cell. Prints calls per second of each and the ratio.

    .venv/bin/python -m bench.dispatch_bench --cells 500 --reports 200000 --seconds 5
"""

from __future__ import annotations

import random
import secrets
import time
from datetime import UTC, datetime

import click

from bench.run_bench import app_env, flask_db_upgrade, fresh_postgis_database, make_app, pg_url, say

OPEN = ["submitted", "accepted", "assigned", "in_progress", "on_hold", "resolved"]
STATUSES = OPEN + ["closed", "closed", "closed", "rejected"]

FLOOR_SQL = """
WITH cand AS (
    SELECT wc.user_id, wc.duty FROM worker_cells wc JOIN users u ON u.id = wc.user_id
    WHERE wc.cell_id = %(cell)s AND wc.valid_from <= %(day)s AND (wc.valid_to IS NULL OR wc.valid_to >= %(day)s)
      AND u.role = 'worker' AND u.active),
load AS (
    SELECT assignee_id, count(*) FILTER (WHERE status = ANY(%(open)s)) AS open_cases,
           count(*) FILTER (WHERE status = ANY(%(open)s) AND (late_since IS NOT NULL
                                  OR (due_at IS NOT NULL AND coalesce(hold_started_at, %(now)s) > due_at))) AS overdue,
           max(assigned_at) AS last
    FROM reports WHERE assignee_id IN (SELECT user_id FROM cand) GROUP BY assignee_id),
duty AS (
    SELECT DISTINCT ON (user_id) user_id, on_duty FROM duty_log
    WHERE user_id IN (SELECT user_id FROM cand) ORDER BY user_id, id DESC)
SELECT c.user_id FROM cand c LEFT JOIN load l ON l.assignee_id = c.user_id LEFT JOIN duty d ON d.user_id = c.user_id
ORDER BY CASE WHEN c.duty = 'primary' AND coalesce(d.on_duty, false) THEN 0 WHEN c.duty = 'primary' THEN 1
              WHEN coalesce(d.on_duty, false) THEN 2 ELSE 3 END,
         coalesce(l.open_cases, 0), coalesce(l.overdue, 0), l.last ASC NULLS FIRST, c.user_id
LIMIT 1
"""


def populate(conn, cells: int, duty_changes: int, reports: int) -> None:
    """Everything in a handful of set-based statements."""
    conn.execute("""
        INSERT INTO categories (code, name, group_name, time_limit_value, time_limit_unit, escalation_window_value,
                                escalation_window_unit, auto_accept, auto_dispatch, self_handling, active,
                                created_at, updated_at)
        VALUES ('bench', 'bench', 'bench', 4, 'hours', 1, 'working_days', false, true, false, true, now(), now())""")
    conn.execute(
        """
        INSERT INTO cells (code, name, level, geom, active, created_at, updated_at)
        SELECT '330106001001' || lpad(g::text, 3, '0'), 'cell ' || g, 'grid',
               ST_Multi(ST_MakeEnvelope(120 + g * 0.001, 30, 120.001 + g * 0.001, 30.001, 4326)), true, now(), now()
        FROM generate_series(1, %(cells)s) g""",
        {"cells": cells},
    )
    conn.execute(
        """
        INSERT INTO users (username, password_hash, role, active, created_at, updated_at)
        SELECT 'w' || g, 'x', 'worker', g %% 37 <> 0, now(), now() FROM generate_series(1, %(n)s) g""",
        {"n": cells * 4},
    )
    conn.execute(
        """
        INSERT INTO worker_cells (user_id, cell_id, duty, valid_from, valid_to, created_at)
        SELECT u.id, c.id, CASE WHEN (u.id - 1) / %(cells)s < 2 THEN 'primary' ELSE 'backup' END,
               date '2024-01-01', NULL, now()
        FROM users u JOIN cells c ON c.code = '330106001001' || lpad((((u.id - 1) %% %(cells)s) + 1)::text, 3, '0')
        WHERE u.role = 'worker'""",
        {"cells": cells},
    )
    conn.execute("""
        INSERT INTO worker_cells (user_id, cell_id, duty, valid_from, valid_to, created_at)
        SELECT user_id, cell_id, duty, date '2023-01-01', date '2023-12-31', now() FROM worker_cells
        WHERE user_id % 10 = 0""")
    conn.execute(
        """
        INSERT INTO duty_log (user_id, on_duty, lon, lat, created_at)
        SELECT u.id, random() < 0.5, 120.0, 30.0, now() - (g || ' minutes')::interval
        FROM users u CROSS JOIN generate_series(1, %(d)s) g WHERE u.role = 'worker' ORDER BY g DESC, u.id""",
        {"d": duty_changes},
    )
    conn.execute("""
        INSERT INTO users (username, password_hash, role, active, created_at, updated_at)
        VALUES ('resident', 'x', 'resident', true, now(), now())""")
    conn.execute(
        """
        INSERT INTO reports (case_day, category_id, reporter_id, cell_id, status, description, location, input_crs,
                             input_lon, input_lat, needs_triage, deadline_at, created_at, updated_at, assignee_id,
                             assigned_at, handling_cell_id)
        SELECT current_date, (SELECT id FROM categories LIMIT 1), (SELECT id FROM users WHERE role = 'resident'),
               NULL, (%(statuses)s::text[])[1 + floor(random() * %(ns)s)::int], 'bench',
               ST_SetSRID(ST_MakePoint(120.0, 30.0), 4326), 'wgs84', 120.0, 30.0, false,
               now() + (random() * 48 - 24) * interval '1 hour', now(), now(),
               1 + floor(random() * %(workers)s)::int, now() - random() * 1000 * interval '1 hour', NULL
        FROM generate_series(1, %(n)s)""",
        {"statuses": STATUSES, "ns": len(STATUSES), "workers": cells * 4, "n": reports},
    )
    # The clock as a running case has it, so some open cases are overdue.
    conn.execute("UPDATE reports SET due_at = deadline_at")
    conn.execute("ANALYZE")


def timed(seconds: float, cells: list[int], call) -> dict:
    n = 0
    began = time.perf_counter()
    end = began + seconds
    while time.perf_counter() < end:
        call(cells[n % len(cells)])
        n += 1
    elapsed = time.perf_counter() - began
    return {"calls": n, "calls_per_s": round(n / elapsed, 1), "mean_us": round(elapsed / n * 1e6, 1)}


@click.command()
@click.option("--cells", default=500, show_default=True, help="grid cells (4 workers each)")
@click.option("--duty-changes", default=20, show_default=True, help="duty log rows per worker")
@click.option("--reports", default=200_000, show_default=True, help="reports, assigned to random workers")
@click.option("--seconds", default=5.0, show_default=True, help="measured seconds per side")
def main(cells: int, duty_changes: int, reports: int, seconds: float) -> None:
    import psycopg

    rng = random.Random(7)
    with fresh_postgis_database() as name:
        env = app_env(pg_url(name, "postgresql+psycopg"), secrets.token_urlsafe(48))
        flask_db_upgrade(env)
        with psycopg.connect(pg_url(name), autocommit=True) as conn:
            populate(conn, cells, duty_changes, reports)
            cell_ids = [row[0] for row in conn.execute("SELECT id FROM cells ORDER BY id")]
        sample = [rng.choice(cell_ids) for _ in range(1000)]
        now = datetime.now(UTC)
        app = make_app(env)
        from app.extensions import db
        from app.services.calendar.worktime import local_day
        from app.services.cases.dispatch import pick_worker

        with app.app_context(), psycopg.connect(pg_url(name), autocommit=True) as raw:
            day = local_day(now)
            params = {"day": day, "open": OPEN, "now": now}

            def ours(cell_id):
                # Read-only, in one open transaction, as inside the accept request that calls it.
                picked = pick_worker(cell_id, now)
                return picked[0].id if picked else None

            def floor(cell_id):
                row = raw.execute(FLOOR_SQL, {**params, "cell": cell_id}).fetchone()
                return row[0] if row else None

            mismatches = [c for c in sample[:200] if ours(c) != floor(c)]
            if mismatches:
                raise click.ClickException(f"ours and the floor disagree for cells {mismatches[:5]}")
            ours_r, floor_r = timed(seconds, sample, ours), timed(seconds, sample, floor)
            db.session.rollback()
    say(f"{cells} cells, {cells * 4} workers, {reports} reports, {duty_changes} duty changes per worker")
    say(f"  pick_worker (ours)   {ours_r['calls_per_s']:>9.1f} calls/s   mean {ours_r['mean_us']:>8.1f} us")
    say(f"  one-statement floor  {floor_r['calls_per_s']:>9.1f} calls/s   mean {floor_r['mean_us']:>8.1f} us")
    say(f"  ratio ours/floor     {ours_r['calls_per_s'] / floor_r['calls_per_s']:.2f}")


if __name__ == "__main__":
    main()
