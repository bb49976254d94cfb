"""Idempotency-Key: replays, reuse, per-user scope, expiry, bad keys, what is stored, purge, and a real race."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, text, update

from app.models import CaseEvent, IdempotencyKey, Report
from app.models.base import utcnow
from app.services import idempotency
from app.services.cases import reports as report_service
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    auth_header,
    committed_world,
    make_case,
    make_category,
    make_offered,
    make_report,
    make_two_district_grid,
    make_user,
)

URL = "/api/v1/reports"
SW = "11010500100101"
SW_POINT = (116.405, 39.905)
KEY = "4f9d1c2e-7a3b-4c5d-9e8f-0a1b2c3d4e5f"


def build_world():
    cells = make_two_district_grid()
    return SimpleNamespace(
        cells=cells,
        # auto_dispatch off: a resident's case stays submitted until a test moves it.
        category=make_category(hours=4, auto_dispatch=False),
        resident=make_user("resident"),
        resident2=make_user("resident"),
        worker=make_user("worker", served=[cells[SW]]),
        supervisor=make_user("supervisor", cell=cells[COMMUNITY]),
        admin=make_user("admin"),
    )


@pytest.fixture()
def w(db):
    return build_world()


def report_body(w, description="垃圾桶满溢"):
    return {
        "category_code": w.category.code,
        "description": description,
        "location": {"lon": SW_POINT[0], "lat": SW_POINT[1]},
        "address": "东四北大街 1 号",
    }


def keyed(user, key=KEY, **extra):
    return {**auth_header(user), "Idempotency-Key": key, **extra}


def count(db, model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def stored_keys(db) -> list[tuple]:
    return db.session.execute(
        select(IdempotencyKey.user_id, IdempotencyKey.key, IdempotencyKey.status_code).order_by(IdempotencyKey.id)
    ).all()


def world_state(db) -> tuple:
    return count(db, Report), count(db, CaseEvent), stored_keys(db)


def etag_of(client, user, report_id) -> str:
    return client.get(f"{URL}/{report_id}", headers=auth_header(user)).headers["ETag"]


def act(client, user, report_id, action, body, key=KEY, if_match=None):
    headers = {**auth_header(user), "If-Match": if_match or etag_of(client, user, report_id)}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"{URL}/{report_id}/actions/{action}", json=body, headers=headers)


# ---- replays ------------------------------------------------------------------------------------


def test_a_retried_report_gets_the_stored_response_and_files_one_report(client, db, w):
    reports, events = count(db, Report), count(db, CaseEvent)
    first = client.post(URL, json=report_body(w), headers=keyed(w.resident))
    assert first.status_code == 201, first.json
    assert "Idempotent-Replayed" not in first.headers
    again = client.post(URL, json=report_body(w), headers=keyed(w.resident))
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    assert again.mimetype == "application/json"
    assert (count(db, Report), count(db, CaseEvent)) == (reports + 1, events + 1)
    assert stored_keys(db) == [(w.resident.id, KEY, 201)]


def test_without_the_header_every_post_is_processed(client, db, w):
    reports = count(db, Report)
    for _ in range(2):
        assert client.post(URL, json=report_body(w), headers=auth_header(w.resident)).status_code == 201
    assert count(db, Report) == reports + 2
    assert stored_keys(db) == []


def test_a_retried_action_gets_the_same_etag_and_writes_one_event(client, db, w):
    report = make_report(w.resident, w.category, *SW_POINT)
    if_match = etag_of(client, w.supervisor, report.id)
    first = act(client, w.supervisor, report.id, "accept", {"note": "属实"}, if_match=if_match)
    assert first.status_code == 200, first.json
    # The retry carries the If-Match of the first try, which is stale now: the stored answer still comes back.
    again = act(client, w.supervisor, report.id, "accept", {"note": "属实"}, if_match=if_match)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["ETag"] == first.headers["ETag"] != if_match
    assert again.get_data() == first.get_data()
    accepts = db.session.scalar(
        select(func.count())
        .select_from(CaseEvent)
        .where(CaseEvent.report_id == report.id, CaseEvent.action == "accept")
    )
    assert accepts == 1


def test_a_replay_answers_from_the_stored_response_after_the_case_moved_on(client, db, w):
    report = make_report(w.resident, w.category, *SW_POINT)
    if_match = etag_of(client, w.supervisor, report.id)
    first = act(client, w.supervisor, report.id, "accept", {"note": "属实"}, if_match=if_match)
    assert first.json["status"] == "accepted"
    moved = act(client, w.supervisor, report.id, "assign", {"assignee_id": w.worker.id}, key=None)
    assert moved.status_code == 200, moved.json
    before = world_state(db)
    again = act(client, w.supervisor, report.id, "accept", {"note": "属实"}, if_match=if_match)
    assert again.status_code == 200
    assert again.get_data() == first.get_data()
    assert again.json["status"] == "accepted"
    assert again.headers["ETag"] == first.headers["ETag"] != moved.headers["ETag"]
    db.session.expire_all()
    assert db.session.get(Report, report.id).status == "assigned"
    assert world_state(db) == before


OTHER_POSTS = {
    "category": (
        "admin",
        "/api/v1/categories",
        {"code": "Z901", "name": "占道经营", "group": "街面秩序", "time_limit_value": 2},
    ),
    "user": ("admin", "/api/v1/users", {"username": "new-worker", "password": "long-enough-1", "role": "worker"}),
    "duty": ("worker", "/api/v1/me/duty", {"duty": "on", "position": {"lon": 116.405, "lat": 39.905}}),
    "checkins": (
        "worker",
        "/api/v1/patrols/checkins",
        {"points": [{"time": "2026-11-20T09:00:00+08:00", "lon": 116.405, "lat": 39.905, "accuracy": 5}]},
    ),
}


@pytest.mark.parametrize("what", list(OTHER_POSTS))
def test_other_changing_posts_replay_too(client, db, w, what):
    who, url, body = OTHER_POSTS[what]
    first = client.post(url, json=body, headers=keyed(getattr(w, who)))
    assert first.status_code == 201, first.json
    before = stored_keys(db)
    again = client.post(url, json=body, headers=keyed(getattr(w, who)))
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (201, "true")
    assert again.get_data() == first.get_data()
    assert stored_keys(db) == before == [(getattr(w, who).id, KEY, 201)]


# POSTs that take no key, and why: /auth/* has no user to scope a key to yet (and login, refresh and logout
# carry their own single-use credentials); search only reads; a new API key is shown once and only its hash is
# kept, so its answer must never be stored for a replay.
UNKEYED_POSTS = {
    "/api/v1/auth/register",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/reports/search",
    "/api/v1/api-keys",
}


def _header_names(operation) -> list[str]:
    return [p.get("name") for p in operation.get("parameters", []) if p.get("in") == "header"]


def test_every_changing_post_takes_the_key_and_documents_it(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    posts = {path: ops["post"] for path, ops in paths.items() if "post" in ops}
    assert "/api/v1/reports/{report_id}/actions/accept" in posts
    unkeyed = {path for path, op in posts.items() if "Idempotency-Key" not in _header_names(op)}
    assert unkeyed == UNKEYED_POSTS, "put @idempotent under @auth_required, or list the POST here with the reason"
    assert "Idempotency-Key" not in _header_names(paths["/api/v1/reports"]["get"])
    assert paths["/api/v1/reports"]["post"]["requestBody"]


# ---- reuse, scope, expiry -----------------------------------------------------------------------


def test_the_same_key_with_another_body_is_422_and_changes_nothing(client, db, w):
    assert client.post(URL, json=report_body(w), headers=keyed(w.resident)).status_code == 201
    before = world_state(db)
    resp = client.post(URL, json=report_body(w, "另一件事"), headers=keyed(w.resident))
    assert_problem(resp, 422, "idempotency_key_reused")
    assert world_state(db) == before


def test_the_same_key_on_another_path_or_query_is_422_and_changes_nothing(client, db, w):
    report = make_report(w.resident, w.category, *SW_POINT)
    other = make_report(w.resident, w.category, *SW_POINT)
    assert act(client, w.supervisor, report.id, "accept", {}).status_code == 200
    before = world_state(db)
    assert_problem(act(client, w.supervisor, other.id, "accept", {}), 422, "idempotency_key_reused")
    resp = client.post(
        f"{URL}/{report.id}/actions/accept?x=1",
        json={},
        headers=keyed(w.supervisor, **{"If-Match": etag_of(client, w.supervisor, report.id)}),
    )
    # No action takes a query parameter: another query is refused by name before the key is looked at.
    assert assert_problem(resp, 422, "validation_failed")["errors"] == {"x": ["未知的查询参数。"]}
    assert world_state(db) == before
    db.session.expire_all()
    assert db.session.get(Report, other.id).status == "submitted"


def test_two_users_may_use_the_same_key(client, db, w):
    reports = count(db, Report)
    first = client.post(URL, json=report_body(w), headers=keyed(w.resident))
    second = client.post(URL, json=report_body(w, "别人的事"), headers=keyed(w.resident2))
    assert (first.status_code, second.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in second.headers
    assert first.json["id"] != second.json["id"]
    assert count(db, Report) == reports + 2
    assert sorted(stored_keys(db)) == sorted([(w.resident.id, KEY, 201), (w.resident2.id, KEY, 201)])


def test_an_expired_key_is_processed_again(client, db, w):
    first = client.post(URL, json=report_body(w), headers=keyed(w.resident))
    db.session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    reports = count(db, Report)
    again = client.post(URL, json=report_body(w), headers=keyed(w.resident))
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers
    assert again.json["id"] != first.json["id"]
    assert count(db, Report) == reports + 1
    row = db.session.scalars(select(IdempotencyKey)).one()
    assert row.expires_at > utcnow() + timedelta(hours=23)


def test_the_key_is_kept_for_the_configured_time(app, client, db, w, monkeypatch):
    monkeypatch.setitem(app.config, "IDEMPOTENCY_TTL_S", 60)
    before = utcnow()
    client.post(URL, json=report_body(w), headers=keyed(w.resident))
    row = db.session.scalars(select(IdempotencyKey)).one()
    assert before + timedelta(seconds=60) <= row.expires_at <= utcnow() + timedelta(seconds=60)


# ---- bad keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["", "k" * 256, "caf\xe9", "tab\there", "bell\x07"], ids=["empty", "too-long", "non-ascii", "tab", "control"]
)
def test_an_invalid_key_is_400_and_changes_nothing(client, db, w, key):
    before = world_state(db)
    resp = client.post(URL, json=report_body(w), headers=keyed(w.resident, key))
    assert_problem(resp, 400, "invalid_idempotency_key")
    assert world_state(db) == before


@pytest.mark.parametrize("key", ["k" * 255, "a", 'with spaces and "quotes"'], ids=["255", "1", "printable"])
def test_every_printable_key_up_to_255_characters_is_accepted(client, db, w, key):
    assert client.post(URL, json=report_body(w), headers=keyed(w.resident, key)).status_code == 201
    assert stored_keys(db) == [(w.resident.id, key, 201)]


# ---- what is not stored -------------------------------------------------------------------------


def test_a_refused_action_is_not_stored_and_the_key_stays_usable(client, db, w):
    report = make_report(w.resident, w.category, *SW_POINT)
    before = world_state(db)
    # 409: a submitted case cannot be closed; the key is free again.
    assert_problem(act(client, w.supervisor, report.id, "close", {}), 409, "transition_not_allowed")
    # 412: a stale If-Match.
    assert_problem(act(client, w.supervisor, report.id, "accept", {}, if_match='"999"'), 412, "version_mismatch")
    # 422: the body does not validate.
    assert_problem(act(client, w.supervisor, report.id, "accept", {"note": 5}), 422, "validation_failed")
    assert world_state(db) == before
    resp = act(client, w.supervisor, report.id, "accept", {})
    assert resp.status_code == 200, resp.json
    assert "Idempotent-Replayed" not in resp.headers
    assert stored_keys(db) == [(w.supervisor.id, KEY, 200)]


@pytest.mark.parametrize(
    "raw, status, code",
    [
        ("{not json", 400, "malformed_json"),
        ('{"x": "' + "x" * (1024 * 1024) + '"}', 413, "payload_too_large"),
        ('{"unknown": 1}', 422, "validation_failed"),
    ],
    ids=["malformed", "oversized", "unknown-field"],
)
def test_an_unreadable_body_is_not_stored(client, db, w, raw, status, code):
    before = world_state(db)
    resp = client.post(URL, data=raw, content_type="application/json", headers=keyed(w.resident))
    assert_problem(resp, status, code)
    assert world_state(db) == before
    assert client.post(URL, json=report_body(w), headers=keyed(w.resident)).status_code == 201


def test_no_token_and_wrong_role_are_not_stored(client, db, w):
    before = world_state(db)
    assert_problem(client.post(URL, json=report_body(w), headers={"Idempotency-Key": KEY}), 401, "missing_token")
    assert_problem(client.post(URL, json=report_body(w), headers=keyed(w.admin)), 403, "forbidden")
    assert world_state(db) == before


def test_a_server_error_stores_nothing_and_undoes_the_work(client, db, w, monkeypatch):
    original = idempotency.store

    def store_then_fail(*args):
        original(*args)
        raise RuntimeError("the process dies after the view")

    monkeypatch.setattr(idempotency, "store", store_then_fail)
    before = world_state(db)
    assert_problem(client.post(URL, json=report_body(w), headers=keyed(w.resident)), 500, "internal_error")
    assert world_state(db) == before
    monkeypatch.undo()
    assert client.post(URL, json=report_body(w), headers=keyed(w.resident)).status_code == 201


def test_a_read_only_post_ignores_the_key(client, db, w):
    make_report(w.resident, w.category, *SW_POINT)
    polygon = {
        "type": "Polygon",
        "coordinates": [[[116.4, 39.9], [116.41, 39.9], [116.41, 39.91], [116.4, 39.91], [116.4, 39.9]]],
    }
    for _ in range(2):
        resp = client.post(f"{URL}/search", json={"within_geojson": polygon}, headers=keyed(w.supervisor))
        assert "Idempotent-Replayed" not in resp.headers
    assert resp.status_code == 200, resp.json
    assert resp.json["total"] == 1
    assert stored_keys(db) == []


# ---- purge --------------------------------------------------------------------------------------


def test_purge_removes_only_expired_keys(app, db, w):
    now = utcnow()
    for n, expires in enumerate(
        [
            now - timedelta(days=2),
            now - timedelta(seconds=1),
            now - timedelta(hours=1),
            now + timedelta(hours=1),
            now + timedelta(days=1),
        ]
    ):
        db.session.add(
            IdempotencyKey(
                user_id=w.resident.id,
                key=f"k{n}",
                fingerprint="0" * 64,
                status_code=201,
                headers={},
                body=b"{}",
                created_at=now - timedelta(days=3),
                expires_at=expires,
            )
        )
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["idempotency", "purge", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "idempotency purge: 3 expired keys deleted" in result.output
    db.session.expire_all()
    assert sorted(k for (k,) in db.session.execute(select(IdempotencyKey.key))) == ["k3", "k4"]
    again = app.test_cli_runner().invoke(args=["idempotency", "purge"])
    assert "idempotency purge: 0 expired keys deleted" in again.output
    assert count(db, IdempotencyKey) == 2


# ---- two requests at once -----------------------------------------------------------------------


@pytest.fixture()
def live(app):
    """A committed world that separate connections can see; removed afterwards."""
    with committed_world(app):
        yield build_world()


def test_a_retry_while_the_first_runs_never_files_twice(app, live, backend, monkeypatch):
    from app.extensions import db as real_db

    w = live
    headers = keyed(w.resident)
    body = report_body(w)
    # This thread's session must not hold SQLite's write lock while the requests run.
    real_db.session.close()
    running, finish = threading.Event(), threading.Event()
    original = report_service.file_report

    def file_and_wait(*args, **kwargs):
        filed = original(*args, **kwargs)
        running.set()
        assert finish.wait(30)
        return filed

    monkeypatch.setattr(report_service, "file_report", file_and_wait)
    results = {}

    def post(name):
        results[name] = app.test_client().post(URL, json=body, headers=headers)

    first = threading.Thread(target=post, args=("first",))
    first.start()
    assert running.wait(30)
    second = threading.Thread(target=post, args=("second",))
    second.start()
    # The first request holds the key (PostGIS: its advisory lock; SpatiaLite: the host lock taken before the
    # request queues for the write lock): the retry is refused at once, without waiting.
    second.join(30)
    assert_problem(results["second"], 409, "idempotency_request_in_progress")
    finish.set()
    first.join(30)
    monkeypatch.undo()
    assert results["first"].status_code == 201, results["first"].json
    # Once the first has committed, every retry gets its response.
    third = app.test_client().post(URL, json=body, headers=headers)
    assert (third.status_code, third.headers.get("Idempotent-Replayed")) == (201, "true")
    assert third.get_data() == results["first"].get_data()
    real_db.session.expire_all()
    assert real_db.session.scalar(select(func.count()).select_from(Report)) == 1
    assert real_db.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1
    # Every held key was released with its request, and its lock file went with it.
    assert not list(Path(app.instance_path, "locks").glob("*.lock"))


# ---- the residents' actions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "action, body, status",
    [("rate", {"score": 4, "comment": "很快"}, "closed"), ("follow", {}, "accepted"), ("unfollow", {}, "accepted")],
)
def test_residents_actions_replay(client, db, w, action, body, status):
    # The resident rates their own case and follows someone else's.
    reporter = w.resident if action == "rate" else w.resident2
    report = make_case(reporter, w.category, w.cells[SW], status=status)
    if action != "rate":
        make_offered(w.resident, report)
    url = f"{URL}/{report.id}/actions/{action}"
    first = client.post(url, json=body, headers=keyed(w.resident))
    assert first.status_code == 200, first.json
    before = (world_state(db), db.session.scalar(text("SELECT count(*) FROM report_followers")))
    again = client.post(url, json=body, headers=keyed(w.resident))
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (200, "true")
    assert again.get_data() == first.get_data()
    assert (world_state(db), db.session.scalar(text("SELECT count(*) FROM report_followers"))) == before
