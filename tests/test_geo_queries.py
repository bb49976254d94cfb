"""Spatial report queries on both backends: near (exact metres), bbox, within a cell, polygon search,
map GeoJSON and the per-cell summary; bad input, and every output scoped like GET /reports."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from types import SimpleNamespace

import pytest
from geographiclib.geodesic import Geodesic
from sqlalchemy import func, select, update

from app.lib.coords import wgs84_to_gcj02
from app.models import Report
from app.models.base import utcnow
from app.services.cases.sla import sla_state, start_clock
from app.services.insight import geoqueries
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    OTHER_GRID,
    STREET,
    auth_header,
    geojson_square,
    make_category,
    make_escalated_case,
    make_report,
    make_two_district_grid,
    make_user,
    set_case,
)

URL = "/api/v1/reports"
SEARCH = "/api/v1/reports/search"
GEOJSON = "/api/v1/reports.geojson"
SW, SE, NW, NE = "11010500100101", "11010500100102", "11010500100103", "11010500100104"
CENTRE = (116.405, 39.905)


def at(distance_m: float, azimuth: float = 90.0, origin=CENTRE) -> tuple[float, float]:
    """The point `distance_m` from origin along `azimuth`, on the WGS-84 ellipsoid."""
    g = Geodesic.WGS84.Direct(origin[1], origin[0], azimuth, distance_m)
    return g["lon2"], g["lat2"]


@pytest.fixture()
def world(db):
    cells = make_two_district_grid()
    return SimpleNamespace(
        cells=cells,
        category=make_category(),
        other_category=make_category(),
        resident=make_user("resident", phone="13800000000"),
        resident2=make_user("resident"),
        worker=make_user("worker", served=[cells[SW]]),
        other_worker=make_user("worker", served=[cells[OTHER_GRID]]),
        supervisor=make_user("supervisor", cell=cells[COMMUNITY]),
        admin=make_user("admin"),
    )


def file(world, lon_lat, user=None, category=None, description="test report"):
    return make_report(user or world.resident, category or world.category, *lon_lat, description=description)


def ids(resp) -> list[int]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [item["id"] for item in resp.json["items"]]


def report_count(db) -> int:
    return db.session.scalar(select(func.count()).select_from(Report))


# ---- near ----------------------------------------------------------------------------------------


def test_near_orders_by_distance_and_keeps_the_radius_edge(client, db, world):
    far = file(world, at(501, 0))
    edge = file(world, at(499, 90))
    mid = file(world, at(300, 200))
    close = file(world, at(100, 45))
    resp = client.get(URL, query_string={"near": "%r,%r" % CENTRE, "radius": 500}, headers=auth_header(world.admin))
    assert ids(resp) == [close.id, mid.id, edge.id]
    assert far.id not in ids(resp)
    distances = [item["distance_m"] for item in resp.json["items"]]
    assert distances == pytest.approx([100, 300, 499], abs=0.01)
    assert resp.json["total"] == 3
    # 501 m comes in once the radius reaches it.
    resp = client.get(URL, query_string={"near": "%r,%r" % CENTRE, "radius": 502}, headers=auth_header(world.admin))
    assert ids(resp)[-1] == far.id


def test_near_is_exact_within_a_millimetre_of_the_radius(client, db, world):
    inside = file(world, at(499.999, 135))
    file(world, at(500.001, 315))
    resp = client.get(URL, query_string={"near": "%r,%r" % CENTRE, "radius": 500}, headers=auth_header(world.admin))
    assert ids(resp) == [inside.id]


def test_local_distance_estimate_follows_the_geodesic(db, world):
    from app.dialect import spatial

    rng = random.Random(11)
    for origin in [CENTRE, (-70.6, -33.4), (24.9, 60.2)]:
        for _ in range(20):
            distance = rng.uniform(1, 5000)
            lon, lat = at(distance, rng.uniform(0, 360), origin)
            estimate = db.session.scalar(
                select(spatial.local_distance_m(func.ST_GeomFromText(f"POINT({lon!r} {lat!r})", 4326), *origin))
            )
            assert estimate == pytest.approx(distance, rel=1e-6)


def test_near_breaks_distance_ties_by_id(client, db, world):
    first = file(world, at(200, 0))
    second = file(world, at(200, 0))
    resp = client.get(URL, query_string={"near": "%r,%r" % CENTRE, "radius": 300}, headers=auth_header(world.admin))
    assert ids(resp) == [first.id, second.id]


def test_near_pages_follow_the_distance_order(client, db, world):
    made = [file(world, at(50 * (n + 1), 30 * n)) for n in range(5)]
    query = {"near": "%r,%r" % CENTRE, "radius": 1000, "page_size": 2}
    pages = [
        ids(client.get(URL, query_string={**query, "page": p}, headers=auth_header(world.admin))) for p in (1, 2, 3)
    ]
    assert pages == [[made[0].id, made[1].id], [made[2].id, made[3].id], [made[4].id]]


def test_near_in_gcj02_is_converted_before_measuring(client, db, world):
    target = file(world, at(300, 10))
    lon, lat = wgs84_to_gcj02(*CENTRE)
    resp = client.get(
        URL, query_string={"near": f"{lon},{lat}", "radius": 400, "crs": "gcj02"}, headers=auth_header(world.admin)
    )
    assert ids(resp) == [target.id]
    assert resp.json["items"][0]["distance_m"] == pytest.approx(300, abs=0.5)


def test_near_combines_with_other_filters(client, db, world):
    wanted = file(world, at(100), category=world.other_category)
    file(world, at(50))
    resp = client.get(
        URL,
        query_string={"near": "%r,%r" % CENTRE, "radius": 500, "category": world.other_category.code},
        headers=auth_header(world.admin),
    )
    assert ids(resp) == [wanted.id]


def test_lists_without_near_have_no_distance(client, db, world):
    file(world, CENTRE)
    resp = client.get(URL, headers=auth_header(world.admin))
    assert resp.json["items"][0]["distance_m"] is None


@pytest.mark.parametrize(
    "query, field",
    [
        ({"near": "116.4,39.9", "radius": 0}, "radius"),
        ({"near": "116.4,39.9", "radius": 5001}, "radius"),
        ({"near": "116.4,39.9", "radius": "far"}, "radius"),
        ({"near": "116.4,39.9"}, "radius"),
        ({"radius": 100}, "near"),
        ({"near": "116.4,91", "radius": 100}, "near"),
        ({"near": "181,39.9", "radius": 100}, "near"),
        ({"near": "116.4", "radius": 100}, "near"),
        ({"near": "116.4,nan", "radius": 100}, "near"),
        ({"near": "116.4,39.9", "radius": 100, "crs": "mars"}, "crs"),
        ({"bbox": "116.42,39.90,116.40,39.92"}, "bbox"),
        ({"bbox": "116.40,39.92,116.42,39.90"}, "bbox"),
        ({"bbox": "116.0,39.0,116.6,39.1"}, "bbox"),
        ({"bbox": "116.0,39.0,116.1,39.6"}, "bbox"),
        ({"bbox": "116.0,89.8,116.1,90.5"}, "bbox"),
        ({"bbox": "116.0,39.0,116.1"}, "bbox"),
        ({"within": 0}, "within"),
        ({"within": "x"}, "within"),
    ],
)
def test_bad_spatial_parameters_are_422_naming_them(client, db, world, query, field):
    for url in (URL, GEOJSON):
        body = assert_problem(
            client.get(url, query_string=query, headers=auth_header(world.admin)), 422, "validation_failed"
        )
        assert field in body["errors"], body


def test_unknown_within_cell_is_422(client, db, world):
    body = assert_problem(
        client.get(URL, query_string={"within": 99999}, headers=auth_header(world.admin)), 422, "validation_failed"
    )
    assert "within" in body["errors"]


def test_spatial_filters_need_a_token(client, db, world):
    for url in (URL, GEOJSON):
        assert_problem(client.get(url, query_string={"near": "116.4,39.9", "radius": 100}), 401, "missing_token")


# ---- bbox and within -----------------------------------------------------------------------------


def test_bbox_takes_its_edges_and_nothing_a_hair_outside(client, db, world):
    inside = file(world, (116.405, 39.905))
    on_edge = file(world, (116.41, 39.905))
    on_corner = file(world, (116.40, 39.90))
    just_out = file(world, (116.410002, 39.905))  # ~0.2 m east: inside the index's float32 box, not the box
    resp = client.get(
        URL, query_string={"bbox": "116.40,39.90,116.41,39.91", "page_size": 100}, headers=auth_header(world.admin)
    )
    assert set(ids(resp)) == {inside.id, on_edge.id, on_corner.id}
    assert just_out.id not in ids(resp)


def test_within_a_cell_is_by_polygon_not_by_routed_cell(client, db, world):
    routed_here = file(world, (116.405, 39.905))
    routed_elsewhere = file(world, (116.406, 39.906))
    on_shared_edge = file(world, (116.41, 39.905))
    outside = file(world, (116.415, 39.915))
    # A grid redraw can leave a report's routed cell pointing elsewhere (or nowhere): position decides.
    db.session.execute(
        update(Report)
        .where(Report.id == routed_elsewhere.id)
        .values(cell_id=world.cells[NE].id, version=Report.version + 1)
    )
    db.session.commit()
    resp = client.get(URL, query_string={"within": world.cells[SW].id}, headers=auth_header(world.admin))
    assert set(ids(resp)) == {routed_here.id, routed_elsewhere.id, on_shared_edge.id}
    resp = client.get(URL, query_string={"within": world.cells[SE].id}, headers=auth_header(world.admin))
    assert set(ids(resp)) == {on_shared_edge.id}
    assert outside.id not in ids(resp)


def test_spatial_filters_combine(client, db, world):
    a = file(world, (116.405, 39.905))
    file(world, (116.415, 39.905))
    resp = client.get(
        URL,
        query_string={
            "within": world.cells[SW].id,
            "bbox": "116.40,39.90,116.42,39.91",
            "near": "%r,%r" % CENTRE,
            "radius": 2000,
        },
        headers=auth_header(world.admin),
    )
    assert ids(resp) == [a.id]


def test_worker_sees_only_own_area_through_spatial_filters(client, db, world):
    mine = file(world, (116.405, 39.905))
    file(world, (116.415, 39.915))
    file(world, (116.505, 39.905))
    query = {"bbox": "116.39,39.89,116.52,39.93", "page_size": 100}
    assert ids(client.get(URL, query_string=query, headers=auth_header(world.worker))) == [mine.id]
    assert ids(
        client.get(URL, query_string={"near": "116.41,39.91", "radius": 5000}, headers=auth_header(world.worker))
    ) == [mine.id]
    assert ids(client.get(URL, query_string={"within": world.cells[NE].id}, headers=auth_header(world.worker))) == []


# ---- pages and totals of spatial lists ------------------------------------------------------------


def test_near_pages_follow_metres_not_degrees(client, db, world):
    # 300 m east is 0.0035 degree of longitude here, 330 m north only 0.0030 degree of latitude: nearest in
    # degrees (the index's order) is not nearest in metres.
    east = file(world, at(300, 90))
    north = file(world, at(330, 0))
    far = file(world, at(450, 270))
    query = {"near": "%r,%r" % CENTRE, "radius": 500, "page_size": 1}
    pages = [client.get(URL, query_string={**query, "page": p}, headers=auth_header(world.admin)) for p in (1, 2, 3)]
    assert [ids(resp) for resp in pages] == [[east.id], [north.id], [far.id]]
    assert [resp.json["total"] for resp in pages] == [3, 3, 3]
    assert all(resp.json["total_is_lower_bound"] is False for resp in pages)


def test_spatial_totals_stop_at_the_cap_with_a_flag(client, db, world, monkeypatch):
    monkeypatch.setattr(geoqueries, "COUNT_CAP", 2)
    made = [file(world, at(10 * (n + 1))) for n in range(4)]
    near = {"near": "%r,%r" % CENTRE, "radius": 500}
    for query in (near, {"bbox": "116.40,39.90,116.41,39.91"}, {"within": world.cells[SW].id}):
        resp = client.get(URL, query_string={**query, "page_size": 1}, headers=auth_header(world.admin))
        assert (resp.json["total"], resp.json["total_is_lower_bound"]) == (2, True), query
        # A full page past the cap: the total is at least the end of this page.
        resp = client.get(URL, query_string={**query, "page_size": 3}, headers=auth_header(world.admin))
        assert (resp.json["total"], resp.json["total_is_lower_bound"]) == (3, True), query
        # A short page knows the total exactly, whatever the cap.
        resp = client.get(URL, query_string={**query, "page_size": 10}, headers=auth_header(world.admin))
        assert (resp.json["total"], resp.json["total_is_lower_bound"]) == (4, False), query
    resp = client.post(SEARCH, json={"within_geojson": TRIANGLE, "page_size": 1}, headers=auth_header(world.admin))
    assert (resp.json["total"], resp.json["total_is_lower_bound"]) == (2, True)
    assert ids(client.get(URL, query_string={**near, "page_size": 10}, headers=auth_header(world.admin))) == [
        r.id for r in made
    ]
    # Lists without spatial filters count exactly and carry no flag.
    resp = client.get(URL, query_string={"page_size": 1}, headers=auth_header(world.admin))
    assert resp.json["total"] == 4 and "total_is_lower_bound" not in resp.json


def test_spatial_total_past_the_last_page_is_exact(client, db, world):
    file(world, at(10))
    file(world, at(20))
    resp = client.get(
        URL,
        query_string={"near": "%r,%r" % CENTRE, "radius": 500, "page_size": 1, "page": 5},
        headers=auth_header(world.admin),
    )
    assert ids(resp) == [] and (resp.json["total"], resp.json["total_is_lower_bound"]) == (2, False)


def test_newest_first_spatial_pages_reach_past_the_recent_windows(client, db, world):
    now = utcnow()
    made = {age: file(world, at(distance)) for age, distance in ((400, 10), (30, 20), (1, 30))}
    for age, report in made.items():
        set_case(report, created_at=now - timedelta(days=age))
    newest_first = [made[1].id, made[30].id, made[400].id]
    query = {"bbox": "116.40,39.90,116.41,39.91"}
    pages = [
        ids(client.get(URL, query_string={**query, "page_size": 1, "page": p}, headers=auth_header(world.admin)))
        for p in (1, 2, 3)
    ]
    assert pages == [[i] for i in newest_first]
    resp = client.get(URL, query_string={**query, "page_size": 2}, headers=auth_header(world.admin))
    assert ids(resp) == newest_first[:2] and resp.json["total"] == 3
    resp = client.get(URL, query_string={**query, "page_size": 2, "page": 2}, headers=auth_header(world.admin))
    assert ids(resp) == newest_first[2:] and resp.json["total"] == 3


# ---- POST /reports/search ------------------------------------------------------------------------

TRIANGLE = {"type": "Polygon", "coordinates": [[[116.40, 39.90], [116.42, 39.90], [116.40, 39.92], [116.40, 39.90]]]}


def test_search_by_polygon_takes_the_edge_and_the_body_filters(client, db, world):
    inside = file(world, (116.405, 39.905))
    on_edge = file(world, (116.41, 39.91))  # on the hypotenuse
    outside = file(world, (116.415, 39.915))
    other = file(world, (116.402, 39.902), category=world.other_category)
    resp = client.post(SEARCH, json={"within_geojson": TRIANGLE}, headers=auth_header(world.admin))
    assert set(ids(resp)) == {inside.id, on_edge.id, other.id}
    assert outside.id not in ids(resp)
    resp = client.post(
        SEARCH,
        json={"within_geojson": TRIANGLE, "category": world.other_category.code, "page_size": 5},
        headers=auth_header(world.admin),
    )
    assert ids(resp) == [other.id]
    resp = client.post(
        SEARCH,
        json={"within_geojson": TRIANGLE, "near": "%r,%r" % CENTRE, "radius": 5000},
        headers=auth_header(world.admin),
    )
    assert ids(resp)[0] == inside.id and resp.json["items"][0]["distance_m"] == pytest.approx(0, abs=0.01)


def test_search_is_scoped(client, db, world):
    mine = file(world, (116.405, 39.905))
    file(world, (116.505, 39.905))
    big = geojson_square(116.39, 39.89, 116.52, 39.93)
    assert ids(client.post(SEARCH, json={"within_geojson": big}, headers=auth_header(world.worker))) == [mine.id]
    assert ids(client.post(SEARCH, json={"within_geojson": big}, headers=auth_header(world.resident2))) == []
    assert_problem(client.post(SEARCH, json={"within_geojson": big}), 401, "missing_token")


def _ring(n: int) -> list:
    import math

    points = [
        [116.41 + 0.005 * math.cos(2 * math.pi * k / n), 39.91 + 0.005 * math.sin(2 * math.pi * k / n)]
        for k in range(n)
    ]
    return points + [points[0]]


@pytest.mark.parametrize(
    "polygon",
    [
        {
            "type": "Polygon",
            "coordinates": [[[116.40, 39.90], [116.42, 39.92], [116.42, 39.90], [116.40, 39.92], [116.40, 39.90]]],
        },  # bow tie
        {"type": "Polygon", "coordinates": [_ring(1000)]},  # 1,001 positions
        {"type": "MultiPolygon", "coordinates": [TRIANGLE["coordinates"]]},
        {"type": "Point", "coordinates": [116.4, 39.9]},
        {"type": "Polygon", "coordinates": [[[116.40, 39.90], [116.42, 91.0], [116.40, 39.92], [116.40, 39.90]]]},
        {"type": "Polygon", "coordinates": [[[116.40, 39.90], [116.42, 39.90], [116.40, 39.92]]]},
        {"type": "Polygon", "coordinates": "nope"},
        "POLYGON((0 0, 1 0, 1 1, 0 0))",
    ],
)
def test_search_rejects_bad_polygons(client, db, world, polygon):
    body = assert_problem(
        client.post(SEARCH, json={"within_geojson": polygon}, headers=auth_header(world.admin)),
        422,
        "validation_failed",
    )
    assert "within_geojson" in body["errors"], body


def test_search_accepts_1000_vertices(client, db, world):
    inside = file(world, (116.41, 39.91))
    resp = client.post(
        SEARCH,
        json={"within_geojson": {"type": "Polygon", "coordinates": [_ring(999)]}},
        headers=auth_header(world.admin),
    )
    assert ids(resp) == [inside.id]


@pytest.mark.parametrize(
    "payload, field",
    [
        ({}, "within_geojson"),
        ({"within_geojson": TRIANGLE, "colour": "red"}, "colour"),
        ({"within_geojson": TRIANGLE, "radius": 100}, "near"),
        ({"within_geojson": TRIANGLE, "near": "116.4,39.9", "radius": 9000}, "radius"),
        ({"within_geojson": TRIANGLE, "bbox": "116.42,39.9,116.40,39.92"}, "bbox"),
        ({"within_geojson": TRIANGLE, "page_size": 1000}, "page_size"),
    ],
)
def test_search_rejects_bad_bodies(client, db, world, payload, field):
    body = assert_problem(client.post(SEARCH, json=payload, headers=auth_header(world.admin)), 422, "validation_failed")
    assert field in body["errors"], body


def test_search_malformed_and_oversized_bodies(client, db, world, app):
    headers = {**auth_header(world.admin), "Content-Type": "application/json"}
    assert_problem(client.post(SEARCH, data="{not json", headers=headers), 400, "malformed_json")
    huge = json.dumps({"within_geojson": TRIANGLE, "pad": "x" * app.config["MAX_CONTENT_LENGTH"]})
    assert_problem(client.post(SEARCH, data=huge, headers=headers), 413, "payload_too_large")


def test_searches_change_nothing(client, db, world):
    file(world, CENTRE)
    before = report_count(db)
    client.post(SEARCH, json={"within_geojson": TRIANGLE}, headers=auth_header(world.admin))
    client.post(SEARCH, json={"within_geojson": {"type": "Point"}}, headers=auth_header(world.admin))
    assert report_count(db) == before


# ---- reports.geojson -----------------------------------------------------------------------------


def test_geojson_has_map_fields_only(client, db, world):
    report = file(world, (116.405, 39.905), description="张三 13800000000 家门口")
    resp = client.get(GEOJSON, query_string={"bbox": "116.40,39.90,116.41,39.91"}, headers=auth_header(world.admin))
    assert resp.status_code == 200 and resp.mimetype == "application/geo+json"
    out = resp.json
    assert out["type"] == "FeatureCollection" and out["truncated"] is False
    (feature,) = out["features"]
    assert feature["geometry"] == {"type": "Point", "coordinates": [116.405, 39.905]}
    props = feature["properties"]
    assert set(props) == {"id", "case_number", "category", "status", "sla_state", "created_at"}
    stored = db.session.get(Report, report.id)
    assert props == {
        "id": report.id,
        "case_number": stored.case_number,
        "category": world.category.code,
        "status": "submitted",
        "sla_state": sla_state(stored, utcnow()),
        "created_at": props["created_at"],
    }
    assert props["created_at"].endswith("+08:00")
    text = resp.get_data(as_text=True)
    for personal in ("13800000000", "张三", world.resident.username, str(world.resident.display_name)):
        assert personal not in text


def test_geojson_is_capped_with_a_flag(client, db, world, monkeypatch):
    monkeypatch.setattr(geoqueries, "MAX_FEATURES", 2)
    made = [file(world, at(10 * (n + 1))) for n in range(3)]
    resp = client.get(GEOJSON, query_string={"near": "%r,%r" % CENTRE, "radius": 100}, headers=auth_header(world.admin))
    assert resp.json["truncated"] is True
    assert [f["id"] for f in resp.json["features"]] == [made[0].id, made[1].id]


def test_geojson_is_scoped_and_filtered(client, db, world):
    mine = file(world, (116.405, 39.905))
    file(world, (116.415, 39.915))
    file(world, (116.505, 39.905))
    resp = client.get(GEOJSON, headers=auth_header(world.worker))
    assert [f["id"] for f in resp.json["features"]] == [mine.id]
    resp = client.get(GEOJSON, query_string={"within": world.cells[NE].id}, headers=auth_header(world.supervisor))
    assert len(resp.json["features"]) == 1
    assert client.get(GEOJSON, headers=auth_header(world.resident2)).json["features"] == []


# ---- cell summary --------------------------------------------------------------------------------


def summary_url(cell) -> str:
    return f"/api/v1/cells/{cell.id}/reports/summary"


def test_summary_counts_the_cell_and_each_child(client, db, world):
    on_time = file(world, (116.405, 39.905))
    late = file(world, (116.406, 39.906))
    ne = file(world, (116.415, 39.915))
    file(world, (116.505, 39.905))
    # Two accepted cases, one with its 4-hour clock started now and one started ten hours ago.
    start_clock(on_time, utcnow())
    start_clock(late, utcnow() - timedelta(hours=10))
    set_case(on_time, status="accepted")
    set_case(late, status="accepted")
    db.session.execute(
        update(Report).where(Report.id == ne.id).values(status="rejected", deadline_at=None, version=Report.version + 1)
    )
    db.session.commit()
    resp = client.get(summary_url(world.cells[COMMUNITY]), headers=auth_header(world.admin))
    assert resp.status_code == 200, resp.json
    out = resp.json
    assert out["cell"]["code"] == COMMUNITY
    assert out["total"] == 3
    assert out["by_status"] == {"accepted": 2, "rejected": 1}
    assert out["by_sla_state"] == {"green": 1, "red": 1, "none": 1}
    children = {c["cell"]["code"]: c for c in out["children"]}
    assert list(children) == [SW, SE, NW, NE]
    assert children[SW]["total"] == 2 and children[SW]["by_status"] == {"accepted": 2}
    assert children[NE]["by_status"] == {"rejected": 1} and children[NE]["by_sla_state"] == {"none": 1}
    assert children[SE] == {"cell": children[SE]["cell"], "total": 0, "by_status": {}, "by_sla_state": {}}
    district = client.get(summary_url(world.cells[DISTRICT]), headers=auth_header(world.admin)).json
    assert district["total"] == 3 and [c["cell"]["code"] for c in district["children"]] == [STREET]
    assert district["children"][0]["total"] == 3
    leaf = client.get(summary_url(world.cells[SW]), headers=auth_header(world.admin)).json
    assert leaf["total"] == 2 and leaf["children"] == []


def test_summary_is_scoped(client, db, world):
    file(world, (116.405, 39.905))
    file(world, (116.415, 39.915))
    out = client.get(summary_url(world.cells[COMMUNITY]), headers=auth_header(world.worker)).json
    assert out["total"] == 1
    assert client.get(summary_url(world.cells[COMMUNITY]), headers=auth_header(world.other_worker)).json["total"] == 0
    assert client.get(summary_url(world.cells[COMMUNITY]), headers=auth_header(world.resident2)).json["total"] == 0


def test_summary_errors(client, db, world):
    assert_problem(
        client.get("/api/v1/cells/99999/reports/summary", headers=auth_header(world.admin)), 404, "cell_not_found"
    )
    assert_problem(client.get(summary_url(world.cells[SW])), 401, "missing_token")


def test_a_case_escalated_once_is_red_on_the_map_and_in_the_counts(client, db, world):
    """Inside the community's new window, but late: the map colours it red, filters and counts it as red."""
    category = make_category(hours=4, window=8, window_unit="hours")
    late = make_escalated_case(world.resident, category, world.cells[SW], hours_late=2)
    on_time = file(world, (116.406, 39.906), category=category)
    start_clock(on_time, utcnow())
    set_case(on_time, status="accepted")
    headers = auth_header(world.supervisor)

    features = client.get(GEOJSON, headers=headers).json["features"]
    assert {f["id"]: f["properties"]["sla_state"] for f in features} == {late.id: "red", on_time.id: "green"}
    red = client.get(GEOJSON, query_string={"sla_state": "red"}, headers=headers).json["features"]
    assert [f["id"] for f in red] == [late.id]
    assert ids(
        client.get(URL, query_string={"sla_state": "red", "bbox": "116.40,39.90,116.41,39.91"}, headers=headers)
    ) == [late.id]

    out = client.get(summary_url(world.cells[COMMUNITY]), headers=auth_header(world.admin)).json
    assert out["by_sla_state"] == {"red": 1, "green": 1}
    assert {c["cell"]["code"]: c["by_sla_state"] for c in out["children"]}[SW] == {"red": 1, "green": 1}
