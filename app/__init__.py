"""Application factory: config, extensions, blueprints, request boundary, CLI."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import dialect, extensions, logs, metrics, redaction
from app.extensions import db, migrate
from app.lib.fastjson import FastJSONProvider
from config import INSTANCE_DIR, PROJECT_ROOT, BaseConfig, load_config


def create_app(config: BaseConfig | str | None = None) -> Flask:
    from app.api import boundary, observe

    app = boundary.GridApp(__name__, instance_path=str(INSTANCE_DIR))
    cfg = config if isinstance(config, BaseConfig) else load_config(config)
    app.config.from_object(cfg)
    app.config["APP_ENV"] = cfg.ENV_NAME
    app.json = FastJSONProvider(app)
    app.json.ensure_ascii = False  # Chinese names stay readable in answers
    logs.configure(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"], app.config["PHONE_PATTERN"])
    # Credentials and phone numbers never reach a log line (werkzeug's request log included).
    redaction.install(app.config["PHONE_PATTERN"])

    register_extensions(app)
    # Before the boundary's hooks, so the request's clock and id cover everything the boundary does.
    observe.install(app)
    register_blueprints(app)
    # After the blueprints: it checks the decorators of every view they added.
    boundary.install(app)
    register_cli(app)
    return app


def register_extensions(app: Flask) -> None:
    from app.api import openapi

    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = dialect.engine_options(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    with app.app_context():
        dialect.install_engine_hooks(app, db.engine)
        metrics.watch_pool(db.engine)
    openapi.api.init_app(app)
    extensions.limiter.init_app(app)
    if app.config["TRUSTED_PROXIES"] > 0:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def register_blueprints(app: Flask) -> None:
    from app.api import openapi, register_blueprints as register

    register(app, openapi.api)


def register_cli(app: Flask) -> None:
    from app.cli import register_commands

    register_commands(app)
