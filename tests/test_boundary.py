"""The request boundary: error forms by path prefix."""
from __future__ import annotations

import pytest
from flask import Response

from app.api import boundary, open311
from tests.assertions import assert_problem
from tests.test_open311 import assert_open311_error


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

    monkeypatch.setitem(app.extensions, boundary.ERROR_FORMS,
                        [*app.extensions[boundary.ERROR_FORMS], ("/elsewhere/", render)])
    resp = client.get("/elsewhere/x")
    assert (resp.status_code, resp.mimetype, resp.get_data(as_text=True)) == (404, "text/plain", "error 404")
    assert [status for status, _, _ in seen] == [404]
    assert_problem(client.get("/elsewhere"), 404, "not_found")
    assert_open311_error(client.get("/open311/v3/services.json"), 404, "json")
