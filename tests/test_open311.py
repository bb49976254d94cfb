"""Open311 GeoReport v2 at /open311/v2: every endpoint in JSON and XML, rejected inputs, filters, the case loop."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

import pytest
from geoalchemy2.shape import to_shape
from sqlalchemy import func, select

from app.extensions import db as _db
from app.models import ApiKey, CaseEvent, Category, Notification, Report
from app.models.base import utcnow
from app.schemas.categories import AttributeSchema
from app.services.demo import ATTRIBUTES
from app.services.people import api_keys as key_service
from app.services.public import open311 as open311_service
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    POTHOLE_ATTRIBUTES,
    auth_header,
    make_api_key,
    make_category,
    make_report,
    make_two_district_grid,
    make_user,
    set_case,
)

BASE = "/open311/v2"
SW = "11010500100101"
SW_POINT = (116.405, 39.905)
FAR_POINT = (100.0, 30.0)
FORMATS = ["json", "xml"]
CONTENT_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture()
def w(db):
    cells = make_two_district_grid()
    pothole = make_category("PH1", name="路面坑洞", group="道路", hours=4)
    pothole.keywords, pothole.description, pothole.attributes = "坑洞,路面", "Holes in the road", POTHOLE_ATTRIBUTES
    litter = make_category("LT1", name="暴露垃圾", group="市容环境", hours=2)
    make_category("OLD", name="retired", active=False)
    issued = make_api_key("civic app")
    return SimpleNamespace(
        cells=cells,
        pothole=pothole,
        litter=litter,
        key=issued.key,
        api_key=issued.api_key,
        worker=make_user("worker", served=[cells[SW]]),
        supervisor=make_user("supervisor", cell=cells[COMMUNITY]),
        root=make_user("supervisor", cell=cells[DISTRICT]),
        admin=make_user("admin"),
        resident=make_user("resident"),
    )


# ---- helpers ----------------------------------------------------------------------------------------------------


def parse(resp, fmt):
    """The body as data: JSON as is; XML as the same shape (lists of dicts of text) for flat elements."""
    assert resp.headers["Content-Type"] == CONTENT_TYPES[fmt]
    if fmt == "json":
        return json.loads(resp.get_data(as_text=True))
    text = resp.get_data(as_text=True)
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(resp.get_data())


def flat(el) -> dict:
    return {child.tag: child.text for child in el}


def xml_list(root, root_tag, item_tag) -> list[dict]:
    assert root.tag == root_tag
    assert all(child.tag == item_tag for child in root)
    return [flat(item) for item in root]


def assert_open311_error(resp, status, fmt="json") -> str:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = parse(resp, fmt)
    if fmt == "json":
        assert isinstance(body, list) and len(body) == 1
        assert body[0]["code"] == status
        assert set(body[0]) == {"code", "description"}
        description = body[0]["description"]
    else:
        errors = xml_list(body, "errors", "error")
        assert len(errors) == 1 and errors[0]["code"] == str(status)
        description = errors[0]["description"]
    assert description
    return description


def snapshot(db) -> tuple:
    db.session.expire_all()
    return (
        db.session.scalar(select(func.count()).select_from(Report)),
        db.session.scalar(select(func.count()).select_from(CaseEvent)),
        db.session.scalar(select(func.count()).select_from(Notification)),
        tuple(db.session.execute(select(ApiKey.id, ApiKey.last_used_at).order_by(ApiKey.id)).all()),
    )


def form(w, **overrides):
    data = {
        "api_key": w.key,
        "service_code": "LT1",
        "lat": str(SW_POINT[1]),
        "long": str(SW_POINT[0]),
        "description": "垃圾 <堆> & 异味",
        "jurisdiction_id": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def post(client, w, fmt="json", query=None, **overrides):
    return client.post(f"{BASE}/requests.{fmt}", data=form(w, **overrides), query_string=query or {})


def pothole_form(w, **overrides):
    base = {"service_code": "PH1", "attribute[size]": "l"}
    base.update(overrides)
    return base


def local(moment) -> str:
    return moment.astimezone(TZ).isoformat(timespec="seconds")


def created(db, number) -> Report:
    db.session.expire_all()
    return db.session.scalars(select(Report).where(Report.id == int(number[8:]))).one()


# ---- discovery --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_discovery(client, db, fmt):
    resp = client.get(f"{BASE}/discovery.{fmt}")
    assert resp.status_code == 200
    body = parse(resp, fmt)
    url = "http://localhost/open311/v2"
    if fmt == "json":
        assert body["contact"] and body["key_service"] and body["changeset"]
        assert body["endpoints"] == [
            {
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": url,
                "changeset": body["changeset"],
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ]
    else:
        assert body.tag == "discovery"
        assert body.findtext("contact") and body.findtext("key_service")
        endpoints = body.findall("endpoints/endpoint")
        assert len(endpoints) == 1
        assert endpoints[0].findtext("specification") == "http://wiki.open311.org/GeoReport_v2"
        assert endpoints[0].findtext("url") == url
        assert endpoints[0].findtext("type") == "production"
        assert [f.text for f in endpoints[0].findall("formats/format")] == ["text/xml", "application/json"]


# ---- services ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_services_lists_active_categories(client, db, w, fmt):
    resp = client.get(f"{BASE}/services.{fmt}", query_string={"jurisdiction_id": ""})
    assert resp.status_code == 200
    body = parse(resp, fmt)
    expected = [
        {
            "service_code": "LT1",
            "service_name": "暴露垃圾",
            "description": None,
            "metadata": False,
            "type": "realtime",
            "keywords": None,
            "group": "市容环境",
        },
        {
            "service_code": "PH1",
            "service_name": "路面坑洞",
            "description": "Holes in the road",
            "metadata": True,
            "type": "realtime",
            "keywords": "坑洞,路面",
            "group": "道路",
        },
    ]
    if fmt == "json":
        assert body == expected
    else:
        items = xml_list(body, "services", "service")
        assert items == [
            {k: ("true" if v is True else "false" if v is False else v) for k, v in e.items()} for e in expected
        ]


def test_service_with_only_informational_attributes_has_no_metadata(client, db, w):
    w.litter.attributes = [{"code": "n", "variable": False, "datatype": "string", "order": 1, "description": "x"}]
    db.session.commit()
    litter = next(s for s in client.get(f"{BASE}/services.json").json if s["service_code"] == "LT1")
    assert litter["metadata"] is False


@pytest.mark.parametrize("path", ["services", "service"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_service_definition(client, db, w, fmt, path):
    resp = client.get(f"{BASE}/{path}/PH1.{fmt}")
    assert resp.status_code == 200
    body = parse(resp, fmt)
    if fmt == "json":
        assert body["service_code"] == "PH1"
        attrs = body["attributes"]
        assert [a["code"] for a in attrs] == ["notice", "size", "kinds", "depth", "seen_at", "remark"]
        assert attrs[1] == {
            "variable": True,
            "code": "size",
            "datatype": "singlevaluelist",
            "required": True,
            "datatype_description": None,
            "order": 2,
            "description": "How big?",
            "values": [{"key": "s", "name": "Small"}, {"key": "l", "name": "Large"}],
        }
        assert attrs[0]["variable"] is False and attrs[0]["values"] == []
        assert attrs[3]["datatype_description"] == "a number" and attrs[3]["required"] is False
    else:
        assert body.tag == "service_definition"
        assert body.findtext("service_code") == "PH1"
        attrs = body.findall("attributes/attribute")
        assert [a.findtext("code") for a in attrs] == ["notice", "size", "kinds", "depth", "seen_at", "remark"]
        size = attrs[1]
        assert {k: size.findtext(k) for k in ("variable", "datatype", "required", "order", "description")} == {
            "variable": "true",
            "datatype": "singlevaluelist",
            "required": "true",
            "order": "2",
            "description": "How big?",
        }
        assert size.find("datatype_description").text is None
        assert [(v.findtext("key"), v.findtext("name")) for v in size.findall("values/value")] == [
            ("s", "Small"),
            ("l", "Large"),
        ]
        assert attrs[0].findtext("variable") == "false"


def test_service_definition_without_attributes(client, db, w):
    assert client.get(f"{BASE}/services/LT1.json").json == {"service_code": "LT1", "attributes": []}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("code", ["NOPE", "OLD"])
def test_unknown_or_inactive_service_is_404(client, db, w, fmt, code):
    assert_open311_error(client.get(f"{BASE}/services/{code}.{fmt}"), 404, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("path", ["services/a%00b", "requests/2026%00", "tokens/%00"])
def test_nul_in_the_path_is_400_in_the_open311_form(client, db, w, fmt, path):
    assert "NUL" in assert_open311_error(client.get(f"{BASE}/{path}.{fmt}"), 400, fmt)


@pytest.mark.parametrize(
    "path",
    [
        "services.html",
        "services/PH1.csv",
        "services/PH1",
        "services",
        "discovery",
        "requests.yaml",
        "requests/1.txt",
        "tokens/abc",
        "nothing.json",
    ],
)
def test_unknown_format_or_route_is_404_in_the_open311_json_form(client, db, w, path):
    assert_open311_error(client.get(f"{BASE}/{path}"), 404, "json")


def test_405_and_unexpected_errors_use_the_open311_form_and_api_keeps_problem_json(client, db, w, monkeypatch):
    resp = client.delete(f"{BASE}/requests.xml")
    assert_open311_error(resp, 405, "xml")
    assert "POST" in resp.headers["Allow"]

    def boom():
        raise RuntimeError("boom")

    monkeypatch.setattr(open311_service, "services", boom)
    assert_open311_error(client.get(f"{BASE}/services.json"), 500, "json")
    assert_problem(client.get("/api/v1/nothing-here"), 404, "not_found")


# ---- POST requests ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_create_request_files_a_report_as_the_keys_account(client, db, w, fmt):
    before = snapshot(db)
    resp = post(
        client,
        w,
        fmt,
        **pothole_form(
            w,
            **{
                "attribute[kinds][]": ["road", "kerb"],
                "attribute[depth]": "12",
                "attribute[seen_at]": "2026-11-26T09:30:00+08:00",
                "attribute[remark]": "",
                "address_string": "演示路 1 号",
                "address_id": "A-17",
                "zipcode": "100000",
                "email": "li@example.com",
                "phone": "13800138000",
                "first_name": "丽",
                "last_name": "李",
                "device_id": "dev-1",
                "account_id": "acc-9",
                "media_url": "https://img.example.com/p/1.jpg?x=1&y=2",
            },
        ),
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = parse(resp, fmt)
    if fmt == "json":
        assert len(body) == 1
        answer = body[0]
        assert set(answer) == {"service_request_id", "token", "service_notice", "account_id"}
        assert answer["service_notice"] is None and answer["account_id"] == "acc-9"
    else:
        items = xml_list(body, "service_requests", "request")
        assert len(items) == 1
        answer = items[0]
        assert answer["service_notice"] is None and answer["account_id"] == "acc-9"
    report = created(db, answer["service_request_id"])
    assert answer["service_request_id"] == report.case_number
    assert answer["token"] == report.open311_token and len(report.open311_token) == 36
    assert report.reporter_id == w.api_key.user_id
    assert (report.source, report.api_key_id, report.status) == ("open311", w.api_key.id, "submitted")
    assert report.category_id == w.pothole.id and report.cell.code == SW
    assert (report.input_lon, report.input_lat, report.input_crs) == (*SW_POINT, "wgs84")
    assert report.description == "垃圾 <堆> & 异味"
    assert (report.address, report.address_id, report.zipcode) == ("演示路 1 号", "A-17", "100000")
    assert (report.contact_email, report.contact_phone, report.contact_first_name, report.contact_last_name) == (
        "li@example.com",
        "13800138000",
        "丽",
        "李",
    )
    assert (report.device_id, report.account_id) == ("dev-1", "acc-9")
    assert report.media_url == "https://img.example.com/p/1.jpg?x=1&y=2"
    assert report.attributes == {
        "size": "l",
        "kinds": ["road", "kerb"],
        "depth": 12,
        "seen_at": "2026-11-26T09:30:00+08:00",
    }
    assert report.open311_token
    events = db.session.scalars(select(CaseEvent).where(CaseEvent.report_id == report.id)).all()
    assert [(e.action, e.to_status, e.actor_id) for e in events] == [("create", "submitted", w.api_key.user_id)]
    assert snapshot(db)[:2] == (before[0] + 1, before[1] + 1)
    assert db.session.get(ApiKey, w.api_key.id).last_used_at is not None


def test_api_key_in_the_query_string(client, db, w):
    resp = client.post(
        f"{BASE}/requests.json",
        query_string={"api_key": w.key},
        data={"service_code": "LT1", "lat": "39.905", "long": "116.405"},
    )
    assert resp.status_code == 200
    report = created(db, resp.json[0]["service_request_id"])
    assert report.description == "" and report.attributes is None and report.media_url is None


def test_empty_parameters_are_absent(client, db, w):
    resp = post(
        client,
        w,
        email="",
        phone="",
        first_name="",
        media_url="",
        address_string="",
        address_id="",
        device_id="",
        account_id="",
        **{"attribute[x]": ""},
    )
    assert resp.status_code == 200, resp.json
    assert resp.json[0]["account_id"] is None
    report = created(db, resp.json[0]["service_request_id"])
    assert (report.contact_email, report.media_url, report.address, report.account_id) == (None,) * 4


def test_description_of_4000_characters_is_accepted(client, db, w):
    resp = post(client, w, description="长" * 4000)
    assert resp.status_code == 200
    assert created(db, resp.json[0]["service_request_id"]).description == "长" * 4000


def test_a_point_outside_the_grid_goes_to_triage_with_a_notice(client, db, w):
    resp = post(client, w, long=str(FAR_POINT[0]), lat=str(FAR_POINT[1]))
    assert resp.status_code == 200
    notice = resp.json[0]["service_notice"]
    assert notice == "该位置不在任何网格内；将由监督员人工分派。"
    report = created(db, resp.json[0]["service_request_id"])
    assert report.needs_triage and report.cell_id is None


def test_auto_accept_category_starts_the_clock_and_dispatches(client, db, w):
    w.litter.auto_accept = True
    db.session.commit()
    resp = post(client, w)
    report = created(db, resp.json[0]["service_request_id"])
    assert report.status == "assigned" and report.assignee_id == w.worker.id
    assert report.deadline_at is not None


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("key", ["missing", "empty", "wrong", "revoked"])
def test_missing_wrong_or_revoked_key_is_403_and_files_nothing(client, db, w, fmt, key):
    if key == "revoked":
        key_service.revoke_key(w.api_key)
        db.session.commit()
    before = snapshot(db)
    value = {"missing": None, "empty": "", "wrong": w.key[:-2] + "zz", "revoked": w.key}[key]
    assert_open311_error(post(client, w, fmt, api_key=value), 403, fmt)
    assert snapshot(db) == before


BAD_INPUTS = {
    "no service_code": dict(service_code=None),
    "unknown service_code": dict(service_code="NOPE"),
    "inactive service_code": dict(service_code="OLD"),
    "no location": dict(lat=None, long=None),
    "address_string only": dict(lat=None, long=None, address_string="演示路 1 号"),
    "address_id only": dict(lat=None, long=None, address_id="A-17"),
    "lat without long": dict(long=None),
    "long without lat": dict(lat=""),
    "lat above 90": dict(lat="90.5"),
    "lat below -90": dict(lat="-91"),
    "long above 180": dict(long="180.01"),
    "long not a number": dict(long="east"),
    "lat NaN": dict(lat="nan"),
    "long infinite": dict(long="inf"),
    "description over 4000": dict(description="x" * 4001),
    "NUL in the description": dict(description="a\x00b"),
    "NUL in a contact field": dict(first_name="\x00"),
    "media_url ftp": dict(media_url="ftp://example.com/a.jpg"),
    "media_url not a URL": dict(media_url="not a url"),
    "media_url javascript": dict(media_url="javascript:alert(1)"),
    "media_url without host": dict(media_url="http:///a.jpg"),
    "media_url too long": dict(media_url="https://example.com/" + "a" * 1990),
    "bad email": dict(email="not-an-email"),
    "first_name too long": dict(first_name="x" * 101),
    "phone too long": dict(phone="1" * 33),
    "address_string too long": dict(address_string="x" * 501),
    "unknown attribute": dict(**{"attribute[colour]": "red"}),
}
POTHOLE_BAD_INPUTS = {
    "missing required attribute": {"attribute[size]": None},
    "value not in the list": {"attribute[size]": "huge"},
    "two values for a single list": {"attribute[size]": ["s", "l"]},
    "multi value not in the list": {"attribute[kinds][]": ["road", "sky"]},
    "number not a number": {"attribute[depth]": "deep"},
    "number infinite": {"attribute[depth]": "inf"},
    "bad datetime": {"attribute[seen_at]": "yesterday"},
    "datetime at the end of the calendar": {"attribute[seen_at]": "9999-12-31T23:59:59-05:00"},
    "informational attribute sent": {"attribute[notice]": "hello"},
    "text too long": {"attribute[remark]": "x" * 4001},
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_rejected_inputs_are_400_and_file_nothing(client, db, w, case):
    before = snapshot(db)
    description = assert_open311_error(post(client, w, **BAD_INPUTS[case]), 400)
    assert snapshot(db) == before
    if "address" in case and "only" in case:
        assert "地理编码" in description


@pytest.mark.parametrize("case", list(POTHOLE_BAD_INPUTS))
def test_rejected_attributes_are_400_and_file_nothing(client, db, w, case):
    before = snapshot(db)
    assert_open311_error(post(client, w, **pothole_form(w, **POTHOLE_BAD_INPUTS[case])), 400)
    assert snapshot(db) == before


def test_rejections_answer_in_xml_when_asked(client, db, w):
    before = snapshot(db)
    assert_open311_error(post(client, w, "xml", lat="100"), 400, "xml")
    assert snapshot(db) == before


def test_oversized_form_is_413_in_the_open311_form(client, db, w):
    before = snapshot(db)
    assert_open311_error(post(client, w, description="x" * (1024 * 1024 + 10)), 413)
    assert snapshot(db) == before


def test_posts_are_throttled_per_api_key(app, client, db, w, monkeypatch):
    from app.extensions import limiter

    monkeypatch.setitem(app.config, "OPEN311_RATE_LIMIT", "2 per minute")
    limiter.reset()
    try:
        assert post(client, w).status_code == 200
        assert post(client, w).status_code == 200
        before = snapshot(db)
        assert_open311_error(post(client, w), 429)
        assert snapshot(db) == before
        assert post(client, w, api_key=make_api_key("other").key).status_code == 200
    finally:
        limiter.reset()


# ---- GET requests -----------------------------------------------------------------------------------------------

REQUEST_FIELDS = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
]


def filed(client, w, **overrides) -> Report:
    resp = post(client, w, **overrides)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return created(_db, resp.json[0]["service_request_id"])


# What the public view carries of a request (app.services.public_view), in GeoReport's order.
PUBLIC_REQUEST_FIELDS = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "lat",
    "long",
]


def cell_point(cell) -> tuple[float, float]:
    """The point inside a cell the public view shows (GEOS's point on surface, as the databases compute it)."""
    point = to_shape(cell.geom).representative_point()
    return round(point.x, 7), round(point.y, 7)


def expected_request(report: Report, *, status="open", notes="已收到，等待审核。", full=True) -> dict:
    """A request as the key that filed it sees it (full), or as anyone else does (its public view)."""
    out = {
        "service_request_id": report.case_number,
        "status": status,
        "status_notes": notes,
        "service_name": report.category.name,
        "service_code": report.category.code,
        "description": report.description,
        "agency_responsible": report.handling_cell.name if report.handling_cell else None,
        "service_notice": None,
        "requested_datetime": local(report.created_at),
        "updated_datetime": local(report.updated_at),
        "expected_datetime": local(report.deadline_at) if report.deadline_at else None,
        "address": report.address,
        "address_id": report.address_id,
        "zipcode": report.zipcode,
        "lat": report.input_lat,
        "long": report.input_lon,
        "media_url": report.media_url,
    }
    if full:
        return out
    out["long"], out["lat"] = cell_point(report.handling_cell)
    return {name: out[name] for name in PUBLIC_REQUEST_FIELDS}


def as_xml_text(expected: dict) -> dict:
    return {k: (None if v is None else str(v)) for k, v in expected.items()}


def readers(w) -> dict[str, dict]:
    """The query of each kind of Open311 reader: the key that filed, another key, nobody."""
    return {"owner": {"api_key": w.key}, "other_key": {"api_key": make_api_key("other app").key}, "anonymous": {}}


@pytest.mark.parametrize("reader", ["owner", "other_key", "anonymous"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_get_one_request_field_by_field_without_personal_data(client, db, w, fmt, reader):
    """The key that filed a request reads it in full; anyone else its public view (no description, address,
    media or exact point); nobody ever its contact."""
    report = filed(
        client,
        w,
        address_string="演示路 <1> 号",
        address_id="A-1",
        zipcode="100000",
        media_url="https://example.com/a.jpg",
        email="li@example.com",
        phone="13900000001",
        first_name="丽",
        last_name="李",
        device_id="dev-7",
        account_id="acc-7",
        lat="39.9081",
        long="116.4013",
    )
    resp = client.get(
        f"{BASE}/requests/{report.case_number}.{fmt}", query_string={"jurisdiction_id": "", **readers(w)[reader]}
    )
    assert resp.status_code == 200
    body = parse(resp, fmt)
    full = reader == "owner"
    expected = expected_request(report, full=full)
    fields = REQUEST_FIELDS if full else PUBLIC_REQUEST_FIELDS
    assert expected["agency_responsible"] == f"cell {SW}"
    assert expected["requested_datetime"].endswith("+08:00")
    if fmt == "json":
        assert body == [expected]
        assert list(body[0]) == fields
    else:
        items = xml_list(body, "service_requests", "request")
        assert items == [as_xml_text(expected)]
        assert [child.tag for child in body[0]] == fields
    text = resp.get_data(as_text=True)
    secrets = ("li@example.com", "13900000001", "丽", "李", "dev-7", "acc-7", w.api_key.user.username)
    if not full:
        secrets += ("演示路", "A-1", "100000", "example.com/a.jpg", "异味", "39.9081", "116.4013")
    for secret in secrets:
        assert secret not in text


def test_a_public_category_shows_its_description_and_point_to_every_reader(client, db, w):
    w.litter.public = True
    db.session.commit()
    report = filed(client, w, lat="39.9081", long="116.4013", address_string="演示路 1 号")
    body = client.get(f"{BASE}/requests/{report.case_number}.json").json[0]
    assert list(body) == [
        "service_request_id",
        "status",
        "status_notes",
        "service_name",
        "service_code",
        "description",
        "agency_responsible",
        "service_notice",
        "requested_datetime",
        "lat",
        "long",
    ]
    assert (body["description"], body["lat"], body["long"]) == (report.description, 39.9081, 116.4013)


def test_a_wrong_api_key_on_a_read_is_403(client, db, w):
    report = filed(client, w)
    for fmt in FORMATS:
        assert_open311_error(
            client.get(f"{BASE}/requests/{report.case_number}.{fmt}", query_string={"api_key": "g311_nope"}), 403, fmt
        )
        assert_open311_error(client.get(f"{BASE}/requests.{fmt}", query_string={"api_key": "g311_nope"}), 403, fmt)


def test_characters_xml_cannot_carry_are_replaced_in_xml_only(client, db, w):
    report = filed(client, w, description="bell\x07 tab\t <b> & \x0b end")
    owner = {"api_key": w.key}
    xml = parse(client.get(f"{BASE}/requests/{report.case_number}.xml", query_string=owner), "xml")
    assert xml.find("request/description").text == "bell\ufffd tab\t <b> & \ufffd end"
    assert (
        client.get(f"{BASE}/requests/{report.case_number}.json", query_string=owner).json[0]["description"]
        == "bell\x07 tab\t <b> & \x0b end"
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_request_is_404(client, db, w, fmt):
    report = filed(client, w)
    wrong_day = (report.case_day - timedelta(days=1)).strftime("%Y%m%d") + report.case_number[8:]
    # The last: its id part is beyond every id column (it must not reach the database).
    for number in ("202611270099999", wrong_day, "abc", "20261399" + report.case_number[8:], "202611279999999999"):
        assert_open311_error(client.get(f"{BASE}/requests/{number}.{fmt}"), 404, fmt)


@pytest.mark.parametrize("reader", ["owner", "other_key", "anonymous"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_list_requests_newest_first_in_the_last_90_days(client, db, w, fmt, reader):
    old = filed(client, w)
    set_case(old, created_at=utcnow() - timedelta(days=91))
    first = filed(client, w, service_code="PH1", **{"attribute[size]": "s"})
    second = filed(client, w)
    set_case(first, created_at=utcnow() - timedelta(days=89))
    # Not the key's: every reader gets its public view.
    resident = make_report(w.resident, w.litter, 116.4012, 39.9013)
    set_case(resident, created_at=utcnow() - timedelta(days=88))
    resp = client.get(
        f"{BASE}/requests.{fmt}", query_string={"jurisdiction_id": "", "status": "", **readers(w)[reader]}
    )
    assert resp.status_code == 200
    body = parse(resp, fmt)
    db.session.expire_all()
    full = reader == "owner"
    expected = [
        expected_request(second, full=full),
        expected_request(resident, full=False),
        expected_request(first, full=full),
    ]
    if fmt == "json":
        assert body == expected
    else:
        assert xml_list(body, "service_requests", "request") == [as_xml_text(e) for e in expected]


def ids(resp) -> list[str]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [r["service_request_id"] for r in resp.json]


def test_service_request_id_list_overrides_every_other_filter(client, db, w):
    old, a, b = filed(client, w), filed(client, w), filed(client, w)
    set_case(old, created_at=utcnow() - timedelta(days=400))
    numbers = f"{old.case_number}, {b.case_number},999999999999999"
    resp = client.get(
        f"{BASE}/requests.json",
        query_string={"service_request_id": numbers, "status": "closed", "service_code": "PH1", "start_date": "bad"},
    )
    assert ids(resp) == [b.case_number, old.case_number]
    assert a.case_number not in ids(resp)


def test_service_code_comma_list_and_status(client, db, w):
    litter = filed(client, w)
    pothole = filed(client, w, service_code="PH1", **{"attribute[size]": "s"})
    closed = filed(client, w)
    set_case(closed, status="rejected")
    q = lambda **p: ids(client.get(f"{BASE}/requests.json", query_string=p))  # noqa: E731
    assert q(service_code="PH1") == [pothole.case_number]
    assert q(service_code="PH1,LT1") == [closed.case_number, pothole.case_number, litter.case_number]
    assert q(service_code="NOPE") == []
    assert q(status="open") == [pothole.case_number, litter.case_number]
    assert q(status="closed") == [closed.case_number]
    assert q(status="open,closed") == [closed.case_number, pothole.case_number, litter.case_number]
    assert q(status="closed", service_code="PH1") == []
    closed_one = client.get(f"{BASE}/requests/{closed.case_number}.json").json[0]
    assert (closed_one["status"], closed_one["status_notes"]) == ("closed", "不予受理。")


def test_date_filters(client, db, w):
    a, b, c = filed(client, w), filed(client, w), filed(client, w)
    now = utcnow()
    set_case(a, created_at=now - timedelta(days=100))
    set_case(b, created_at=now - timedelta(days=50))
    q = lambda **p: ids(client.get(f"{BASE}/requests.json", query_string=p))  # noqa: E731
    w3c = lambda moment: local(moment)  # noqa: E731
    assert q(start_date=w3c(now - timedelta(days=120)), end_date=w3c(now - timedelta(days=40))) == [
        b.case_number,
        a.case_number,
    ]
    # Only a start: the 90 days after it; only an end: the 90 days before it.
    assert q(start_date=w3c(now - timedelta(days=101))) == [b.case_number, a.case_number]
    assert q(end_date=w3c(now - timedelta(days=95))) == [a.case_number]
    # UTC "Z", an unencoded "+" that arrived as a space, and a bare local date are all W3C.
    assert q(start_date=(now - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")) == [c.case_number, b.case_number]
    assert q(start_date=w3c(now - timedelta(days=60)).replace("+", " ")) == [c.case_number, b.case_number]
    assert q(start_date=(now - timedelta(days=60)).astimezone(TZ).date().isoformat()) == [c.case_number, b.case_number]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "params",
    [
        {"start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-04-02T00:00:00+08:00"},
        {"start_date": "2026-04-01T00:00:00+08:00", "end_date": "2026-03-01T00:00:00+08:00"},
        {"start_date": "yesterday"},
        {"end_date": "2026-13-01"},
        {"start_date": "2026-01-01T25:00:00+08:00"},
        {"status": "pending"},
        {"status": "open,maybe"},
        {"status": ","},
        # Their conversion to UTC, or the 90 days added to them, would leave the years datetimes can hold.
        {"start_date": "0001-01-01T00:00:00+05:00"},
        {"start_date": "9999-12-31T23:59:59Z"},
        {"end_date": "0001-01-01T00:00:00Z"},
        {"end_date": "9999-12-31T23:59:59-05:00"},
    ],
)
def test_bad_filters_are_400(client, db, w, fmt, params):
    assert_open311_error(client.get(f"{BASE}/requests.{fmt}", query_string=params), 400, fmt)


def test_90_days_exactly_is_accepted(client, db, w):
    resp = client.get(
        f"{BASE}/requests.json",
        query_string={"start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-04-01T00:00:00+08:00"},
    )
    assert resp.status_code == 200


def test_list_is_capped(client, db, w, monkeypatch):
    reports = [filed(client, w) for _ in range(4)]
    monkeypatch.setattr(open311_service, "MAX_REQUESTS", 3)
    assert ids(client.get(f"{BASE}/requests.json")) == [r.case_number for r in reversed(reports)][:3]
    numbers = ",".join(r.case_number for r in reports)
    assert len(ids(client.get(f"{BASE}/requests.json", query_string={"service_request_id": numbers}))) == 3


# ---- tokens -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_token_resolves_to_the_request(client, db, w, fmt):
    report = filed(client, w)
    resp = client.get(f"{BASE}/tokens/{report.open311_token}.{fmt}")
    assert resp.status_code == 200
    body = parse(resp, fmt)
    expected = [{"service_request_id": report.case_number, "token": report.open311_token}]
    assert (body if fmt == "json" else xml_list(body, "service_requests", "request")) == expected
    assert_open311_error(client.get(f"{BASE}/tokens/00000000-0000-0000-0000-000000000000.{fmt}"), 404, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_peer_client_goes_from_the_post_answer_through_its_token_to_the_request(client, db, w, fmt):
    """POST -> token -> tokens/{token} -> requests/{id}, reading each answer as a client would."""
    answer = parse(post(client, w, fmt), fmt)
    token = answer[0]["token"] if fmt == "json" else answer.find("request/token").text
    resolved = parse(client.get(f"{BASE}/tokens/{token}.{fmt}"), fmt)
    number = resolved[0]["service_request_id"] if fmt == "json" else resolved.find("request/service_request_id").text
    request = parse(client.get(f"{BASE}/requests/{number}.{fmt}", query_string={"api_key": w.key}), fmt)
    got = request[0] if fmt == "json" else flat(request.find("request"))
    assert got["service_request_id"] == number and got["description"] == "垃圾 <堆> & 异味"


# ---- the case loop ----------------------------------------------------------------------------------------------


def act(client, db, report, action, user, body=None):
    db.session.expire_all()
    version = db.session.scalar(select(Report.version).where(Report.id == report.id))
    resp = client.post(
        f"/api/v1/reports/{report.id}/actions/{action}",
        json=body or {},
        headers={**auth_header(user), "If-Match": f'"{version}"'},
    )
    assert resp.status_code == 200, resp.json
    return resp


def test_open311_request_follows_the_loop_and_shows_closed(client, db, w):
    number = post(client, w).json[0]["service_request_id"]
    report = created(db, number)
    listed = client.get("/api/v1/reports", headers=auth_header(w.supervisor)).json
    assert [i["id"] for i in listed["items"]] == [report.id]
    item = listed["items"][0]
    assert (item["case_number"], item["source"], item["status"]) == (number, "open311", "submitted")
    assert item["reporter_id"] == w.api_key.user_id
    assert not {"contact_email", "contact_phone", "contact_first_name", "contact_last_name"} & set(item)
    one = lambda: client.get(f"{BASE}/requests/{number}.json", query_string={"api_key": w.key}).json[0]  # noqa: E731
    assert (one()["status"], one()["expected_datetime"]) == ("open", None)

    act(client, db, report, "accept", w.supervisor)
    report = created(db, number)
    assert report.status == "assigned" and report.assignee_id == w.worker.id
    assert one()["expected_datetime"] == local(report.deadline_at)
    assert one()["status_notes"] == "已派遣给网格员。"
    act(client, db, report, "start", w.worker)
    act(client, db, report, "resolve", w.worker, {"note": "已清运 internal detail"})
    assert one()["status"] == "open"
    act(client, db, report, "verify", w.supervisor, {"note": "现场核查通过"})
    closed = one()
    report = created(db, number)
    assert (report.status, closed["status"], closed["status_notes"]) == ("closed", "closed", "已处置并核查通过。")
    assert closed["updated_datetime"] == local(report.updated_at)
    assert "internal detail" not in client.get(f"{BASE}/requests/{number}.xml").get_data(as_text=True)


def test_the_contact_sent_with_a_request_is_personal_data(client, db, w):
    number = post(
        client,
        w,
        email="li@example.com",
        phone="13800138000",
        first_name="小明",
        last_name="李",
        device_id="dev-1",
        account_id="acc-9",
    ).json[0]["service_request_id"]
    report = created(db, number)
    contact = {
        "email": "li@example.com",
        "phone": "13800138000",
        "first_name": "小明",
        "last_name": "李",
        "device_id": "dev-1",
        "account_id": "acc-9",
    }
    for user, shown in ((w.supervisor, True), (w.root, True), (w.worker, False)):
        item = client.get(f"/api/v1/reports/{report.id}", headers=auth_header(user)).json
        assert item["contact"] == (contact if shown else None), user
    listed = client.get("/api/v1/reports", headers=auth_header(w.worker)).json["items"]
    assert [i["contact"] for i in listed] == [None]
    for fmt in FORMATS:
        text = client.get(f"{BASE}/requests/{number}.{fmt}").get_data(as_text=True)
        assert "13800138000" not in text and "li@example.com" not in text


def test_a_report_without_contact_shows_none_even_to_its_supervisor(client, db, w):
    report = make_report(w.resident, w.litter, *SW_POINT)
    assert client.get(f"/api/v1/reports/{report.id}", headers=auth_header(w.supervisor)).json["contact"] is None


def test_reports_filed_through_the_api_say_so(client, db, w):
    report = make_report(w.resident, w.litter, *SW_POINT)
    item = client.get(f"/api/v1/reports/{report.id}", headers=auth_header(w.supervisor)).json
    assert (item["source"], item["media_url"], item["attributes"]) == ("api", None, None)
    assert client.get(f"{BASE}/requests/{report.case_number}.json").json[0]["service_code"] == "LT1"


# ---- categories' attribute definitions --------------------------------------------------------------------------


def test_admin_sets_and_reads_attribute_definitions(client, db, w):
    attrs = [
        {
            "code": "size",
            "datatype": "singlevaluelist",
            "required": True,
            "order": 1,
            "description": "Size",
            "values": [{"key": "s", "name": "Small"}],
        },
        {"code": "note", "datatype": "text", "order": 2, "description": "Note"},
    ]
    resp = client.post(
        "/api/v1/categories",
        headers=auth_header(w.admin),
        json={"code": "NEW1", "name": "n", "group": "g", "time_limit_value": 2, "attributes": attrs},
    )
    assert resp.status_code == 201, resp.json
    stored = resp.json["attributes"]
    assert stored[0] == {**attrs[0], "variable": True, "datatype_description": None}
    assert stored[1] == {**attrs[1], "variable": True, "required": False, "datatype_description": None, "values": []}
    resp = client.patch(
        f"/api/v1/categories/{resp.json['id']}", headers=auth_header(w.admin), json={"attributes": None}
    )
    assert resp.status_code == 200 and resp.json["attributes"] is None
    defs = client.get(f"{BASE}/services/NEW1.json").json
    assert defs["attributes"] == []


@pytest.mark.parametrize(
    "attrs",
    [
        [{"code": "a", "datatype": "colour", "order": 1, "description": "x"}],
        [{"code": "a", "datatype": "singlevaluelist", "order": 1, "description": "x"}],
        [{"code": "a", "datatype": "string", "order": 1, "description": "x", "values": [{"key": "k", "name": "n"}]}],
        [
            {
                "code": "a",
                "datatype": "singlevaluelist",
                "order": 1,
                "description": "x",
                "values": [{"key": "k", "name": "n"}, {"key": "k", "name": "m"}],
            }
        ],
        [
            {"code": "a", "datatype": "string", "order": 1, "description": "x"},
            {"code": "a", "datatype": "text", "order": 2, "description": "y"},
        ],
        [{"code": "bad code", "datatype": "string", "order": 1, "description": "x"}],
        [{"code": "a", "datatype": "string", "order": "1", "description": "x"}],
        [{"code": "a", "datatype": "string", "order": 1, "description": "x", "required": "yes"}],
        [{"code": "a", "datatype": "string", "order": 1}],
        [{"code": "a", "datatype": "string", "order": 1, "description": "x", "colour": "red"}],
        {"code": "a"},
    ],
)
def test_bad_attribute_definitions_are_422_and_change_nothing(client, db, w, attrs):
    before = db.session.scalar(select(Category.attributes).where(Category.id == w.litter.id))
    resp = client.patch(f"/api/v1/categories/{w.litter.id}", headers=auth_header(w.admin), json={"attributes": attrs})
    body = assert_problem(resp, 422, "validation_failed")
    assert "attributes" in body["errors"]
    db.session.expire_all()
    assert db.session.scalar(select(Category.attributes).where(Category.id == w.litter.id)) == before


def test_demo_attributes_are_valid_definitions():
    for attrs in ATTRIBUTES.values():
        AttributeSchema(many=True).load(attrs)


# ---- Idempotency-Key ---------------------------------------------------------------------------------------------


def test_a_retried_request_with_an_idempotency_key_files_one_report(client, db, w):
    headers = {"Idempotency-Key": "civic-app-42"}
    first = client.post(f"{BASE}/requests.json", data=form(w), headers=headers)
    assert first.status_code == 200, first.get_data(as_text=True)
    before = snapshot(db)
    again = client.post(f"{BASE}/requests.json", data=form(w), headers=headers)
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (200, "true")
    assert again.get_data() == first.get_data()
    assert snapshot(db)[:3] == before[:3]
    other = client.post(f"{BASE}/requests.json", data=form(w, description="另一件事"), headers=headers)
    assert other.status_code == 400
    assert "新请求请使用新键" in other.json[0]["description"]
    assert snapshot(db)[:3] == before[:3]


# ---- status_notes and errors in the reader's language -----------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "accept, notes, language",
    [
        (None, "已收到，等待审核。", "zh-CN"),
        ("en", "Received; waiting for review.", "en"),
        ("zh-CN;q=0.4, en-US;q=0.8", "Received; waiting for review.", "en"),
        ("en;q=0.2, zh;q=0.9", "已收到，等待审核。", "zh-CN"),
        ("fr-FR", "已收到，等待审核。", "zh-CN"),
    ],
)
def test_status_notes_follow_accept_language(client, db, w, fmt, accept, notes, language):
    report = filed(client, w)
    headers = {"Accept-Language": accept} if accept else {}
    resp = client.get(f"{BASE}/requests/{report.case_number}.{fmt}", headers=headers)
    assert resp.status_code == 200
    assert (resp.headers["Content-Language"], resp.headers["Vary"]) == (language, "Accept-Language")
    if fmt == "json":
        assert resp.json[0]["status_notes"] == notes
    else:
        assert ET.fromstring(resp.data).find("request/status_notes").text == notes


def test_open311_errors_follow_accept_language(client, db, w):
    zh = client.get(f"{BASE}/requests/999999999.json")
    en = client.get(f"{BASE}/requests/999999999.json", headers={"Accept-Language": "en-GB"})
    assert (zh.status_code, en.status_code) == (404, 404)
    assert zh.json == [{"code": 404, "description": "没有诉求 '999999999'。"}]
    assert en.json == [{"code": 404, "description": "No service request '999999999'."}]
    bad = client.get(f"{BASE}/requests.xml", query_string={"status": "maybe"}, headers={"Accept-Language": "en"})
    assert ET.fromstring(bad.data).find("error/description").text.startswith("status must be open or closed")
