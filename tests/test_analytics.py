"""Analytics on both backends: DBSCAN hotspots with known answers (and PostGIS equal to the Python DBSCAN),
heat-map counts that add up, filed/closed trends in local time, scoping and bad input."""

from __future__ import annotations

import math
import random
from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from geographiclib.geodesic import Geodesic
from sqlalchemy import func, select, update

from app.dialect import clustering
from app.dialect.dbscan import dbscan
from app.models import Report
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    OTHER_GRID,
    auth_header,
    make_category,
    make_report,
    make_two_district_grid,
    make_user,
)

API = "/api/v1/analytics"
SW, NE = "11010500100101", "11010500100104"
TZ = ZoneInfo("Asia/Shanghai")


def at(origin, distance_m: float, azimuth: float) -> tuple[float, float]:
    g = Geodesic.WGS84.Direct(origin[1], origin[0], azimuth, distance_m)
    return g["lon2"], g["lat2"]


@pytest.fixture()
def world(db):
    cells = make_two_district_grid()
    return SimpleNamespace(
        cells=cells,
        garbage=make_category("G01"),
        parking=make_category("P01"),
        resident=make_user("resident"),
        worker=make_user("worker", served=[cells[SW]]),
        other_worker=make_user("worker", served=[cells[OTHER_GRID]]),
        supervisor=make_user("supervisor", cell=cells[COMMUNITY]),
        admin=make_user("admin"),
    )


def file(world, lon_lat, category=None):
    return make_report(world.resident, category or world.garbage, *lon_lat)


def set_status(db, reports, status):
    db.session.execute(
        update(Report).where(Report.id.in_([r.id for r in reports])).values(status=status, version=Report.version + 1)
    )
    db.session.commit()


def get(client, path, user, **query):
    return client.get(f"{API}/{path}", query_string=query, headers=auth_header(user))


# ---- hotspots ------------------------------------------------------------------------------------


def test_hotspots_find_the_constructed_clusters(client, db, world):
    p1, p2, p3 = (116.405, 39.905), (116.415, 39.915), (116.405, 39.915)
    big = [file(world, at(p1, 5 + 3 * k, 45 * k), world.garbage if k < 5 else world.parking) for k in range(8)]
    for k in range(5):  # exactly min_points: still a cluster
        file(world, at(p2, 4 * k, 72 * k))
    for k in range(4):  # one short of min_points: noise
        file(world, at(p3, 4 * k, 90 * k))
    for lon_lat in [(116.401, 39.919), (116.419, 39.901), (116.411, 39.909)]:
        file(world, lon_lat)
    set_status(db, big[:3], "closed")
    resp = get(client, "hotspots", world.admin)
    assert resp.status_code == 200, resp.json
    assert resp.mimetype == "application/geo+json"
    features = resp.json["features"]
    assert [f["properties"]["count"] for f in features] == [8, 5]
    first = features[0]["properties"]
    assert first["top_categories"] == [{"category": "G01", "count": 5}, {"category": "P01", "count": 3}]
    assert first["open_count"] == 5
    assert features[0]["geometry"]["type"] == "Polygon"
    assert Geodesic.WGS84.Inverse(p1[1], p1[0], first["centroid"][1], first["centroid"][0])["s12"] < 30
    assert first["first_at"] <= first["last_at"] and first["first_at"].endswith("+08:00")
    assert features[1]["properties"]["open_count"] == 5
    assert resp.json["parameters"]["eps_m"] == 100 and resp.json["parameters"]["min_points"] == 5
    # Fewer points needed: the four-point group becomes a cluster too.
    assert [f["properties"]["count"] for f in get(client, "hotspots", world.admin, min_points=4).json["features"]] == [
        8,
        5,
        4,
    ]
    # Filters: only parking reports, which are too few to cluster.
    assert get(client, "hotspots", world.admin, category="P01").json["features"] == []


@pytest.mark.parametrize("crs", ["wgs84", "bd09"])
def test_reports_at_the_poles_do_not_break_hotspots(client, db, world, crs):
    """Web Mercator cannot place a pole: clustering leaves such reports out (and still finds the city's)."""
    for k in range(5):
        file(world, at((116.405, 39.905), 4 * k, 72 * k))
    for lon, lat in [(0.0, 90.0), (0.0, -90.0), (-180.0, -90.0), (180.0, 89.99), (10.0, 85.1)] * 5:
        resp = client.post(
            "/api/v1/reports",
            headers=auth_header(world.resident),
            json={"category_code": "G01", "description": "at a pole", "location": {"lon": lon, "lat": lat, "crs": crs}},
        )
        assert resp.status_code == 201, resp.json
    for user in (world.admin, world.supervisor):
        resp = get(client, "hotspots", user)
        assert resp.status_code == 200, resp.json
        assert [f["properties"]["count"] for f in resp.json["features"]] == [5]
    # The whole globe in 200 m squares: refused as too many, cleanly.
    assert "size_m" in assert_problem(get(client, "heatmap", world.admin), 422, "validation_failed")["errors"]


def test_hotspots_chain_by_density_reachability(client, db, world):
    start = (116.401, 39.905)
    chain = [file(world, at(start, 80 * k, 90)) for k in range(6)]  # 400 m end to end, 80 m steps
    features = get(client, "hotspots", world.admin, eps_m=100, min_points=3).json["features"]
    assert [f["properties"]["count"] for f in features] == [len(chain)]
    assert get(client, "hotspots", world.admin, eps_m=79, min_points=3).json["features"] == []


def test_postgis_clusters_equal_the_python_dbscan(client, db, world):
    rng = random.Random(7)
    centres = [(116.403, 39.903), (116.412, 39.904), (116.406, 39.916), (116.417, 39.917)]
    for centre in centres:
        for _ in range(25):
            file(world, at(centre, abs(rng.gauss(0, 35)), rng.uniform(0, 360)))
    for _ in range(40):
        file(world, (rng.uniform(116.40, 116.42), rng.uniform(39.90, 39.92)))
    points = select(Report.id, Report.location)
    got = clustering.clustered_points(points, 40.0, 4)
    rows = db.session.execute(select(Report.id, func.ST_X(Report.location), func.ST_Y(Report.location))).all()
    scale = math.cos(math.radians(sum(r[2] for r in rows) / len(rows)))
    labels = dbscan([clustering.mercator_xy(x, y, scale) for _, x, y in rows], 40.0, 4)

    def partition(pairs):
        groups = {}
        for rid, cid in pairs:
            groups.setdefault(cid, set()).add(rid)
        return sorted(sorted(g) for g in groups.values())

    expected = partition((r[0], c) for r, c in zip(rows, labels, strict=True) if c is not None)
    assert partition((r["id"], r["cid"]) for r in got) == expected
    assert len(expected) >= 4


def test_python_dbscan_counts_the_point_itself():
    # Five points on a 1 m line: each has all five within eps 10; four would not be enough.
    line = [(float(k), 0.0) for k in range(5)]
    assert dbscan(line, 10.0, 5) == [0] * 5
    assert dbscan(line[:4], 10.0, 5) == [None] * 4
    assert dbscan([(0.0, 0.0), (10.0, 0.0), (25.0, 0.0)], 10.0, 2) == [0, 0, None]


# ---- heat map ------------------------------------------------------------------------------------


def test_heatmap_counts_add_up_to_the_filtered_total(client, db, world):
    rng = random.Random(3)
    for n in range(60):
        file(world, (rng.uniform(116.40, 116.42), rng.uniform(39.90, 39.92)), world.garbage if n % 3 else world.parking)
    file(world, (116.4001, 39.9001))
    file(world, (116.4002, 39.9002))
    file(world, (116.505, 39.905))
    community = world.cells[COMMUNITY].id
    for query in (
        {"cell_id": community, "size_m": 100},
        {"cell": COMMUNITY, "category": "G01", "size_m": 333},
        {"size_m": 2000},
        {"size_m": 50},
    ):
        resp = get(client, "heatmap", world.admin, **query)
        assert resp.status_code == 200, resp.json
        out = resp.json
        listed = {
            "cell_id": community if "cell" in query or "cell_id" in query else None,
            "category": query.get("category"),
            "page_size": 1,
        }
        total = client.get(
            "/api/v1/reports", query_string={k: v for k, v in listed.items() if v}, headers=auth_header(world.admin)
        ).json["total"]
        assert sum(f["properties"]["count"] for f in out["features"]) == out["total"] == total
        assert all(f["properties"]["count"] > 0 for f in out["features"])
    squares = get(client, "heatmap", world.admin, cell_id=community, size_m=100).json["features"]
    corner = next(f for f in squares if f["geometry"]["coordinates"][0][0] == [116.40, 39.90])
    assert corner["properties"]["count"] >= 2
    (w, s), (e, _), (_, n) = corner["geometry"]["coordinates"][0][:3]
    assert Geodesic.WGS84.Inverse(s, w, s, e)["s12"] == pytest.approx(100, rel=0.002)
    assert Geodesic.WGS84.Inverse(s, w, n, w)["s12"] == pytest.approx(100, rel=0.002)


def test_heatmap_of_nothing_is_empty(client, db, world):
    out = get(client, "heatmap", world.admin).json
    assert out["features"] == [] and out["total"] == 0


# ---- trend ---------------------------------------------------------------------------------------


def local(*args) -> datetime:
    return datetime(*args, tzinfo=TZ)


def test_trend_counts_filed_and_closed_per_local_period(client, db, world):
    times = [
        local(2026, 11, 16, 9),
        local(2026, 11, 16, 23, 59),
        local(2026, 11, 17, 0, 1),
        local(2026, 11, 20, 12),
        local(2026, 11, 23, 8),
    ]
    reports = [file(world, (116.405, 39.905)) for _ in times]
    for report, moment in zip(reports, times, strict=True):
        db.session.execute(
            update(Report).where(Report.id == report.id).values(created_at=moment, version=Report.version + 1)
        )
    db.session.execute(
        update(Report)
        .where(Report.id == reports[0].id)
        .values(status="closed", closed_at=local(2026, 11, 17, 0, 30), version=Report.version + 1)
    )
    db.session.commit()
    out = get(
        client,
        "trend",
        world.admin,
        interval="day",
        **{"from": "2026-11-16T00:00:00+08:00", "to": "2026-11-20T00:00:00+08:00"},
    ).json
    assert out["timezone"] == "Asia/Shanghai"
    assert [(i["start"], i["filed"], i["closed"]) for i in out["items"]] == [
        ("2026-11-16T00:00:00+08:00", 2, 0),
        ("2026-11-17T00:00:00+08:00", 1, 1),
        ("2026-11-18T00:00:00+08:00", 0, 0),
        ("2026-11-19T00:00:00+08:00", 0, 0),
    ]
    weeks = get(
        client,
        "trend",
        world.admin,
        interval="week",
        **{"from": "2026-11-16T00:00:00+08:00", "to": "2026-11-30T00:00:00+08:00"},
    ).json
    assert [(i["start"][:10], i["filed"], i["closed"]) for i in weeks["items"]] == [
        ("2026-11-16", 4, 1),
        ("2026-11-23", 1, 0),
    ]
    months = get(
        client,
        "trend",
        world.admin,
        interval="month",
        **{"from": "2026-10-15T00:00:00+08:00", "to": "2026-12-02T00:00:00+08:00"},
    ).json
    assert [(i["start"][:10], i["filed"], i["closed"]) for i in months["items"]] == [
        ("2026-10-01", 0, 0),
        ("2026-11-01", 5, 1),
        ("2026-12-01", 0, 0),
    ]


def test_trend_takes_local_days_and_datetimes_around_midnight(client, db, world):
    # One case each side of local midnight between 16 and 17 November (Asia/Shanghai).
    times = [local(2026, 11, 16, 23, 59, 59), local(2026, 11, 17, 0, 0), local(2026, 11, 17, 23, 59, 59)]
    reports = [file(world, (116.405, 39.905)) for _ in times]
    for report, moment in zip(reports, times, strict=True):
        db.session.execute(
            update(Report).where(Report.id == report.id).values(created_at=moment, version=Report.version + 1)
        )
    db.session.commit()

    def filed(**period):
        out = get(client, "trend", world.admin, interval="day", **period)
        assert out.status_code == 200, out.json
        return [(i["start"][:10], i["filed"]) for i in out.json["items"]], (out.json["from"], out.json["to"])

    # A date as `to` includes that whole local day.
    items, bounds = filed(**{"from": "2026-11-17", "to": "2026-11-17"})
    assert items == [("2026-11-17", 2)]
    assert bounds == ("2026-11-17T00:00:00+08:00", "2026-11-18T00:00:00+08:00")
    # A datetime is taken as given: local midnight as `to` leaves out the case filed at midnight.
    items, _ = filed(**{"from": "2026-11-16", "to": "2026-11-17T00:00:00+08:00"})
    assert items == [("2026-11-16", 1)]
    items, _ = filed(**{"from": "2026-11-16T16:00:00Z", "to": "2026-11-17T16:00:00Z"})
    assert items == [("2026-11-17", 2)]


def test_trend_defaults_to_the_last_30_days(client, db, world):
    file(world, (116.405, 39.905))
    out = get(client, "trend", world.admin).json
    assert 30 <= len(out["items"]) <= 31 and sum(i["filed"] for i in out["items"]) == 1


# ---- scope, roles and bad input ------------------------------------------------------------------


def test_a_worker_never_sees_another_area(client, db, world):
    for k in range(6):
        file(world, at((116.505, 39.905), 3 * k, 60 * k))
    mine = [file(world, at((116.405, 39.905), 3 * k, 60 * k)) for k in range(6)]
    for user, expected in (
        (world.worker, len(mine)),
        (world.other_worker, 6),
        (world.supervisor, 6),
        (world.admin, 12),
    ):
        spots = get(client, "hotspots", user).json["features"]
        assert sum(f["properties"]["count"] for f in spots) == expected
        assert get(client, "heatmap", user).json["total"] == expected
        assert sum(i["filed"] for i in get(client, "trend", user).json["items"]) == expected
    spots = get(client, "hotspots", world.worker).json["features"]
    assert all(116.40 <= f["properties"]["centroid"][0] <= 116.41 for f in spots)
    # Asking for the other area's cell gives nothing, not its points.
    assert get(client, "heatmap", world.worker, cell=OTHER_GRID).json["total"] == 0


@pytest.mark.parametrize("path", ["hotspots", "heatmap", "trend"])
def test_residents_and_anonymous_callers_are_refused(client, db, world, path):
    assert_problem(get(client, path, world.resident), 403, "forbidden")
    assert_problem(client.get(f"{API}/{path}"), 401, "missing_token")


@pytest.mark.parametrize(
    "path, query, field",
    [
        ("hotspots", {"eps_m": 0}, "eps_m"),
        ("hotspots", {"eps_m": 2001}, "eps_m"),
        ("hotspots", {"min_points": 1}, "min_points"),
        ("hotspots", {"min_points": "many"}, "min_points"),
        ("heatmap", {"size_m": 49}, "size_m"),
        ("heatmap", {"size_m": 2001}, "size_m"),
        ("trend", {"interval": "year"}, "interval"),
        ("trend", {"from": "2026-11-01T00:00:00"}, "from"),
        ("trend", {"from": "2026-11-02T00:00:00+08:00", "to": "2026-11-01T00:00:00+08:00"}, "to"),
        ("trend", {"from": "2020-01-01T00:00:00+08:00", "to": "2026-01-01T00:00:00+08:00"}, "from"),
        ("hotspots", {"cell_id": 99999}, "cell_id"),
        ("heatmap", {"cell_id": 0}, "cell_id"),
        ("heatmap", {"cell": "999999"}, "cell"),
        ("trend", {"cell": "12"}, "cell"),
        ("trend", {"from": "2026-11-31"}, "from"),
        ("trend", {"to": "tomorrow"}, "to"),
        ("heatmap", {"category": ""}, "category"),
    ],
)
def test_bad_analytics_parameters(client, db, world, path, query, field):
    body = assert_problem(get(client, path, world.admin, **query), 422, "validation_failed")
    assert field in body["errors"], body


def test_heatmap_refuses_a_grid_too_fine_for_the_area(client, db, world):
    file(world, (116.405, 39.905))
    file(world, (100.0, 30.0))  # triage point far away: the area spans a continent
    body = assert_problem(get(client, "heatmap", world.admin, size_m=50), 422, "validation_failed")
    assert "size_m" in body["errors"]
