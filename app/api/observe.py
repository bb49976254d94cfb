"""Every request measured and logged on one line under its request id; GET /metrics for Prometheus, behind a token."""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import NotFound

from app import logs, metrics
from app.errors import InvalidToken
from app.extensions import db
from app.services.backlog import backlog_figures

REQUEST_ID_HEADER = "X-Request-ID"
# Logger of the one line per request (app.request), apart from the app's other loggers so it can be routed.
request_log = logging.getLogger("app.request")
log = logging.getLogger(__name__)

bp = Blueprint("observe", __name__)


def install(app: Flask) -> None:
    """Before the boundary's hooks: the clock starts before anything can refuse the request, and (after_request
    running in reverse order) the line is written after the boundary has set the final status and headers."""
    app.before_request(start_request)
    app.after_request(finish_request)
    app.teardown_request(forget_request)


def note_caller(user: Any) -> None:
    """Who is asking, for the request's log line; read while the user row is loaded, not after the rollback."""
    g.log_caller = (user.id, user.role)


def start_request() -> None:
    g.request_started = time.perf_counter()
    g.request_id = logs.accepted_request_id(request.headers.get(REQUEST_ID_HEADER), current_app.config["PHONE_PATTERN"])
    g.request_id_token = logs.current_request_id.set(g.request_id)


def finish_request(response: Response) -> Response:
    started = g.pop("request_started", None)
    if started is None:
        return response
    seconds = time.perf_counter() - started
    response.headers[REQUEST_ID_HEADER] = g.request_id
    # The URL rule, never the path: ids and phone numbers in paths would make a series per value.
    route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    metrics.observe_request(route, request.method, response.status_code, seconds)
    user_id, role = g.get("log_caller", (None, None))
    request_log.info(
        "%s %s %s %.1f ms",
        request.method,
        route,
        response.status_code,
        seconds * 1000,
        extra={
            "route": route,
            "method": request.method,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 3),
            "user_id": user_id,
            "role": role,
        },
    )
    return response


def forget_request(_exc: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        logs.current_request_id.reset(token)


# ---- GET /metrics ----------------------------------------------------------------------------------------------------


@bp.get("/metrics")
def prometheus_metrics():
    """Not part of the API (not in /api/v1's document): 404 unless METRICS_TOKEN is set, then Bearer that token."""
    token = current_app.config["METRICS_TOKEN"]
    if not token:
        raise NotFound()
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
        raise InvalidToken()
    return Response(metrics.render(_scrape_gauges), mimetype=None, content_type=metrics.CONTENT_TYPE)


def _scrape_gauges():
    try:
        figures = [(f.name, f.doc, f.value) for f in backlog_figures()]
        up = 1.0
    except SQLAlchemyError:
        # The scrape still answers (request and pool figures are what shows an outage); the backlog waits.
        log.warning("metrics: the database did not answer the backlog queries", exc_info=True)
        db.session.rollback()
        figures, up = [], 0.0
    return [*figures, ("grid_db_up", "1 when the database answered this scrape's queries.", up)]
