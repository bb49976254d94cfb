"""Open311 attribute answers: one check for Open311 POST and POST /api/v1/reports, the same words for the same
bad input, stored in the same column and read back alike."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.models import CaseEvent, Report
from tests.assertions import assert_problem
from tests.factories import POTHOLE_ATTRIBUTES, auth_header, make_api_key, make_category, make_test_grid, make_user

URL = "/api/v1/reports"
OPEN311 = "/open311/v2/requests.json"
SW_POINT = (116.405, 39.905)


@pytest.fixture()
def w(db):
    make_test_grid()
    category = make_category("PH1", name="路面坑洞", group="道路")
    category.attributes = POTHOLE_ATTRIBUTES
    db.session.commit()
    issued = make_api_key("civic app")
    resident = make_user("resident")
    return SimpleNamespace(category=category, key=issued.key, resident=resident, headers=auth_header(resident))


def api_post(client, w, answers, **headers):
    body = {
        "category_code": "PH1",
        "description": "路面坑洞",
        "location": {"lon": SW_POINT[0], "lat": SW_POINT[1]},
    }
    if answers is not None:
        body["attributes"] = answers
    return client.post(URL, json=body, headers={**w.headers, **headers})


def open311_post(client, w, form, **headers):
    data = {"api_key": w.key, "service_code": "PH1", "lat": str(SW_POINT[1]), "long": str(SW_POINT[0])}
    data.update(form)
    return client.post(OPEN311, data=data, headers=headers)


def counts(db) -> tuple[int, int]:
    db.session.expire_all()
    return (
        db.session.scalar(select(func.count()).select_from(Report)),
        db.session.scalar(select(func.count()).select_from(CaseEvent)),
    )


# Each bad input as an Open311 form sends it and as the API's JSON sends it, and the attribute it names.
BAD = {
    "missing required attribute": ({}, {}, "size"),
    "value not in the list": ({"attribute[size]": "huge"}, {"size": "huge"}, "size"),
    "two values for a single list": ({"attribute[size]": ["s", "l"]}, {"size": ["s", "l"]}, "size"),
    "multi value not in the list": (
        {"attribute[size]": "s", "attribute[kinds][]": ["road", "sky"]},
        {"size": "s", "kinds": ["road", "sky"]},
        "kinds",
    ),
    "number not a number": (
        {"attribute[size]": "s", "attribute[depth]": "deep"},
        {"size": "s", "depth": "deep"},
        "depth",
    ),
    "number infinite": ({"attribute[size]": "s", "attribute[depth]": "inf"}, {"size": "s", "depth": "inf"}, "depth"),
    "bad datetime": (
        {"attribute[size]": "s", "attribute[seen_at]": "yesterday"},
        {"size": "s", "seen_at": "yesterday"},
        "seen_at",
    ),
    "datetime at the end of the calendar": (
        {"attribute[size]": "s", "attribute[seen_at]": "9999-12-31T23:59:59-05:00"},
        {"size": "s", "seen_at": "9999-12-31T23:59:59-05:00"},
        "seen_at",
    ),
    "unknown code": ({"attribute[size]": "s", "attribute[colour]": "red"}, {"size": "s", "colour": "red"}, "colour"),
    "informational attribute sent": (
        {"attribute[size]": "s", "attribute[notice]": "hi"},
        {"size": "s", "notice": "hi"},
        "notice",
    ),
    "text too long": (
        {"attribute[size]": "s", "attribute[remark]": "x" * 4001},
        {"size": "s", "remark": "x" * 4001},
        "remark",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_the_same_bad_answers_get_the_same_words_from_open311_and_the_api(client, db, w, case, language):
    form, answers, code = BAD[case]
    before = counts(db)
    open311 = open311_post(client, w, form, **{"Accept-Language": language})
    assert open311.status_code == 400, open311.get_data(as_text=True)
    [error] = json.loads(open311.get_data(as_text=True))
    problem = assert_problem(api_post(client, w, answers, **{"Accept-Language": language}), 422, "validation_failed")
    assert problem["detail"] == error["description"]
    assert problem["errors"]["attributes"] == {code: [error["description"]]}
    assert counts(db) == before


def test_missing_attributes_member_is_a_missing_required_answer(client, db, w):
    before = counts(db)
    problem = assert_problem(api_post(client, w, None), 422, "validation_failed")
    assert list(problem["errors"]["attributes"]) == ["size"]
    assert counts(db) == before


@pytest.mark.parametrize(
    "answers",
    [
        "size=s",
        ["s"],
        {"size": True},
        {"size": None},
        {"size": {"key": "s"}},
        {"kinds": ["road", 1]},
        {"kinds": []},
        {"": "s"},
        {f"code{i}": "s" for i in range(101)},
    ],
    ids=[
        "a string",
        "a list",
        "a boolean",
        "null",
        "an object",
        "a list with a number",
        "an empty list",
        "empty code",
        "over 100 answers",
    ],
)
def test_malformed_attributes_json_is_422_and_files_nothing(client, db, w, answers):
    before = counts(db)
    problem = assert_problem(api_post(client, w, answers), 422, "validation_failed")
    assert "attributes" in problem["errors"]
    assert counts(db) == before


def test_the_same_answers_are_stored_and_read_back_alike(client, db, w):
    form = {
        "attribute[size]": "l",
        "attribute[kinds][]": ["road", "kerb", "road"],
        "attribute[depth]": "12",
        "attribute[seen_at]": "2026-11-26T09:30:00",
        "attribute[remark]": "",
    }
    answers = {
        "size": "l",
        "kinds": ["road", "kerb", "road"],
        "depth": 12,
        "seen_at": "2026-11-26T09:30:00",
        "remark": "",
    }
    expected = {"size": "l", "kinds": ["road", "kerb"], "depth": 12, "seen_at": "2026-11-26T09:30:00+08:00"}

    resp = open311_post(client, w, form)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    number = json.loads(resp.get_data(as_text=True))[0]["service_request_id"]
    by_open311 = db.session.scalars(select(Report).where(Report.source == "open311")).one()
    assert by_open311.case_number == number

    created = api_post(client, w, answers)
    assert created.status_code == 201, created.json
    assert created.json["attributes"] == expected
    by_api = db.session.get(Report, created.json["id"])
    assert by_api.attributes == by_open311.attributes == expected
    read = client.get(f"{URL}/{by_api.id}", headers=w.headers).json
    assert read["attributes"] == expected


def test_numbers_and_decimal_text_read_as_open311_reads_them(client, db, w):
    for depth, stored in ((1.5, 1.5), ("1.5", 1.5), (7, 7), ("7", 7), (2.0, 2.0)):
        created = api_post(client, w, {"size": "s", "depth": depth})
        assert created.status_code == 201, created.json
        assert created.json["attributes"] == {"size": "s", "depth": stored}


def test_a_category_without_attributes_takes_none(client, db, w):
    plain = make_category("PL1")
    body = {"category_code": plain.code, "description": "x", "location": {"lon": SW_POINT[0], "lat": SW_POINT[1]}}
    created = client.post(URL, json=body, headers=w.headers)
    assert created.status_code == 201, created.json
    assert created.json["attributes"] is None
    problem = assert_problem(
        client.post(URL, json={**body, "attributes": {"size": "s"}}, headers=w.headers), 422, "validation_failed"
    )
    assert list(problem["errors"]["attributes"]) == ["size"]


def test_another_resident_sees_no_answers(client, db, w):
    created = api_post(client, w, {"size": "s"})
    assert created.status_code == 201, created.json
    other = make_user("resident")
    # Not following the case: it is not theirs to see at all.
    assert client.get(f"{URL}/{created.json['id']}", headers=auth_header(other)).status_code == 404
