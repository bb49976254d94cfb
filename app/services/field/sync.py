"""The sync feed: what changed in the caller's scope since a cursor, read from the trigger-written change log."""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    func,
    inspect,
    literal,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.orm import aliased

from app.dialect import sync_log
from app.errors import InvalidCursor
from app.extensions import db
from app.lib.i18n import tr
from app.models import CaseEvent, Notification, Report, User
from app.models.sync import CASE, EVENT, NOTIFICATION, SyncChange
from app.services.cases.reports import visibility
from app.services.cases.rows import report_rows
from app.services.public import view as public_view

PRUNE_BATCH = 10_000
# Up to this many visible reports, a page is read report by report rather than by walking the log.
SMALL_SCOPE = 2_000
# A cursor with fewer change rows than this after it walks them (a poll nearly caught up).
WALK_ROWS = 5_000
CURSOR_PREFIX = "v1."
_POSITION = struct.Struct(">qq")


@dataclass(frozen=True)
class Change:
    type: str
    id: int
    data: Any


@dataclass(frozen=True)
class SyncPage:
    changes: list[Change]
    next_cursor: str
    has_more: bool


def encode_cursor(xid: int, seq: int) -> str:
    return CURSOR_PREFIX + base64.urlsafe_b64encode(_POSITION.pack(xid, seq)).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """The (xid, seq) position of a cursor from encode_cursor; anything else is InvalidCursor."""
    if not cursor.startswith(CURSOR_PREFIX):
        raise InvalidCursor(tr("Unknown cursor version; start again without a cursor."))
    body = cursor[len(CURSOR_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor(tr("The cursor is not valid base64url.")) from exc
    if len(raw) != _POSITION.size or encode_cursor(*_POSITION.unpack(raw)) != cursor:
        raise InvalidCursor(tr("The cursor is damaged."))
    xid, seq = _POSITION.unpack(raw)
    if xid < 0 or seq < 0:
        raise InvalidCursor(tr("The cursor is damaged."))
    return xid, seq


def _position_after(row, position) -> ColumnElement[bool]:
    return tuple_(row.xid, row.seq) > tuple_(*position)


def _superseded(same_entity: Callable[[Any], ColumnElement[bool]]) -> ColumnElement[bool]:
    """A later row of the same case or notification exists: the client gets its latest state from that one.

    Skipping such a row loses nothing: the later row lies after it, so after any cursor before it, and it
    is handed out now or, while an older transaction is still open, at a later poll."""
    later = aliased(SyncChange)
    return exists().where(
        same_entity(later),
        later.entity_id == SyncChange.entity_id,
        _position_after(later, (SyncChange.xid, SyncChange.seq)),
    )


# Matching on report_id or user_id as well lets the look-ups use the partial indexes.
def _case_superseded() -> ColumnElement[bool]:
    return _superseded(lambda later: and_(later.report_id == SyncChange.report_id, later.kind == CASE))


def _notification_superseded() -> ColumnElement[bool]:
    return _superseded(lambda later: later.user_id == SyncChange.user_id)


def _small_scope(user: User) -> list[int] | None:
    """The ids of the reports the caller may see when there are at most SMALL_SCOPE of them, else None."""
    scope = select(Report.id).where(visibility(user))
    # Whether there is a report past SMALL_SCOPE, as one row: a large scope's 2,001 ids cost more to fetch than to
    # count, every page of its sync.
    if db.session.scalar(scope.offset(SMALL_SCOPE).limit(1)) is not None:
        return None
    return list(db.session.scalars(scope))


def _few_rows_between(after: ColumnElement[bool], ready: ColumnElement[bool]) -> bool:
    """Fewer than WALK_ROWS change rows of anyone's lie between the cursor and the horizon (an index count)."""
    window = select(SyncChange.seq).where(after, ready).limit(WALK_ROWS).subquery()
    return db.session.scalar(select(func.count()).select_from(window)) < WALK_ROWS


def _scoped_changes(user: User, position: tuple[int, int] | None, horizon: tuple[int, int], limit: int) -> Select:
    """The next `limit` change rows of the caller's scope after `position` and up to `horizon`, oldest first,
    latest rows only.

    Two branches, each cut at `limit`: cases and events of the reports the caller may see (visibility is
    the one rule GET /reports uses), and the caller's own notifications. A poll that is nearly caught up
    walks the few log rows after its cursor. Further behind, a small scope (a worker's cells, a community)
    starts from its reports' own rows (the report_id index): walking the whole log and dropping other
    people's rows cost a grid worker over a second per page (`make bench-field`); a large scope walks,
    since most rows are its own."""
    after = _position_after(SyncChange, (literal(position[0]), literal(position[1]))) if position else true()
    ready = tuple_(SyncChange.xid, SyncChange.seq) <= tuple_(literal(horizon[0]), literal(horizon[1]))
    order = (SyncChange.xid, SyncChange.seq)
    latest = or_(SyncChange.kind == EVENT, ~_case_superseded())
    report_ids = None if _few_rows_between(after, ready) else _small_scope(user)
    if report_ids is not None:
        cases = (
            select(SyncChange)
            .where(SyncChange.report_id.in_(report_ids), after, ready, latest)
            .order_by(*order)
            .limit(limit)
        )
    else:
        cases = (
            select(SyncChange)
            .join(Report, Report.id == SyncChange.report_id)
            .where(visibility(user), after, ready, latest)
            .order_by(*order)
            .limit(limit)
        )
    notifications = (
        select(SyncChange)
        .where(SyncChange.user_id == user.id, after, ready, ~_notification_superseded())
        .order_by(*order)
        .limit(limit)
    )
    # Each branch as a subquery: SQLite allows no ORDER BY or LIMIT on a bare member of a UNION.
    both = union_all(select(cases.subquery()), select(notifications.subquery())).subquery()
    row = aliased(SyncChange, both)
    # Plain rows: a page reads four values of each (ORM objects cost a tenth of the request).
    return select(row.kind, row.entity_id, row.xid, row.seq).order_by(row.xid, row.seq).limit(limit)


def _load(model, ids: set[int], *extra) -> dict[int, Any]:
    if not ids:
        return {}
    stmt = select(model)
    return {item.id: item for item in db.session.scalars(stmt.where(model.id.in_(ids), *extra)).unique()}


_EVENT_KEYS = tuple(attr.key for attr in inspect(CaseEvent).column_attrs)


def _load_events(ids: set[int]) -> dict[int, SimpleNamespace]:
    """Events as plain rows (a page of 200 as ORM objects cost a tenth of the sync request): only shown, never
    changed."""
    if not ids:
        return {}
    stmt = select(*[getattr(CaseEvent, key) for key in _EVENT_KEYS]).where(CaseEvent.id.in_(ids))
    return {row[0]: SimpleNamespace(**dict(zip(_EVENT_KEYS, row, strict=True))) for row in db.session.execute(stmt)}


def _id(item: Any) -> int:
    return item["id"] if isinstance(item, dict) else item.id


def changes_since(user: User, cursor: str | None, limit: int) -> SyncPage:
    """A page of the caller's changes after `cursor` (None: from the beginning), cases at their latest state.

    A case changed several times is listed once, where it last changed; one that changes again later
    comes again on a later page."""
    position = decode_cursor(cursor) if cursor is not None else None
    horizon = sync_log.sync_horizon(SyncChange.seq)
    rows = db.session.execute(_scoped_changes(user, position, horizon, limit + 1)).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    ids = {kind: {row.entity_id for row in rows if row.kind == kind} for kind in (CASE, EVENT, NOTIFICATION)}
    # Read now: a case shows its current state, which may be newer than the row (its newer row comes later).
    events = public_view.events_for(user, _load_events(ids[EVENT]).values())
    cases = public_view.present_all(user, report_rows(sorted(ids[CASE]), visibility(user)))
    items = {
        CASE: {case.id: case for case in cases},
        # Residents get the public history, as from GET /reports/{id}/events.
        EVENT: {_id(event): event for event in events},
        NOTIFICATION: _load(Notification, ids[NOTIFICATION], Notification.user_id == user.id),
    }
    changes = [
        Change(row.kind, row.entity_id, items[row.kind][row.entity_id])
        for row in rows
        if row.entity_id in items[row.kind]
    ]
    if has_more:
        next_position = (rows[-1].xid, rows[-1].seq)
    else:
        # Everything of the caller's up to the horizon has been handed out, and nothing written later can land
        # before it: the next poll starts there, reading only what is new (never moving back).
        next_position = max(horizon, position or (0, 0))
    next_cursor = encode_cursor(*next_position)
    return SyncPage(changes=changes, next_cursor=next_cursor, has_more=has_more)


def prune_batch(before: datetime, limit: int = PRUNE_BATCH) -> int:
    """Delete up to `limit` rows older than `before` that a later row of the same case or notification
    supersedes; the caller commits and repeats while this returns `limit`.

    The feed skips such rows anyway, and events (never superseded) and every entity's latest row stay, so
    no cursor, however old, loses anything: cursors never expire. Several runs at once are safe."""
    doomed = (
        select(SyncChange.seq)
        .where(
            SyncChange.changed_at < before,
            or_(
                and_(SyncChange.kind == CASE, _case_superseded()),
                and_(SyncChange.kind == NOTIFICATION, _notification_superseded()),
            ),
        )
        .limit(limit)
    )
    stmt = delete(SyncChange).where(SyncChange.seq.in_(doomed.scalar_subquery()))
    return db.session.execute(stmt.execution_options(synchronize_session=False, preserve_rowcount=True)).rowcount
