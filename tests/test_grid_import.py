"""The grid import: POST /api/v1/cells/import, app.services.grid validate_import/apply_import, `flask grid import`."""

from __future__ import annotations

import copy
import json
import math

import pytest
from geoalchemy2.shape import to_shape
from shapely.geometry import box
from sqlalchemy import func, select

from app.errors import ValidationFailed
from app.extensions import db
from app.models import Cell
from app.services.grid import cells as grid_service
from app.services.grid.gridgen import GridSpec, generate
from tests.assertions import assert_problem, cells_snapshot as snapshot
from tests.factories import COMMUNITY, GRID_BOXES, auth_header, geojson_square, make_test_grid, make_user

IMPORT = "/api/v1/cells/import"
ONE_MIB = 1024 * 1024

# A fresh district away from the factories' test grid: 110108 over [116.30, 116.32] x [39.95, 39.97],
# one street, one community, four 0.01-degree grid squares meeting at (116.31, 39.96).
D, S, C = "110108", "110108001", "110108001001"
G1, G2, G3, G4 = (f"{C}0{i}" for i in range(1, 5))
OUTLINE = (116.30, 39.95, 116.32, 39.97)
SQUARES = {
    G1: (116.30, 39.95, 116.31, 39.96),
    G2: (116.31, 39.95, 116.32, 39.96),
    G3: (116.30, 39.96, 116.31, 39.97),
    G4: (116.31, 39.96, 116.32, 39.97),
}
BOW_TIE = {
    "type": "Polygon",
    "coordinates": [[[116.30, 39.95], [116.31, 39.96], [116.31, 39.95], [116.30, 39.96], [116.30, 39.95]]],
}


def feature(code, level, parent_code, geometry, name=None, **extra_props) -> dict:
    if isinstance(geometry, tuple):
        geometry = geojson_square(*geometry)
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {
            "code": code,
            "name": name or f"导入 {code}",
            "level": level,
            "parent_code": parent_code,
            **extra_props,
        },
    }


def good_features() -> list[dict]:
    """Seven valid features, parents first: indexes 0 district, 1 street, 2 community, 3-6 grid G1-G4."""
    return [
        feature(D, "district", None, OUTLINE),
        feature(S, "street", D, OUTLINE),
        feature(C, "community", S, OUTLINE),
        *(feature(code, "grid", C, bounds) for code, bounds in SQUARES.items()),
    ]


def collection(features: list[dict]) -> dict:
    return {"type": "FeatureCollection", "features": features}


def metres_per_degree(lat: float) -> tuple[float, float]:
    phi = math.radians(lat)
    w = math.sqrt(1 - 6.69437999014e-3 * math.sin(phi) ** 2)
    return (
        math.pi / 180 * 6_378_137.0 / w * math.cos(phi),
        math.pi / 180 * 6_378_137.0 * (1 - 6.69437999014e-3) / w**3,
    )


def cells_by_code() -> dict[str, Cell]:
    db.session.expire_all()
    return {c.code: c for c in db.session.scalars(select(Cell))}


def bad_indexes(body: dict) -> list[int]:
    return [e["index"] for e in body["errors"]]


def reasons_at(body: dict, index: int) -> list[str]:
    return next(e["reasons"] for e in body["errors"] if e["index"] == index)


@pytest.fixture()
def admin(db):
    return auth_header(make_user("admin"))


def post(client, headers, features):
    return client.post(IMPORT, json=collection(features), headers=headers)


# ---- success and update in place ------------------------------------------------------------------


def test_a_valid_hierarchy_imports(client, admin):
    resp = post(client, admin, good_features())
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"created": 7, "updated": 0}
    cells = cells_by_code()
    assert set(cells) == {D, S, C, G1, G2, G3, G4}
    assert cells[D].parent_id is None
    assert cells[S].parent_id == cells[D].id
    assert cells[C].parent_id == cells[S].id
    for code, bounds in SQUARES.items():
        assert cells[code].parent_id == cells[C].id
        assert cells[code].level == "grid"
        assert cells[code].active is True
        assert cells[code].name == f"导入 {code}"
        assert to_shape(cells[code].geom).equals(box(*bounds))
    assert [cells[x].level for x in (D, S, C)] == ["district", "street", "community"]
    # The imported grid routes.
    located = client.get("/api/v1/cells/locate", query_string={"lon": 116.315, "lat": 39.965}, headers=admin)
    assert located.get_json()["cell"]["code"] == G4
    assert [a["code"] for a in located.get_json()["ancestors"]] == [D, S, C]


def test_children_before_parents_in_the_file_still_import(client, admin):
    resp = post(client, admin, list(reversed(good_features())))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"created": 7, "updated": 0}
    cells = cells_by_code()
    assert cells[G1].parent_id == cells[C].id and cells[C].parent_id == cells[S].id


def test_second_import_updates_in_place(client, admin):
    assert post(client, admin, good_features()).get_json() == {"created": 7, "updated": 0}
    ids = {code: cell.id for code, cell in cells_by_code().items()}
    count = db.session.scalar(select(func.count()).select_from(Cell))

    again = good_features()
    for f in again:
        f["properties"]["name"] = "新名 " + f["properties"]["code"]
    again[3]["properties"]["active"] = False
    # G1 and G2 trade 20 m of their shared edge: each still only touches the other.
    shift = 20 / metres_per_degree(39.955)[0]
    again[3]["geometry"] = geojson_square(116.30, 39.95, 116.31 + shift, 39.96)
    again[4]["geometry"] = geojson_square(116.31 + shift, 39.95, 116.32, 39.96)
    resp = post(client, admin, again)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"created": 0, "updated": 7}

    cells = cells_by_code()
    assert db.session.scalar(select(func.count()).select_from(Cell)) == count
    assert {code: cell.id for code, cell in cells.items()} == ids
    assert all(cell.name == "新名 " + code for code, cell in cells.items())
    assert cells[G1].active is False
    assert to_shape(cells[G1].geom).equals(box(116.30, 39.95, 116.31 + shift, 39.96))
    assert cells[G1].parent_id == ids[C]


def test_a_file_larger_than_one_statements_bound_values_imports_in_parts(client, admin, monkeypatch):
    """PostgreSQL takes at most 65,535 bound values per statement: the lookups of a large file go in parts (here of
    two codes, so seven features and their parents need several)."""
    monkeypatch.setattr(grid_service, "_IN_CHUNK", 2)
    assert post(client, admin, good_features()).get_json() == {"created": 7, "updated": 0}
    cells = cells_by_code()
    assert cells[G1].parent_id == cells[C].id and cells[C].parent_id == cells[S].id
    again = good_features()
    again[3]["geometry"] = geojson_square(116.30, 39.95, 116.31, 39.96)
    again[4]["geometry"] = geojson_square(116.3099, 39.95, 116.32, 39.96)  # overlaps G1 by far more than 1 m²
    resp = post(client, admin, again)
    assert resp.status_code == 422
    assert "overlaps sibling grid cell" in json.dumps(resp.get_json(), ensure_ascii=False)
    assert post(client, admin, good_features()).get_json() == {"created": 0, "updated": 7}


def test_mixed_import_creates_and_updates(client, admin):
    post(client, admin, good_features()[:3])
    resp = post(client, admin, good_features())
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"created": 4, "updated": 3}
    assert len(cells_by_code()) == 7


def test_grid_cells_can_be_added_under_an_existing_parent(client, db, admin):
    make_test_grid()
    beside = feature("11010500100105", "grid", COMMUNITY, (116.42, 39.90, 116.43, 39.91))  # touches SE
    resp = post(client, admin, [beside])
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"created": 1, "updated": 0}
    cells = cells_by_code()
    assert cells["11010500100105"].parent_id == cells[COMMUNITY].id


def test_qgis_members_and_numeric_codes_are_accepted(client, admin):
    features = good_features()
    features[0]["properties"]["code"] = int(D)
    body = collection(features)
    body.update({"name": "cells", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}})
    resp = client.post(IMPORT, json=body, headers=admin)
    assert resp.status_code == 200, resp.get_json()
    assert D in cells_by_code()


# ---- all or nothing --------------------------------------------------------------------------------


def test_one_bad_feature_rejects_the_whole_file(client, admin):
    features = good_features()
    features[5]["geometry"] = BOW_TIE
    before = snapshot()
    body = assert_problem(post(client, admin, features), 422, "invalid_grid_import")
    assert body["errors"] == [{"index": 5, "code": G3, "reasons": reasons_at(body, 5)}]
    assert any("self-intersecting" in r for r in reasons_at(body, 5))
    assert "未导入任何数据" in body["detail"]
    assert snapshot() == before
    assert not set(cells_by_code()) & {D, S, C, G1, G2, G3, G4}


def test_every_bad_feature_is_listed_by_index(client, admin):
    features = good_features()
    features[1]["properties"]["parent_code"] = "110199"  # unknown parent
    features[3]["geometry"] = {"type": "Point", "coordinates": [116.305, 39.955]}  # non-polygon
    features[6]["properties"]["code"] = "11010800200104"  # does not extend C
    features.append(feature(G2, "grid", C, (116.40, 39.95, 116.41, 39.96)))  # duplicate code, index 7
    before = snapshot()
    body = assert_problem(post(client, admin, features), 422, "invalid_grid_import")
    assert bad_indexes(body) == [1, 3, 6, 7]
    assert [e["code"] for e in body["errors"]] == [S, G1, "11010800200104", G2]
    assert any("unknown parent 110199" in r for r in reasons_at(body, 1))
    assert any("non-polygon" in r for r in reasons_at(body, 3))
    assert any("does not extend" in r for r in reasons_at(body, 6))
    assert any("duplicate code" in r for r in reasons_at(body, 7))
    assert "8 个要素中有 4 个无效" in body["detail"]
    assert snapshot() == before


def test_duplicate_of_a_rejected_feature_is_still_a_duplicate(client, admin):
    features = good_features()
    features[3]["geometry"] = BOW_TIE
    copy_of_3 = copy.deepcopy(good_features()[3])
    features.append(copy_of_3)
    body = assert_problem(post(client, admin, features), 422, "invalid_grid_import")
    assert 3 in bad_indexes(body) and len(features) - 1 in bad_indexes(body)
    assert any("duplicate code" in r for r in reasons_at(body, len(features) - 1))


def test_a_feature_can_have_several_reasons(client, admin):
    features = good_features()
    features[4]["properties"].update({"name": "", "level": "block"})
    features[4]["geometry"] = {"type": "LineString", "coordinates": [[116.31, 39.95], [116.32, 39.96]]}
    body = assert_problem(post(client, admin, features), 422, "invalid_grid_import")
    assert bad_indexes(body) == [4]
    reasons = " | ".join(reasons_at(body, 4))
    assert "name" in reasons and "level" in reasons and "non-polygon" in reasons


def test_children_of_a_bad_parent_say_so(client, admin):
    features = good_features()
    features[0]["geometry"] = BOW_TIE
    body = assert_problem(post(client, admin, features), 422, "invalid_grid_import")
    # The street cannot be checked against a district that is itself rejected; it says why, not "unknown".
    assert bad_indexes(body) == [0, 1]
    assert reasons_at(body, 1) == [f"parent {D} is itself invalid (feature 0)"]
    assert any("self-intersecting" in r for r in reasons_at(body, 0))


def test_an_update_with_a_bad_feature_changes_nothing(client, admin):
    post(client, admin, good_features())
    before = snapshot()
    again = good_features()
    for f in again:
        f["properties"]["name"] = "不应写入"
    again[6]["geometry"] = {"type": "Polygon", "coordinates": []}
    assert_problem(post(client, admin, again), 422, "invalid_grid_import")
    assert snapshot() == before
    assert all(not c.name.startswith("不应") for c in cells_by_code().values())


# ---- one test per kind of bad feature ---------------------------------------------------------------


def _set_geometry(index, geometry):
    def change(features):
        features[index]["geometry"] = geometry

    return change


def _set_props(index, **props):
    def change(features):
        features[index]["properties"].update(props)

    return change


def _append(f):
    def change(features):
        features.append(f)

    return change


BAD_KINDS = {
    "self-intersecting bow-tie": (_set_geometry(3, BOW_TIE), [3], "self-intersecting"),
    "self-touching ring": (
        _set_geometry(
            4,
            {
                "type": "Polygon",
                "coordinates": [
                    [
                        [116.31, 39.95],
                        [116.32, 39.95],
                        [116.315, 39.955],
                        [116.32, 39.96],
                        [116.31, 39.96],
                        [116.315, 39.955],
                        [116.31, 39.95],
                    ]
                ],
            },
        ),
        [4],
        "self-intersecting",
    ),
    "empty polygon": (_set_geometry(4, {"type": "Polygon", "coordinates": []}), [4], "empty geometry"),
    "empty multipolygon": (_set_geometry(4, {"type": "MultiPolygon", "coordinates": []}), [4], "empty geometry"),
    "empty ring list": (_set_geometry(4, {"type": "Polygon", "coordinates": [[]]}), [4], "ring"),
    "null geometry": (_set_geometry(4, None), [4], "geometry is missing"),
    "point": (_set_geometry(5, {"type": "Point", "coordinates": [116.305, 39.965]}), [5], "non-polygon"),
    "linestring": (
        _set_geometry(5, {"type": "LineString", "coordinates": [[116.30, 39.96], [116.31, 39.97]]}),
        [5],
        "non-polygon",
    ),
    "geometry collection": (_set_geometry(5, {"type": "GeometryCollection", "geometries": []}), [5], "non-polygon"),
    "longitude over 180": (_set_geometry(3, geojson_square(116.30, 39.95, 180.5, 39.96)), [3], "out of range"),
    "longitude under -180": (_set_geometry(3, geojson_square(-180.5, 39.95, 116.31, 39.96)), [3], "out of range"),
    "latitude over 90": (_set_geometry(5, geojson_square(116.30, 39.96, 116.31, 90.5)), [5], "out of range"),
    "latitude under -90": (_set_geometry(6, geojson_square(116.31, -90.5, 116.32, 39.97)), [6], "out of range"),
    "unknown parent": (_set_props(2, parent_code="110108009"), [2], "unknown parent 110108009"),
    "grid under a street": (
        _append(feature("11010800100105", "grid", S, (116.32, 39.95, 116.33, 39.96))),
        [7],
        "level not one below",
    ),
    "community under a district": (
        _append(feature("110108002001", "community", D, OUTLINE)),
        [7],
        "level not one below",
    ),
    "district with a parent": (_set_props(0, parent_code="110107"), [0], "level not one below"),
    "street without parent": (_set_props(1, parent_code=None), [1], "parent_code is required"),
    "code not extending parent": (_set_props(6, code="11010800200104"), [6], "does not extend"),
    "duplicate code in file": (_append(feature(G1, "grid", C, (116.40, 39.95, 116.41, 39.96))), [7], "duplicate code"),
    "code with letters": (_set_props(6, code="1101080010010A"), [6], "digits only"),
    "code of the wrong length": (_set_props(6, code="1101080010010"), [6], "digits"),
    "unknown level": (_set_props(6, level="township"), [6], "level must be one of"),
    "missing name": (_set_props(6, name=None), [6], "name is required"),
    "active not boolean": (_set_props(6, active="yes"), [6], "active must be true or false"),
    "not a feature": (_append({"type": "Polygon", "coordinates": []}), [7], "not a GeoJSON Feature"),
    "no properties": (
        _append({"type": "Feature", "geometry": geojson_square(*SQUARES[G1])}),
        [7],
        "properties are missing",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_KINDS))
def test_each_kind_of_bad_feature_is_reported_and_nothing_imported(client, admin, kind):
    change, expected_indexes, reason = BAD_KINDS[kind]
    features = good_features()
    change(features)
    before = snapshot()
    body = assert_problem(post(client, admin, features), 422, "invalid_grid_import")
    assert bad_indexes(body) == expected_indexes, body
    assert any(reason in r for r in reasons_at(body, expected_indexes[0])), body
    assert snapshot() == before


def _overlapping_pair(overlap_m2: float) -> list[dict]:
    """G1 and G2 sharing their edge, G2 pushed west into G1 by a strip of the given area."""
    features = good_features()
    m_lon, m_lat = metres_per_degree(39.955)
    height_m = 0.01 * m_lat
    strip_deg = overlap_m2 / height_m / m_lon
    features[4]["geometry"] = geojson_square(116.31 - strip_deg, 39.95, 116.32, 39.96)
    return features


def test_grid_siblings_overlapping_by_more_than_a_square_metre_are_rejected(client, admin):
    before = snapshot()
    body = assert_problem(post(client, admin, _overlapping_pair(5.0)), 422, "invalid_grid_import")
    # Both cells of the pair are named, each pointing at the other.
    assert bad_indexes(body) == [3, 4]
    assert any(f"overlaps sibling grid cell {G2}" in r for r in reasons_at(body, 3))
    assert any(f"overlaps sibling grid cell {G1}" in r for r in reasons_at(body, 4))
    assert snapshot() == before


def test_grid_siblings_overlapping_heavily_are_rejected(client, admin):
    features = good_features()
    features[6]["geometry"] = geojson_square(116.305, 39.955, 116.32, 39.97)  # G4 over half of three others
    body = assert_problem(post(client, admin, features), 422, "invalid_grid_import")
    assert bad_indexes(body) == [3, 4, 5, 6]
    assert len([r for r in reasons_at(body, 6) if "overlaps" in r]) == 3


def test_overlap_under_a_square_metre_is_accepted(client, admin):
    resp = post(client, admin, _overlapping_pair(0.3))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"created": 7, "updated": 0}


def test_touching_siblings_are_accepted(client, admin):
    # Edge-sharing squares in the base file, plus two cells meeting at only one corner.
    features = good_features()
    features.append(feature("11010800100105", "grid", C, (116.32, 39.97, 116.33, 39.98)))
    resp = post(client, admin, features)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"created": 8, "updated": 0}


def test_overlapping_cells_of_different_parents_or_levels_are_not_siblings(client, admin):
    features = good_features()
    features += [
        feature("110108001002", "community", S, OUTLINE),
        feature("11010800100201", "grid", "110108001002", SQUARES[G1]),
    ]
    resp = post(client, admin, features)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["created"] == 9


def test_overlap_with_an_existing_sibling_in_the_database(client, db, admin):
    make_test_grid()
    before = snapshot()
    over_se = feature("11010500100105", "grid", COMMUNITY, (116.415, 39.90, 116.43, 39.91))
    body = assert_problem(post(client, admin, [over_se]), 422, "invalid_grid_import")
    assert bad_indexes(body) == [0]
    se = sorted(GRID_BOXES)[1]
    assert any(f"overlaps sibling grid cell {se}" in r for r in reasons_at(body, 0))
    assert snapshot() == before


def test_reimporting_an_existing_cell_does_not_overlap_itself(client, db, admin):
    cells = make_test_grid()
    sw = sorted(GRID_BOXES)[0]
    again = feature(sw, "grid", COMMUNITY, GRID_BOXES[sw], name="改名")
    resp = post(client, admin, [again])
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"created": 0, "updated": 1}
    assert cells_by_code()[sw].name == "改名"
    assert cells_by_code()[sw].id == cells[sw].id


def test_a_cell_cannot_change_level_on_reimport(client, admin):
    post(client, admin, good_features())
    before = snapshot()
    features = good_features()
    features[2]["properties"]["level"] = "street"
    body = assert_problem(post(client, admin, features), 422, "invalid_grid_import")
    assert 2 in bad_indexes(body)
    assert snapshot() == before


# ---- the file itself, access, size ---------------------------------------------------------------


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"type": "Feature", "features": []}, "type"),
        ({"type": "FeatureCollection"}, "features"),
        ({"type": "FeatureCollection", "features": []}, "features"),
        ({"type": "FeatureCollection", "features": "x"}, "features"),
        ({"type": "FeatureCollection", "features": [], "extra": 1}, "extra"),
        (
            {
                "type": "FeatureCollection",
                "features": [{}],
                "crs": {"type": "name", "properties": {"name": "EPSG:3857"}},
            },
            "crs",
        ),
    ],
)
def test_bad_file_shape_is_422(client, admin, payload, field):
    before = snapshot()
    body = assert_problem(client.post(IMPORT, json=payload, headers=admin), 422, "validation_failed")
    assert field in body["errors"], body
    assert snapshot() == before


@pytest.mark.parametrize("role", ["resident", "worker", "supervisor"])
def test_non_admin_is_403(client, db, role):
    headers = auth_header(make_user(role))
    before = snapshot()
    assert_problem(post(client, headers, good_features()), 403, "forbidden")
    assert snapshot() == before


def test_unauthenticated_is_401(client, db):
    assert_problem(post(client, {}, good_features()), 401, "missing_token")
    assert D not in cells_by_code()


def test_body_over_the_import_limit_is_413(app, client, admin, monkeypatch):
    data = json.dumps(collection(good_features()))
    monkeypatch.setitem(app.config, "GRID_IMPORT_MAX_BYTES", len(data) - 1)
    before = snapshot()
    resp = client.post(IMPORT, data=data, content_type="application/json", headers=admin)
    assert_problem(resp, 413, "payload_too_large")
    assert snapshot() == before
    # The same body at exactly the limit goes through.
    monkeypatch.setitem(app.config, "GRID_IMPORT_MAX_BYTES", len(data))
    resp = client.post(IMPORT, data=data, content_type="application/json", headers=admin)
    assert resp.status_code == 200, resp.get_json()


def big_district() -> list[dict]:
    # 4 streets x 4 communities x 14 x 14 grid cells: 3157 features, about 1.2 MB of JSON.
    return generate(GridSpec("110108", "海淀区", 116.30, 39.95, streets=4, communities_per_street=4, grid_side=14))


def test_import_accepts_bodies_over_the_generic_1_mib_limit(app, client, admin):
    features = big_district()
    data = json.dumps(collection(features))
    assert len(data) > max(ONE_MIB, app.config["MAX_CONTENT_LENGTH"])
    assert len(data) < app.config["GRID_IMPORT_MAX_BYTES"]
    resp = client.post(IMPORT, data=data, content_type="application/json", headers=admin)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    assert resp.get_json() == {"created": len(features), "updated": 0}
    assert db.session.scalar(select(func.count()).select_from(Cell).where(Cell.level == "grid")) == 4 * 4 * 14 * 14
    # Other endpoints keep the generic limit.
    big_name = {
        "code": "110109",
        "name": "x",
        "level": "district",
        "geometry": geojson_square(1, 1, 2, 2),
        "padding": "x" * (ONE_MIB + 10),
    }
    assert_problem(client.post("/api/v1/cells", json=big_name, headers=admin), 413, "payload_too_large")


# ---- the service functions ---------------------------------------------------------------------------


def test_validate_then_apply(db):
    valid = grid_service.validate_import(good_features())
    assert [f.code for f in valid] == [D, S, C, G1, G2, G3, G4]
    assert db.session.scalar(select(func.count()).select_from(Cell)) == 0  # validation writes nothing
    result = grid_service.apply_import(valid)
    assert (result.created, result.updated) == (7, 0)
    assert set(cells_by_code()) == {D, S, C, G1, G2, G3, G4}
    result = grid_service.apply_import(grid_service.validate_import(good_features()))
    assert (result.created, result.updated) == (0, 7)


def test_validate_import_raises_listing_every_bad_feature(db):
    features = good_features()
    features[3]["geometry"] = BOW_TIE
    features[4]["properties"]["parent_code"] = "110108001009"
    with pytest.raises(ValidationFailed) as info:
        grid_service.validate_import(features)
    err = info.value
    assert err.status == 422 and err.code == "invalid_grid_import"
    assert [e["index"] for e in err.extra["errors"]] == [3, 4]
    assert db.session.scalar(select(func.count()).select_from(Cell)) == 0


# ---- flask grid import ---------------------------------------------------------------------------------


def test_cli_imports_a_file_and_prints_a_summary(app, db, tmp_path):
    path = tmp_path / "grid.geojson"
    path.write_text(json.dumps(collection(good_features()), ensure_ascii=False), encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["grid", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "imported 7 cells: 7 created, 0 updated" in result.output
    cells = cells_by_code()
    assert set(cells) == {D, S, C, G1, G2, G3, G4}
    assert cells[G4].parent_id == cells[C].id

    result = app.test_cli_runner().invoke(args=["grid", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "0 created, 7 updated" in result.output
    assert len(cells_by_code()) == 7


def test_cli_bad_file_exits_non_zero_and_writes_nothing(app, db, tmp_path):
    features = good_features()
    features[5]["geometry"] = BOW_TIE
    features[6]["properties"]["parent_code"] = "110108001009"
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(collection(features)), encoding="utf-8")
    before = snapshot()
    result = app.test_cli_runner().invoke(args=["grid", "import", str(path)])
    assert result.exit_code != 0
    assert "invalid_grid_import" in result.output
    assert "self-intersecting" in result.output and "unknown parent" in result.output
    assert '"index": 5' in result.output and '"index": 6' in result.output
    assert snapshot() == before


@pytest.mark.parametrize("content", ["{not json", json.dumps({"type": "Feature"}), "[]"])
def test_cli_rejects_a_file_that_is_not_a_feature_collection(app, db, tmp_path, content):
    path = tmp_path / "junk.geojson"
    path.write_text(content, encoding="utf-8")
    before = snapshot()
    result = app.test_cli_runner().invoke(args=["grid", "import", str(path)])
    assert result.exit_code != 0
    assert "Error" in result.output
    assert snapshot() == before


def test_cli_missing_file_exits_non_zero(app, db, tmp_path):
    result = app.test_cli_runner().invoke(args=["grid", "import", str(tmp_path / "absent.geojson")])
    assert result.exit_code != 0
    assert "does not exist" in result.output
