"""`make bench-read`: one report, a worker's tasks and a sync page through the API beside a psycopg floor that
answers the same JSON.

1. A fresh PostGIS database (dropped at the end): `flask db upgrade`, the 10,000-cell bench grid through the app's
   import service, the categories, an admin and residents (bench.geo_bench.bench_app), N reports in bulk SQL
   (bench.geo_bench.load_reports) and one `submit` event each; a worker with T open cases assigned to them (an
   `assign` event each, by the admin).
2. In-process Flask test client (no HTTP server: both sides run in this process under the same load), one
   request at a time, alternating with the floor:
   - GET /api/v1/reports/{id} as the admin, random reports;
   - GET /api/v1/me/tasks as the worker (first page, 20);
   - GET /api/v1/sync?limit=200 as the admin (the first page of a full sync).
   The floor sends hand-written SQL on a plain psycopg 3 connection (autocommit, the app's session settings),
   builds the same answer as Python dicts and json.dumps it. No token, no schema, no ORM. The run checks
   that both sides answer the same JSON (parsed, for the first runs of each) before timing.
3. Prints p50/p95 per side and the ratio floor p50 / ours p50 (our share of the floor's speed; target >= 0.5).
"""

from __future__ import annotations

import base64
import json
import random
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from app.dialect.sync_log import _PG_SYNC_WATERMARK
from bench.field_bench import EVENT_CHUNKS, EVENTS_SQL, PG_OPTIONS, alternate
from bench.gen_grid import feature_collection, progress_bar, spec_for
from bench.geo_bench import PASSWORD, bench_app, load_reports
from bench.run_bench import OUT_DIR, pg_url, say

OPEN = frozenset({"submitted", "accepted", "assigned", "in_progress", "on_hold", "resolved"})
TASK_STATUSES = ("assigned", "in_progress", "on_hold")
TASK_PAGE = 20
SYNC_LIMIT = 200

# ---- the floor: SQL --------------------------------------------------------------------------------------------

REPORT_COLUMNS = """r.id, r.case_day, r.status, r.description, r.address, ST_X(r.location) AS lon,
    ST_Y(r.location) AS lat, r.routed_by, r.routing_distance_m, r.needs_triage, r.reporter_id, r.deadline_at,
    r.warn_at, r.due_at, r.late_since, r.hold_started_at, r.accepted_at, r.assigned_at, r.resolved_at, r.closed_at,
    r.time_limit_value, r.time_limit_unit, r.extension_value, r.extension_requested, r.escalation_level,
    r.critical, r.duplicate_of_id, r.created_at, r.updated_at, r.rating, r.rating_comment, r.rated_at, r.source,
    r.media_url, r.address_id, r.zipcode, r.attributes, r.version, r.contact_email, r.contact_phone,
    r.contact_first_name, r.contact_last_name, r.device_id, r.account_id,
    k.code AS k_code, k.name AS k_name, k.group_name AS k_group,
    c.id AS c_id, c.code AS c_code, c.name AS c_name, c.level AS c_level,
    h.id AS h_id, h.code AS h_code, h.name AS h_name, h.level AS h_level,
    a.id AS a_id, a.username AS a_username, a.display_name AS a_display_name,
    p.display_name AS p_name, p.phone AS p_phone"""
REPORT_JOINS = """FROM reports r JOIN categories k ON k.id = r.category_id
LEFT JOIN cells c ON c.id = r.cell_id LEFT JOIN cells h ON h.id = r.handling_cell_id
LEFT JOIN users a ON a.id = r.assignee_id JOIN users p ON p.id = r.reporter_id"""
RAW_REPORT = f"SELECT {REPORT_COLUMNS} {REPORT_JOINS} WHERE r.id = %(id)s"
RAW_REPORTS = f"SELECT {REPORT_COLUMNS} {REPORT_JOINS} WHERE r.id = ANY(%(ids)s)"
# /me/tasks: the worker's open cases, soonest deadline first (none last), then id; the count only for a full page.
TASK_WHERE = "r.assignee_id = %(user)s AND r.status = ANY(%(statuses)s)"
RAW_TASKS = f"""SELECT {REPORT_COLUMNS} {REPORT_JOINS} WHERE {TASK_WHERE}
ORDER BY r.deadline_at IS NULL, r.deadline_at, r.id LIMIT %(limit)s"""
RAW_TASKS_COUNT = f"SELECT count(*) FROM reports r WHERE {TASK_WHERE}"
RAW_LAST_EVENTS = """SELECT e.report_id, e.action, e.created_at, e.actor_role, e.note, u.id, u.username,
    u.display_name
FROM case_events e LEFT JOIN users u ON u.id = e.actor_id
WHERE e.id IN (SELECT max(id) FROM case_events WHERE report_id = ANY(%(ids)s) GROUP BY report_id)"""
# /sync as an admin (sees every report): cases (latest row of each) and events in (xid, seq) order, and the
# caller's notifications, each branch cut at the limit, merged; rows below the watermark only.
RAW_SYNC = f"""SELECT kind, entity_id, xid, seq FROM (
    (SELECT s.kind, s.entity_id, s.xid, s.seq FROM sync_changes s JOIN reports r ON r.id = s.report_id
     WHERE s.xid < {_PG_SYNC_WATERMARK}
       AND (s.kind = 'event' OR NOT EXISTS (
            SELECT 1 FROM sync_changes l WHERE l.report_id = s.report_id AND l.kind = 'case'
              AND l.entity_id = s.entity_id AND (l.xid, l.seq) > (s.xid, s.seq)))
     ORDER BY s.xid, s.seq LIMIT %(limit)s)
    UNION ALL
    (SELECT s.kind, s.entity_id, s.xid, s.seq FROM sync_changes s
     WHERE s.user_id = %(user)s AND s.xid < {_PG_SYNC_WATERMARK}
       AND NOT EXISTS (SELECT 1 FROM sync_changes l WHERE l.user_id = s.user_id AND l.entity_id = s.entity_id
                         AND (l.xid, l.seq) > (s.xid, s.seq))
     ORDER BY s.xid, s.seq LIMIT %(limit)s)
) both_branches ORDER BY xid, seq LIMIT %(limit)s"""
RAW_EVENTS = """SELECT id, report_id, action, from_status, to_status, actor_id, actor_role, note, data, created_at
FROM case_events WHERE id = ANY(%(ids)s)"""
RAW_NOTIFICATIONS = """SELECT id, kind, title, body, report_id, data, created_at, read_at FROM notifications
WHERE id = ANY(%(ids)s) AND user_id = %(user)s"""

# ---- the floor: JSON -------------------------------------------------------------------------------------------


class Floor:
    """The answers, built by hand from psycopg rows (dict_row) in the app's TIMEZONE."""

    def __init__(self, conn, zone: str) -> None:
        self.conn = conn
        self.zone = ZoneInfo(zone)

    def t(self, value: datetime | None) -> str | None:
        return None if value is None else value.astimezone(self.zone).isoformat()

    def report(self, r: dict, now: datetime, personal: bool) -> dict[str, Any]:
        # The light and lateness, as app.services.cases.sla defines them.
        late_since = r["late_since"]
        if late_since is None and r["due_at"] is not None:
            if r["status"] in OPEN:
                at = r["hold_started_at"] or now
            elif r["status"] == "closed" and r["closed_at"] is not None:
                at = r["closed_at"]
            else:
                at = None
            late_since = r["due_at"] if at is not None and at > r["due_at"] else None
        level = None
        if r["deadline_at"] is not None and r["status"] in OPEN:
            at = r["hold_started_at"] or now
            if at > r["deadline_at"]:
                level = "red"
            elif r["warn_at"] is not None and at >= r["warn_at"]:
                level = "yellow"
            else:
                level = "green"
        if late_since is not None:
            light = "red"
        elif r["deadline_at"] is None:
            light = None
        elif r["status"] not in OPEN:
            light = "green"
        else:
            light = level
        contact = None
        if personal:
            contact = {
                "email": r["contact_email"],
                "phone": r["contact_phone"],
                "first_name": r["contact_first_name"],
                "last_name": r["contact_last_name"],
                "device_id": r["device_id"],
                "account_id": r["account_id"],
            }
            if all(v is None for v in contact.values()):
                contact = None
        t = self.t
        return {
            "view": "full",
            "id": r["id"],
            "case_number": f"{r['case_day']:%Y%m%d}{r['id']:07d}",
            "status": r["status"],
            "category": {"code": r["k_code"], "name": r["k_name"], "group": r["k_group"]},
            "description": r["description"],
            "address": r["address"],
            "location": {"lon": round(r["lon"], 7), "lat": round(r["lat"], 7), "crs": "wgs84"},
            "cell": _cell(r, "c"),
            "routed_by": r["routed_by"],
            "routing_distance_m": r["routing_distance_m"],
            "distance_m": None,
            "needs_triage": r["needs_triage"],
            "reporter_id": r["reporter_id"],
            "sla_state": light,
            "late": late_since is not None,
            "late_since": t(late_since),
            "level_deadline_at": t(r["deadline_at"]),
            "level_sla_state": level,
            "assignee": None
            if r["a_id"] is None
            else {"id": r["a_id"], "username": r["a_username"], "display_name": r["a_display_name"]},
            "accepted_at": t(r["accepted_at"]),
            "assigned_at": t(r["assigned_at"]),
            "resolved_at": t(r["resolved_at"]),
            "closed_at": t(r["closed_at"]),
            "deadline_at": t(r["deadline_at"]),
            "warn_at": t(r["warn_at"]),
            "due_at": t(r["due_at"]),
            "time_limit_value": r["time_limit_value"],
            "time_limit_unit": r["time_limit_unit"],
            "extension_value": r["extension_value"],
            "extension_requested": r["extension_requested"],
            "escalation_level": r["escalation_level"],
            "handling_cell": _cell(r, "h"),
            "critical": r["critical"],
            "duplicate_of": r["duplicate_of_id"],
            "created_at": t(r["created_at"]),
            "updated_at": t(r["updated_at"]),
            "reporter": {"id": r["reporter_id"], "name": r["p_name"], "phone": r["p_phone"]} if personal else None,
            "contact": contact,
            "rating": r["rating"],
            "rating_comment": r["rating_comment"],
            "rated_at": t(r["rated_at"]),
            "source": r["source"],
            "media_url": r["media_url"],
            "address_id": r["address_id"],
            "zipcode": r["zipcode"],
            "attributes": r["attributes"],
        }

    def get_report(self, report_id: int) -> bytes:
        row = self.conn.execute(RAW_REPORT, {"id": report_id}).fetchone()
        return json.dumps(self.report(row, datetime.now(UTC), personal=True)).encode()

    def tasks(self, user_id: int) -> bytes:
        now = datetime.now(UTC)
        params = {"user": user_id, "statuses": list(TASK_STATUSES), "limit": TASK_PAGE}
        rows = self.conn.execute(RAW_TASKS, params).fetchall()
        total = len(rows)
        if total == TASK_PAGE:
            total = self.conn.execute(RAW_TASKS_COUNT, params).fetchone()["count"]
        last = {
            e["report_id"]: {
                "action": e["action"],
                "at": self.t(e["created_at"]),
                "actor": None
                if e["id"] is None
                else {"id": e["id"], "username": e["username"], "display_name": e["display_name"]},
                "actor_role": e["actor_role"],
                "note": e["note"],
            }
            for e in self.conn.execute(RAW_LAST_EVENTS, {"ids": [r["id"] for r in rows]})
        }
        items = [{**self.report(r, now, personal=False), "last_event": last.get(r["id"])} for r in rows]
        return json.dumps({"items": items, "page": 1, "page_size": TASK_PAGE, "total": total}).encode()

    def sync(self, user_id: int) -> bytes:
        now = datetime.now(UTC)
        rows = self.conn.execute(RAW_SYNC, {"user": user_id, "limit": SYNC_LIMIT + 1}).fetchall()
        has_more = len(rows) > SYNC_LIMIT
        rows = rows[:SYNC_LIMIT]
        ids: dict[str, list[int]] = {"case": [], "event": [], "notification": []}
        for row in rows:
            ids[row["kind"]].append(row["entity_id"])
        cases = {
            r["id"]: {**self.report(r, now, personal=True), "version": r["version"]}
            for r in self.conn.execute(RAW_REPORTS, {"ids": ids["case"]})
        }
        events = {
            e["id"]: {
                "id": e["id"],
                "action": e["action"],
                "from_status": e["from_status"],
                "to_status": e["to_status"],
                "actor_id": e["actor_id"],
                "actor_role": e["actor_role"],
                "note": e["note"],
                "data": e["data"],
                "created_at": self.t(e["created_at"]),
                "report_id": e["report_id"],
            }
            for e in self.conn.execute(RAW_EVENTS, {"ids": ids["event"]})
        }
        notes = {
            n["id"]: {**n, "created_at": self.t(n["created_at"]), "read_at": self.t(n["read_at"])}
            for n in self.conn.execute(RAW_NOTIFICATIONS, {"ids": ids["notification"], "user": user_id})
        }
        items = {"case": cases, "event": events, "notification": notes}
        changes = [
            {"type": row["kind"], "id": row["entity_id"], "data": items[row["kind"]][row["entity_id"]]}
            for row in rows
            if row["entity_id"] in items[row["kind"]]
        ]
        if has_more:
            position = (rows[-1]["xid"], rows[-1]["seq"])
        else:
            position = (self.conn.execute(f"SELECT {_PG_SYNC_WATERMARK} - 1").fetchone()[0], 2**63 - 1)
        cursor = "v1." + base64.urlsafe_b64encode(struct.pack(">qq", *position)).decode().rstrip("=")
        return json.dumps({"changes": changes, "next_cursor": cursor, "has_more": has_more}).encode()


def _cell(r: dict, prefix: str) -> dict | None:
    if r[f"{prefix}_id"] is None:
        return None
    return {
        "id": r[f"{prefix}_id"],
        "code": r[f"{prefix}_code"],
        "name": r[f"{prefix}_name"],
        "level": r[f"{prefix}_level"],
    }


# ---- the data --------------------------------------------------------------------------------------------------


def add_tasks(dbname: str, worker_id: int, admin_id: int, n: int, rng: random.Random) -> list[int]:
    """n random reports handed to the worker (assigned, in progress, on hold), each with an `assign` event."""
    import psycopg

    with psycopg.connect(pg_url(dbname), autocommit=True) as conn:
        top = conn.execute("SELECT max(id) FROM reports").fetchone()[0]
        ids = rng.sample(range(1, top + 1), n)
        conn.execute(
            """UPDATE reports SET assignee_id = %(worker)s, assigned_at = accepted_at,
                   status = (ARRAY['assigned', 'in_progress', 'on_hold'])[1 + id %% 3],
                   hold_started_at = CASE WHEN id %% 3 = 2 THEN now() - interval '1 hour' END,
                   closed_at = NULL, accepted_at = coalesce(accepted_at, created_at),
                   deadline_at = coalesce(deadline_at, now() + (id %% 50 - 25) * interval '1 hour'),
                   warn_at = coalesce(warn_at, now() + (id %% 50 - 30) * interval '1 hour'),
                   due_at = coalesce(due_at, now() + (id %% 50 - 25) * interval '1 hour')
               WHERE id = ANY(%(ids)s)""",
            {"worker": worker_id, "ids": ids},
        )
        conn.execute(
            """INSERT INTO case_events (report_id, actor_id, actor_role, action, from_status, to_status, note,
                                        created_at)
               SELECT id, %(admin)s, 'admin', 'assign', 'accepted', 'assigned', 'bench task', now()
               FROM reports WHERE id = ANY(%(ids)s)""",
            {"admin": admin_id, "ids": ids},
        )
        conn.execute("VACUUM ANALYZE")
    return ids


def profile(targets: dict, n: int) -> None:
    """pyinstrument over n API requests per endpoint; the text summaries go to bench/out/read-profile-*.txt."""
    from pyinstrument import Profiler

    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name, (run_list, ours, _raw) in targets.items():
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for i in range(n):
            ours(run_list[i % len(run_list)])
        profiler.stop()
        short = name.split()[1].strip("/").split("/")[0].split("?")[0]
        path = OUT_DIR / f"read-profile-{short}-{stamp}.txt"
        path.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
        say(f"profile of {n} {name}: {path}")


@click.command()
@click.option("--reports", "n_reports", default=100_000, show_default=True)
@click.option("--cells", default=10_000, show_default=True)
@click.option("--tasks", "n_tasks", default=40, show_default=True, help="Open cases assigned to the worker.")
@click.option("--runs", default=200, show_default=True, help="Timed requests per endpoint (each side).")
@click.option("--check", default=5, show_default=True, help="Runs per endpoint whose JSON must match the floor's.")
@click.option(
    "--profile",
    "profile_runs",
    default=0,
    show_default=True,
    help="After timing, profile this many API requests per endpoint (pyinstrument) into bench/out/read-profile-*.txt.",
)
@click.option("--seed", default=2026, show_default=True)
def main(n_reports, cells, n_tasks, runs, check, profile_runs, seed):
    import psycopg
    from psycopg.rows import dict_row

    rng = random.Random(seed)
    spec = spec_for(cells)
    features = feature_collection(spec)["features"]
    results: dict = {
        "settings": {
            "reports": n_reports,
            "cells": cells,
            "tasks": n_tasks,
            "runs": runs,
            "api": "in-process Flask test client",
            "floor": "psycopg 3, hand-written SQL, dicts, json.dumps",
        }
    }
    started = time.perf_counter()
    with bench_app(features) as (dbname, app):
        with app.app_context():
            from app.extensions import db
            from app.models import User
            from app.services.people.users import create_user

            worker = create_user(username="bench-worker", password=PASSWORD, role="worker")
            db.session.commit()
            worker_id = worker.id
            admin_id = db.session.execute(db.select(User.id).where(User.username == "bench-admin")).scalar_one()
            zone = app.config["TIMEZONE"]
            db.engine.dispose()
        t0 = time.perf_counter()
        results["reports_loaded"] = load_reports(dbname, n_reports, cells)
        with psycopg.connect(pg_url(dbname), autocommit=True) as conn:
            for chunk in progress_bar(range(EVENT_CHUNKS), "Writing events"):
                conn.execute(EVENTS_SQL, {"chunks": EVENT_CHUNKS, "chunk": chunk})
        add_tasks(dbname, worker_id, admin_id, n_tasks, rng)
        results["load_seconds"] = round(time.perf_counter() - t0, 1)
        say(f"loaded in {results['load_seconds']} s")

        client = app.test_client()
        tokens = {}
        for name in ("bench-admin", "bench-worker"):
            login = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
            tokens[name] = {"Authorization": f"Bearer {login.json['access_token']}"}

        raw_conn = psycopg.connect(pg_url(dbname), autocommit=True, options=PG_OPTIONS, row_factory=dict_row)
        floor = Floor(raw_conn, zone)

        def api(path: Callable[[Any], str], who: str) -> Callable[[Any], bytes]:
            def call(run: Any) -> bytes:
                resp = client.get(path(run), headers=tokens[who])
                if resp.status_code != 200:
                    raise click.ClickException(f"{path(run)}: {resp.status_code} {resp.get_data(as_text=True)[:500]}")
                return resp.get_data()

            return call

        top = raw_conn.execute("SELECT max(id) AS top FROM reports").fetchone()["top"]
        report_runs = [rng.randint(1, top) for _ in range(runs + 2)]
        targets = {
            "GET /reports/{id} (admin)": (
                report_runs,
                api(lambda rid: f"/api/v1/reports/{rid}", "bench-admin"),
                floor.get_report,
            ),
            f"GET /me/tasks (worker, {n_tasks} tasks, page 20)": (
                [worker_id] * (runs + 2),
                api(lambda _: "/api/v1/me/tasks", "bench-worker"),
                floor.tasks,
            ),
            f"GET /sync?limit={SYNC_LIMIT} (admin, first page)": (
                [admin_id] * (runs + 2),
                api(lambda _: f"/api/v1/sync?limit={SYNC_LIMIT}", "bench-admin"),
                floor.sync,
            ),
        }
        results["queries"] = {}
        for name, (run_list, ours, raw) in targets.items():
            for run in run_list[:check]:
                mine, theirs = json.loads(ours(run)), json.loads(raw(run))
                if mine != theirs:
                    Path(OUT_DIR).mkdir(exist_ok=True)
                    for side, body in (("api", mine), ("floor", theirs)):
                        (OUT_DIR / f"read-mismatch-{side}.json").write_text(json.dumps(body, indent=1))
                    raise click.ClickException(f"{name}: the floor's JSON differs (bench/out/read-mismatch-*.json)")
            say(f"  {name}: the same JSON on both sides ({check} runs)")
            mine_t, floor_t = alternate(name, run_list, ours, raw)
            results["queries"][name] = {
                "api": mine_t,
                "floor": floor_t,
                "share_of_floor": round(floor_t["p50_ms"] / mine_t["p50_ms"], 2),
                "bytes": len(ours(run_list[0])),
            }
        if profile_runs:
            profile(targets, profile_runs)
        raw_conn.close()
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()
    results["total_seconds"] = round(time.perf_counter() - started, 1)

    say("")
    say(f"{'request':52} {'API p50':>8} {'API p95':>8} {'floor p50':>9} {'floor p95':>9} {'share':>6}")
    for name, r in results["queries"].items():
        say(
            f"{name:52} {r['api']['p50_ms']:8.2f} {r['api']['p95_ms']:8.2f} {r['floor']['p50_ms']:9.2f} "
            f"{r['floor']['p95_ms']:9.2f} {r['share_of_floor']:6.2f}"
        )
    say(
        "(ms; in-process Flask test client beside the psycopg floor, alternating; share = floor p50 / API p50, "
        f"target >= 0.5; load {results['load_seconds']} s, total {results['total_seconds']} s)"
    )
    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in (OUT_DIR / f"read-{stamp}.json", OUT_DIR / "read-latest.json"):
        Path(path).write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
