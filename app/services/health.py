"""Whether the database answers and carries the latest migration."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, TimeoutError as PoolTimeout

from app.extensions import db
from app.lib.i18n import Message, tr


@dataclass(frozen=True)
class DatabaseState:
    ready: bool
    detail: Message
    backend: str | None = None
    revision: str | None = None
    head: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("ready", "detail")}


@lru_cache(maxsize=4)
def _migration_head(directory: str) -> str | None:
    cfg = Config()
    cfg.set_main_option("script_location", directory)
    return ScriptDirectory.from_config(cfg).get_current_head()


def database_state(app: Flask) -> DatabaseState:
    head = _migration_head(app.extensions["migrate"].directory)
    try:
        backend = db.session.get_bind().dialect.name
        revision = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        db.session.rollback()
        return DatabaseState(False, tr("The database did not answer: {error}.", error=type(exc).__name__), head=head)
    if revision != head:
        return DatabaseState(
            False,
            tr(
                "The schema is at {revision}, not at the latest migration {head}; run 'flask db upgrade'.",
                revision=revision,
                head=head,
            ),
            backend,
            revision,
            head,
        )
    return DatabaseState(True, tr("ready"), backend, revision, head)


def is_database_unavailable(err: BaseException) -> bool:
    """An outage worth a retry (the server restarting or unreachable, a connection it closed, the pool exhausted),
    as opposed to a bug in a statement."""
    if isinstance(err, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    return isinstance(err, DBAPIError) and err.connection_invalidated
