"""The only package that knows PostgreSQL + PostGIS from SQLite + SpatiaLite; every dialect branch lives here.

engine: which database and its set-up; spatial: index-backed filters and distances; clustering: DBSCAN hotspots;
queries: SQL each dialect spells its own way; locks: claims, row and named locks; sync_log: the change log's order.
"""

from app.dialect.engine import (
    dialect_name,
    engine_options,
    install_engine_hooks,
    is_postgis,
    is_sqlite_url,
)

__all__ = ["dialect_name", "engine_options", "install_engine_hooks", "is_postgis", "is_sqlite_url"]
