"""HTTP blueprints under /api/v1: thin MethodViews that parse, check access and call services."""
from __future__ import annotations

from flask import Flask
from flask_smorest import Api

API_PREFIX = "/api/v1"
BEARER = [{"bearerAuth": []}]


def register_blueprints(app: Flask, api: Api) -> None:
    from app.api import (analytics, api_keys, attachments, auth, calendar, categories, cells, docs, escalations,
                         health, notifications, open311, patrols, reports, residents, stats, sync, tasks, users,
                         workers)

    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    for module in (auth, cells, categories, reports, calendar, users, workers, notifications, escalations, stats,
                   analytics, residents, tasks, patrols, attachments, sync, api_keys):
        api.register_blueprint(module.blp, url_prefix=API_PREFIX)
    app.register_blueprint(open311.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(docs.bp)
