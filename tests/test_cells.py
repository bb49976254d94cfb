"""The cells blueprint (app/api/cells.py): browse, read, GeoJSON export, create, edit, delete."""

from __future__ import annotations

import pytest
from geoalchemy2.shape import to_shape
from shapely.geometry import box, shape
from sqlalchemy import select

from app.extensions import db
from app.models import Cell
from tests.assertions import assert_problem, cells_snapshot as snapshot
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    GRID_BOXES,
    STREET,
    auth_header,
    geojson_square,
    make_category,
    make_report,
    make_test_grid,
    make_user,
)

CELLS = "/api/v1/cells"
SW, SE, NW, NE = sorted(GRID_BOXES)
ALL_CODES = sorted([DISTRICT, STREET, COMMUNITY, *GRID_BOXES])
BOW_TIE = {
    "type": "Polygon",
    "coordinates": [[[116.42, 39.90], [116.43, 39.91], [116.43, 39.90], [116.42, 39.91], [116.42, 39.90]]],
}
NEW_GRID = "11010500100105"
NEW_GRID_BOUNDS = (116.42, 39.90, 116.43, 39.91)  # east of SE, touching it along an edge


# ---- helpers -----------------------------------------------------------------------------------


def stored(code: str) -> Cell | None:
    db.session.expire_all()
    return db.session.scalars(select(Cell).where(Cell.code == code)).first()


def codes(items) -> list[str]:
    return [item["code"] for item in items]


def new_cell_body(**changes) -> dict:
    body = {
        "code": NEW_GRID,
        "name": "东五网格",
        "level": "grid",
        "parent_code": COMMUNITY,
        "geometry": geojson_square(*NEW_GRID_BOUNDS),
    }
    body.update(changes)
    return body


@pytest.fixture()
def grid(db):
    return make_test_grid()


@pytest.fixture()
def admin(db):
    return auth_header(make_user("admin"))


@pytest.fixture()
def resident(db):
    return auth_header(make_user("resident"))


@pytest.fixture()
def non_admins(db, grid):
    return {
        "resident": auth_header(make_user("resident")),
        "worker": auth_header(make_user("worker", served=[grid[SW]])),
        "supervisor": auth_header(make_user("supervisor", cell=grid[DISTRICT])),
    }


# ---- GET /cells ---------------------------------------------------------------------------------


def test_list_is_ordered_by_code_and_paginated(client, grid, resident):
    resp = client.get(CELLS, headers=resident)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["total"] == 7
    assert body["page"] == 1
    assert body["page_size"] == 20
    assert codes(body["items"]) == ALL_CODES
    first = body["items"][0]
    assert first == {
        **first,
        "id": grid[DISTRICT].id,
        "code": DISTRICT,
        "level": "district",
        "parent_id": None,
        "active": True,
        "name": grid[DISTRICT].name,
    }
    assert first["created_at"].endswith("+08:00")


def test_pages_split_the_same_order(client, grid, resident):
    seen = []
    for page, expected_len in ((1, 3), (2, 3), (3, 1), (4, 0)):
        body = client.get(CELLS, query_string={"page": page, "page_size": 3}, headers=resident).get_json()
        assert (body["page"], body["page_size"], body["total"]) == (page, 3, 7)
        assert len(body["items"]) == expected_len
        seen += codes(body["items"])
    assert seen == ALL_CODES


@pytest.mark.parametrize(
    "query,expected",
    [
        ({"level": "grid"}, sorted(GRID_BOXES)),
        ({"level": "community"}, [COMMUNITY]),
        ({"code": "110105001"}, [STREET, COMMUNITY, *sorted(GRID_BOXES)]),
        ({"code": "1101050010010"}, sorted(GRID_BOXES)),
        ({"code": "11010500100103"}, [NW]),
        ({"code": "110106"}, []),
        ({"bbox": "116.401,39.901,116.402,39.902", "level": "grid"}, [SW]),
        ({"bbox": "116.405,39.905,116.415,39.906", "level": "grid"}, [SW, SE]),
        ({"bbox": "116.405,39.905,116.415,39.915", "level": "grid"}, sorted(GRID_BOXES)),
        ({"bbox": "116.405,39.905,116.406,39.906"}, [DISTRICT, STREET, COMMUNITY, SW]),
        ({"bbox": "120,30,121,31"}, []),
        ({"level": "grid", "code": "110105001001", "bbox": "116.411,39.911,116.419,39.919"}, [NE]),
    ],
)
def test_filters(client, grid, resident, query, expected):
    body = client.get(CELLS, query_string=query, headers=resident).get_json()
    assert codes(body["items"]) == expected
    assert body["total"] == len(expected)


def test_parent_filter(client, grid, resident):
    body = client.get(CELLS, query_string={"parent_id": grid[COMMUNITY].id}, headers=resident).get_json()
    assert codes(body["items"]) == sorted(GRID_BOXES)
    assert {item["parent_id"] for item in body["items"]} == {grid[COMMUNITY].id}
    body = client.get(CELLS, query_string={"parent_id": grid[DISTRICT].id}, headers=resident).get_json()
    assert codes(body["items"]) == [STREET]


@pytest.mark.parametrize(
    "bbox",
    [
        "116.40,39.90,116.42",
        "116.40,39.90,116.42,39.92,1",
        "a,b,c,d",
        "116.42,39.90,116.40,39.92",
        "116.40,39.92,116.42,39.90",
        "-181,39.90,116.42,39.92",
        "116.40,-91,116.42,39.92",
        "116.40,39.90,200,39.92",
        "nan,39.90,116.42,39.92",
        "",
    ],
)
def test_bad_bbox_is_422(client, grid, resident, bbox):
    body = assert_problem(client.get(CELLS, query_string={"bbox": bbox}, headers=resident), 422, "validation_failed")
    assert list(body["errors"]) == ["bbox"]


@pytest.mark.parametrize(
    "query,field",
    [
        ({"page_size": 101}, "page_size"),
        ({"page_size": 0}, "page_size"),
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
        ({"level": "city"}, "level"),
        ({"parent_id": "abc"}, "parent_id"),
        ({"code": "11a"}, "code"),
    ],
)
def test_bad_list_arguments_are_422(client, grid, resident, query, field):
    body = assert_problem(client.get(CELLS, query_string=query, headers=resident), 422, "validation_failed")
    assert field in body["errors"]


def test_page_size_100_is_allowed(client, grid, resident):
    body = client.get(CELLS, query_string={"page_size": 100}, headers=resident).get_json()
    assert body["page_size"] == 100
    assert len(body["items"]) == 7


def test_list_needs_a_token(client, grid):
    assert_problem(client.get(CELLS), 401, "missing_token")


# ---- GET /cells/{id} and children ----------------------------------------------------------------


def test_detail_has_geometry_and_ancestors_root_first(client, grid, resident):
    resp = client.get(f"{CELLS}/{grid[NE].id}", headers=resident)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["id"], body["code"], body["level"], body["parent_id"], body["active"]) == (
        grid[NE].id,
        NE,
        "grid",
        grid[COMMUNITY].id,
        True,
    )
    assert body["geometry"]["type"] == "MultiPolygon"
    assert shape(body["geometry"]).equals(box(*GRID_BOXES[NE]))
    assert [(a["code"], a["level"]) for a in body["ancestors"]] == [
        (DISTRICT, "district"),
        (STREET, "street"),
        (COMMUNITY, "community"),
    ]
    assert body["ancestors"][0]["id"] == grid[DISTRICT].id
    assert body["created_at"].endswith("+08:00") and body["updated_at"].endswith("+08:00")


def test_root_has_no_ancestors(client, grid, resident):
    body = client.get(f"{CELLS}/{grid[DISTRICT].id}", headers=resident).get_json()
    assert body["ancestors"] == []
    assert body["parent_id"] is None


def test_unknown_cell_is_404_problem(client, grid, resident):
    body = assert_problem(client.get(f"{CELLS}/999999", headers=resident), 404, "cell_not_found")
    assert "999999" in body["detail"]


def test_children_are_the_direct_children_in_code_order(client, grid, resident):
    body = client.get(f"{CELLS}/{grid[COMMUNITY].id}/children", headers=resident).get_json()
    assert codes(body["items"]) == sorted(GRID_BOXES)
    assert body["total"] == 4
    body = client.get(f"{CELLS}/{grid[DISTRICT].id}/children", headers=resident).get_json()
    assert codes(body["items"]) == [STREET]
    body = client.get(f"{CELLS}/{grid[SW].id}/children", headers=resident).get_json()
    assert body == {"items": [], "page": 1, "page_size": 20, "total": 0}


def test_children_are_paginated(client, grid, resident):
    url = f"{CELLS}/{grid[COMMUNITY].id}/children"
    body = client.get(url, query_string={"page": 2, "page_size": 3}, headers=resident).get_json()
    assert codes(body["items"]) == [NE]
    assert body["total"] == 4
    assert_problem(client.get(url, query_string={"page_size": 101}, headers=resident), 422, "validation_failed")


def test_children_of_unknown_cell_is_404(client, grid, resident):
    assert_problem(client.get(f"{CELLS}/999999/children", headers=resident), 404, "cell_not_found")


# ---- GET /cells.geojson ---------------------------------------------------------------------------


def test_geojson_export_is_a_feature_collection(client, grid, resident):
    resp = client.get(f"{CELLS}.geojson", headers=resident)
    assert resp.status_code == 200
    assert resp.mimetype == "application/geo+json"
    body = resp.get_json()
    assert body["type"] == "FeatureCollection"
    assert [f["properties"]["code"] for f in body["features"]] == ALL_CODES
    for feature in body["features"]:
        assert feature["type"] == "Feature"
        assert feature["geometry"]["type"] == "MultiPolygon"
        props = feature["properties"]
        assert set(props) >= {"id", "code", "name", "level", "parent_id", "active"}
        cell = grid[props["code"]]
        assert (props["id"], props["name"], props["level"], props["parent_id"], props["active"]) == (
            cell.id,
            cell.name,
            cell.level,
            cell.parent_id,
            True,
        )
    ne = next(f for f in body["features"] if f["properties"]["code"] == NE)
    # RFC 7946: lon/lat order.
    assert shape(ne["geometry"]).equals(box(*GRID_BOXES[NE]))


def test_geojson_export_filters(client, grid, resident):
    body = client.get(
        f"{CELLS}.geojson", query_string={"level": "grid", "bbox": "116.401,39.911,116.402,39.912"}, headers=resident
    ).get_json()
    assert [f["properties"]["code"] for f in body["features"]] == [NW]
    body = client.get(f"{CELLS}.geojson", query_string={"code": "120"}, headers=resident).get_json()
    assert body == {"type": "FeatureCollection", "crs": "wgs84", "features": []}
    assert_problem(
        client.get(f"{CELLS}.geojson", query_string={"bbox": "1,2,3"}, headers=resident), 422, "validation_failed"
    )
    assert_problem(client.get(f"{CELLS}.geojson"), 401, "missing_token")


# ---- POST /cells ----------------------------------------------------------------------------------


def test_admin_creates_a_cell(client, grid, admin):
    resp = client.post(CELLS, json=new_cell_body(), headers=admin)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert (body["code"], body["name"], body["level"], body["parent_id"], body["active"]) == (
        NEW_GRID,
        "东五网格",
        "grid",
        grid[COMMUNITY].id,
        True,
    )
    assert shape(body["geometry"]).equals(box(*NEW_GRID_BOUNDS))
    assert codes(body["ancestors"]) == [DISTRICT, STREET, COMMUNITY]
    cell = stored(NEW_GRID)
    assert cell is not None and cell.id == body["id"]
    assert (cell.level, cell.parent_id, cell.name, cell.active) == ("grid", grid[COMMUNITY].id, "东五网格", True)
    assert to_shape(cell.geom).equals(box(*NEW_GRID_BOUNDS))
    # It is now routable.
    located = client.get(f"{CELLS}/locate", query_string={"lon": 116.425, "lat": 39.905}, headers=admin).get_json()
    assert located["cell"]["code"] == NEW_GRID


def test_admin_creates_a_root_and_an_inactive_cell(client, db, admin):
    resp = client.post(
        CELLS,
        json={
            "code": "110106",
            "name": "海淀区",
            "level": "district",
            "geometry": geojson_square(116.2, 39.9, 116.3, 40.0),
        },
        headers=admin,
    )
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["ancestors"] == []
    resp = client.post(
        CELLS,
        json={
            "code": "110106001",
            "name": "街道",
            "level": "street",
            "parent_code": "110106",
            "geometry": geojson_square(116.2, 39.9, 116.25, 40.0),
            "active": False,
        },
        headers=admin,
    )
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["active"] is False
    assert stored("110106001").active is False


@pytest.mark.parametrize("role", ["resident", "worker", "supervisor"])
def test_non_admin_cannot_create(client, grid, non_admins, role):
    before = snapshot()
    assert_problem(client.post(CELLS, json=new_cell_body(), headers=non_admins[role]), 403, "forbidden")
    assert snapshot() == before


def test_unauthenticated_cannot_create(client, grid):
    before = snapshot()
    assert_problem(client.post(CELLS, json=new_cell_body()), 401, "missing_token")
    assert snapshot() == before


@pytest.mark.parametrize(
    "geometry,reason",
    [
        (BOW_TIE, "self-intersecting"),
        ({"type": "Point", "coordinates": [116.425, 39.905]}, "non-polygon"),
        ({"type": "LineString", "coordinates": [[116.42, 39.90], [116.43, 39.91]]}, "non-polygon"),
        ({"type": "Polygon", "coordinates": []}, "empty"),
        ({"type": "MultiPolygon", "coordinates": []}, "empty"),
        (geojson_square(116.42, 39.90, 181.0, 39.91), "out of range"),
        (geojson_square(116.42, 39.90, 116.43, 91.0), "out of range"),
        ({"type": "Polygon", "coordinates": [[[116.42, 39.90], [116.43, 39.90], [116.43, 39.91]]]}, "ring"),
        (geojson_square(116.415, 39.90, 116.43, 39.91), "overlaps sibling"),
    ],
)
def test_bad_geometry_is_422_and_writes_nothing(client, grid, admin, geometry, reason):
    before = snapshot()
    body = assert_problem(client.post(CELLS, json=new_cell_body(geometry=geometry), headers=admin), 422, "invalid_cell")
    assert reason in body["detail"]
    assert any(reason in r for r in body["errors"]["cell"])
    assert snapshot() == before


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"colour": "red"}, "colour"),
        ({"id": 5}, "id"),
        ({"parent_id": 3}, "parent_id"),
        ({"code": 11010500100105}, "code"),
        ({"code": "1101-05"}, "code"),
        ({"name": 5}, "name"),
        ({"name": ""}, "name"),
        ({"level": "city"}, "level"),
        ({"active": "yes"}, "active"),
        ({"active": 1}, "active"),
        ({"geometry": "POLYGON((0 0, 1 0, 1 1, 0 0))"}, "geometry"),
        ({"parent_code": 110105001001}, "parent_code"),
    ],
)
def test_bad_fields_are_422_naming_them(client, grid, admin, changes, field):
    before = snapshot()
    body = assert_problem(client.post(CELLS, json=new_cell_body(**changes), headers=admin), 422, "validation_failed")
    assert field in body["errors"], body
    assert snapshot() == before


@pytest.mark.parametrize("missing", ["code", "name", "level", "geometry"])
def test_missing_required_field_is_422(client, grid, admin, missing):
    body = new_cell_body()
    del body[missing]
    before = snapshot()
    problem = assert_problem(client.post(CELLS, json=body, headers=admin), 422, "validation_failed")
    assert missing in problem["errors"]
    assert snapshot() == before


def test_duplicate_code_is_409(client, grid, admin):
    before = snapshot()
    body = assert_problem(
        client.post(CELLS, json=new_cell_body(code=SE, geometry=geojson_square(*GRID_BOXES[SE])), headers=admin),
        409,
        "cell_code_taken",
    )
    assert SE in body["detail"]
    assert snapshot() == before


@pytest.mark.parametrize(
    "changes,reason",
    [
        ({"parent_code": "110105001009"}, "unknown parent"),
        ({"parent_code": STREET, "code": "11010500100105"}, "level not one below"),
        ({"code": "11010500200105"}, "does not extend"),
        ({"level": "community", "code": "110105001005"}, "level not one below"),
        ({"parent_code": None}, "parent_code is required"),
    ],
)
def test_bad_hierarchy_is_422(client, grid, admin, changes, reason):
    before = snapshot()
    body = assert_problem(client.post(CELLS, json=new_cell_body(**changes), headers=admin), 422, "invalid_cell")
    assert any(reason in r for r in body["errors"]["cell"]), body
    assert snapshot() == before


def test_malformed_json_and_wrong_content_type(client, grid, admin):
    before = snapshot()
    resp = client.post(CELLS, data="{not json", headers={**admin, "Content-Type": "application/json"})
    assert_problem(resp, 400, "malformed_json")
    resp = client.post(CELLS, data="code=1", headers={**admin, "Content-Type": "application/x-www-form-urlencoded"})
    assert_problem(resp, 415, "unsupported_media_type")
    assert snapshot() == before


# ---- PATCH /cells/{id} ----------------------------------------------------------------------------


def test_admin_renames_a_cell(client, grid, admin):
    before = snapshot()
    resp = client.patch(f"{CELLS}/{grid[SW].id}", json={"name": "西南网格"}, headers=admin)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["name"], body["code"], body["active"]) == ("西南网格", SW, True)
    assert codes(body["ancestors"]) == [DISTRICT, STREET, COMMUNITY]
    assert stored(SW).name == "西南网格"
    # The snapshot the rejection tests compare does see a committed change.
    assert snapshot() != before


def test_admin_deactivates_and_reactivates_a_cell(client, grid, admin):
    resp = client.patch(f"{CELLS}/{grid[SW].id}", json={"active": False}, headers=admin)
    assert resp.status_code == 200
    assert resp.get_json()["active"] is False
    assert stored(SW).active is False
    assert stored(SW).name == grid[SW].name
    located = client.get(f"{CELLS}/locate", query_string={"lon": 116.41, "lat": 39.91}, headers=admin).get_json()
    assert located["cell"]["code"] == SE
    resp = client.patch(f"{CELLS}/{grid[SW].id}", json={"active": True}, headers=admin)
    assert resp.get_json()["active"] is True
    assert stored(SW).active is True


def test_admin_redraws_a_cell(client, grid, admin):
    smaller = (116.40, 39.90, 116.405, 39.905)
    resp = client.patch(
        f"{CELLS}/{grid[SW].id}", json={"geometry": geojson_square(*smaller), "name": "小网格"}, headers=admin
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert shape(body["geometry"]).equals(box(*smaller))
    assert body["name"] == "小网格"
    cell = stored(SW)
    assert to_shape(cell.geom).equals(box(*smaller))
    assert cell.name == "小网格"
    # The redrawn cell may take its own old area back; only the grid's own shape changed.
    resp = client.patch(f"{CELLS}/{grid[SW].id}", json={"geometry": geojson_square(*GRID_BOXES[SW])}, headers=admin)
    assert resp.status_code == 200, resp.get_json()


@pytest.mark.parametrize(
    "geometry,reason",
    [
        (BOW_TIE, "self-intersecting"),
        ({"type": "Point", "coordinates": [116.405, 39.905]}, "non-polygon"),
        ({"type": "Polygon", "coordinates": []}, "empty"),
        (geojson_square(116.40, 39.90, 116.40, 95.0), "out of range"),
        (geojson_square(116.40, 39.90, 116.415, 39.91), "overlaps sibling"),
    ],
)
def test_invalid_new_geometry_is_422_and_changes_nothing(client, grid, admin, geometry, reason):
    before = snapshot()
    body = assert_problem(
        client.patch(f"{CELLS}/{grid[SW].id}", json={"geometry": geometry, "name": "x"}, headers=admin),
        422,
        "invalid_cell",
    )
    assert any(reason in r for r in body["errors"]["geometry"]), body
    assert snapshot() == before


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"code": "11010500100109"}, "code"),
        ({"level": "community"}, "level"),
        ({"parent_id": 1}, "parent_id"),
        ({"name": "ok", "colour": "red"}, "colour"),
        ({"active": "no"}, "active"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"geometry": [1, 2]}, "geometry"),
        ({}, "_schema"),
    ],
)
def test_bad_patch_is_422_and_changes_nothing(client, grid, admin, payload, field):
    before = snapshot()
    body = assert_problem(client.patch(f"{CELLS}/{grid[SW].id}", json=payload, headers=admin), 422, "validation_failed")
    assert field in body["errors"], body
    if field in ("code", "level", "parent_id", "colour"):
        assert body["errors"][field] == ["Unknown field."]
    assert snapshot() == before


@pytest.mark.parametrize("role", ["resident", "worker", "supervisor"])
def test_non_admin_cannot_patch(client, grid, non_admins, role):
    before = snapshot()
    assert_problem(
        client.patch(f"{CELLS}/{grid[SW].id}", json={"name": "x"}, headers=non_admins[role]), 403, "forbidden"
    )
    assert snapshot() == before


def test_patch_unknown_cell_is_404(client, grid, admin):
    assert_problem(client.patch(f"{CELLS}/999999", json={"name": "x"}, headers=admin), 404, "cell_not_found")


def test_unauthenticated_cannot_patch(client, grid):
    before = snapshot()
    assert_problem(client.patch(f"{CELLS}/{grid[SW].id}", json={"name": "x"}), 401, "missing_token")
    assert snapshot() == before


# ---- DELETE /cells/{id} ---------------------------------------------------------------------------


def test_admin_deletes_a_leaf(client, grid, admin):
    resp = client.delete(f"{CELLS}/{grid[NE].id}", headers=admin)
    assert resp.status_code == 204
    assert resp.get_data() == b""
    assert stored(NE) is None
    assert_problem(client.get(f"{CELLS}/{grid[NE].id}", headers=admin), 404, "cell_not_found")
    remaining = client.get(CELLS, headers=admin).get_json()
    assert codes(remaining["items"]) == [c for c in ALL_CODES if c != NE]


def test_cell_with_children_is_409(client, grid, admin):
    before = snapshot()
    body = assert_problem(client.delete(f"{CELLS}/{grid[COMMUNITY].id}", headers=admin), 409, "cell_in_use")
    assert "child" in body["detail"]
    assert snapshot() == before


def test_cell_with_a_routed_report_is_409(client, grid, admin):
    reporter = make_user("resident")
    report = make_report(reporter, make_category(), 116.415, 39.915)
    assert report.cell_id == grid[NE].id
    before = snapshot()
    body = assert_problem(client.delete(f"{CELLS}/{grid[NE].id}", headers=admin), 409, "cell_in_use")
    assert "report" in body["detail"]
    assert snapshot() == before


def test_cell_with_a_worker_is_409(client, grid, admin):
    make_user("worker", served=[grid[NW]])
    before = snapshot()
    body = assert_problem(client.delete(f"{CELLS}/{grid[NW].id}", headers=admin), 409, "cell_in_use")
    assert "users" in body["detail"]
    assert snapshot() == before


@pytest.mark.parametrize("role", ["resident", "worker", "supervisor"])
def test_non_admin_cannot_delete(client, grid, non_admins, role):
    before = snapshot()
    assert_problem(client.delete(f"{CELLS}/{grid[NE].id}", headers=non_admins[role]), 403, "forbidden")
    assert snapshot() == before


def test_unauthenticated_cannot_delete(client, grid):
    before = snapshot()
    assert_problem(client.delete(f"{CELLS}/{grid[NE].id}"), 401, "missing_token")
    assert snapshot() == before


def test_delete_unknown_cell_is_404(client, grid, admin):
    before = snapshot()
    assert_problem(client.delete(f"{CELLS}/999999", headers=admin), 404, "cell_not_found")
    assert snapshot() == before


def test_deleting_every_child_frees_the_parent(client, grid, admin):
    for code in sorted(GRID_BOXES):
        assert client.delete(f"{CELLS}/{grid[code].id}", headers=admin).status_code == 204
    assert client.delete(f"{CELLS}/{grid[COMMUNITY].id}", headers=admin).status_code == 204
    assert stored(COMMUNITY) is None
    assert stored(STREET) is not None
