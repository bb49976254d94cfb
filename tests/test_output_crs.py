"""The crs of reads: every coordinate an answer carries is in the datum asked for (wgs84, gcj02, bd09) and rounded
to 7 decimals, by one rule (app.lib.coords.shown) behind every output."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from geoalchemy2.shape import to_shape
from shapely.geometry import mapping

from app.lib import coords
from app.lib.coords import shown, shown_geometry
from app.models import Report, ReportFollower
from app.services.cases import reports as report_service
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    auth_header,
    make_category,
    make_duty,
    make_report,
    make_test_grid,
    make_user,
    set_case,
)

API = "/api/v1"
SW = "11010500100101"
# A point with more digits than a centimetre: every answer rounds it.
NOISY = (116.40512345678912, 39.90587654321098)
CRS = ["wgs84", "gcj02", "bd09"]


@pytest.fixture()
def w(db):
    cells = make_test_grid()
    category = make_category(hours=4)
    resident = make_user("resident")
    worker = make_user("worker", served=[cells[SW]])
    supervisor = make_user("supervisor", cell=cells[COMMUNITY])
    report = make_report(resident, category, *NOISY)
    return SimpleNamespace(
        cells=cells,
        category=category,
        resident=resident,
        worker=worker,
        supervisor=supervisor,
        admin=make_user("admin"),
        report=report,
    )


def rounded_point(point, crs):
    return {"lon": shown(*point, crs)[0], "lat": shown(*point, crs)[1], "crs": crs}


def cell_geometry(cell, crs):
    return shown_geometry(mapping(to_shape(cell.geom)), crs)


def all_positions(coordinates):
    if isinstance(coordinates[0], (int, float)):
        yield coordinates
    else:
        for part in coordinates:
            yield from all_positions(part)


def seven_decimals(value: float) -> bool:
    return round(value, 7) == value


# ---- the rule ---------------------------------------------------------------------------------------------------


def test_shown_is_the_forward_transform_rounded_to_a_centimetre():
    assert shown(*NOISY) == (116.4051235, 39.9058765)
    gcj = coords.wgs84_to_gcj02(*NOISY)
    assert shown(*NOISY, "gcj02") == (round(gcj[0], 7), round(gcj[1], 7))
    bd = coords.gcj02_to_bd09(*gcj)
    assert shown(*NOISY, "bd09") == (round(bd[0], 7), round(bd[1], 7))
    # The input conversion undoes it to well under a centimetre.
    for crs in ("gcj02", "bd09"):
        back = coords.to_wgs84(*coords.from_wgs84(*NOISY, crs), crs)
        assert abs(back[0] - NOISY[0]) < 1e-8 and abs(back[1] - NOISY[1]) < 1e-8
    with pytest.raises(ValueError):
        coords.from_wgs84(*NOISY, "epsg3857")


def test_shown_geometry_converts_every_vertex_and_keeps_the_shape():
    polygon = {"type": "Polygon", "coordinates": [[[116.4, 39.9], [116.41, 39.9], [116.41, 39.91], [116.4, 39.9]]]}
    converted = shown_geometry(polygon, "gcj02")
    assert converted["type"] == "Polygon"
    assert converted["coordinates"] == [[list(shown(*p, "gcj02")) for p in polygon["coordinates"][0]]]
    point = shown_geometry({"type": "Point", "coordinates": [*NOISY, 12.5]}, "bd09")
    assert point["coordinates"] == [*shown(*NOISY, "bd09"), 12.5]
    collection = {"type": "GeometryCollection", "geometries": [polygon]}
    assert shown_geometry(collection, "gcj02")["geometries"] == [converted]
    assert shown_geometry(None, "gcj02") is None


# ---- reports ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crs", CRS)
def test_one_report_and_the_list_answer_in_the_crs_asked_for(client, db, w, crs):
    headers = auth_header(w.supervisor)
    expected = rounded_point(NOISY, crs)
    one = client.get(f"{API}/reports/{w.report.id}", query_string={"crs": crs}, headers=headers)
    assert one.status_code == 200, one.json
    assert one.json["location"] == expected
    page = client.get(f"{API}/reports", query_string={"crs": crs}, headers=headers).json
    assert [item["location"] for item in page["items"]] == [expected]
    search = client.post(
        f"{API}/reports/search",
        json={"crs": crs, "within_geojson": mapping(to_shape(w.cells[SW].geom).geoms[0])},
        headers=headers,
    ).json
    assert [item["location"] for item in search["items"]] == [expected]


def test_the_default_is_wgs84_rounded(client, db, w):
    body = client.get(f"{API}/reports/{w.report.id}", headers=auth_header(w.resident)).json
    assert body["location"] == {"lon": 116.4051235, "lat": 39.9058765, "crs": "wgs84"}
    assert all(seven_decimals(v) for v in (body["location"]["lon"], body["location"]["lat"]))


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_near_takes_and_answers_the_same_crs(client, db, w, crs):
    near = coords.from_wgs84(*NOISY, crs)
    resp = client.get(
        f"{API}/reports",
        query_string={"near": f"{near[0]},{near[1]}", "radius": 10, "crs": crs},
        headers=auth_header(w.supervisor),
    )
    assert resp.status_code == 200, resp.json
    [item] = resp.json["items"]
    assert item["distance_m"] < 0.01
    assert item["location"] == rounded_point(NOISY, crs)


def test_the_public_view_point_is_converted_too(client, db, w):
    follower = make_user("resident")
    db.session.add(ReportFollower(report_id=w.report.id, user_id=follower.id))
    db.session.commit()
    body = client.get(f"{API}/reports/{w.report.id}", query_string={"crs": "gcj02"}, headers=auth_header(follower))
    assert body.status_code == 200, body.json
    location = body.json["location"]
    assert (location["crs"], location["precision"]) == ("gcj02", "cell")
    wgs = client.get(f"{API}/reports/{w.report.id}", headers=auth_header(follower)).json["location"]
    assert ground_close(coords.to_wgs84(location["lon"], location["lat"], "gcj02"), (wgs["lon"], wgs["lat"]))


def ground_close(a, b, tolerance_deg=2e-7) -> bool:
    return abs(a[0] - b[0]) < tolerance_deg and abs(a[1] - b[1]) < tolerance_deg


def test_a_post_answers_in_wgs84_whatever_crs_the_point_came_in(client, db, w):
    gcj = coords.from_wgs84(*NOISY, "gcj02")
    resp = client.post(
        f"{API}/reports",
        json={
            "category_code": w.category.code,
            "description": "x",
            "location": {"lon": gcj[0], "lat": gcj[1], "crs": "gcj02"},
        },
        headers=auth_header(w.resident),
    )
    assert resp.status_code == 201, resp.json
    assert resp.json["location"]["crs"] == "wgs84"
    assert ground_close((resp.json["location"]["lon"], resp.json["location"]["lat"]), NOISY)


@pytest.mark.parametrize("crs", CRS)
def test_reports_geojson_states_its_crs_and_converts_each_point(client, db, w, crs):
    resp = client.get(f"{API}/reports.geojson", query_string={"crs": crs}, headers=auth_header(w.supervisor))
    assert resp.status_code == 200 and resp.mimetype == "application/geo+json"
    assert resp.json["crs"] == crs
    [feature] = resp.json["features"]
    assert feature["geometry"] == {"type": "Point", "coordinates": list(shown(*NOISY, crs))}


def test_my_reports_and_tasks_take_crs(client, db, w):
    mine = client.get(f"{API}/me/reports", query_string={"crs": "bd09"}, headers=auth_header(w.resident)).json
    assert [item["location"] for item in mine["items"]] == [rounded_point(NOISY, "bd09")]
    set_case(w.report, status="assigned", assignee_id=w.worker.id)
    tasks = client.get(f"{API}/me/tasks", query_string={"crs": "gcj02"}, headers=auth_header(w.worker))
    assert tasks.status_code == 200, tasks.json
    assert [item["location"] for item in tasks.json["items"]] == [rounded_point(NOISY, "gcj02")]


# ---- cells ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crs", CRS)
def test_a_cell_and_the_cells_geojson_convert_every_vertex(client, db, w, crs):
    headers = auth_header(w.resident)
    cell = w.cells[SW]
    detail = client.get(f"{API}/cells/{cell.id}", query_string={"crs": crs}, headers=headers)
    assert detail.status_code == 200, detail.json
    assert detail.json["geometry"] == cell_geometry(cell, crs)
    collection = client.get(f"{API}/cells.geojson", query_string={"crs": crs, "level": "grid"}, headers=headers).json
    assert collection["crs"] == crs
    by_code = {f["properties"]["code"]: f["geometry"] for f in collection["features"]}
    assert by_code[SW] == cell_geometry(cell, crs)
    assert all(seven_decimals(v) for p in all_positions(by_code[SW]["coordinates"]) for v in p)


def test_my_cells_answer_in_the_crs_asked_for(client, db, w):
    body = client.get(f"{API}/me/cells", query_string={"crs": "bd09"}, headers=auth_header(w.worker)).json
    assert [cell["geometry"] for cell in body] == [cell_geometry(w.cells[SW], "bd09")]


# ---- workers and analytics --------------------------------------------------------------------------------------


def test_worker_positions_answer_in_the_crs_asked_for(client, db, w):
    make_duty(w.worker, True, *NOISY)
    body = client.get(f"{API}/workers", query_string={"crs": "gcj02"}, headers=auth_header(w.admin)).json
    [worker] = [item for item in body["items"] if item["id"] == w.worker.id]
    position = worker["last_position"]
    assert {k: position[k] for k in ("lon", "lat", "crs")} == rounded_point(NOISY, "gcj02")


def test_duty_answers_its_position_in_wgs84_rounded(client, db, w):
    resp = client.post(
        f"{API}/me/duty",
        json={"duty": "on", "position": {"lon": NOISY[0], "lat": NOISY[1]}},
        headers=auth_header(w.worker),
    )
    assert resp.status_code == 201, resp.json
    assert resp.json["position"] == rounded_point(NOISY, "wgs84")


def test_heatmap_and_hotspots_convert_polygons_and_centroids(client, db, w):
    for i in range(4):
        report_service.create_report(
            w.resident,
            category_code=w.category.code,
            description=f"cluster {i}",
            location={"lon": NOISY[0] + i * 1e-4, "lat": NOISY[1] + (i % 2) * 1e-4},
        )
    db.session.commit()
    headers = auth_header(w.admin)
    plain = client.get(f"{API}/analytics/heatmap", headers=headers).json
    heat = client.get(f"{API}/analytics/heatmap", query_string={"crs": "gcj02"}, headers=headers)
    assert heat.status_code == 200, heat.json
    assert (plain["crs"], heat.json["crs"]) == ("wgs84", "gcj02")
    assert heat.json["total"] == plain["total"] == 5
    for converted, original in zip(heat.json["features"], plain["features"], strict=True):
        for p, q in zip(
            all_positions(converted["geometry"]["coordinates"]),
            all_positions(original["geometry"]["coordinates"]),
            strict=True,
        ):
            assert ground_close(coords.to_wgs84(*p, "gcj02"), q)
            assert all(seven_decimals(v) for v in p)

    query = {"min_points": 3, "eps_m": 100}
    plain = client.get(f"{API}/analytics/hotspots", query_string=query, headers=headers).json
    hot = client.get(f"{API}/analytics/hotspots", query_string={**query, "crs": "bd09"}, headers=headers).json
    assert hot["crs"] == "bd09" and len(hot["features"]) == len(plain["features"]) == 1
    centroid = hot["features"][0]["properties"]["centroid"]
    assert ground_close(coords.to_wgs84(*centroid, "bd09"), plain["features"][0]["properties"]["centroid"])
    for p, q in zip(
        all_positions(hot["features"][0]["geometry"]["coordinates"]),
        all_positions(plain["features"][0]["geometry"]["coordinates"]),
        strict=True,
    ):
        assert ground_close(coords.to_wgs84(*p, "bd09"), q)


# ---- bad crs ----------------------------------------------------------------------------------------------------

READS = [
    "/reports",
    "/reports/{report}",
    "/reports.geojson",
    "/me/reports",
    "/me/tasks",
    "/me/cells",
    "/cells/{cell}",
    "/cells.geojson",
    "/cells/locate?lon=116.405&lat=39.905",
    "/workers",
    "/sync",
    "/analytics/heatmap",
    "/analytics/hotspots",
]


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("crs", ["WGS84", "epsg:4326", "", "gcj-02"])
def test_an_unknown_crs_is_422_naming_it(client, db, w, path, crs):
    url = API + path.format(report=w.report.id, cell=w.cells[SW].id)
    url += ("&" if "?" in url else "?") + f"crs={crs}"
    problem = assert_problem(client.get(url, headers=auth_header(w.admin)), 422, "validation_failed")
    assert "crs" in str(problem["errors"])


def test_reports_are_unchanged_by_reads_in_another_crs(client, db, w):
    before = to_shape(db.session.get(Report, w.report.id).location).coords[0]
    client.get(f"{API}/reports/{w.report.id}", query_string={"crs": "bd09"}, headers=auth_header(w.resident))
    db.session.expire_all()
    assert to_shape(db.session.get(Report, w.report.id).location).coords[0] == before
