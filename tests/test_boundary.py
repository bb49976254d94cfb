"""The request boundary: markers read from the view, @idempotent's place checked, error forms by path prefix."""

from __future__ import annotations

import re

import pytest
from flask import Flask, Response, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from app.api import boundary, open311
from app.api.access import auth_required
from app.api.attachments import multipart_only
from app.api.idempotency import idempotent
from tests.assertions import assert_problem
from tests.factories import auth_header, make_user
from tests.test_open311 import assert_open311_error

PROBE = Blueprint("probe", __name__)


class ProbeIn(Schema):
    name = fields.String()


def stack(*decorators):
    """A view under the decorators as they would be written above it, outermost first."""

    def view(*_args, **_kwargs):
        return "ok"

    for decorator in reversed(decorators):
        view = decorator(view)
    return view


def view_stack(*markers_at, position: int):
    decorators = [auth_required(), idempotent, PROBE.arguments(ProbeIn), PROBE.response(200)]
    decorators[position:position] = markers_at
    return stack(*decorators)


# ---- markers --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("position", range(5))
def test_a_marker_is_seen_wherever_it_sits_among_the_decorators(position):
    view = view_stack(boundary.body_limit("GRID_IMPORT_MAX_BYTES"), boundary.accepts_multipart, position=position)
    assert view.body_limit == "GRID_IMPORT_MAX_BYTES"
    assert view.accepts_multipart is True
    assert view.idempotent is True


@pytest.mark.parametrize(
    "url, method, limit",
    [
        ("/api/v1/cells/import", "POST", lambda config: config["GRID_IMPORT_MAX_BYTES"]),
        ("/api/v1/reports/1/attachments", "POST", lambda config: config["ATTACHMENT_MAX_BYTES"] + 64 * 1024),
        ("/api/v1/reports/1/attachments", "GET", lambda config: config["MAX_CONTENT_LENGTH"]),
        ("/api/v1/cells", "POST", lambda config: config["MAX_CONTENT_LENGTH"]),
        ("/api/v1/no-such-thing", "POST", lambda config: config["MAX_CONTENT_LENGTH"]),
    ],
    ids=["import", "upload", "photo-list", "unmarked", "no-route"],
)
def test_the_body_limit_is_the_one_the_view_is_marked_with(app, url, method, limit):
    with app.test_request_context(url, method=method):
        boundary.open_request()
        assert request.max_content_length == limit(app.config)


def test_a_body_that_is_not_json_is_415_before_authentication_unless_the_view_accepts_multipart(client):
    plain = {"data": "x", "content_type": "text/plain"}
    assert_problem(client.post("/api/v1/reports", **plain), 415, "unsupported_media_type")
    # The upload judges its body itself, once the caller is known.
    assert_problem(client.post("/api/v1/reports/1/attachments", **plain), 401, "missing_token")


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_the_boundary_finds_every_idempotent_view_the_document_shows(app, client):
    """The host hold of an Idempotency-Key reaches exactly the operations that document the header."""
    spec = client.get("/api/v1/openapi.json").json
    documented = {
        (path, method)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
    }
    marked = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            with app.test_request_context(re.sub(r"<[^>]+>", "1", rule.rule), method=method):
                if getattr(boundary.view_handler(), "idempotent", False):
                    marked.add((_openapi_path(rule.rule), method.lower()))
    assert len(documented) > 20
    assert marked == documented


# ---- @idempotent's place --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "decorators",
    [
        (auth_required(), idempotent, PROBE.doc(security=[]), PROBE.arguments(ProbeIn), PROBE.response(200)),
        (
            boundary.body_limit("X"),
            auth_required(),
            boundary.accepts_multipart,
            idempotent,
            multipart_only,
            PROBE.response(200),
        ),
        (auth_required(), idempotent),
    ],
    ids=["usual", "with-markers", "without-flask-smorest"],
)
def test_idempotent_directly_under_authentication_and_above_flask_smorest_is_accepted(decorators):
    boundary.check_idempotent_position(stack(*decorators), "probe")


@pytest.mark.parametrize(
    "decorators, wrong",
    [
        ((idempotent, auth_required(), PROBE.arguments(ProbeIn), PROBE.response(200)), "directly under"),
        ((idempotent, PROBE.arguments(ProbeIn), PROBE.response(200)), "directly under"),
        ((auth_required(), multipart_only, idempotent, PROBE.response(200)), "directly under"),
        ((PROBE.response(200), auth_required(), idempotent, PROBE.arguments(ProbeIn)), "above flask-smorest"),
        ((PROBE.arguments(ProbeIn), auth_required(), idempotent), "above flask-smorest"),
    ],
    ids=["above-auth", "without-auth", "not-directly-under", "under-the-response", "under-the-arguments"],
)
def test_idempotent_anywhere_else_stops_the_app(decorators, wrong):
    with pytest.raises(TypeError, match=wrong):
        boundary.check_idempotent_position(stack(*decorators), "probe")


def test_every_idempotent_view_of_the_app_is_in_its_place(app):
    boundary.check_view_decorators(app)


def test_the_boundary_needs_its_app_class():
    with pytest.raises(TypeError, match="GridApp"):
        boundary.install(Flask(__name__))


# ---- error forms by path prefix ---------------------------------------------------------------------------------


def test_open311_registered_its_error_form_once(app):
    assert app.extensions[boundary.ERROR_FORMS] == [("/open311/", open311.error_response)]


@pytest.mark.parametrize("path, fmt", [("/open311/v3/services.json", "json"), ("/open311/nothing.xml", "xml")])
def test_any_path_under_the_open311_prefix_answers_in_its_form(client, path, fmt):
    assert_open311_error(client.get(path), 404, fmt)


@pytest.mark.parametrize("path", ["/open311", "/open311v2/services.json", "/api/v1/open311/v2/services.json"])
def test_a_path_under_no_registered_prefix_answers_problem_json(client, path):
    assert_problem(client.get(path), 404, "not_found")


def test_a_registered_form_writes_every_error_under_its_prefix(app, client, monkeypatch):
    seen = []

    def render(status, detail, headers):
        seen.append((status, detail, headers))
        return Response(f"error {status}", status=status, mimetype="text/plain")

    monkeypatch.setitem(
        app.extensions, boundary.ERROR_FORMS, [*app.extensions[boundary.ERROR_FORMS], ("/elsewhere/", render)]
    )
    resp = client.get("/elsewhere/x")
    assert (resp.status_code, resp.mimetype, resp.get_data(as_text=True)) == (404, "text/plain", "error 404")
    assert [status for status, _, _ in seen] == [404]
    assert_problem(client.get("/elsewhere"), 404, "not_found")
    assert_open311_error(client.get("/open311/v3/services.json"), 404, "json")


# ---- query parameters: declared ones only on /api/v1, Open311 lenient ------------------------------------------


def _operations(app):
    """(method, path with its variables filled) of every /api/v1 operation."""
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or not isinstance(
            app.blueprints.get(rule.endpoint.split(".")[0]), Blueprint
        ):
            continue
        path = re.sub(r"<[^>]+>", "x", re.sub(r"<int:[^>]+>", "1", rule.rule))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path


def test_every_api_operation_refuses_an_unknown_query_parameter(app, client, db):
    admin = make_user("admin")
    operations = list(_operations(app))
    assert len(operations) > 60 and ("GET", "/api/v1/reports/1") in operations
    for method, path in operations:
        resp = client.open(path, method=method, headers=auth_header(admin), query_string={"no_such_param": "1"})
        problem = assert_problem(resp, 422, "validation_failed")
        assert problem["errors"] == {"no_such_param": ["未知的查询参数。"]}, (method, path)
        assert "no_such_param" in problem["detail"], (method, path)


def test_an_unknown_parameter_is_refused_beside_known_ones_and_named_in_english(client, db):
    admin = make_user("admin")
    resp = client.get(
        "/api/v1/reports",
        headers={**auth_header(admin), "Accept-Language": "en"},
        query_string={"status": "submitted", "casenumber": "202611270000001", "page": 1},
    )
    problem = assert_problem(resp, 422, "validation_failed")
    assert problem["detail"] == "Unknown query parameter: casenumber."
    assert problem["errors"] == {"casenumber": ["Unknown query parameter."]}


def test_a_repeated_query_parameter_is_refused_not_cut_to_its_first_value(client, db):
    admin = make_user("admin")
    headers = {**auth_header(admin), "Accept-Language": "en"}
    resp = client.get("/api/v1/reports?status=submitted&status=assigned&page=1", headers=headers)
    problem = assert_problem(resp, 422, "validation_failed")
    assert "status" in problem["detail"] and list(problem["errors"]) == ["status"]
    # The one way to ask for several: comma-separated.
    assert client.get("/api/v1/reports?status=submitted,assigned", headers=headers).status_code == 200
    # Open311 keeps its lenient rule.
    assert client.get("/open311/v2/requests.json?status=open&status=closed").status_code == 200


@pytest.mark.parametrize(
    "path, query",
    [
        ("/api/v1/reports", {"page": 2, "page_size": 5, "status": "submitted", "case_number": "202611270000001"}),
        ("/api/v1/escalations", {"page": 1, "page_size": 10, "escalation_level": "community"}),
        ("/api/v1/categories", {"page": 1, "page_size": 10}),
        ("/api/v1/me/tasks", {"status": "assigned"}),
    ],
)
def test_declared_parameters_keep_working(client, db, path, query):
    admin = make_user("admin")
    resp = client.get(path, headers=auth_header(admin), query_string=query)
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_a_parameter_another_operation_takes_is_still_unknown_here(client, db):
    admin = make_user("admin")
    # page belongs to the list, not to the map (at most 5,000 points, no pages).
    resp = client.get("/api/v1/reports.geojson", headers=auth_header(admin), query_string={"page": 1})
    assert assert_problem(resp, 422, "validation_failed")["errors"] == {"page": ["未知的查询参数。"]}


def test_open311_and_the_docs_ignore_unknown_parameters(client, db):
    resp = client.get("/open311/v2/services.json", query_string={"no_such_param": "1", "jurisdiction_id": "x"})
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert client.get("/api/v1/openapi.json", query_string={"no_such_param": "1"}).status_code == 200
    assert client.get("/api/v1/docs", query_string={"no_such_param": "1"}).status_code == 200


def test_each_arguments_schema_is_one_instance_and_each_request_loads_afresh(app, client, db):
    # webargs would build the schema per request; our parser keeps one per class. What one request sent (or got
    # wrong) never reaches the next.
    from app.api.openapi import Blueprint as OurBlueprint
    from app.schemas.reports import ReportListArgs

    parser = OurBlueprint.ARGUMENTS_PARSER
    with app.test_request_context():
        assert parser._get_schema(ReportListArgs, request) is parser._get_schema(ReportListArgs, request)
    headers = auth_header(make_user("admin"))
    bad = client.get("/api/v1/reports", query_string={"near": "116.4,39.9"}, headers=headers)
    assert "radius" in assert_problem(bad, 422, "validation_failed")["errors"]
    good = client.get("/api/v1/reports", query_string={"near": "116.4,39.9", "radius": 10}, headers=headers)
    assert good.status_code == 200 and good.json["items"] == []
    assert client.get("/api/v1/reports", query_string={"status": "closed"}, headers=headers).status_code == 200
