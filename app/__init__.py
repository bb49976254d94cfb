"""Application factory: config, extensions, blueprints, errors, request boundary, CLI."""
from __future__ import annotations

import logging

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from app import dialect, extensions, redaction
from app.errors import register_error_handlers
from app.extensions import db, migrate
from config import INSTANCE_DIR, PROJECT_ROOT, BaseConfig, load_config

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
JSON_BODY_METHODS = {"POST", "PUT", "PATCH"}


class GridApp(Flask):
    """Flask with one transaction per request, committed where the view's errors are still handled."""

    def dispatch_request(self):
        response = self.make_response(super().dispatch_request())
        # Committing here rather than in after_request lets a failing commit (a unique race, say)
        # reach the registered error handlers and become a proper problem+json.
        if request.method in WRITE_METHODS and response.status_code < 400:
            db.session.commit()
        return response


def create_app(config: BaseConfig | str | None = None) -> Flask:
    app = GridApp(__name__, instance_path=str(INSTANCE_DIR))
    cfg = config if isinstance(config, BaseConfig) else load_config(config)
    app.config.from_object(cfg)
    app.config["APP_ENV"] = cfg.ENV_NAME
    app.json.ensure_ascii = False  # Chinese names stay readable in answers
    logging.basicConfig(level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Credentials and phone numbers never reach a log line (werkzeug's request log included).
    redaction.install(app.config["PHONE_PATTERN"])

    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_request_boundary(app)
    register_cli(app)
    return app


def register_extensions(app: Flask) -> None:
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = dialect.engine_options(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    with app.app_context():
        dialect.install_engine_hooks(app, db.engine)
    extensions.api.init_app(app)
    extensions.limiter.init_app(app)
    if app.config["TRUSTED_PROXIES"] > 0:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def register_blueprints(app: Flask) -> None:
    from app.api import register_blueprints as register

    register(app, extensions.api)


def register_request_boundary(app: Flask) -> None:
    """Body checks before the view; whatever a request left uncommitted is rolled back after it; every answer's
    security headers (app/api/headers.py), errors and static files included."""
    from app.api.attachments import is_upload, upload_body_limit
    from app.api.cells import import_body_limit
    from app.api.headers import set_security_headers
    from app.api.idempotency import hold_before_auth, release_after_request
    from app.api.inputs import check_inputs
    from app.errors import problem_response

    @app.before_request
    def _check_body():
        import_body_limit()
        if is_upload():
            # Multipart, not JSON: the view checks the body's type once the caller is known.
            upload_body_limit()
        elif request.method in JSON_BODY_METHODS and request.path.startswith("/api/") and \
                (request.content_length or request.headers.get("Transfer-Encoding")) and not request.is_json:
            return problem_response(415, "unsupported_media_type", "Unsupported Media Type",
                                    "Send the body as application/json.")
        check_inputs()
        return None

    app.before_request(hold_before_auth)
    app.teardown_request(release_after_request)

    @app.after_request
    def _rollback_leftovers(response):
        db.session.rollback()
        return response

    app.after_request(set_security_headers)

    @app.after_request
    def _no_type_without_content(response):
        # A 204 or 304 has no content to describe (RFC 9110), and the API document declares none for them.
        if response.status_code in (204, 304):
            response.headers.pop("Content-Type", None)
        return response


def register_cli(app: Flask) -> None:
    from app.cli import register_commands

    register_commands(app)
