"""Patrols: check-in batches (/patrols/checkins), coverage (/patrols/coverage) and the last known position."""

from __future__ import annotations

import itertools
import json
import math
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.lib.coords import wgs84_to_gcj02
from app.models import PatrolCheckin
from app.models.base import utcnow
from app.services.grid.routing import route_many_wgs84, route_wgs84
from config import ConfigError, load_config
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    OTHER_DISTRICT,
    OTHER_GRID,
    auth_header,
    make_checkin,
    make_duty,
    make_two_district_grid,
    make_user,
)

API = "/api/v1"
CHECKINS = f"{API}/patrols/checkins"
COVERAGE = f"{API}/patrols/coverage"
SW, SE, NW, NE = "11010500100101", "11010500100102", "11010500100103", "11010500100104"
SHANGHAI = timezone(timedelta(hours=8))


@pytest.fixture()
def world(db):
    cells = make_two_district_grid()
    return SimpleNamespace(
        cells=cells,
        admin=make_user("admin"),
        supervisor=make_user("supervisor", cell=cells[COMMUNITY]),
        outsider=make_user("supervisor", cell=cells[OTHER_DISTRICT]),
        worker=make_user("worker", username="wang", served=[cells[SW]]),
        mate=make_user("worker", username="li", served=[cells[SW], cells[NE]]),
        far_worker=make_user("worker", username="sun", served=[cells[OTHER_GRID]]),
        resident=make_user("resident"),
    )


def checkin_rows(db) -> list[tuple]:
    return db.session.execute(
        select(
            PatrolCheckin.id,
            PatrolCheckin.user_id,
            PatrolCheckin.cell_id,
            PatrolCheckin.recorded_at,
            func.ST_AsText(PatrolCheckin.location),
        ).order_by(PatrolCheckin.id)
    ).all()


def stamp(moment: datetime) -> str:
    return moment.isoformat()


def point(lon, lat, at, **extra) -> dict:
    return {"time": stamp(at), "lon": lon, "lat": lat, **extra}


def bearer_json(user) -> dict:
    return {**auth_header(user), "Content-Type": "application/json"}


def haversine_m(a, b) -> float:
    """Great-circle metres on the mean Earth radius: an independent check on the database's geodesic."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


# ---- POST /patrols/checkins: success, routing, duplicates ---------------------------------------


def test_a_batch_is_routed_point_by_point_and_stored(client, db, world):
    now = utcnow()
    gcj = wgs84_to_gcj02(116.415, 39.915)
    batch = [
        point(116.405, 39.905, now - timedelta(minutes=30), accuracy=4.5),  # inside SW
        point(*gcj, now - timedelta(minutes=20), crs="gcj02"),  # NE, sent in GCJ-02
        point(116.41, 39.91, now - timedelta(minutes=10), accuracy=0),  # the corner of four cells: lowest code
        point(116.4215, 39.915, now - timedelta(minutes=5)),  # ~128 m east of NE: nearest cell
        point(117.5, 39.0, now - timedelta(minutes=1), accuracy=None),  # far from any cell
    ]
    resp = client.post(CHECKINS, headers=auth_header(world.worker), json={"points": batch})
    assert resp.status_code == 201, resp.json
    assert resp.json == {"accepted": 5, "stored": 5, "duplicates": 0, "unrouted": 1, "rejected": []}
    rows = db.session.scalars(select(PatrolCheckin).order_by(PatrolCheckin.recorded_at)).all()
    cells = world.cells
    assert [r.cell_id for r in rows] == [cells[SW].id, cells[NE].id, cells[SW].id, cells[NE].id, None]
    assert {r.user_id for r in rows} == {world.worker.id}
    assert rows[0].accuracy_m == 4.5 and rows[4].accuracy_m is None
    assert (rows[1].input_crs, rows[1].input_lon, rows[1].input_lat) == ("gcj02", *gcj)
    assert [r.recorded_at for r in rows] == [datetime.fromisoformat(p["time"]) for p in batch]
    assert all(now - timedelta(seconds=5) <= r.received_at <= utcnow() for r in rows)
    stored = db.session.execute(
        select(func.ST_X(PatrolCheckin.location), func.ST_Y(PatrolCheckin.location)).where(
            PatrolCheckin.id == rows[1].id
        )
    ).one()
    assert stored == pytest.approx((116.415, 39.915), abs=1e-6)


def test_bulk_routing_picks_what_single_routing_picks(db, world):
    points = [(116.40 + 0.0007 * i, 39.899 + 0.00071 * j) for i in range(32) for j in range(32)]
    points += [(116.41, 39.91), (116.4223, 39.905), (116.399, 39.899), (116.45, 39.95), (116.505, 39.905)]
    expected = [(r.cell.id if r.cell else None) for r in map(lambda p: route_wgs84(*p), points)]
    assert route_many_wgs84(points) == expected
    assert None in expected and len(set(expected)) >= 5


def test_a_resent_batch_stores_nothing_twice(client, db, world):
    now = utcnow()
    batch = [point(116.405, 39.905, now - timedelta(minutes=m)) for m in (3, 2, 1)]
    assert client.post(CHECKINS, headers=auth_header(world.worker), json={"points": batch}).json["stored"] == 3
    before = checkin_rows(db)
    batch.append(point(116.406, 39.906, now))
    resp = client.post(CHECKINS, headers=auth_header(world.worker), json={"points": batch})
    assert resp.status_code == 201, resp.json
    assert (resp.json["accepted"], resp.json["stored"], resp.json["duplicates"]) == (4, 1, 3)
    after = checkin_rows(db)
    assert after[:3] == before and len(after) == 4
    # Another worker at the same instants is another point.
    resp = client.post(CHECKINS, headers=auth_header(world.mate), json={"points": batch})
    assert (resp.json["stored"], resp.json["duplicates"]) == (4, 0)


def test_the_same_instant_twice_in_one_batch_keeps_the_first(client, db, world):
    at = utcnow() - timedelta(minutes=1)
    resp = client.post(
        CHECKINS,
        headers=auth_header(world.worker),
        json={"points": [point(116.405, 39.905, at), point(116.415, 39.915, at)]},
    )
    assert (resp.json["accepted"], resp.json["stored"], resp.json["duplicates"]) == (2, 1, 1)
    assert [row[2] for row in checkin_rows(db)] == [world.cells[SW].id]


def test_a_full_batch_of_one_thousand_points_is_one_request(client, db, world):
    start = utcnow() - timedelta(hours=3)
    batch = [
        point(116.4001 + 0.000008 * i, 39.9001 + 0.000008 * i, start + timedelta(seconds=10 * i)) for i in range(1000)
    ]
    resp = client.post(CHECKINS, headers=auth_header(world.worker), json={"points": batch})
    assert resp.status_code == 201, resp.json
    assert (resp.json["stored"], resp.json["rejected"]) == (1000, [])
    assert (
        db.session.scalar(
            select(func.count()).select_from(PatrolCheckin).where(PatrolCheckin.cell_id == world.cells[SW].id)
        )
        == 1000
    )


# ---- per-point rejection ------------------------------------------------------------------------


def test_impossible_points_are_refused_one_by_one_and_the_rest_kept(client, db, world):
    now = utcnow()
    good = point(116.405, 39.905, now - timedelta(minutes=1))
    bad = [
        (point(116.405, 39.905, now + timedelta(minutes=10)), {("time", "in_the_future")}),
        (point(116.405, 39.905, now - timedelta(seconds=2), accuracy=-1), {("accuracy", "out_of_range")}),
        (point(181, 39.905, now - timedelta(seconds=3)), {("lon", "out_of_range")}),
        (point(116.405, -90.5, now - timedelta(seconds=4)), {("lat", "out_of_range")}),
        (point("116.405", 39.905, now - timedelta(seconds=5)), {("lon", "invalid_type")}),
        (point(116.405, True, now - timedelta(seconds=6)), {("lat", "invalid_type")}),
        (point(116.405, 39.905, now - timedelta(seconds=7), crs="mars"), {("crs", "unknown_crs")}),
        (point(116.405, 39.905, now - timedelta(seconds=8), heading=90), {("heading", "unknown_field")}),
        ({"lon": 116.405, "lat": 39.905}, {("time", "required")}),
        (point(116.405, 39.905, now) | {"time": "2026-11-27T08:00:00"}, {("time", "missing_offset")}),
        (point(116.405, 39.905, now) | {"time": "yesterday"}, {("time", "invalid_datetime")}),
        (point(116.405, 39.905, now) | {"time": 1764201600}, {("time", "invalid_type")}),
        ({"time": stamp(now), "lat": 39.905}, {("lon", "required")}),
        ([116.405, 39.905], {("point", "invalid_type")}),
        (
            point(-181, 91, now + timedelta(hours=1), accuracy=-3),
            {("lon", "out_of_range"), ("lat", "out_of_range"), ("accuracy", "out_of_range")},
        ),
    ]
    batch = [good, *[p for p, _ in bad], point(116.406, 39.906, now + timedelta(minutes=4))]
    resp = client.post(CHECKINS, headers=auth_header(world.worker), json={"points": batch})
    assert resp.status_code == 201, resp.json
    body = resp.json
    assert (body["accepted"], body["stored"]) == (2, 2)
    assert [r["index"] for r in body["rejected"]] == list(range(1, len(bad) + 1))
    for rejected, (_, expected) in zip(body["rejected"], bad, strict=True):
        assert {(r["field"], r["code"]) for r in rejected["reasons"]} == expected, rejected
        assert all(r["message"] for r in rejected["reasons"])
    stored = db.session.scalars(select(PatrolCheckin.recorded_at).order_by(PatrolCheckin.recorded_at)).all()
    assert stored == [datetime.fromisoformat(batch[0]["time"]), datetime.fromisoformat(batch[-1]["time"])]


def test_non_finite_numbers_are_refused_per_point(client, db, world):
    at = stamp(utcnow() - timedelta(minutes=1))
    body = (
        '{"points": [{"time": "%s", "lon": NaN, "lat": 39.9}, {"time": "%s", "lon": 116.4, "lat": Infinity},'
        ' {"time": "%s", "lon": 116.4, "lat": 39.9, "accuracy": 1e999},'
        ' {"time": "%s", "lon": 116.4, "lat": 39.9, "accuracy": 1%s},'
        ' {"time": "%s", "lon": 116.41, "lat": 39.91}]}' % (at, at, at, at, "0" * 400, stamp(utcnow()))
    )
    resp = client.post(CHECKINS, headers=bearer_json(world.worker), data=body)
    assert resp.status_code == 201, resp.json
    assert [(r["index"], r["reasons"][0]["field"], r["reasons"][0]["code"]) for r in resp.json["rejected"]] == [
        (0, "lon", "not_finite"),
        (1, "lat", "not_finite"),
        (2, "accuracy", "not_finite"),
        (3, "accuracy", "not_finite"),
    ]
    assert len(checkin_rows(db)) == 1


def test_the_clock_skew_is_configurable(client, db, world, app, monkeypatch):
    monkeypatch.setitem(app.config, "PATROL_MAX_CLOCK_SKEW_S", 0)
    now = utcnow()
    resp = client.post(
        CHECKINS,
        headers=auth_header(world.worker),
        json={
            "points": [
                point(116.405, 39.905, now - timedelta(seconds=30)),
                point(116.405, 39.905, now + timedelta(seconds=60)),
            ]
        },
    )
    assert resp.status_code == 201, resp.json
    assert [(r["index"], r["reasons"][0]["code"]) for r in resp.json["rejected"]] == [(1, "in_the_future")]


@pytest.mark.parametrize("value, message", [("soon", "integer"), ("-1", "negative")])
def test_a_bad_clock_skew_setting_is_refused(monkeypatch, value, message):
    assert load_config("testing").PATROL_MAX_CLOCK_SKEW_S == 300
    monkeypatch.setenv("PATROL_MAX_CLOCK_SKEW_S", value)
    with pytest.raises(ConfigError, match=message):
        load_config("testing")


def test_a_batch_of_only_impossible_points_is_422_and_stores_nothing(client, db, world):
    now = utcnow()
    resp = client.post(
        CHECKINS,
        headers=auth_header(world.worker),
        json={"points": [point(116.405, 39.905, now + timedelta(hours=1)), point(116.405, 39.905, now, accuracy=-1)]},
    )
    body = assert_problem(resp, 422, "no_valid_points")
    assert [(r["index"], r["reasons"][0]["code"]) for r in body["errors"]["points"]] == [
        (0, "in_the_future"),
        (1, "out_of_range"),
    ]
    assert checkin_rows(db) == []


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00Z"])
def test_a_time_at_the_ends_of_the_calendar_is_refused_per_point(client, db, world, moment):
    """Its conversion to UTC (or TIMEZONE) would leave the years datetimes can hold."""
    resp = client.post(
        CHECKINS,
        headers=auth_header(world.worker),
        json={"points": [{"time": moment, "lon": 116.405, "lat": 39.905}, point(116.405, 39.905, utcnow())]},
    )
    assert resp.status_code == 201, resp.json
    assert [(r["index"], r["reasons"][0]["code"]) for r in resp.json["rejected"]] == [(0, "out_of_range")]
    assert len(checkin_rows(db)) == 1


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_coverage_of_a_day_at_the_ends_of_the_calendar_is_422(client, db, world, day):
    resp = client.get(f"{COVERAGE}?cell_id={world.cells[SW].id}&date={day}", headers=auth_header(world.admin))
    assert "date" in assert_problem(resp, 422, "validation_failed")["errors"]


# ---- whole-request refusals ---------------------------------------------------------------------


def _points(n):
    start = utcnow() - timedelta(hours=5)
    return [point(116.405, 39.905, start + timedelta(seconds=i)) for i in range(n)]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"points": _points(1001)}, "points"),
        ({"points": {"time": "2026-11-27T08:00:00+08:00", "lon": 116.405, "lat": 39.905}}, "points"),
        ({"points": "116.405,39.905"}, "points"),
        ({"points": None}, "points"),
        ({"points": []}, "points"),
        ({}, "points"),
        ({"points": _points(2), "worker_id": 7}, "worker_id"),
        ([{"time": "2026-11-27T08:00:00+08:00", "lon": 116.405, "lat": 39.905}], "_schema"),
    ],
    ids=["1001-points", "object", "string", "null", "empty", "missing", "unknown-field", "bare-list"],
)
def test_a_wrongly_shaped_batch_is_refused_whole(client, db, world, body, field):
    before = checkin_rows(db)
    resp = assert_problem(client.post(CHECKINS, headers=auth_header(world.worker), json=body), 422, "validation_failed")
    assert field in resp["errors"], resp
    assert checkin_rows(db) == before


def test_malformed_and_oversized_bodies(client, db, world):
    make_checkin(world.worker, 116.405, 39.905, utcnow() - timedelta(days=1), world.cells[SW])
    before = checkin_rows(db)
    headers = bearer_json(world.worker)
    assert_problem(client.post(CHECKINS, headers=headers, data='{"points": [{"time": '), 400, "malformed_json")
    huge = json.dumps({"points": _points(2), "pad": "x" * (1024 * 1024)})
    assert_problem(client.post(CHECKINS, headers=headers, data=huge), 413, "payload_too_large")
    assert checkin_rows(db) == before


def test_checkins_wrong_callers(client, db, world):
    body = {"points": _points(1)}
    assert_problem(client.post(CHECKINS, json=body), 401, "missing_token")
    assert_problem(client.post(CHECKINS, json=body, headers={"Authorization": "Bearer nonsense"}), 401, "invalid_token")
    for user in (world.resident, world.supervisor, world.admin):
        assert_problem(client.post(CHECKINS, json=body, headers=auth_header(user)), 403, "forbidden")
    assert checkin_rows(db) == []


# ---- GET /patrols/coverage ----------------------------------------------------------------------

DAY = date(2026, 11, 20)


def local(hour, minute=0, second=0, day=DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=SHANGHAI)


def walk(client, worker, steps):
    """Check in along (lon, lat, local time) steps through the API."""
    resp = client.post(
        CHECKINS, headers=auth_header(worker), json={"points": [point(lon, lat, at) for lon, lat, at in steps]}
    )
    assert resp.status_code == 201, resp.json
    assert resp.json["rejected"] == []


def coverage(client, user, cell, day=DAY, **query):
    params = "&".join(f"{k}={v}" for k, v in {"cell_id": cell.id, "date": day.isoformat(), **query}.items())
    return client.get(f"{COVERAGE}?{params}", headers=auth_header(user))


def test_coverage_counts_points_times_and_metres_walked_per_worker_and_cell(client, db, world):
    wang_sw = [
        (116.401, 39.901, local(0, 0, 30)),
        (116.403, 39.901, local(9)),
        (116.403, 39.904, local(9, 30)),
        (116.408, 39.908, local(10)),
    ]
    # Sent out of time order: the distance follows the times, not the order of arrival.
    walk(client, world.worker, [wang_sw[2], wang_sw[0], wang_sw[3], wang_sw[1]])
    # Outside the local day: 23:59:59 the day before and 00:00 the day after (Asia/Shanghai, UTC+8).
    walk(
        client,
        world.worker,
        [
            (116.402, 39.902, local(23, 59, 59, DAY - timedelta(days=1))),
            (116.402, 39.902, local(0, 0, 0, DAY + timedelta(days=1))),
        ],
    )
    li_sw = [(116.409, 39.909, local(14)), (116.401, 39.909, local(15))]
    li_ne = [(116.415, 39.915, local(14, 30)), (116.419, 39.919, local(14, 40)), (116.411, 39.911, local(14, 50))]
    walk(client, world.mate, li_sw + li_ne)

    resp = coverage(client, world.supervisor, world.cells[COMMUNITY])
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert (body["date"], body["total"], body["page"]) == ("2026-11-20", 4, 1)
    assert [item["cell"]["code"] for item in body["items"]] == [SW, SE, NW, NE]
    sw, se, nw, ne = body["items"]
    assert (se["workers"], nw["workers"]) == ([], [])
    assert [w["user"]["username"] for w in sw["workers"]] == ["li", "wang"]
    li, wang = sw["workers"]

    def expected(steps):
        return sum(haversine_m(a[:2], b[:2]) for a, b in itertools.pairwise(steps))

    assert (wang["points"], wang["first_at"], wang["last_at"]) == (
        4,
        "2026-11-20T00:00:30+08:00",
        "2026-11-20T10:00:00+08:00",
    )
    assert wang["distance_m"] == pytest.approx(expected(wang_sw), rel=5e-3)
    assert wang["distance_m"] > 1000
    assert (li["points"], li["distance_m"]) == (2, pytest.approx(expected(li_sw), rel=5e-3))
    assert [w["user"]["id"] for w in ne["workers"]] == [world.mate.id]
    assert ne["workers"][0]["points"] == 3
    assert ne["workers"][0]["distance_m"] == pytest.approx(expected(li_ne), rel=5e-3)

    # The day before holds only wang's 23:59:59 point: no step, no distance.
    before = coverage(client, world.admin, world.cells[SW], DAY - timedelta(days=1)).json
    assert before["total"] == 1
    assert [(w["user"]["username"], w["points"], w["distance_m"]) for w in before["items"][0]["workers"]] == [
        ("wang", 1, 0.0)
    ]


def test_coverage_pages_through_the_grid_cells(client, db, world):
    make_checkin(world.worker, 116.405, 39.905, local(9), world.cells[SW])
    resp = coverage(client, world.admin, world.cells[DISTRICT], page=2, page_size=3)
    assert resp.status_code == 200, resp.json
    assert (resp.json["total"], [i["cell"]["code"] for i in resp.json["items"]]) == (4, [NE])
    first = coverage(client, world.admin, world.cells[DISTRICT], page_size=3).json["items"]
    assert first[0]["workers"][0]["points"] == 1


def test_a_worker_sees_the_coverage_of_the_cells_they_serve(client, db, world):
    make_checkin(world.mate, 116.405, 39.905, local(9), world.cells[SW])
    resp = coverage(client, world.worker, world.cells[COMMUNITY])
    assert resp.status_code == 200, resp.json
    assert [i["cell"]["code"] for i in resp.json["items"]] == [SW]
    assert resp.json["items"][0]["workers"][0]["user"]["username"] == "li"
    assert coverage(client, world.worker, world.cells[SW]).status_code == 200
    assert_problem(coverage(client, world.worker, world.cells[NE]), 403, "cell_not_served")
    assert_problem(coverage(client, world.worker, world.cells[OTHER_GRID]), 403, "cell_not_served")


def test_coverage_wrong_callers_and_bad_queries(client, db, world):
    cell = world.cells[SW]
    assert_problem(client.get(f"{COVERAGE}?cell_id={cell.id}"), 401, "missing_token")
    assert_problem(coverage(client, world.resident, cell), 403, "forbidden")
    assert_problem(coverage(client, world.outsider, cell), 403, "outside_subtree")
    assert_problem(coverage(client, world.supervisor, world.cells[OTHER_GRID]), 403, "outside_subtree")
    assert_problem(coverage(client, world.admin, SimpleNamespace(id=999999)), 422, "validation_failed")
    headers = auth_header(world.admin)
    for query in (
        "",
        "cell=abc",
        "cell=0",
        "cell_id=0",
        "cell=999999",
        f"cell_id={cell.id}&cell=110105",
        f"cell_id={cell.id}&date=2026-13-01",
        f"cell_id={cell.id}&date=today",
        f"cell_id={cell.id}&page_size=500",
    ):
        assert_problem(client.get(f"{COVERAGE}?{query}", headers=headers), 422, "validation_failed")


def test_coverage_defaults_to_today(client, db, world):
    walk(client, world.worker, [(116.405, 39.905, utcnow() - timedelta(seconds=1))])
    resp = client.get(f"{COVERAGE}?cell_id={world.cells[SW].id}", headers=auth_header(world.worker))
    assert resp.status_code == 200, resp.json
    assert resp.json["date"] == utcnow().astimezone(SHANGHAI).date().isoformat()
    assert resp.json["items"][0]["workers"][0]["points"] == 1


# ---- last known position -------------------------------------------------------------------------


def test_the_latest_check_in_is_the_last_known_position(client, db, world):
    now = utcnow()
    make_duty(world.worker, True, 116.401, 39.901, at=now - timedelta(hours=2))
    make_checkin(world.worker, 116.404, 39.904, now - timedelta(hours=1), world.cells[SW])
    make_checkin(world.worker, 116.406, 39.906, now - timedelta(minutes=30), world.cells[SW])
    make_checkin(world.worker, 116.402, 39.902, now - timedelta(minutes=45), world.cells[SW])
    make_duty(world.mate, True, 116.409, 39.909, at=now - timedelta(minutes=5))
    make_checkin(world.mate, 116.404, 39.904, now - timedelta(hours=1), world.cells[SW])
    items = {w["username"]: w for w in client.get(f"{API}/workers", headers=auth_header(world.admin)).json["items"]}
    wang, li = items["wang"]["last_position"], items["li"]["last_position"]
    assert (wang["source"], wang["lon"], wang["lat"]) == ("patrol", pytest.approx(116.406), pytest.approx(39.906))
    assert (li["source"], li["lon"], li["lat"]) == ("duty", 116.409, 39.909)
