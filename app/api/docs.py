"""The docs page at /api/v1/docs: Swagger UI from the installed package, started by a script file, not inline code."""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, current_app, render_template, send_from_directory, url_for

from app.api.openapi import API_PREFIX

UI_DIR = Path(__file__).parent / "docs_ui"
# Bundled, so the page works without internet access.
DIST = Path(flask_swagger_ui.__file__).parent / "dist"

bp = Blueprint(
    "docs",
    __name__,
    url_prefix=f"{API_PREFIX}/docs",
    static_folder=str(DIST),
    static_url_path="/assets",
    template_folder=str(UI_DIR),
)


@bp.get("")
def page():
    return render_template(
        "page.html",
        title=current_app.config["API_TITLE"],
        spec_url=url_for("api-docs.openapi_json"),
        swagger_ui_url=current_app.config["SWAGGER_UI_URL"],
    )


@bp.get("/swagger-init.js")
def initializer():
    return send_from_directory(UI_DIR, "swagger-init.js", mimetype="text/javascript")
