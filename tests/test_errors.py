"""Cross-cutting HTTP behaviour: problem+json for 404, 405 and unhandled errors; the OpenAPI document and docs."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    TimeoutError as PoolTimeout,
)

from app.api.inputs import TEXT_ERROR
from app.models import CaseEvent, Report
from app.schemas.common import MAX_ID
from app.services.cases import categories as category_service
from tests.assertions import assert_problem
from tests.factories import auth_header, make_case, make_category, make_test_grid, make_user

PROBLEM = "application/problem+json"


# ---- 404 and 405 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/no-such-thing", "/nowhere", "/api/v1/reports/not-a-number", "/api/v2/reports"]
)
def test_unknown_url_is_404_problem(client, path):
    problem = assert_problem(client.get(path), 404, "not_found")
    assert problem["instance"] == path


def test_unknown_url_with_a_body_is_still_404(client):
    assert_problem(client.post("/api/v1/no-such-thing", json={"a": 1}), 404, "not_found")


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("delete", "/api/v1/reports", {"GET", "POST"}),
        ("put", "/api/v1/categories", {"GET", "POST"}),
        ("get", "/api/v1/auth/login", {"POST"}),
        ("post", "/api/v1/reports/1", {"GET"}),
        ("get", "/api/v1/categories/1", {"PATCH"}),
    ],
)
def test_wrong_method_is_405_with_allow(client, method, path, allowed):
    resp = getattr(client, method)(path)
    assert_problem(resp, 405, "method_not_allowed")
    allow = {m.strip() for m in resp.headers["Allow"].split(",")}
    assert allowed <= allow
    assert allow - allowed <= {"HEAD", "OPTIONS"}


# ---- ids beyond the id columns ------------------------------------------------------------------
# Ids are INTEGER columns (32 bits on PostgreSQL): a larger number names no row and must not reach the database.

TOO_LARGE = [MAX_ID + 1, 2**63, 10**30]


@pytest.fixture()
def admin_headers(db):
    return auth_header(make_user("admin"))


@pytest.mark.parametrize("value", [0, MAX_ID, *TOO_LARGE])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/reports/{}",
        "/api/v1/reports/{}/events",
        "/api/v1/reports/{}/attachments",
        "/api/v1/reports/1/attachments/{}",
        "/api/v1/cells/{}",
        "/api/v1/users/{}",
        "/api/v1/cells/{}/reports/summary",
    ],
)
def test_a_path_id_outside_the_id_range_names_nothing(client, admin_headers, path, value):
    resp = client.get(path.format(value), headers=admin_headers)
    assert resp.status_code == 404 and resp.mimetype == PROBLEM, resp.get_data(as_text=True)


@pytest.mark.parametrize("value", TOO_LARGE)
@pytest.mark.parametrize(
    "url, name",
    [
        ("/api/v1/reports?cell_id={}", "cell_id"),
        ("/api/v1/reports?assignee_id={}", "assignee_id"),
        ("/api/v1/reports?within={}", "within"),
        ("/api/v1/cells?parent_id={}", "parent_id"),
        ("/api/v1/users?cell_id={}", "cell_id"),
        ("/api/v1/workers?cell={}", "cell"),
        ("/api/v1/patrols/coverage?cell={}", "cell"),
        ("/api/v1/analytics/hotspots?cell={}", "cell"),
    ],
)
def test_a_query_id_outside_the_id_range_is_422(client, admin_headers, url, name, value):
    problem = assert_problem(client.get(url.format(value), headers=admin_headers), 422, "validation_failed")
    assert name in problem["errors"]


@pytest.mark.parametrize(
    "action, body",
    [
        ("assign", {"assignee_id": 2**63}),
        ("reroute", {"cell_id": 2**63}),
        ("mark_duplicate", {"duplicate_of": MAX_ID + 1}),
    ],
)
def test_a_body_id_outside_the_id_range_is_422_and_changes_nothing(client, db, action, body):
    cells = make_test_grid()
    admin = make_user("admin")
    report = make_case(make_user("resident"), make_category(), cells["11010500100101"])
    before = (report.status, report.version)
    resp = client.post(
        f"/api/v1/reports/{report.id}/actions/{action}",
        json=body,
        headers={**auth_header(admin), "If-Match": f'"{report.version}"'},
    )
    problem = assert_problem(resp, 422, "validation_failed")
    assert set(problem["errors"]) == set(body)
    db.session.expire_all()
    assert (db.session.get(Report, report.id).status, db.session.get(Report, report.id).version) == before
    assert db.session.scalar(select(func.count()).select_from(CaseEvent)) == 0


# ---- times at the ends of the calendar -------------------------------------------------------------
# Python's datetimes hold years 1 to 9999: a time whose conversion to UTC or to TIMEZONE (or a window derived
# from it) would leave them is refused by the one datetime rule, wherever a time or a date is taken.

EDGE_TIMES = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]


@pytest.mark.parametrize("value", EDGE_TIMES)
@pytest.mark.parametrize(
    "query, name",
    [
        ("/api/v1/reports?created_from={}", "created_from"),
        ("/api/v1/reports?created_to={}", "created_to"),
        ("/api/v1/reports.geojson?created_from={}", "created_from"),
        ("/api/v1/analytics/hotspots?from={}", "from"),
        ("/api/v1/analytics/heatmap?to={}", "to"),
        ("/api/v1/analytics/trend?to={}", "to"),
        ("/api/v1/stats/summary?cell=110105&from={}&to=2026-01-01T00:00:00Z", "from"),
        ("/api/v1/stats/summary?cell=110105&from=2026-01-01T00:00:00Z&to={}", "to"),
    ],
)
def test_a_time_at_the_ends_of_the_calendar_is_422(client, admin_headers, query, name, value):
    resp = client.get(query.format(quote(value)), headers=admin_headers)
    assert name in assert_problem(resp, 422, "validation_failed")["errors"]


@pytest.mark.parametrize("body", [{"valid_from": "0001-01-01"}, {"valid_to": "9999-12-31"}])
def test_a_date_at_the_ends_of_the_calendar_is_422_and_assigns_nothing(client, db, body):
    cells = make_test_grid()
    worker = make_user("worker")
    url = f"/api/v1/cells/{cells['11010500100101'].id}/workers"
    headers = auth_header(make_user("admin"))
    problem = assert_problem(
        client.post(url, headers=headers, json={"user_id": worker.id, **body}), 422, "validation_failed"
    )
    assert set(problem["errors"]) == set(body)
    assert client.get(url, headers=headers).json["total"] == 0
    assert_problem(client.get(f"{url}?on=0001-01-01", headers=headers), 422, "validation_failed")


# ---- text and JSON the database or the parser cannot take -----------------------------------------
# One rule at the boundary: no NUL (PostgreSQL text cannot hold it) and no lone surrogate (no UTF-8 for it) in
# any key or string of the body, the query, a form or the path; JSON nested deeper than 64 levels is malformed.


def _post_report(client, headers, body: str):
    return client.post("/api/v1/reports", data=body, headers={**headers, "Content-Type": "application/json"})


def _report_body(**fields) -> dict:
    return {"category_code": "T1", "description": "x", "location": {"lon": 116.405, "lat": 39.905}, **fields}


@pytest.fixture()
def filing(db):
    make_test_grid()
    make_category("T1")
    return auth_header(make_user("resident"))


def _stored(db) -> tuple[int, int]:
    return (
        db.session.scalar(select(func.count()).select_from(Report)),
        db.session.scalar(select(func.count()).select_from(CaseEvent)),
    )


@pytest.mark.parametrize(
    "body, field",
    [
        (_report_body(description="a\x00b"), "description"),
        (_report_body(description="\ud800"), "description"),
        (_report_body(address="ok \udfff"), "address"),
        (_report_body(location={"lon": 116.405, "lat": 39.905, "crs": "wgs\x0084"}), "location.crs"),
        ({**_report_body(), "n\x00te": 1}, "n\ufffdte"),
    ],
    ids=["nul", "lone-high-surrogate", "lone-low-surrogate", "nested", "key"],
)
def test_nul_or_a_lone_surrogate_in_a_json_body_is_422_and_changes_nothing(client, db, filing, body, field):
    # json.dumps escapes both (\u0000, \ud800), as any client's JSON encoder may.
    problem = assert_problem(_post_report(client, filing, json.dumps(body)), 422, "validation_failed")
    assert problem["errors"] == {field: [TEXT_ERROR.render("zh-CN")]}
    assert _stored(db) == (0, 0)


@pytest.mark.parametrize(
    "url, name",
    [
        ("/api/v1/users?q=a%00b", "q"),
        ("/api/v1/reports?category=%00", "category"),
        ("/api/v1/reports?x%00=1", "x\ufffd"),
    ],
)
def test_nul_in_the_query_string_is_422(client, admin_headers, url, name):
    problem = assert_problem(client.get(url, headers=admin_headers), 422, "validation_failed")
    assert problem["errors"] == {name: [TEXT_ERROR.render("zh-CN")]}


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        json.dumps(_report_body(location=[[[[[[[[]]]]]]]])).replace("[]", "[" * 60 + "]" * 60),
        '{"description": "\xff\xfe"}'.encode("latin-1"),
    ],
    ids=["past-the-recursion-limit", "past-64-levels", "not-utf-8"],
)
def test_a_json_body_too_deep_or_not_utf8_is_400_malformed_json_and_changes_nothing(client, db, filing, body):
    assert_problem(_post_report(client, filing, body), 400, "malformed_json")
    assert _stored(db) == (0, 0)


def test_a_json_body_64_levels_deep_is_parsed(client, filing):
    body = json.dumps(_report_body(location=[])).replace("[]", "[" * 63 + "]" * 63)
    problem = assert_problem(_post_report(client, filing, body), 422, "validation_failed")
    assert "location" in problem["errors"]


def test_openapi_documents_the_id_range(client):
    spec = client.get("/api/v1/openapi.json").json
    (param,) = spec["paths"]["/api/v1/reports/{report_id}"]["parameters"]
    assert param["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_ID}


@pytest.mark.parametrize("idempotency_key", [None, "k-1"])
def test_a_form_part_without_a_usable_name_is_400_and_stores_nothing(client, db, idempotency_key):
    """Werkzeug names such a part None, which no schema, error map or Idempotency-Key fingerprint can take."""
    cells = make_test_grid()
    report = make_case(make_user("resident"), make_category(), cells["11010500100101"])
    boundary = "b25f"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="0"\r\n\r\n{{}}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="h\\"\r\n\r\nx\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="stage"\r\n\r\nafter\r\n--{boundary}--\r\n'
    )
    headers = {**auth_header(make_user("admin")), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    resp = client.post(f"/api/v1/reports/{report.id}/attachments", data=body.encode(), headers=headers)
    assert_problem(resp, 400, "malformed_form")
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(CaseEvent)) == 0


def test_a_problem_whose_errors_mix_key_types_is_still_written(app):
    """marshmallow keys list items by int; the one handler must write any error map it is given."""
    from app.api.boundary import handle_domain_error
    from app.errors import ValidationFailed

    with app.test_request_context("/api/v1/x"):
        resp = handle_domain_error(ValidationFailed(errors={"points": {0: ["bad"], "_schema": ["worse"]}, None: ["?"]}))
    assert resp.status_code == 422
    assert json.loads(resp.get_data())["errors"] == {"points": {"0": ["bad"], "_schema": ["worse"]}, "null": ["?"]}


# ---- repeated and array-valued query parameters ---------------------------------------------------


def test_repeated_or_array_valued_query_parameters_get_a_clean_answer(client, db):
    """Every documented query parameter of every GET, sent twice with clashing values or as `name[]`."""
    cells = make_test_grid()
    headers = auth_header(make_user("admin"))
    spec = client.get("/api/v1/openapi.json").json
    ids = {"report_id": 1, "cell_id": cells["110105"].id, "user_id": 1, "attachment_id": 1, "day": "2026-01-01"}
    checked = 0
    for path, item in spec["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        url = re.sub(r"{(\w+)}", lambda m: str(ids[m.group(1)]), path)
        for param in (p for p in operation.get("parameters", []) if p["in"] == "query"):
            name = param["name"]
            for query in (f"{name}=1&{name}=x", f"{name}[]=1&{name}[]=2", f"{name}=&{name}=1"):
                resp = client.get(f"{url}?{query}", headers=headers)
                assert resp.status_code < 500, (url, query, resp.get_data(as_text=True))
                assert resp.status_code < 400 or resp.mimetype == PROBLEM, (url, query)
                checked += 1
    assert checked > 100


# ---- answers without content ---------------------------------------------------------------------


def test_a_204_answer_carries_no_content_type(client, db):
    """The document declares no content for a 204, so the answer must not claim a media type either."""
    from tests.factories import make_api_key, make_assignment, tokens_for

    cells = make_test_grid()
    admin = make_user("admin")
    headers = auth_header(admin)
    grid = cells["11010500100101"]
    leaf = make_user("worker")
    answers = [
        client.delete(f"/api/v1/api-keys/{make_api_key('k').api_key.id}", headers=headers),
        client.delete(f"/api/v1/cells/{grid.id}/workers/{make_assignment(leaf, grid).id}", headers=headers),
        client.delete(f"/api/v1/cells/{cells['11010500100104'].id}", headers=headers),
        client.post("/api/v1/auth/logout", json={"refresh_token": tokens_for(admin).refresh_token}),
    ]
    for resp in answers:
        assert resp.status_code == 204, resp.get_data(as_text=True)
        assert resp.data == b"" and "Content-Type" not in resp.headers, resp.headers


# ---- unhandled errors ---------------------------------------------------------------------------
# The session's app has served requests, so Flask no longer lets a test add a route to it; a service
# function that raises stands in for a bug.


def _boom(*_args, **_kwargs):
    raise RuntimeError("secret internals: password=hunter2")


def test_unhandled_exception_is_500_problem_without_internals(client, monkeypatch):
    monkeypatch.setattr(category_service, "active_categories_query", _boom)
    resp = client.get("/api/v1/categories")
    problem = assert_problem(resp, 500, "internal_error")
    assert "hunter2" not in resp.get_data(as_text=True)
    assert "RuntimeError" not in resp.get_data(as_text=True)
    assert problem["instance"] == "/api/v1/categories"


def test_unhandled_exception_after_a_flush_writes_nothing(client, db, monkeypatch):
    """The report and its event are flushed before the failure; the 500 must roll both back."""
    make_test_grid()
    category = make_category()
    headers = auth_header(make_user("resident"))
    real_flush = db.session.flush

    def flush_then_fail(*args, **kwargs):
        real_flush(*args, **kwargs)
        raise RuntimeError("failed after the flush")

    monkeypatch.setattr(db.session, "flush", flush_then_fail)
    resp = client.post(
        "/api/v1/reports",
        headers=headers,
        json={"category_code": category.code, "description": "x", "location": {"lon": 116.405, "lat": 39.905}},
    )
    monkeypatch.undo()
    assert_problem(resp, 500, "internal_error")
    assert db.session.scalar(select(func.count()).select_from(Report)) == 0
    assert db.session.scalar(select(func.count()).select_from(CaseEvent)) == 0


def test_database_outage_is_503_with_retry_after(client, monkeypatch):
    def down(*_a, **_k):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(category_service, "active_categories_query", down)
    resp = client.get("/api/v1/categories")
    assert_problem(resp, 503, "database_unavailable")
    assert resp.headers["Retry-After"] == "5"
    assert "connection refused" not in resp.get_data(as_text=True)


def _lost_connection():
    # What SQLAlchemy raises when the server closed the connection under a statement (a restart).
    return DBAPIError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True)


@pytest.mark.parametrize(
    "error",
    [
        _lost_connection,
        lambda: InterfaceError("SELECT 1", {}, Exception("the connection is closed")),
        lambda: PoolTimeout("QueuePool limit of size 10 overflow 10 reached"),
    ],
    ids=["connection_invalidated", "interface_error", "pool_timeout"],
)
def test_a_lost_or_exhausted_database_is_503_with_retry_after(client, monkeypatch, error):
    def down(*_a, **_k):
        raise error()

    monkeypatch.setattr(category_service, "active_categories_query", down)
    resp = client.get("/api/v1/categories")
    assert_problem(resp, 503, "database_unavailable")
    assert resp.headers["Retry-After"] == "5"


def test_a_write_that_loses_the_database_is_503_and_keeps_nothing(client, db, monkeypatch):
    category = make_category()
    headers = auth_header(make_user("resident"))
    real_flush = db.session.flush

    def flush_then_lose(*args, **kwargs):
        real_flush(*args, **kwargs)
        raise _lost_connection()

    monkeypatch.setattr(db.session, "flush", flush_then_lose)
    resp = client.post(
        "/api/v1/reports",
        headers={**headers, "Idempotency-Key": "lost-db-1"},
        json={"category_code": category.code, "description": "x", "location": {"lon": 116.405, "lat": 39.905}},
    )
    monkeypatch.undo()
    assert_problem(resp, 503, "database_unavailable")
    assert resp.headers["Retry-After"] == "5"
    assert db.session.scalar(select(func.count()).select_from(Report)) == 0


def test_another_driver_error_is_a_500_not_an_outage(client, monkeypatch):
    def bug(*_a, **_k):
        raise ProgrammingError("SELEC 1", {}, Exception("syntax error"))

    monkeypatch.setattr(category_service, "active_categories_query", bug)
    assert_problem(client.get("/api/v1/categories"), 500, "internal_error")


def test_integrity_race_is_409(client, db, monkeypatch):
    admin = make_user("admin")

    def race(*_a, **_k):
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    monkeypatch.setattr(category_service, "create_category", race)
    resp = client.post(
        "/api/v1/categories",
        headers=auth_header(admin),
        json={"code": "0999", "name": "n", "group": "g", "time_limit_value": 1},
    )
    assert_problem(resp, 409, "conflict")


# ---- OpenAPI and docs ---------------------------------------------------------------------------


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def _api_rules(app):
    # The document itself and the docs page with its script and Swagger UI's files are no API operations.
    return [
        r
        for r in app.url_map.iter_rules()
        if r.rule.startswith("/api/v1/") and r.rule != "/api/v1/openapi.json" and not r.rule.startswith("/api/v1/docs")
    ]


def test_openapi_documents_every_endpoint_and_method(app, client):
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    spec = resp.json
    assert spec["openapi"].startswith("3.")
    rules = _api_rules(app)
    assert len(rules) >= 10  # auth, cells, categories, reports
    documented = {}
    for rule in rules:
        path = _openapi_path(rule.rule)
        assert path in spec["paths"], f"{rule.rule} is not documented"
        methods = {m.lower() for m in rule.methods} - {"head", "options"}
        operations = {k for k in spec["paths"][path] if k in {"get", "post", "put", "patch", "delete"}}
        assert methods == operations, (rule.rule, methods, operations)
        documented[path] = methods
    # And nothing is documented that the app does not serve.
    assert set(spec["paths"]) == set(documented)
    for path, item in spec["paths"].items():
        for method in documented[path]:
            operation = item[method]
            assert any(code.startswith("2") for code in operation["responses"]), (path, method)
            if method in {"post", "patch"}:
                assert "requestBody" in operation, (path, method)


def test_openapi_declares_bearer_auth(client):
    spec = client.get("/api/v1/openapi.json").json
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert spec["paths"]["/api/v1/reports"]["post"]["security"] == [{"bearerAuth": []}]
    assert "security" not in spec["paths"]["/api/v1/auth/login"]["post"]


_REFRESH_CREDENTIAL_OPERATIONS = {("post", "/api/v1/auth/refresh"), ("post", "/api/v1/auth/logout")}


def test_openapi_security_matches_what_the_endpoints_enforce(app, client, db):
    """Every operation that answers 401 without a token says so in the spec, and the other way round."""
    spec = client.get("/api/v1/openapi.json").json
    for rule in _api_rules(app):
        path = _openapi_path(rule.rule)
        url = re.sub(r"<(?:[a-z]+:)?[a-z_]+>", "1", rule.rule)
        for method in {m.lower() for m in rule.methods} - {"head", "options"}:
            kwargs = {"json": {}} if method in {"post", "patch", "put"} else {}
            resp = getattr(client, method)(url, **kwargs)
            declared = spec["paths"][path][method].get("security") == [{"bearerAuth": []}]
            if (method, path) in _REFRESH_CREDENTIAL_OPERATIONS:
                # Their credential is the refresh token (body or HttpOnly cookie), not a bearer token: none is 401.
                assert resp.status_code == 401 and not declared, (method, url, resp.status_code, declared)
                continue
            assert (resp.status_code == 401) == declared, (method, url, resp.status_code, declared)
            if resp.status_code == 401:
                assert resp.mimetype == PROBLEM


def test_every_member_an_error_carries_is_in_the_published_problem_schema(client, db):
    """The Problem schema is closed (additionalProperties false), so each extension member must be declared."""
    cells = make_test_grid()
    admin = make_user("admin")
    report = make_case(make_user("resident"), make_category(), cells["11010500100101"], status="closed")
    headers = auth_header(admin)
    problems = [
        client.post(
            f"/api/v1/reports/{report.id}/actions/accept",
            json={},
            headers={**headers, "If-Match": f'"{report.version}"'},
        ),  # 409: action, case_status
        client.post("/api/v1/categories", json={"code": "x"}, headers=headers),  # 422: errors
        client.post(
            "/api/v1/cells/import",
            headers=headers,  # 422 with a list of bad features
            json={"type": "FeatureCollection", "features": [{"type": "Feature"}]},
        ),
        client.get("/api/v1/reports"),  # 401
        client.delete("/api/v1/reports"),  # 405
    ]
    schema = client.get("/api/v1/openapi.json").json["components"]["schemas"]["Problem"]
    assert schema["additionalProperties"] is False
    declared = set(schema["properties"])
    seen = set()
    for resp in problems:
        assert resp.mimetype == PROBLEM, resp.get_data(as_text=True)
        assert set(resp.json) <= declared, (resp.json, declared)
        seen |= set(resp.json)
    assert {"errors", "action", "case_status"} <= seen


def test_docs_page_is_html(client):
    resp = client.get("/api/v1/docs")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert "<html" in html.lower()
    assert "/api/v1/openapi.json" in html


def test_docs_page_loads_swagger_ui_from_this_server(client):
    html = client.get("/api/v1/docs").get_data(as_text=True)
    assets = re.findall(r'(?:href|src)="([^"]+)"', html)
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-init.js"}
    for asset in assets:
        assert asset.startswith("/api/v1/docs/"), asset
        resp = client.get(asset)
        # Swagger UI's own files are large; our starter script is a few lines.
        assert resp.status_code == 200 and len(resp.data) > (100 if asset.endswith("init.js") else 1000), asset


# ---- problem+json in the request's language ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept, language",
    [
        (None, "zh-CN"),
        ("zh-CN", "zh-CN"),
        ("en", "en"),
        ("en-US,en;q=0.9", "en"),
        ("zh-CN;q=0.3, en;q=0.7", "en"),
        ("en;q=0.3, zh-CN;q=0.7", "zh-CN"),
        ("ja", "zh-CN"),
        ("ja, en;q=0.1", "en"),
        ("en;q=0", "zh-CN"),
    ],
)
def test_title_and_detail_follow_accept_language_and_the_code_stays(client, admin_headers, accept, language):
    headers = {**admin_headers, **({"Accept-Language": accept} if accept else {})}
    resp = client.get("/api/v1/reports/999999", headers=headers)
    problem = assert_problem(resp, 404, "report_not_found")
    assert resp.headers["Content-Language"] == language and "Accept-Language" in resp.headers["Vary"]
    expected = {
        "zh-CN": ("资源不存在", "没有 ID 为 999999 的案件。"),
        "en": ("No such resource", "No report with id 999999."),
    }
    assert (problem["title"], problem["detail"]) == expected[language]


@pytest.mark.parametrize(
    "accept, title, detail",
    [(None, "资源不存在", "此网址下没有内容。"), ("en", "No such resource", "Nothing is found at this URL.")],
)
def test_werkzeugs_own_errors_are_in_the_catalogue_too(client, accept, title, detail):
    resp = client.get("/api/v1/no-such-thing", headers={"Accept-Language": accept} if accept else {})
    problem = assert_problem(resp, 404, "not_found")
    assert (problem["title"], problem["detail"]) == (title, detail)


def test_validation_fields_stay_english_inside_a_translated_problem(client, admin_headers):
    resp = client.post("/api/v1/categories", json={"nonsense": 1}, headers=admin_headers)
    problem = assert_problem(resp, 422, "validation_failed")
    assert (problem["title"], problem["detail"]) == ("请求未通过校验", "一个或多个字段无效；详见 errors。")
    assert problem["errors"]["nonsense"] == ["Unknown field."]


@pytest.mark.parametrize("accept", [None, "en"])
def test_one_problem_code_has_one_title_whoever_raised_it(client, admin_headers, accept):
    """RFC 7807: the title belongs to the problem type. A schema's 422 (webargs), a service's 422 and an unknown
    query parameter's 422 read the same; so do werkzeug's 404 and a service's."""
    headers = {**admin_headers, **({"Accept-Language": accept} if accept else {})}
    by_schema = assert_problem(client.get("/api/v1/reports?status=submited", headers=headers), 422, "validation_failed")
    by_boundary = assert_problem(client.get("/api/v1/reports?bogus=1", headers=headers), 422, "validation_failed")
    by_service = assert_problem(client.get("/api/v1/reports?cell=999999999", headers=headers), 422, "validation_failed")
    assert by_schema["title"] == by_boundary["title"] == by_service["title"]
    by_werkzeug = assert_problem(client.get("/api/v1/no-such-thing", headers=headers), 404, "not_found")
    assert by_werkzeug["title"] == ("No such resource" if accept else "资源不存在")


@pytest.mark.parametrize(
    "accept, detail",
    [
        (None, "状态为「已受理」的案件不能执行「不予受理」。"),
        ("en", "Cannot reject a case that is accepted."),
    ],
)
def test_a_refused_step_names_the_status_and_action_in_the_language(client, db, admin_headers, accept, detail):
    cells = make_test_grid()
    report = make_case(make_user("resident"), make_category(), cells["11010500100101"], status="accepted")
    headers = {**admin_headers, "If-Match": f'"{report.version}"', **({"Accept-Language": accept} if accept else {})}
    resp = client.post(f"/api/v1/reports/{report.id}/actions/reject", json={"reason": "不受理"}, headers=headers)
    problem = assert_problem(resp, 409, "transition_not_allowed")
    assert (problem["detail"], problem["action"], problem["case_status"]) == (detail, "reject", "accepted")


def test_an_unauthenticated_request_hears_chinese_by_default(client):
    problem = assert_problem(client.get("/api/v1/me"), 401, "missing_token")
    assert (problem["title"], problem["detail"]) == ("需要登录认证", "请发送 'Authorization: Bearer <access_token>'。")
