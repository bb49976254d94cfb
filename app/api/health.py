"""Liveness and readiness probes for load balancers and orchestrators."""

from flask import Blueprint, current_app, jsonify

from app.api.boundary import HTTP_TITLES, problem_response
from app.services.health import database_state

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    state = database_state(current_app)
    if not state.ready:
        return problem_response(503, "not_ready", HTTP_TITLES[503], state.detail, {"database": state.as_dict()})
    return jsonify(status="ready", database=state.as_dict())
