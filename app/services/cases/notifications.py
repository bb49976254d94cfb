"""Notices: who is told of what (NOTICES), written in each recipient's language with the change that causes them."""

from __future__ import annotations

import enum
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    select,
    union,
)
from sqlalchemy.orm import aliased

from app.dialect import queries
from app.dialect.engine import dialect_name
from app.errors import NotFound
from app.extensions import db
from app.lib import i18n
from app.lib.i18n import Message, tr
from app.models import (
    CODE_LENGTHS,
    ESCALATION_LEVELS,
    CaseEvent,
    Category,
    Cell,
    Notification,
    Report,
    ReportFollower,
    Role,
    User,
)
from app.models.base import UTCDateTime, utcnow
from app.models.labels import LEVEL_LABELS

# The columns, in order, that every notice's INSERT ... SELECT fills.
COLUMNS = ("user_id", "report_id", "kind", "title", "body", "data", "dedupe_key", "created_at")
TITLE_LENGTH = 200


class Tell(str, enum.Enum):
    """Who a notice goes to, each rule one SELECT of (report_id, user_id) over the cases told of."""

    # The worker the case is assigned to (after an escalation: the former level's worker, who still has it).
    assignee = "assignee"
    # The reporter when a resident (a worker's own report tells no one this way).
    resident_reporter = "resident_reporter"
    # The residents who follow the case.
    followers = "followers"
    # Every supervisor whose subtree holds the cell now handling the case: its level and every level above.
    subtree_supervisors = "subtree_supervisors"
    # The supervisors of the handling cell itself; when it has none, those of the nearest cell above that has.
    level_supervisors = "level_supervisors"


# Residents learn only what the public view of a case shows: the rules that reach them.
PUBLIC = frozenset({Tell.resident_reporter, Tell.followers})


@dataclass(frozen=True)
class Notice:
    kind: str
    tell: tuple[Tell, ...]
    # Titles and fixed bodies may use {case_number}, {category}, {cell} (the case's grid cell for staff, its
    # handling cell for residents, as the public view shows) and {level} (the escalation level now answering).
    title: Message
    body: Message | None = None
    # The body is the note of the step (to residents only a public note, checked by tests/test_notifications.py).
    note: bool = False

    @property
    def public(self) -> bool:
        return bool(set(self.tell) & PUBLIC)


A, R, F = Tell.assignee, Tell.resident_reporter, Tell.followers
SUBTREE, LEVEL = Tell.subtree_supervisors, Tell.level_supervisors

# The one table of who is told of what, by the step that tells: a case event's action, or a sweep's step
# (remind, escalate, critical) or dispatch finding nobody (unassigned). README's "Notifications" shows it.
# Everyone is told once per (recipient, case, kind, step: the event, or the escalation level for the sweep),
# never the one who acted, and only while their account is active.
NOTICES: dict[str, Notice] = {
    "assign": Notice("case_assigned", (A,), tr("New case for you: {case_number} {category} · {cell}"), note=True),
    "accept": Notice(
        "case_accepted",
        (R,),
        tr("Accepted: {case_number} {category} · {cell}"),
        tr("Your report has been accepted and will be handled within its time limit."),
    ),
    "return": Notice("case_returned", (SUBTREE,), tr("Returned: {case_number} {category} · {cell}"), note=True),
    "request_extension": Notice(
        "extension_requested", (SUBTREE,), tr("Extension requested: {case_number} {category} · {cell}"), note=True
    ),
    "approve_extension": Notice(
        "extension_approved", (A,), tr("Extension approved: {case_number} {category} · {cell}"), note=True
    ),
    "deny_extension": Notice(
        "extension_denied", (A,), tr("Extension denied: {case_number} {category} · {cell}"), note=True
    ),
    "rework": Notice("case_rework", (A,), tr("Rework: {case_number} {category} · {cell}"), note=True),
    "supervise": Notice("supervision", (A,), tr("Supervision: {case_number} {category} · {cell}"), note=True),
    "remind": Notice(
        "reminder",
        (A, SUBTREE),
        tr("Deadline near: {case_number} {category} · {cell}"),
        tr("The deadline at the {level} level is near."),
    ),
    "escalate": Notice(
        "escalation",
        (LEVEL, A),
        tr("Escalated: {case_number} {category} · {cell}"),
        tr("Overdue; escalated to the {level} level."),
    ),
    "critical": Notice(
        "critical",
        (LEVEL,),
        tr("Overdue at the top level: {case_number} {category} · {cell}"),
        tr("Overdue at the {level} level, and there is no level above it."),
    ),
    "unassigned": Notice(
        "case_unassigned",
        (SUBTREE,),
        tr("Waiting for a worker: {case_number} {category} · {cell}"),
        tr("No worker serves {cell} today; assign the case by hand."),
    ),
    "resolve": Notice("case_resolved", (R, F), tr("Resolved: {case_number} {category} · {cell}"), note=True),
    "verify": Notice("case_closed", (R, F), tr("Closed: {case_number} {category} · {cell}"), note=True),
    "close": Notice("case_closed", (R, F), tr("Closed: {case_number} {category} · {cell}"), note=True),
    "reject": Notice("case_rejected", (R, F), tr("Not accepted: {case_number} {category} · {cell}"), note=True),
    "mark_duplicate": Notice(
        "case_duplicate",
        (R, F),
        tr("Duplicate: {case_number} {category} · {cell}"),
        tr("Closed as a duplicate of another case, which is handled instead."),
    ),
    "cancel": Notice(
        "case_cancelled",
        (R, F),
        tr("Cancelled: {case_number} {category} · {cell}"),
        tr("The reporter cancelled the case."),
    ),
}


def announce(event: CaseEvent) -> int:
    """Tell whom NOTICES names of a case event the ORM wrote; the step is the event. 0 when it tells no one."""
    return announce_event(
        event.action, event.report_id, int(event.id), event.created_at, actor_id=event.actor_id, note=event.note
    )


def announce_event(
    action: str, report_id: int, event_id: int, at: datetime, *, actor_id: int | None = None, note: str | None = None
) -> int:
    """announce for an event written without the ORM, from its columns."""
    if action not in NOTICES:
        return 0
    return _write(NOTICES[action], [report_id], at, step=event_id, actor_id=actor_id, note=note)


def announce_case(trigger: str, report: Report, now: datetime, *, actor_id: int | None = None) -> int:
    """Tell whom NOTICES names of a step that writes no event (dispatch found nobody); the step is the case's
    version, so each acceptance tells once."""
    return _write(NOTICES[trigger], [report.id], now, step=int(report.version), actor_id=actor_id)


def announce_batch(trigger: str, report_ids: list[int], now: datetime) -> int:
    """The sweep's notices for a batch of cases, one statement; the step is each case's escalation level, so a
    repeated sweep tells no one twice."""
    return _write(NOTICES[trigger], report_ids, now, step=None)


# ---- writing: one INSERT ... SELECT per notice, each recipient's language chosen in SQL ---------------------


def _text(value: str) -> ColumnElement[str]:
    # Our own catalogue text inlined as a SQL literal: a bind parameter of unknown type inside || or
    # json_build_object leaves PostgreSQL unable to infer its type.
    return literal_column("'" + value.replace("'", "''") + "'", String)


def _render_sql(message: Message, language: str, params: dict[str, Any]) -> ColumnElement[str]:
    """The message in `language` as a SQL string: its literal pieces and its {fields} from `params` (SQL
    expressions, or callables giving one for a language)."""
    pieces: list[ColumnElement[str]] = []
    for literal_text, field, _spec, _conversion in string.Formatter().parse(i18n.translate(message.msgid, language)):
        if literal_text:
            pieces.append(_text(literal_text))
        if field is not None:
            value = params[field]
            pieces.append(value if isinstance(value, ColumnElement) else value(language))
    if not pieces:
        return _text("")
    expr = pieces[0]
    for piece in pieces[1:]:
        expr = expr.concat(piece)
    return expr


def _in_language(message: Message, language: ColumnElement[str], params: dict[str, Any]) -> ColumnElement[str]:
    """The message in the recipient's language: a CASE over users.language, the default language otherwise."""
    rendered = {lang: _render_sql(message, lang, params) for lang in i18n.LANGUAGES}
    return case(
        {lang: expr for lang, expr in rendered.items() if lang != i18n.DEFAULT_LANGUAGE},
        value=language,
        else_=rendered[i18n.DEFAULT_LANGUAGE],
    )


def _batch(step: ColumnElement):
    """The cases told of, with what a notice names, computed once (materialised on PostgreSQL, whose estimate of
    the supervisors' ancestor join would otherwise start from every cell under a supervisor)."""
    handling, grid = aliased(Cell), aliased(Cell)
    return queries.materialized(
        select(
            Report.id.label("report_id"),
            Report.reporter_id.label("reporter_id"),
            Report.assignee_id.label("assignee_id"),
            Report.status.label("status"),
            Report.escalation_level.label("level"),
            step.label("step"),
            queries.case_number(Report.case_day, Report.id).label("case_number"),
            Category.name.label("category"),
            handling.code.label("handling_code"),
            handling.name.label("handling_name"),
            grid.code.label("grid_code"),
            grid.name.label("grid_name"),
        )
        .join(Category, Category.id == Report.category_id)
        .outerjoin(handling, handling.id == Report.handling_cell_id)
        .outerjoin(grid, grid.id == Report.cell_id)
        .where(Report.id.in_(bindparam("report_ids", expanding=True)))
        .cte("batch")
    )


def _supervisors(batch, *, depth: bool = False) -> Select:
    """(report_id, user_id[, depth]): active supervisors whose cell is the handling cell or one of its ancestors,
    each found by one of the handling code's prefixes (an index probe each)."""
    supervised = aliased(Cell)
    lengths = sorted({n for lengths in CODE_LENGTHS.values() for n in lengths})
    prefixes = [func.substr(batch.c.handling_code, 1, n) for n in lengths]
    columns = [batch.c.report_id.label("report_id"), User.id.label("user_id")]
    if depth:
        columns.append(func.length(supervised.code).label("depth"))
    return (
        select(*columns)
        .select_from(batch)
        .join(supervised, supervised.code.in_([*prefixes, batch.c.handling_code]))
        .join(User, User.cell_id == supervised.id)
        .where(User.role == Role.supervisor.value, User.active.is_(True))
    )


def _level_supervisors(batch) -> Select:
    """Of those, the ones whose cell is deepest: the handling cell's own, else the nearest that has any."""
    candidates = _supervisors(batch, depth=True).subquery("candidates")
    ranked = select(
        candidates.c.report_id,
        candidates.c.user_id,
        candidates.c.depth,
        func.max(candidates.c.depth).over(partition_by=candidates.c.report_id).label("deepest"),
    ).subquery("ranked")
    return select(ranked.c.report_id, ranked.c.user_id).where(ranked.c.depth == ranked.c.deepest)


def _assignee(batch) -> Select:
    return select(batch.c.report_id, batch.c.assignee_id.label("user_id")).where(batch.c.assignee_id.is_not(None))


def _resident_reporter(batch) -> Select:
    reporter = aliased(User)
    return (
        select(batch.c.report_id, reporter.id.label("user_id"))
        .join(reporter, reporter.id == batch.c.reporter_id)
        .where(reporter.role == Role.resident.value)
    )


def _followers(batch) -> Select:
    return select(ReportFollower.report_id, ReportFollower.user_id).join(
        batch, batch.c.report_id == ReportFollower.report_id
    )


# Each rule: a SELECT of (report_id, user_id) over the batch of cases.
RULES: dict[Tell, Callable[[Any], Select]] = {
    Tell.assignee: _assignee,
    Tell.resident_reporter: _resident_reporter,
    Tell.followers: _followers,
    Tell.subtree_supervisors: _supervisors,
    Tell.level_supervisors: _level_supervisors,
}


def _write(
    notice: Notice,
    report_ids: Iterable[int],
    now: datetime,
    *,
    step: int | None,
    actor_id: int | None = None,
    note: str | None = None,
) -> int:
    """The notice's rows for the cases, one INSERT ... SELECT; `step` None takes each case's escalation level."""
    stmt = _statement(notice, dialect_name(), step is None, actor_id is not None)
    params: dict[str, Any] = {"report_ids": list(report_ids), "now": now, "note": note or None}
    if step is not None:
        params["step"] = int(step)
    if actor_id is not None:
        params["actor_id"] = actor_id
    return db.session.execute(stmt, params).rowcount


_STATEMENTS: dict[tuple, Any] = {}


def _statement(notice: Notice, dialect: str, step_is_level: bool, with_actor: bool):
    """Built once per process for each notice and form, with bound cases, step, moment, actor and note: building
    the expression (a CASE per language, the rules' union) cost more than running it."""
    key = (id(notice), dialect, step_is_level, with_actor)
    found = _STATEMENTS.get(key)
    if found is None:
        found = _STATEMENTS.setdefault(key, _build(notice, step_is_level, with_actor))
    return found


def _build(notice: Notice, step_is_level: bool, with_actor: bool):
    step = Report.escalation_level if step_is_level else bindparam("step", type_=Integer)
    batch = _batch(step)
    selects = [RULES[rule](batch) for rule in notice.tell]
    recipients = (union(*selects) if len(selects) > 1 else selects[0]).subquery("recipients")
    report_id, user_id = recipients.c
    if notice.public:
        cell_code, cell_name = batch.c.handling_code, batch.c.handling_name
    else:
        cell_code, cell_name = func.coalesce(batch.c.grid_code, batch.c.handling_code), batch.c.grid_name
    params = {
        "case_number": batch.c.case_number,
        "category": batch.c.category,
        "cell": func.coalesce(cell_name, batch.c.handling_name, _text("")),
        "level": lambda language: case(
            {i: _text(LEVEL_LABELS[name].render(language)) for i, name in enumerate(ESCALATION_LEVELS)},
            value=batch.c.level,
            else_=_text(""),
        ),
    }
    if notice.note:
        # NULL without a note (the caller binds None for an empty one).
        body = cast(bindparam("note", type_=Text), Text)
    elif notice.body is not None:
        body = _in_language(notice.body, User.language, params)
    else:
        body = null()
    data = {"case_number": batch.c.case_number, "status": batch.c.status, "cell_code": cell_code}
    if not notice.public:
        data["level"] = batch.c.level
    key = (
        _text(f"{notice.kind}:")
        .concat(cast(batch.c.report_id, String))
        .concat(_text(":"))
        .concat(cast(batch.c.step, String))
        .concat(_text(":"))
        .concat(cast(User.id, String))
    )
    rows = (
        select(
            User.id,
            batch.c.report_id,
            _text(notice.kind),
            func.substr(_in_language(notice.title, User.language, params), 1, TITLE_LENGTH),
            body,
            queries.json_object(**data),
            key,
            bindparam("now", type_=UTCDateTime()),
        )
        .select_from(recipients)
        .join(batch, batch.c.report_id == report_id)
        .join(User, User.id == user_id)
        # A WHERE clause also keeps SQLite from reading the upsert's ON CONFLICT as part of the last join.
        .where(User.active.is_(True), *([User.id != bindparam("actor_id", type_=Integer)] if with_actor else []))
    )
    # The option set here, on the kept statement: set per run it made a new statement, whose cache key SQLAlchemy
    # then worked out again from the whole tree.
    return (
        queries.insert_ignoring_duplicates(Notification.__table__)
        .from_select(list(COLUMNS), rows)
        .execution_options(preserve_rowcount=True)
    )


# ---- reading ---------------------------------------------------------------------------------------------------


def notifications_query(user: User, *, unread: bool | None = None) -> Select:
    """The user's own notifications, newest first."""
    stmt = select(Notification).where(Notification.user_id == user.id)
    if unread is True:
        stmt = stmt.where(Notification.read_at.is_(None))
    elif unread is False:
        stmt = stmt.where(Notification.read_at.is_not(None))
    return stmt.order_by(Notification.created_at.desc(), Notification.id.desc())


def mark_read(user: User, notification_id: int) -> Notification:
    """Mark one of the user's notifications read (again: keeps the first time); anyone else's is 404."""
    notification = db.session.scalars(
        select(Notification).where(Notification.id == notification_id, Notification.user_id == user.id)
    ).first()
    if notification is None:
        raise NotFound(
            tr("No notification with id {notification_id}.", notification_id=notification_id),
            code="notification_not_found",
        )
    if notification.read_at is None:
        notification.read_at = utcnow()
        db.session.flush()
    return notification
