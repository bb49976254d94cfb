"""Categories: the public list of active ones, and admin create / edit."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.models import Category, Report
from tests.assertions import assert_problem
from tests.factories import auth_header, make_category, make_test_grid, make_user

URL = "/api/v1/categories"
PROBLEM = "application/problem+json"


def category_rows(db) -> list[tuple]:
    return [
        tuple(row)
        for row in db.session.execute(
            select(
                Category.code,
                Category.name,
                Category.group,
                Category.time_limit_value,
                Category.time_limit_unit,
                Category.escalation_window_value,
                Category.escalation_window_unit,
                Category.auto_accept,
                Category.auto_dispatch,
                Category.self_handling,
                Category.active,
            ).order_by(Category.code)
        )
    ]


@pytest.fixture()
def people(db):
    cells = make_test_grid()
    return SimpleNamespace(
        admin=make_user("admin"),
        resident=make_user("resident"),
        worker=make_user("worker", served=[cells["11010500100101"]]),
        supervisor=make_user("supervisor", cell=cells["110105"]),
    )


def new_category(**overrides) -> dict:
    data = {
        "code": "0601",
        "name": "井盖缺失",
        "group": "部件",
        "time_limit_value": 6,
        "time_limit_unit": "hours",
        "description": "窨井盖丢失或破损",
        "keywords": "井盖,窨井",
    }
    data.update(overrides)
    return data


# ---- public list --------------------------------------------------------------------------------


def test_list_needs_no_sign_in_and_shows_only_active_by_code(client, db):
    make_category("0302", name="施工占道")
    make_category("0102", name="暴露垃圾")
    make_category("0101", name="私搭乱建", active=False)
    make_category("0201", name="非法小广告")
    resp = client.get(URL)
    assert resp.status_code == 200, resp.json
    page = resp.json
    assert set(page) == {"items", "page", "page_size", "total"}
    assert [c["code"] for c in page["items"]] == ["0102", "0201", "0302"]
    assert (page["page"], page["page_size"], page["total"]) == (1, 20, 3)
    item = page["items"][0]
    assert item["name"] == "暴露垃圾" and item["active"] is True
    assert item["time_limit_value"] == 4 and item["time_limit_unit"] == "hours"
    assert item["created_at"].endswith("+08:00")


def test_list_is_paginated(client, db):
    codes = [f"C{i:02d}" for i in range(7)]
    for code in reversed(codes):
        make_category(code)
    first = client.get(URL, query_string={"page": 1, "page_size": 3}).json
    second = client.get(URL, query_string={"page": 2, "page_size": 3}).json
    third = client.get(URL, query_string={"page": 3, "page_size": 3}).json
    assert (first["total"], first["page_size"], third["page"]) == (7, 3, 3)
    assert [c["code"] for c in first["items"] + second["items"] + third["items"]] == codes


@pytest.mark.parametrize("query", [{"page": 0}, {"page_size": 101}, {"page_size": "all"}])
def test_list_bad_paging_is_422(client, db, query):
    problem = assert_problem(client.get(URL, query_string=query), 422, "validation_failed")
    assert set(problem["errors"]) == set(query)


# ---- create -------------------------------------------------------------------------------------


def test_admin_creates_a_category(client, db, people):
    resp = client.post(URL, json=new_category(), headers=auth_header(people.admin))
    assert resp.status_code == 201, resp.json
    out = resp.json
    assert out["code"] == "0601" and out["name"] == "井盖缺失" and out["group"] == "部件"
    assert (out["time_limit_value"], out["time_limit_unit"], out["active"]) == (6, "hours", True)
    assert out["keywords"] == "井盖,窨井"
    assert isinstance(out["id"], int)
    stored = db.session.get(Category, out["id"])
    assert (stored.code, stored.time_limit_value, stored.active) == ("0601", 6, True)
    # It is listed and can be reported against at once.
    assert [c["code"] for c in client.get(URL).json["items"]] == ["0601"]


def test_create_defaults_unit_to_hours_and_active(client, db, people):
    data = {"code": "0602", "name": "路灯不亮", "group": "部件", "time_limit_value": 24}
    resp = client.post(URL, json=data, headers=auth_header(people.admin))
    assert resp.status_code == 201, resp.json
    assert (resp.json["time_limit_unit"], resp.json["active"]) == ("hours", True)
    out = resp.json
    assert (out["escalation_window_value"], out["escalation_window_unit"]) == (1, "working_days")
    assert (out["auto_accept"], out["auto_dispatch"], out["self_handling"]) == (False, True, False)


def test_create_with_a_limit_in_minutes(client, db, people):
    data = new_category(time_limit_value=30, time_limit_unit="minutes", escalation_window_unit="minutes")
    resp = client.post(URL, json=data, headers=auth_header(people.admin))
    assert resp.status_code == 201, resp.json
    assert (resp.json["time_limit_unit"], resp.json["escalation_window_unit"]) == ("minutes", "minutes")


def test_create_with_working_time_and_case_rules(client, db, people):
    data = new_category(
        time_limit_value=3,
        time_limit_unit="working_days",
        escalation_window_value=4,
        escalation_window_unit="working_hours",
        auto_accept=True,
        auto_dispatch=False,
        self_handling=True,
    )
    resp = client.post(URL, json=data, headers=auth_header(people.admin))
    assert resp.status_code == 201, resp.json
    out = resp.json
    assert (out["time_limit_value"], out["time_limit_unit"]) == (3, "working_days")
    assert (out["escalation_window_value"], out["escalation_window_unit"]) == (4, "working_hours")
    assert (out["auto_accept"], out["auto_dispatch"], out["self_handling"]) == (True, False, True)
    stored = db.session.get(Category, out["id"])
    assert (stored.time_limit_unit, stored.escalation_window_value, stored.escalation_window_unit) == (
        "working_days",
        4,
        "working_hours",
    )
    assert (stored.auto_accept, stored.auto_dispatch, stored.self_handling) == (True, False, True)
    listed = client.get(URL).json["items"][0]
    assert listed["self_handling"] is True and listed["escalation_window_unit"] == "working_hours"


@pytest.mark.parametrize("who", ["resident", "worker", "supervisor"])
def test_only_admins_create(client, db, people, who):
    resp = client.post(URL, json=new_category(), headers=auth_header(getattr(people, who)))
    assert_problem(resp, 403, "forbidden")
    assert category_rows(db) == []


def test_create_needs_a_token(client, db):
    assert_problem(client.post(URL, json=new_category()), 401, "missing_token")
    assert category_rows(db) == []


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"time_limit_value": 0}, "time_limit_value"),
        ({"time_limit_value": -3}, "time_limit_value"),
        ({"time_limit_value": "6"}, "time_limit_value"),
        ({"time_limit_value": 6.5}, "time_limit_value"),
        ({"time_limit_value": True}, "time_limit_value"),
        ({"time_limit_unit": "fortnights"}, "time_limit_unit"),
        ({"escalation_window_value": 0}, "escalation_window_value"),
        ({"escalation_window_value": "2"}, "escalation_window_value"),
        ({"escalation_window_unit": "days"}, "escalation_window_unit"),
        ({"auto_accept": "true"}, "auto_accept"),
        ({"auto_dispatch": 1}, "auto_dispatch"),
        ({"self_handling": None}, "self_handling"),
        ({"code": "has space"}, "code"),
        ({"code": ""}, "code"),
        ({"name": ""}, "name"),
        ({"active": "yes"}, "active"),
        ({"colour": "red"}, "colour"),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else v,
)
def test_create_bad_input_is_422(client, db, people, overrides, field):
    make_category("0101")
    before = category_rows(db)
    resp = client.post(URL, json=new_category(**overrides), headers=auth_header(people.admin))
    problem = assert_problem(resp, 422, "validation_failed")
    assert field in problem["errors"], problem
    assert category_rows(db) == before


@pytest.mark.parametrize("missing", ["code", "name", "group", "time_limit_value"])
def test_create_missing_required_field_is_422(client, db, people, missing):
    data = new_category()
    del data[missing]
    problem = assert_problem(client.post(URL, json=data, headers=auth_header(people.admin)), 422, "validation_failed")
    assert missing in problem["errors"]
    assert category_rows(db) == []


def test_duplicate_code_is_409(client, db, people):
    make_category("0601", name="旧名", hours=12)
    before = category_rows(db)
    resp = client.post(URL, json=new_category(code="0601"), headers=auth_header(people.admin))
    assert_problem(resp, 409, "category_code_taken")
    assert category_rows(db) == before


def test_duplicate_of_an_inactive_code_is_409_too(client, db, people):
    make_category("0601", active=False)
    before = category_rows(db)
    resp = client.post(URL, json=new_category(code="0601"), headers=auth_header(people.admin))
    assert_problem(resp, 409, "category_code_taken")
    assert category_rows(db) == before


# ---- edit ---------------------------------------------------------------------------------------


def test_admin_edits_a_category(client, db, people):
    category = make_category("0102", hours=4)
    resp = client.patch(
        f"{URL}/{category.id}",
        json={"name": "暴露垃圾（新）", "time_limit_value": 6},
        headers=auth_header(people.admin),
    )
    assert resp.status_code == 200, resp.json
    assert (resp.json["name"], resp.json["time_limit_value"], resp.json["code"]) == ("暴露垃圾（新）", 6, "0102")
    db.session.expire_all()
    stored = db.session.get(Category, category.id)
    assert (stored.name, stored.time_limit_value, stored.group) == ("暴露垃圾（新）", 6, "市容环境")


def test_admin_edits_the_case_rules(client, db, people):
    category = make_category("0102", hours=4)
    changes = {
        "time_limit_unit": "working_hours",
        "escalation_window_value": 2,
        "escalation_window_unit": "hours",
        "auto_accept": True,
        "auto_dispatch": False,
        "self_handling": True,
    }
    resp = client.patch(f"{URL}/{category.id}", json=changes, headers=auth_header(people.admin))
    assert resp.status_code == 200, resp.json
    assert {key: resp.json[key] for key in changes} == changes
    db.session.expire_all()
    stored = db.session.get(Category, category.id)
    assert {key: getattr(stored, key) for key in changes} == changes


def test_new_limit_applies_to_new_reports(client, db, people):
    category = make_category("0102", hours=4)
    resp = client.patch(f"{URL}/{category.id}", json={"time_limit_value": 10}, headers=auth_header(people.admin))
    assert resp.status_code == 200, resp.json
    # A worker's report in their own cell starts accepted (then auto-dispatched), so its clock runs from filing.
    report = client.post(
        "/api/v1/reports",
        headers=auth_header(people.worker),
        json={"category_code": "0102", "description": "垃圾", "location": {"lon": 116.405, "lat": 39.905}},
    )
    assert report.status_code == 201, report.json
    assert report.json["status"] == "assigned"
    created = datetime.fromisoformat(report.json["created_at"])
    assert datetime.fromisoformat(report.json["deadline_at"]) - created == timedelta(hours=10)


def test_deactivating_hides_it_from_the_list_and_from_new_reports(client, db, people):
    keep = make_category("0101")
    retire = make_category("0102")
    resp = client.patch(f"{URL}/{retire.id}", json={"active": False}, headers=auth_header(people.admin))
    assert resp.status_code == 200, resp.json
    assert resp.json["active"] is False
    assert [c["code"] for c in client.get(URL).json["items"]] == [keep.code]

    report_body = {"category_code": "0102", "description": "垃圾", "location": {"lon": 116.405, "lat": 39.905}}
    refused = client.post("/api/v1/reports", json=report_body, headers=auth_header(people.resident))
    problem = assert_problem(refused, 422, "validation_failed")
    assert "category_code" in problem["errors"]
    assert db.session.scalar(select(func.count()).select_from(Report)) == 0

    # Turning it back on brings it back.
    resp = client.patch(f"{URL}/{retire.id}", json={"active": True}, headers=auth_header(people.admin))
    assert resp.status_code == 200
    assert [c["code"] for c in client.get(URL).json["items"]] == ["0101", "0102"]
    again = client.post("/api/v1/reports", json=report_body, headers=auth_header(people.resident))
    assert again.status_code == 201, again.json


@pytest.mark.parametrize(
    "patch, field",
    [
        ({}, "_schema"),
        ({"time_limit_value": 0}, "time_limit_value"),
        ({"time_limit_value": "8"}, "time_limit_value"),
        ({"time_limit_unit": "days"}, "time_limit_unit"),
        ({"active": 0}, "active"),
        ({"escalation_window_value": -1}, "escalation_window_value"),
        ({"escalation_window_unit": "weeks"}, "escalation_window_unit"),
        ({"auto_accept": "no"}, "auto_accept"),
        ({"auto_dispatch": None}, "auto_dispatch"),
        ({"self_handling": 0}, "self_handling"),
        ({"code": "0999"}, "code"),
        ({"colour": "red"}, "colour"),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else v,
)
def test_bad_patch_is_422_and_changes_nothing(client, db, people, patch, field):
    category = make_category("0102")
    before = category_rows(db)
    resp = client.patch(f"{URL}/{category.id}", json=patch, headers=auth_header(people.admin))
    problem = assert_problem(resp, 422, "validation_failed")
    assert field in problem["errors"], problem
    assert category_rows(db) == before


def test_patch_unknown_id_is_404(client, db, people):
    resp = client.patch(f"{URL}/999999", json={"name": "x"}, headers=auth_header(people.admin))
    assert_problem(resp, 404, "category_not_found")


@pytest.mark.parametrize("who", ["resident", "worker", "supervisor"])
def test_only_admins_edit(client, db, people, who):
    category = make_category("0102")
    before = category_rows(db)
    resp = client.patch(f"{URL}/{category.id}", json={"active": False}, headers=auth_header(getattr(people, who)))
    assert_problem(resp, 403, "forbidden")
    assert category_rows(db) == before


def test_edit_needs_a_token(client, db):
    category = make_category("0102")
    before = category_rows(db)
    assert_problem(client.patch(f"{URL}/{category.id}", json={"active": False}), 401, "missing_token")
    assert category_rows(db) == before


# ---- the demo's categories ----------------------------------------------------------------------


def test_demo_categories_list_and_edit_after_seed_demo(app, client, db):
    """The first request a newcomer makes: the demo's definitions (string/number attributes carry no values)."""
    result = app.test_cli_runner().invoke(args=["seed-demo", "--no-cases"])
    assert result.exit_code == 0, result.output
    stored = {c.code: c for c in db.session.scalars(select(Category))}
    without_values = [a for c in stored.values() for a in c.attributes or [] if "values" not in a]
    assert without_values, "the demo should hold a definition stored without values"

    resp = client.get(URL, query_string={"page_size": 100})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    listed = {c["code"]: c for c in resp.json["items"]}
    assert set(listed) == {code for code, c in stored.items() if c.active}
    for code, item in listed.items():
        for attribute in item["attributes"] or []:
            assert isinstance(attribute["values"], list), (code, attribute)
            if attribute["datatype"] not in ("singlevaluelist", "multivaluelist"):
                assert attribute["values"] == []

    admin = make_user("admin")
    category = next(c for c in stored.values() if any("values" not in a for a in c.attributes or []))
    resp = client.patch(f"{URL}/{category.id}", json={"name": "改名"}, headers=auth_header(admin))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.json["name"] == "改名" and len(resp.json["attributes"]) == len(category.attributes)
