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
                        case_events row - still in one statement (writable CTEs).
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

app = Flask(__name__)
MODE = os.environ.get("FLOOR_MODE", "report")
SQL = FULL_SQL if MODE == "full" else REPORT_ONLY_SQL
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
