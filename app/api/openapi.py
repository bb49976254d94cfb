"""The OpenAPI document: flask-smorest's Api with problem+json errors, and what every blueprint's docs share."""

from __future__ import annotations

import http
from copy import deepcopy

import flask_smorest
import marshmallow
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from webargs.flaskparser import FlaskParser

from app.schemas.common import PROBLEM_MIMETYPE, ProblemSchema

API_PREFIX = "/api/v1"
BEARER = [{"bearerAuth": []}]


def documents_if_match(required: bool):
    """Declare the If-Match header of a case action, so clients and the fuzz know to send the case's ETag."""
    parameter = {
        "in": "header",
        "name": "If-Match",
        "required": required,
        "schema": {"type": "string"},
        "description": 'The case\'s ETag from GET /reports/{id}, e.g. "3"' + ("." if required else "; optional here."),
    }

    def mark(view):
        # Beside the parameters @idempotent and the arguments add: a manual doc's list would replace theirs.
        view._apidoc = deepcopy(getattr(view, "_apidoc", {}))
        view._apidoc.setdefault("arguments", {}).setdefault("parameters", []).append(parameter)
        return view

    return mark


class KeptSchemaParser(FlaskParser):
    """webargs' parser with one instance of each arguments schema class, made at its first request.

    Why: webargs instantiated the class on every request, and a schema's instance copies every declared field (and
    its nested schemas are built anew): 0.1-0.25 ms a request on the busiest routes (`make bench`). A marshmallow
    schema keeps no state between loads, so one instance serves every request and thread."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._kept: dict[type, marshmallow.Schema] = {}

    def _get_schema(self, argmap, req) -> marshmallow.Schema:
        if isinstance(argmap, type) and issubclass(argmap, marshmallow.Schema):
            found = self._kept.get(argmap)
            return found if found is not None else self._kept.setdefault(argmap, argmap())
        return super()._get_schema(argmap, req)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, parsing arguments with KeptSchemaParser."""

    ARGUMENTS_PARSER = KeptSchemaParser()


class ProblemApi(Api):
    """flask-smorest Api whose errors go through our one handler and are documented as problem+json."""

    def _register_error_handlers(self):
        # The request boundary registers ours instead (app/api/boundary.py).
        pass

    def _register_responses(self):
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if status >= 400:
                response["schema"] = ProblemSchema
            prepare_response(response, self.spec, PROBLEM_MIMETYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "RFC 7807 problem", "schema": ProblemSchema}
        prepare_response(response, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


api = ProblemApi()
