"""GET /sync: the caller's changes since a cursor, on committed data, with concurrent writers."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, text

from app.models import CaseEvent, Notification, Report, SyncChange
from app.services.cases.escalation import escalate_batch
from app.services.field import sync
from app.services.field.sync import decode_cursor, encode_cursor
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    OTHER_COMMUNITY,
    auth_header,
    delete_committed,
    make_case,
    make_category,
    make_test_grid,
    make_two_district_grid,
    make_user,
)

URL = "/api/v1/sync"
SW, NE = "11010500100101", "11010500100104"
SW_POINT, NE_POINT, OTHER_POINT = (116.405, 39.905), (116.415, 39.915), (116.505, 39.905)


def _clear(real_db, backend):
    delete_committed(real_db.session.connection())
    real_db.session.commit()


@pytest.fixture(params=["by_report", "log_walk"])
def world(app, backend, request, monkeypatch):
    """A committed world (PostgreSQL hands out only committed changes); plain ids, and no session left open,
    so that requests, on other connections, never wait for this thread's SQLite write lock.

    Every test runs on both ways of reading a page: by walking the log after the cursor (a poll nearly caught
    up, or a large scope: these small worlds' own way) and from the visible reports' own rows (a small scope
    far behind, forced here with a walking threshold of 0)."""
    from app.extensions import db as real_db

    if request.param == "by_report":
        monkeypatch.setattr(sync, "WALK_ROWS", 0)
    with app.app_context():
        _clear(real_db, backend)
        try:
            cells = make_two_district_grid()
            users = {
                "resident": make_user("resident"),
                "resident2": make_user("resident"),
                "worker": make_user("worker", served=[cells[SW]]),
                "worker_ne": make_user("worker", served=[cells[NE]]),
                "supervisor": make_user("supervisor", cell=cells[COMMUNITY]),
                "other_supervisor": make_user("supervisor", cell=cells[OTHER_COMMUNITY]),
                "admin": make_user("admin"),
            }
            category = make_category(hours=4, auto_dispatch=False)
            w = SimpleNamespace(
                category=category.code,
                headers={name: auth_header(user) for name, user in users.items()},
                **{f"{name}_id": user.id for name, user in users.items()},
            )
            real_db.session.close()
            yield w
        finally:
            real_db.session.rollback()
            _clear(real_db, backend)
            real_db.session.remove()


def committed(fn):
    """Run fn(session) in its own committed transaction, then let go of the connection."""
    from app.extensions import db as real_db

    try:
        result = fn(real_db.session)
        real_db.session.commit()
        return result
    finally:
        real_db.session.close()


def file_report(client, w, who="resident", point=SW_POINT) -> dict:
    resp = client.post(
        "/api/v1/reports",
        headers=w.headers[who],
        json={"category_code": w.category, "description": "垃圾桶满溢", "location": {"lon": point[0], "lat": point[1]}},
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def act(client, w, report_id, action, body=None, who="supervisor"):
    etag = client.get(f"/api/v1/reports/{report_id}", headers=w.headers[who]).headers["ETag"]
    resp = client.post(
        f"/api/v1/reports/{report_id}/actions/{action}", json=body or {}, headers={**w.headers[who], "If-Match": etag}
    )
    assert resp.status_code == 200, resp.get_json()
    return resp


def notify(user_id, report_id=None, title="通知") -> int:
    def write(session):
        note = Notification(user_id=user_id, report_id=report_id, kind="reminder", title=title)
        session.add(note)
        session.flush()
        return note.id

    return committed(write)


def page(client, headers, cursor=None, **params):
    resp = client.get(URL, headers=headers, query_string={**({"cursor": cursor} if cursor else {}), **params})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def drain(client, headers, cursor=None, limit=200) -> tuple[list[dict], str]:
    changes = []
    while True:
        body = page(client, headers, cursor, limit=limit)
        changes += body["changes"]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return changes, cursor


def keys(changes) -> set[tuple[str, int]]:
    return {(c["type"], c["id"]) for c in changes}


def in_db(report_ids, user_id) -> set[tuple[str, int]]:
    """What a full sync must hold: the cases, all their events, and the user's notifications."""

    def read(session):
        events = session.scalars(select(CaseEvent.id).where(CaseEvent.report_id.in_(report_ids))).all()
        notes = session.scalars(select(Notification.id).where(Notification.user_id == user_id)).all()
        return {("case", i) for i in report_ids} | {("event", i) for i in events} | {("notification", i) for i in notes}

    return committed(read)


def test_initial_sync_returns_the_callers_scope_only(app, world):
    w, client = world, app.test_client()
    sw = file_report(client, w)["id"]
    ne = file_report(client, w, "resident2", NE_POINT)["id"]
    other = file_report(client, w, "resident2", OTHER_POINT)["id"]
    act(client, w, sw, "accept")
    act(client, w, sw, "assign", {"assignee_id": w.worker_id})
    notify(w.worker_id, sw)
    notify(w.worker_ne_id)
    notify(w.supervisor_id, ne)
    notify(w.resident_id, sw)

    expected = {
        "worker": in_db([sw], w.worker_id),
        "worker_ne": in_db([ne], w.worker_ne_id),
        "supervisor": in_db([sw, ne], w.supervisor_id),
        "other_supervisor": in_db([other], w.other_supervisor_id),
        "resident": in_db([sw], w.resident_id),
        "resident2": in_db([ne, other], w.resident2_id),
        "admin": in_db([sw, ne, other], w.admin_id),
    }
    for who, wanted in expected.items():
        changes, _ = drain(client, w.headers[who])
        assert keys(changes) == wanted, who
        assert len(changes) == len(wanted), who
    # Every shape is the API's own: the case as GET /reports/{id} shows it, plus its version.
    changes, _ = drain(client, w.headers["worker"])
    case = next(c["data"] for c in changes if c["type"] == "case")
    shown = client.get(f"/api/v1/reports/{sw}", headers=w.headers["worker"])
    assert case == {**shown.get_json(), "version": int(shown.headers["ETag"].strip('"'))}
    event = next(c["data"] for c in changes if c["type"] == "event" and c["data"]["action"] == "assign")
    assert event["report_id"] == sw and event["to_status"] == "assigned"
    note = next(c["data"] for c in changes if c["type"] == "notification" and c["data"]["title"] == "通知")
    assert note["report_id"] == sw


def test_residents_get_the_cases_and_history_the_case_endpoints_show_them(app, world):
    """The reporter: the case in full and its public history; a follower: its public view. No internal note,
    no staff id, whatever the endpoint."""
    w, client = world, app.test_client()
    sw = file_report(client, w)["id"]
    act(client, w, sw, "accept", {"note": "内部: 属实"})
    act(client, w, sw, "assign", {"assignee_id": w.worker_id, "note": "内部: 请王师傅处理"})
    act(client, w, sw, "supervise", {"note": "内部: 今日办结"})
    file_report(client, w, "resident2")  # the same category at the same point: sw is offered to resident2
    followed = client.post(f"/api/v1/reports/{sw}/actions/follow", json={}, headers=w.headers["resident2"])
    assert followed.status_code == 200, followed.get_json()

    for who in ("resident", "resident2"):
        changes, _ = drain(client, w.headers[who])
        case = next(c["data"] for c in changes if c["type"] == "case" and c["id"] == sw)
        shown = client.get(f"/api/v1/reports/{sw}", headers=w.headers[who])
        if who == "resident":
            assert case == {**shown.get_json(), "version": int(shown.headers["ETag"].strip('"'))}
            assert case["view"] == "full"
        else:
            assert case == shown.get_json() and case["view"] == "public" and "description" not in case
        events = [c["data"] for c in changes if c["type"] == "event" and c["data"]["report_id"] == sw]
        history = client.get(f"/api/v1/reports/{sw}/events", headers=w.headers[who]).get_json()
        assert [{k: v for k, v in e.items() if k != "report_id"} for e in events] == history
        assert [e["action"] for e in events] == ["create", "accept", "assign"]
        assert "内部" not in str(changes)
        assert not any({"actor_id", "actor_role", "data"} & set(e) for e in events)
    staff, _ = drain(client, w.headers["supervisor"])
    assert "内部: 今日办结" in str(staff)


def test_paging_covers_everything_exactly_once(app, world, backend):
    w, client = world, app.test_client()
    ids = [file_report(client, w, point=point)["id"] for point in (SW_POINT, NE_POINT, SW_POINT, NE_POINT)]
    for report_id in ids[:2]:
        act(client, w, report_id, "accept")
    for n in range(3):
        notify(w.supervisor_id, title=f"n{n}")
    pages, cursor, seen = 0, None, []
    while True:
        body = page(client, w.headers["supervisor"], cursor, limit=2)
        assert len(body["changes"]) <= 2
        seen += body["changes"]
        pages += 1
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    wanted = in_db(ids, w.supervisor_id)
    assert pages >= len(wanted) // 2
    assert sorted(keys(seen)) == sorted(wanted) and len(seen) == len(wanted)
    # Caught up: the same cursor answers nothing new, and keeps its place (on PostgreSQL the horizon may move on
    # when another database of the cluster takes transaction ids meanwhile, never back).
    again = page(client, w.headers["supervisor"], cursor)
    assert again["changes"] == [] and again["has_more"] is False
    assert decode_cursor(again["next_cursor"]) >= decode_cursor(cursor)
    if backend == "spatialite":
        assert again["next_cursor"] == cursor


def test_a_change_after_the_cursor_comes_on_the_next_call_at_its_latest_state(app, world):
    w, client = world, app.test_client()
    quiet = file_report(client, w)["id"]
    busy = file_report(client, w)["id"]
    _, cursor = drain(client, w.headers["supervisor"])

    act(client, w, busy, "accept")
    act(client, w, busy, "assign", {"assignee_id": w.worker_id})
    note = notify(w.supervisor_id, busy)
    changes, cursor = drain(client, w.headers["supervisor"], cursor)
    cases = [c for c in changes if c["type"] == "case"]
    # Changed twice, listed once, as it is now; the untouched case does not come again.
    assert [c["id"] for c in cases] == [busy]
    current = client.get(f"/api/v1/reports/{busy}", headers=w.headers["supervisor"]).headers["ETag"]
    assert cases[0]["data"]["status"] == "assigned" and f'"{cases[0]["data"]["version"]}"' == current
    assert [c["data"]["action"] for c in changes if c["type"] == "event"] == ["accept", "assign"]
    assert [c["id"] for c in changes if c["type"] == "notification"] == [note]
    assert quiet not in {c["id"] for c in cases}

    # Reading it is a change too; the notification comes again, read.
    assert client.post(f"/api/v1/notifications/{note}/read", headers=w.headers["supervisor"]).status_code == 200
    changes, _ = drain(client, w.headers["supervisor"], cursor)
    assert [(c["type"], c["id"]) for c in changes] == [("notification", note)]
    assert changes[0]["data"]["read_at"] is not None


def test_a_case_leaving_and_entering_scope_follows_the_current_rules(app, world):
    w, client = world, app.test_client()
    report_id = file_report(client, w)["id"]
    act(client, w, report_id, "accept")
    _, cursor = drain(client, w.headers["worker_ne"])
    act(client, w, report_id, "assign", {"assignee_id": w.worker_id})
    assert drain(client, w.headers["worker_ne"], cursor)[0] == []
    changes, _ = drain(client, w.headers["worker"])
    assert ("case", report_id) in keys(changes)


def _count_changes():
    return committed(lambda session: session.scalar(select(func.count()).select_from(SyncChange)))


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "v2." + encode_cursor(1, 1)[3:],
        "v1.",
        "v1.!!!!",
        "v1." + "A" * 10,
        encode_cursor(1, 1) + "A",
        encode_cursor(1, 1)[:-1] + "B",
        "v1.__________________8",
        "v1." + "A" * 2000,
    ],
)
def test_a_malformed_cursor_is_400(app, world, cursor):
    before = _count_changes()
    resp = app.test_client().get(URL, headers=world.headers["supervisor"], query_string={"cursor": cursor})
    assert_problem(resp, 400, "invalid_cursor")
    assert _count_changes() == before


@pytest.mark.parametrize("limit", ["0", "1001", "-5", "many", "1.5"])
def test_a_limit_out_of_range_is_422(app, world, limit):
    resp = app.test_client().get(URL, headers=world.headers["supervisor"], query_string={"limit": limit})
    body = assert_problem(resp, 422, "validation_failed")
    assert "limit" in str(body)


def test_limits_at_the_edges_and_unknown_parameters(app, world):
    w, client = world, app.test_client()
    for _ in range(3):
        file_report(client, w)
    one = page(client, w.headers["supervisor"], limit=1)
    assert len(one["changes"]) == 1 and one["has_more"] is True
    full = page(client, w.headers["supervisor"], limit=1000)
    assert len(full["changes"]) == 6 and full["has_more"] is False
    # Parameters the feed does not take are named, not ignored (the rule of every /api/v1 operation).
    resp = client.get(URL, headers=w.headers["supervisor"], query_string={"limit": 10, "page": 3, "colour": "blue"})
    assert assert_problem(resp, 422, "validation_failed")["errors"] == {
        "page": ["未知的查询参数。"],
        "colour": ["未知的查询参数。"],
    }
    # Default page size: everything here fits.
    assert page(client, w.headers["supervisor"])["changes"] == full["changes"]


def test_no_token_is_401(app, world):
    assert_problem(app.test_client().get(URL), 401, "missing_token")
    resp = app.test_client().get(URL, headers={"Authorization": "Bearer nonsense"})
    assert resp.status_code == 401


# ---- the log itself -----------------------------------------------------------------------------


def test_escalation_sweeps_write_change_rows(db):
    """The set-based sweep (UPDATE ... / INSERT ... SELECT) is logged by the triggers like any other write."""
    cells = make_test_grid()
    category = make_category(hours=4, window=2, window_unit="hours")
    resident, worker = make_user("resident"), make_user("worker", served=[cells[SW]])
    supervisor = make_user("supervisor", cell=cells[COMMUNITY])
    now = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    reports = [
        make_case(
            resident,
            category,
            cells[SW],
            status="assigned",
            assignee_id=worker.id,
            accepted_at=now - 5 * hour,
            due_at=now - hour,
            deadline_at=now - hour,
            warn_at=now - 2 * hour,
        )
        for _ in range(3)
    ]
    start = db.session.scalar(select(func.coalesce(func.max(SyncChange.seq), 0)))

    assert escalate_batch(now).escalated == 3
    rows = db.session.execute(
        select(SyncChange.kind, SyncChange.entity_id, SyncChange.report_id, SyncChange.user_id).where(
            SyncChange.seq > start
        )
    ).all()
    ids = {r.id for r in reports}
    events = set(
        db.session.scalars(select(CaseEvent.id).where(CaseEvent.report_id.in_(ids), CaseEvent.action == "escalate"))
    )
    notes = set(
        db.session.execute(select(Notification.id, Notification.user_id).where(Notification.report_id.in_(ids)))
    )
    # Each case tells the community's supervisor and its worker (NOTICES["escalate"]).
    assert len(events) == 3 and sorted(u for _, u in notes) == sorted([supervisor.id, worker.id] * 3)
    assert sorted((k, e, r) for k, e, r, _ in rows if k == "case") == sorted(("case", i, i) for i in ids)
    assert {e for k, e, r, _ in rows if k == "event"} == events
    assert all(r in ids for k, _, r, _ in rows if k == "event")
    assert {(e, u) for k, e, _, u in rows if k == "notification"} == notes


def test_prune_keeps_every_latest_row(app, world, backend):
    w, client = world, app.test_client()
    report_id = file_report(client, w)["id"]
    act(client, w, report_id, "accept")
    act(client, w, report_id, "assign", {"assignee_id": w.worker_id})
    note = notify(w.supervisor_id, report_id)
    assert client.post(f"/api/v1/notifications/{note}/read", headers=w.headers["supervisor"]).status_code == 200
    before, _ = drain(client, w.headers["supervisor"])

    def rows(session):
        return session.execute(select(SyncChange.kind, func.count()).group_by(SyncChange.kind)).all()

    logged = dict(committed(rows))
    # The resident's notice of acceptance, the worker's of assignment, and the supervisor's written then read.
    assert logged["case"] >= 3 and logged["notification"] == 4
    young = app.test_cli_runner().invoke(args=["sync", "prune", "--days", "30"])
    assert young.exit_code == 0 and "0 superseded" in young.output
    assert dict(committed(rows)) == logged

    committed(
        lambda session: session.execute(
            text("UPDATE sync_changes SET changed_at = :old"), {"old": datetime(2020, 1, 1)}
        )
    )
    result = app.test_cli_runner().invoke(args=["sync", "prune", "--days", "30"])
    assert result.exit_code == 0, result.output
    assert f"{logged['case'] - 1 + 1} superseded" in result.output
    # The case's and the notification's latest rows stay, and every event's: a full sync reads the same.
    assert dict(committed(rows)) == {**logged, "case": 1, "notification": 3}
    assert drain(client, w.headers["supervisor"])[0] == before


def test_the_feed_merges_rows_from_several_partitions(app, world, backend):
    """PostGIS: the log is partitioned by month of changed_at; a page merges partitions in (xid, seq) order."""
    if backend != "postgis":
        pytest.skip("SQLite keeps a plain table")
    w, client = world, app.test_client()
    for _ in range(3):
        report_id = file_report(client, w)["id"]
        act(client, w, report_id, "accept")
    before, _ = drain(client, w.headers["supervisor"], limit=2)
    # Every other row into the default partition (a month no partition covers); seq and xid stay as they were.
    committed(
        lambda session: session.execute(
            text("UPDATE sync_changes SET changed_at = :old WHERE seq % 2 = 0"), {"old": datetime(2001, 1, 1)}
        )
    )
    homes = committed(
        lambda session: set(session.scalars(text("SELECT DISTINCT tableoid::regclass::text FROM sync_changes")))
    )
    assert len(homes) == 2 and "sync_changes_default" in homes
    assert len(before) >= 6
    assert drain(client, w.headers["supervisor"], limit=2)[0] == before


# ---- concurrent writers -------------------------------------------------------------------------


def test_a_reader_paging_during_concurrent_writes_misses_nothing(app, world, backend):
    """Writers commit while a reader pages; on PostgreSQL one writer takes its position in the log, then a
    later writer commits and the reader polls, and only then does the first commit (a late commit)."""
    from app.extensions import db as real_db

    w = world
    seeded = [file_report(app.test_client(), w, point=SW_POINT)["id"] for _ in range(2)]
    done, fast_committed, slow_holds_seq = threading.Event(), threading.Event(), threading.Event()
    polls = {"count": 0}
    polled = threading.Condition()
    seen: dict[tuple[str, int], int] = {}
    errors: list[BaseException] = []
    late = {}

    def guarded(fn):
        def run():
            try:
                with app.app_context():
                    fn()
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        return run

    def record(changes):
        for change in changes:
            key = (change["type"], change["id"])
            seen[key] = max(seen.get(key, 0), change["data"].get("version", 0))

    def reader():
        client, cursor = app.test_client(), None
        while not done.is_set():
            body = page(client, w.headers["supervisor"], cursor, limit=3)
            record(body["changes"])
            cursor = body["next_cursor"]
            with polled:
                polls["count"] += 1
                polled.notify_all()
        late["cursor"] = cursor

    def slow_writer():
        """Open a transaction, write (the triggers take their seqs), hold it open, commit last."""
        with real_db.engine.connect() as conn, conn.begin():
            conn.execute(
                text("UPDATE reports SET description = 'slow', version = version + 1 WHERE id = :id"), {"id": seeded[0]}
            )
            conn.execute(
                text(
                    "INSERT INTO notifications (user_id, kind, title, created_at) "
                    "VALUES (:user, 'reminder', 'slow', CURRENT_TIMESTAMP)"
                ),
                {"user": w.supervisor_id},
            )
            if backend == "postgis":
                late["slow_seq"] = conn.scalar(
                    text("SELECT max(seq) FROM sync_changes WHERE xid = pg_current_xact_id()::text::bigint")
                )
                slow_holds_seq.set()
                assert fast_committed.wait(30)
                # A poll that began after the fast commit has finished, and saw it not (xmin holds it back).
                with polled:
                    target = polls["count"] + 2
                    assert polled.wait_for(lambda: polls["count"] >= target, 30)
                late["polls_before_commit"] = polls["count"]
            else:
                # SQLite: this transaction holds the write lock; every other writer and the reader wait.
                time.sleep(0.3)

    def fast_writer(point, assignee, first):
        client = app.test_client()
        if first and backend == "postgis":
            assert slow_holds_seq.wait(30)
        report_id = file_report(client, w, point=point)["id"]
        if first and backend == "postgis":
            late["fast_seq"] = committed(
                lambda session: session.scalar(
                    select(func.min(SyncChange.seq)).where(SyncChange.report_id == report_id)
                )
            )
            fast_committed.set()
        act(client, w, report_id, "accept")
        act(client, w, report_id, "assign", {"assignee_id": assignee})
        act(client, w, report_id, "supervise", {"note": "加快处理"})

    def second_slow_writer():
        # Another late commit, racing the others freely.
        with real_db.engine.connect() as conn, conn.begin():
            conn.execute(text("UPDATE reports SET version = version + 1 WHERE id = :id"), {"id": seeded[1]})
            time.sleep(0.2)

    read = threading.Thread(target=guarded(reader))
    read.start()
    writers = [threading.Thread(target=guarded(slow_writer)), threading.Thread(target=guarded(second_slow_writer))]
    writers += [
        threading.Thread(target=guarded(lambda p=p, a=a, first=(i == 0): fast_writer(p, a, first)))
        for i, (p, a) in enumerate(((SW_POINT, w.worker_id), (NE_POINT, w.worker_ne_id), (SW_POINT, w.worker_id)))
    ]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(60)
    done.set()
    read.join(60)
    assert not errors, errors
    with app.app_context():
        changes, _ = drain(app.test_client(), w.headers["supervisor"], late["cursor"], limit=3)
        record(changes)

        def final(session):
            versions = dict(session.execute(select(Report.id, Report.version)).all())
            events = session.scalars(select(CaseEvent.id)).all()
            notes = session.scalars(select(Notification.id).where(Notification.user_id == w.supervisor_id)).all()
            return versions, events, notes

        versions, events, notes = committed(final)

    assert {k: v for k, v in seen.items() if k[0] == "case"} == {("case", i): v for i, v in versions.items()}
    assert {k for k in seen if k[0] == "event"} == {("event", i) for i in events}
    assert {k for k in seen if k[0] == "notification"} == {("notification", i) for i in notes}
    assert len(versions) == 5 and len(events) >= 2 + 3 * 4 and notes
    if backend == "postgis":
        # The late commit really happened: its change rows precede, by seq, rows committed before it, and
        # the reader paged in between.
        assert late["slow_seq"] < late["fast_seq"]
        assert late["polls_before_commit"] >= 2


def test_the_feed_gives_case_locations_in_the_crs_asked_for(app, world):
    w, client = world, app.test_client()
    sw = file_report(client, w)["id"]
    for crs in ("gcj02", "bd09"):
        body = page(client, w.headers["resident"], crs=crs)
        case = next(c["data"] for c in body["changes"] if c["type"] == "case" and c["id"] == sw)
        shown = client.get(f"/api/v1/reports/{sw}", headers=w.headers["resident"], query_string={"crs": crs})
        assert case["location"] == shown.get_json()["location"]
        assert case["location"]["crs"] == crs
    assert client.get(URL, headers=w.headers["resident"], query_string={"crs": "gcj"}).status_code == 422
