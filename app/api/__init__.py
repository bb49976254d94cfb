"""HTTP blueprints under /api/v1: thin MethodViews that parse, check access and call services."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api
from werkzeug.routing import IntegerConverter

from app.api.openapi import API_PREFIX
from app.models.base import MAX_ID


class IdConverter(IntegerConverter):
    """<int:...> in our URLs is always a row id: 1..MAX_ID, anything else names nothing and is 404.

    It replaces Werkzeug's unbounded int for the whole app, so no route can hand the database an id it
    cannot hold; flask-smorest documents the bounds from the converter."""

    def __init__(self, url_map, *args, **kwargs):
        super().__init__(url_map, min=1, max=MAX_ID)


def register_blueprints(app: Flask, api: Api) -> None:
    # Before any route is added: rules pick their converter class when they are bound.
    app.url_map.converters["int"] = IdConverter
    from app.api import (
        analytics,
        api_keys,
        attachments,
        auth,
        calendar,
        categories,
        cells,
        console,
        docs,
        escalations,
        health,
        notifications,
        observe,
        open311,
        patrols,
        reports,
        residents,
        stats,
        sync,
        tasks,
        users,
        workers,
    )

    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    for module in (
        auth,
        cells,
        categories,
        reports,
        calendar,
        users,
        workers,
        notifications,
        escalations,
        stats,
        analytics,
        residents,
        tasks,
        patrols,
        attachments,
        sync,
        api_keys,
    ):
        api.register_blueprint(module.blp, url_prefix=API_PREFIX)
    app.register_blueprint(open311.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(console.bp)
    # Prometheus's, not the API's: outside /api/v1 and its document.
    app.register_blueprint(observe.bp)
