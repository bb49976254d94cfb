"""Alembic environment: Flask-Migrate's engine, GeoAlchemy2's helpers for spatial columns and indexes."""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app
from geoalchemy2 import alembic_helpers

from app.logs import app_logging_configured

config = context.config
# Run by the app (`flask db upgrade`, the tests), the app's logging (LOG_FORMAT, redaction) stays in place:
# alembic.ini's would replace the root's handlers and level.
if config.config_file_name and not app_logging_configured():
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

target_db = current_app.extensions["migrate"].db


def include_object(obj, name, type_, reflected, compare_to):
    # SpatiaLite's own bookkeeping tables are not ours to manage.
    if type_ == "table" and (
        name.startswith(
            (
                "idx_",
                "spatial",
                "geometry_columns",
                "views_geometry",
                "virts_geometry",
                "sql_statements",
                "ElementaryGeometries",
                "KNN",
                "data_licenses",
                "SpatialIndex",
            )
        )
        or name in {"spatial_ref_sys", "spatial_ref_sys_aux", "sqlite_sequence"}
    ):
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


def run_migrations_online():
    connectable = target_db.engine
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_db.metadata,
            include_object=include_object,
            process_revision_directives=alembic_helpers.writer,
            render_item=alembic_helpers.render_item,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
