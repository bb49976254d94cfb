"""Process caches of small, rarely changed rows (live logins, active categories), each dropped when its
cache_versions row moves.

Database triggers move a cache's version in the transaction that changes its rows (migration b7e2c41d9a05), so
every path is covered. A request reads the versions once, in one small statement, before it uses a cache, and a
process that finds another version than the one its entries were filled under drops them: a revocation or a
category edit committed by any worker or host is seen by the next request everywhere. Entries are put under the
version read before the rows were, so a change committed in between only makes them dropped at the next read."""

from __future__ import annotations

import threading
from itertools import chain
from typing import Any

from flask import current_app, has_request_context, request
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict, set_committed_value

from app.dialect.engine import open_write_transactions_with, raw_rows
from app.extensions import db

AUTH, ASSIGNMENTS, CATEGORIES, CELLS = "auth", "assignments", "categories", "cells"
_READ = "SELECT name, version FROM cache_versions"
# Where a request keeps the versions it read: the request's own environ (g outlives a request when the tests hold
# one app context around several).
_ENVIRON_KEY = "grid.cache_versions"


class VersionedCache:
    """key -> value, valid under one version of its cache_versions row; at most max_entries (then emptied)."""

    def __init__(self, name: str, max_entries: int = 100_000) -> None:
        self.name, self.max_entries = name, max_entries
        self._lock = threading.Lock()
        self._version: int | None = None
        self._entries: dict[Any, Any] = {}

    def _sync(self, version: int | None) -> dict[Any, Any] | None:
        if version is None:
            return None
        if self._version != version:
            with self._lock:
                if self._version != version:
                    self._entries, self._version = {}, version
        return self._entries

    def get(self, key: Any) -> Any:
        entries = self._sync(current_version(self.name))
        return None if entries is None else entries.get(key)

    def entries(self) -> dict[Any, Any]:
        """Every entry valid under the current version, to look many up at once (read only: fill with put_many)."""
        return self.entries_under(current_version(self.name))

    def entries_under(self, version: int | None) -> dict[Any, Any]:
        """entries, under a version the caller has read already (outside a request each read is a query)."""
        return self._sync(version) or {}

    def put_many(self, items: dict[Any, Any], version: int | None) -> None:
        """put for many entries read under one version."""
        if version is None:
            return
        with self._lock:
            if self._version != version:
                return
            if len(self._entries) + len(items) > self.max_entries:
                self._entries = {}
            self._entries.update(items)

    def put(self, key: Any, value: Any, version: int | None) -> None:
        """Keep value under the version read before it was (None: read none, keep nothing)."""
        if version is None:
            return
        with self._lock:
            if self._version != version:
                return
            if len(self._entries) >= self.max_entries:
                self._entries = {}
            self._entries[key] = value

    def clear(self) -> None:
        with self._lock:
            self._entries, self._version = {}, None


def cache(name: str, part: str = "", max_entries: int = 100_000) -> VersionedCache:
    """The app's cache `name` (one per app and process: each gunicorn worker has its own); a `part` is a store of
    its own, with its own bound, dropped with the same version."""
    caches = current_app.extensions.setdefault("grid.versioned_caches", {})
    found = caches.get((name, part))
    if found is None:
        found = caches.setdefault((name, part), VersionedCache(name, max_entries))
    return found


def current_version(name: str) -> int | None:
    """The cache's version as this request's transaction sees it, read once per request (again after a write of
    the request's own)."""
    if not has_request_context():
        return _read_versions().get(name)
    if _ENVIRON_KEY not in request.environ:
        # A write request's transaction opens with the read (_take_opening_read): once begun, it may be here.
        db.session.connection()
    memo = request.environ.get(_ENVIRON_KEY)
    if memo is None:
        memo = request.environ[_ENVIRON_KEY] = _read_versions()
    return memo.get(name)


def _read_versions() -> dict[str, int]:
    # Through the driver's cursor: SQLAlchemy's execution path cost more than this statement, sent every request.
    return {row[0]: row[1] for row in raw_rows(_READ, ())}


def _take_opening_read(rows: list[tuple]) -> None:
    if has_request_context():
        request.environ[_ENVIRON_KEY] = {row[0]: row[1] for row in rows}


# On PostgreSQL a write request's BEGIN carries the read (app.dialect.engine): one round trip for both.
open_write_transactions_with(_READ, _take_opening_read)


# The tables whose triggers move a version (migrations b7e2c41d9a05, c4d8e1f27a36 and e2b7c9d4a613): only a
# request's write to one of them makes it read the versions again; filing a case or acting on one writes none.
WATCHED_TABLES = frozenset({"users", "auth_sessions", "categories", "cells", "worker_cells"})


def _forget_versions() -> None:
    if has_request_context():
        request.environ.pop(_ENVIRON_KEY, None)


@event.listens_for(Session, "after_flush")
def _after_flush(session, _context) -> None:
    # After a flush the session's new, dirty and deleted still list what it wrote.
    for obj in chain(session.new, session.dirty, session.deleted):
        if any(table.name in WATCHED_TABLES for table in inspect(obj).mapper.tables):
            _forget_versions()
            return


@event.listens_for(Session, "do_orm_execute")
def _after_dml(state) -> None:
    if state.is_select:
        return
    written = getattr(getattr(state.statement, "table", None), "name", None)
    # Text and other statements that name no table might write anything.
    if written is None or written in WATCHED_TABLES:
        _forget_versions()


def snapshot(obj: Any) -> dict[str, Any]:
    """The column values of a loaded ORM object, to rebuild it later with `attach`."""
    state = inspect(obj)
    return {attr.key: state.dict[attr.key] for attr in state.mapper.column_attrs if attr.key in state.dict}


def attach(model: type, values: dict[str, Any]) -> Any:
    """The row as a persistent object of the request's session, without a query: the session's own when it holds
    it already, else one built from `values` (as a query would have loaded it; unloaded attributes load lazily)."""
    mapper = inspect(model)
    key = mapper.identity_key_from_primary_key(
        [values[mapper.get_property_by_column(c).key] for c in mapper.primary_key]
    )
    existing = db.session.identity_map.get(key)
    if existing is not None:
        return existing
    obj = mapper.class_manager.new_instance()
    columns = _column_keys(mapper)
    # A column's value goes straight into the new instance's dict, as the ORM's loading does (make_transient_to_detached
    # then marks them all committed); set_committed_value for each of a report's 60 columns cost more than its query.
    loaded = instance_dict(obj)
    for name, value in values.items():
        if name in columns:
            loaded[name] = value
        else:
            set_committed_value(obj, name, value)
    make_transient_to_detached(obj)
    db.session.add(obj)
    return obj


_COLUMN_KEYS: dict[Any, frozenset[str]] = {}


def _column_keys(mapper) -> frozenset[str]:
    found = _COLUMN_KEYS.get(mapper)
    if found is None:
        found = _COLUMN_KEYS[mapper] = frozenset(attr.key for attr in mapper.column_attrs)
    return found
