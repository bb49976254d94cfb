"""The floor: the least a Flask endpoint can do to file a report on the same PostGIS tables.

POST /reports takes the same JSON body as POST /api/v1/reports and routes + inserts in ONE SQL statement
(INSERT ... SELECT with ST_Covers over the GiST-indexed cells, lowest code first, RETURNING id), on one
psycopg 3 connection per gunicorn worker process, in autocommit (the statement is its own transaction).
No authentication, no schema validation, no ORM: the floor is what raw PostGIS over psycopg costs.

Environment:
    FLOOR_DATABASE_URL  libpq URL of the benchmark database (postgresql://...)
    FLOOR_REPORTER_ID   the users.id recorded as reporter (there is no authentication here)
    FLOOR_MODE          "report" (default): one reports row, as the issue describes the floor;
                        "full": the same rows our service writes - the report and its first
                        case_events row - still in one statement (writable CTEs);
                        "own": the rows a worker's report in their own cell gets (auto-accept, clock,
                        auto-dispatch): the report as accepted and assigned with its deadlines, its
                        create and assign events and the assignee's notification, in one statement.
                        The reporter and assignee is the cell's worker (primary first, lowest id), the
                        deadline the category's limit in calendar hours (ours counts working time).
    FLOOR_TIMEZONE      for the case day (default Asia/Shanghai)

    gunicorn --workers 2 --bind 127.0.0.1:8001 bench.floor_app:app
"""

from __future__ import annotations

import os

import psycopg
from flask import Flask, jsonify, request

# $1 lon, $2 lat, $3 category code, $4 reporter id, $5 description, $6 address
_ROUTE = """
WITH pt AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g),
cat AS (SELECT id, time_limit_value FROM categories WHERE code = %(category_code)s AND active),
cell AS (
    SELECT c.id, c.code FROM cells c, pt
    WHERE c.level = 'grid' AND c.active AND ST_Covers(c.geom, pt.g)
    ORDER BY c.code LIMIT 1
)"""

REPORT_ONLY_SQL = (
    _ROUTE
    + """
INSERT INTO reports (case_day, category_id, reporter_id, cell_id, status, description, address, location,
                     input_crs, input_lon, input_lat, routed_by, routing_distance_m, needs_triage,
                     deadline_at, created_at, updated_at)
SELECT (now() AT TIME ZONE %(tz)s)::date, cat.id, %(reporter_id)s, cell.id, 'submitted', %(description)s, %(address)s, pt.g,
       'wgs84', %(lon)s, %(lat)s,
       CASE WHEN cell.id IS NULL THEN NULL ELSE 'covers' END,
       CASE WHEN cell.id IS NULL THEN NULL ELSE 0.0 END,
       cell.id IS NULL, now() + make_interval(hours => cat.time_limit_value), now(), now()
FROM cat CROSS JOIN pt LEFT JOIN cell ON true
RETURNING id, cell_id
"""
)

FULL_SQL = (
    _ROUTE
    + """,
new AS (SELECT now() AS ts),
rep AS (
    INSERT INTO reports (case_day, category_id, reporter_id, cell_id, status, description, address,
                         location, input_crs, input_lon, input_lat, routed_by, routing_distance_m,
                         needs_triage, deadline_at, created_at, updated_at)
    SELECT (new.ts AT TIME ZONE %(tz)s)::date,
           cat.id, %(reporter_id)s, cell.id, 'submitted', %(description)s, %(address)s, pt.g,
           'wgs84', %(lon)s, %(lat)s,
           CASE WHEN cell.id IS NULL THEN NULL ELSE 'covers' END,
           CASE WHEN cell.id IS NULL THEN NULL ELSE 0.0 END,
           cell.id IS NULL, new.ts + make_interval(hours => cat.time_limit_value), new.ts, new.ts
    FROM new CROSS JOIN cat CROSS JOIN pt LEFT JOIN cell ON true
    RETURNING id, cell_id, status, created_at, routed_by, routing_distance_m
),
ev AS (
    INSERT INTO case_events (report_id, actor_id, actor_role, action, from_status, to_status, created_at, data)
    SELECT rep.id, %(reporter_id)s, 'resident', 'create', NULL, rep.status, rep.created_at,
           json_build_object('cell_code', (SELECT code FROM cell), 'routed_by', rep.routed_by,
                             'routing_distance_m', rep.routing_distance_m, 'crs', 'wgs84')
    FROM rep
)
SELECT id, cell_id FROM rep
"""
)

OWN_SQL = (
    _ROUTE
    + """,
new AS (SELECT now() AS ts),
cat2 AS (SELECT id, name, time_limit_value, time_limit_unit FROM categories WHERE code = %(category_code)s AND active),
cell2 AS (SELECT c.id, c.code, c.name FROM cells c JOIN cell ON cell.id = c.id),
w AS (
    SELECT wc.user_id FROM worker_cells wc JOIN users u ON u.id = wc.user_id, cell
    WHERE wc.cell_id = cell.id AND wc.valid_from <= (now() AT TIME ZONE %(tz)s)::date
      AND (wc.valid_to IS NULL OR wc.valid_to >= (now() AT TIME ZONE %(tz)s)::date) AND u.active
    ORDER BY wc.duty <> 'primary', wc.user_id LIMIT 1
),
rep AS (
    INSERT INTO reports (case_day, category_id, reporter_id, cell_id, handling_cell_id, status, description, address,
                         location, input_crs, input_lon, input_lat, routed_by, routing_distance_m, needs_triage,
                         accepted_at, assigned_at, assignee_id, deadline_at, warn_at, due_at, time_limit_value,
                         time_limit_unit, version, created_at, updated_at)
    SELECT (new.ts AT TIME ZONE %(tz)s)::date, cat2.id, w.user_id, cell.id, cell.id, 'assigned', %(description)s,
           %(address)s, pt.g, 'wgs84', %(lon)s, %(lat)s, 'covers', 0.0, false,
           new.ts, new.ts, w.user_id, new.ts + make_interval(hours => cat2.time_limit_value),
           new.ts + make_interval(hours => cat2.time_limit_value) * 0.8,
           new.ts + make_interval(hours => cat2.time_limit_value), cat2.time_limit_value, cat2.time_limit_unit,
           3, new.ts, new.ts
    FROM new CROSS JOIN cat2 CROSS JOIN pt JOIN cell ON true JOIN w ON true
    RETURNING id, cell_id, reporter_id, created_at, case_day
),
created AS (
    INSERT INTO case_events (report_id, actor_id, actor_role, action, from_status, to_status, created_at, data)
    SELECT rep.id, rep.reporter_id, 'worker', 'create', NULL, 'accepted', rep.created_at,
           json_build_object('cell_code', (SELECT code FROM cell), 'routed_by', 'covers',
                             'routing_distance_m', 0.0, 'crs', 'wgs84')
    FROM rep
),
assigned AS (
    INSERT INTO case_events (report_id, actor_id, actor_role, action, from_status, to_status, created_at, data)
    SELECT rep.id, NULL, 'system', 'assign', 'accepted', 'assigned', rep.created_at,
           json_build_object('automatic', true, 'reason', 'primary_on_duty', 'assignee_id', rep.reporter_id)
    FROM rep
    RETURNING id, report_id
),
told AS (
    INSERT INTO notifications (user_id, report_id, kind, title, data, dedupe_key, created_at)
    SELECT rep.reporter_id, rep.id, 'case_assigned',
           '新派案件：' || to_char(rep.case_day, 'YYYYMMDD') || lpad(rep.id::text, 7, '0') || ' ' || cat2.name
               || ' · ' || cell2.name,
           json_build_object('case_number', to_char(rep.case_day, 'YYYYMMDD') || lpad(rep.id::text, 7, '0'),
                             'status', 'assigned', 'cell_code', cell2.code, 'level', 0),
           'case_assigned:' || rep.id || ':' || assigned.id || ':' || rep.reporter_id, rep.created_at
    FROM rep JOIN assigned ON assigned.report_id = rep.id CROSS JOIN cat2 CROSS JOIN cell2
)
SELECT id, cell_id FROM rep
"""
)

app = Flask(__name__)
MODE = os.environ.get("FLOOR_MODE", "report")
SQL = {"full": FULL_SQL, "own": OWN_SQL}.get(MODE, REPORT_ONLY_SQL)
REPORTER_ID = int(os.environ.get("FLOOR_REPORTER_ID", "1"))
TIMEZONE = os.environ.get("FLOOR_TIMEZONE", "Asia/Shanghai")

_conn: psycopg.Connection | None = None
_conn_pid: int | None = None


def connection() -> psycopg.Connection:
    """One connection per worker process, opened on first use (after gunicorn forks)."""
    global _conn, _conn_pid
    if _conn is None or _conn.closed or _conn_pid != os.getpid():
        _conn = psycopg.connect(os.environ["FLOOR_DATABASE_URL"], autocommit=True)
        _conn_pid = os.getpid()
    return _conn


@app.post("/reports")
def create_report():
    body = request.get_json()
    location = body["location"]
    row = (
        connection()
        .execute(
            SQL,
            {
                "lon": float(location["lon"]),
                "lat": float(location["lat"]),
                "category_code": body["category_code"],
                "reporter_id": REPORTER_ID,
                "description": body["description"],
                "address": body.get("address"),
                "tz": TIMEZONE,
            },
        )
        .fetchone()
    )
    if row is None:
        return jsonify(error="unknown category"), 422
    return jsonify(id=row[0], cell_id=row[1]), 201


@app.get("/healthz")
def healthz():
    connection().execute("SELECT 1")
    return jsonify(status="ok", mode=MODE)
