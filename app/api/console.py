"""The supervisors' console at /console/: the built page (make console) and its settings, served under a strict CSP."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, send_from_directory

# Built by `make console` (esbuild) from console/; git-ignored.
DIST = Path(__file__).resolve().parent.parent / "console_dist"

bp = Blueprint("console", __name__, url_prefix="/console")


def _built(name: str):
    if not (DIST / name).is_file():
        # A checkout whose page was never built: say how, instead of a bare 404.
        return current_app.response_class(
            "The console is not built: run `make console` (or `make run`).\n", status=503, mimetype="text/plain"
        )
    resp = send_from_directory(DIST, name, max_age=0)
    # The page and its bundle change together on a rebuild: revalidate (cheap: ETag) rather than mix versions.
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/")
def page():
    return _built("index.html")


@bp.get("/config.json")
def settings():
    """What the page needs from the service's configuration: the base map and the time zone of its clocks."""
    cfg = current_app.config
    return jsonify(
        {
            "api": "/api/v1",
            "timezone": cfg["TIMEZONE"],
            "tile_url": cfg["CONSOLE_TILE_URL"],
            "tile_attribution": cfg["CONSOLE_TILE_ATTRIBUTION"],
            "tile_crs": cfg["CONSOLE_TILE_CRS"],
        }
    )


@bp.get("/<path:name>")
def asset(name: str):
    if name == "index.html" or not (DIST / name).is_file():
        abort(404)
    return _built(name)
