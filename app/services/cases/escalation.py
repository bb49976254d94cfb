"""The escalation sweep: overdue cases move one level up the grid; yellow cases warn once per level."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    case,
    false,
    func,
    literal,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.orm import aliased

from app.dialect import locks, queries
from app.extensions import db
from app.models import (
    CLOCK_RUNNING_STATUSES,
    CODE_LENGTHS,
    ESCALATION_LEVELS,
    OPEN_STATUSES,
    CaseEvent,
    Category,
    Cell,
    CellLevel,
    Report,
    Role,
    User,
    in_subtree,
    subtree_cell_ids,
)
from app.models.base import UTCDateTime
from app.services.calendar import worktime
from app.services.cases import notifications, sla
from app.services.cases.sla import WARN_SHARE, level_overdue_filter, level_sla_state_expr
from app.services.pagination import Page, paginate
from app.services.people.workers import check_manages

TOP_LEVEL = len(ESCALATION_LEVELS) - 1
BATCH_SIZE = 5000
SYSTEM_ROLE = "system"
EVENT_COLUMNS = ("report_id", "actor_role", "action", "from_status", "to_status", "data", "created_at")

# The code of the cell answerable at a level is this long a prefix of the case's grid-cell code.
_CODE_LENGTH = {level: CODE_LENGTHS[CellLevel(name)][0] for level, name in enumerate(ESCALATION_LEVELS) if level}


@dataclass
class SweepResult:
    escalated: int = 0
    critical: int = 0
    reminded: int = 0
    notifications: int = 0

    @property
    def claimed(self) -> int:
        return self.escalated + self.critical + self.reminded

    def __iadd__(self, other: SweepResult) -> SweepResult:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


def _text(value: str) -> ColumnElement[str]:
    # Our own constants inlined as SQL literals: a bind parameter of unknown type inside json_build_object
    # or || leaves PostgreSQL unable to infer its type.
    return literal_column("'" + value.replace("'", "''") + "'", String)


def _int(value: int) -> ColumnElement[int]:
    return literal_column(str(int(value)), Integer)


def _code_length(level: ColumnElement[int]) -> ColumnElement[int]:
    return case({lvl: _int(n) for lvl, n in _CODE_LENGTH.items()}, value=level)


def _target_cell(level: ColumnElement[int]):
    """(grid alias, target alias, join condition): the ancestor of the case's cell that handles `level`."""
    grid, target = aliased(Cell), aliased(Cell)
    return grid, target, target.code == func.substr(grid.code, 1, _code_length(level))


def _claim(stmt) -> list:
    # No ORDER BY: the LIMIT then stops the index scan after `limit` rows instead of sorting every match.
    return list(db.session.execute(locks.claim(stmt, Report)))


def _moment(now: datetime) -> ColumnElement:
    return literal(now, UTCDateTime())


def _write_events(ids: list[int], now: datetime, action: str, data: ColumnElement, handling) -> None:
    rows = (
        select(Report.id, _text(SYSTEM_ROLE), _text(action), Report.status, Report.status, data, _moment(now))
        .select_from(Report)
        .outerjoin(handling, handling.id == Report.handling_cell_id)
        .where(Report.id.in_(ids))
    )
    db.session.execute(CaseEvent.__table__.insert().from_select(list(EVENT_COLUMNS), rows))


def _windows(category_ids: set[int], now: datetime) -> tuple[ColumnElement, ColumnElement]:
    """The new deadline_at and warn_at as SQL CASEs over category: they depend only on the category and now."""
    categories = db.session.execute(
        select(Category.id, Category.escalation_window_value, Category.escalation_window_unit).where(
            Category.id.in_(category_ids)
        )
    ).all()
    deadline = {
        c.id: _moment(worktime.deadline(now, c.escalation_window_value, c.escalation_window_unit)) for c in categories
    }
    warn = {
        c.id: _moment(worktime.deadline(now, c.escalation_window_value * WARN_SHARE, c.escalation_window_unit))
        for c in categories
    }
    return case(deadline, value=Report.category_id), case(warn, value=Report.category_id)


def _escalate(now: datetime, limit: int, scope: ColumnElement[bool]) -> SweepResult:
    grid, target, on_target = _target_cell(Report.escalation_level + 1)
    claimed = _claim(
        select(Report.id, Report.category_id)
        .join(grid, grid.id == Report.cell_id)
        .join(target, on_target)
        .where(level_overdue_filter(now), Report.escalation_level < TOP_LEVEL, scope)
        .limit(limit)
    )
    if not claimed:
        return SweepResult()
    ids = [row.id for row in claimed]
    deadline_at, warn_at = _windows({row.category_id for row in claimed}, now)
    grid, target, on_target = _target_cell(Report.escalation_level + 1)
    new_cell = select(target.id).where(grid.id == Report.cell_id, on_target).scalar_subquery()
    db.session.execute(
        update(Report)
        .where(Report.id.in_(ids))
        .values(
            escalation_level=Report.escalation_level + 1,
            handling_cell_id=new_cell,
            escalated_at=now,
            # The deadline it missed: at the grid level that is the case's own due time. Kept at every later level.
            late_since=func.coalesce(Report.late_since, Report.deadline_at),
            deadline_at=deadline_at,
            warn_at=warn_at,
            version=Report.version + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    handling = aliased(Cell)
    _write_events(
        ids,
        now,
        "escalate",
        queries.json_object(
            from_level=Report.escalation_level - 1, to_level=Report.escalation_level, cell_code=handling.code
        ),
        handling,
    )
    sent = notifications.announce_batch("escalate", ids, now)
    return SweepResult(escalated=len(ids), notifications=sent)


def _mark_critical(now: datetime, limit: int, scope: ColumnElement[bool]) -> SweepResult:
    """Past the top level's deadline there is nowhere higher to go: the case stays and is flagged, once."""
    ids = [
        row.id
        for row in _claim(
            select(Report.id)
            .where(level_overdue_filter(now), Report.escalation_level >= TOP_LEVEL, Report.critical.is_(False), scope)
            .limit(limit)
        )
    ]
    if not ids:
        return SweepResult()
    db.session.execute(
        update(Report)
        .where(Report.id.in_(ids))
        .values(critical=True, version=Report.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    handling = aliased(Cell)
    _write_events(
        ids, now, "critical", queries.json_object(level=Report.escalation_level, cell_code=handling.code), handling
    )
    sent = notifications.announce_batch("critical", ids, now)
    return SweepResult(critical=len(ids), notifications=sent)


def _remind(now: datetime, limit: int, scope: ColumnElement[bool]) -> SweepResult:
    # A yellow case warns its assignee and its supervisors (NOTICES["remind"]), once per level, assigned or not.
    # warn_at <= now <= deadline_at is what makes the level's running clock yellow; spelt out so the index serves it.
    ids = [
        row.id
        for row in _claim(
            select(Report.id)
            .where(
                Report.status.in_(CLOCK_RUNNING_STATUSES),
                Report.warn_at <= now,
                Report.deadline_at >= now,
                level_sla_state_expr(now) == "yellow",
                Report.reminded_level.is_distinct_from(Report.escalation_level),
                scope,
            )
            .limit(limit)
        )
    ]
    if not ids:
        return SweepResult()
    sent = notifications.announce_batch("remind", ids, now)
    # Bookkeeping no client reads, so the ETag (version) stays: a reminder must not make an open form stale.
    db.session.execute(
        update(Report)
        .where(Report.id.in_(ids))
        .values(reminded_level=Report.escalation_level)
        .execution_options(synchronize_session=False)
    )
    return SweepResult(reminded=len(ids), notifications=sent)


def escalate_batch(now: datetime, limit: int = BATCH_SIZE, scope: ColumnElement[bool] | None = None) -> SweepResult:
    """One batch of the sweep, in the caller's transaction: claim up to `limit` rows of each kind and move them.

    The caller commits after each batch and repeats while a batch claimed anything. `scope` narrows the sweep to
    some cases (the demo's month, swept at past moments, leaves everyone else's alone)."""
    scope = true() if scope is None else scope
    result = _escalate(now, limit, scope)
    # The other kinds wait until the overdue cases have moved: until then their scans would read every case
    # about to be escalated again, batch after batch.
    if result.escalated < limit:
        result += _mark_critical(now, limit, scope)
        if result.critical < limit:
            result += _remind(now, limit, scope)
    return result


# ---- supervisor review --------------------------------------------------------------------------

LAST_EVENTS = 3


@dataclass(frozen=True)
class EscalatedCase:
    report: Report
    level: str
    chain: list[Cell]
    late_since: datetime | None
    overdue_seconds: float
    last_events: list[CaseEvent]


def _reviewable(user: User) -> ColumnElement[bool]:
    """The cells whose escalated cases the user reviews: a supervisor's subtree, every cell for an admin."""
    if user.role == Role.admin.value:
        return true()
    if user.role == Role.supervisor.value and user.cell is not None:
        return in_subtree(Cell.code, user.cell.code)
    return false()


def escalated_query(user: User, now: datetime, *, cell: Cell | None = None, level: list[int] | None = None) -> Select:
    """Open escalated cases whose handling cell lies in the caller's subtree, most overdue first (the longest
    since they became late, measured where their clock stands), then by id.

    A `cell` narrows to that subtree (403 outside the caller's); `level` to one escalation level (0..3)."""
    stmt = select(Report).where(
        Report.status.in_(OPEN_STATUSES),
        Report.escalation_level > 0,
        Report.handling_cell_id.in_(select(Cell.id).where(_reviewable(user))),
    )
    if cell is not None:
        check_manages(user, cell)
        stmt = stmt.where(Report.handling_cell_id.in_(subtree_cell_ids(cell.code)))
    if level:
        stmt = stmt.where(Report.escalation_level.in_(level))
    return stmt.order_by(func.coalesce(_overdue_seconds_expr(now), 0.0).desc(), Report.id)


def _overdue_seconds(report: Report, now: datetime) -> float:
    # Since the first due time the case missed, to where its clock stands (a case on hold: where it stopped).
    late = sla.late_since(report, now)
    return max(((report.hold_started_at or now) - late).total_seconds(), 0.0) if late is not None else 0.0


def _overdue_seconds_expr(now: datetime) -> ColumnElement[float]:
    return queries.seconds_between(sla.late_since_expr(now), func.coalesce(Report.hold_started_at, _moment(now)))


def _chains(reports: list[Report]) -> dict[int, list[Cell]]:
    """Each case's cell and its ancestors, grid first, in one query for the whole page."""
    lengths = sorted({n for lengths in CODE_LENGTHS.values() for n in lengths}, reverse=True)
    prefixes = {r.id: [r.cell.code[:n] for n in lengths if n <= len(r.cell.code)] for r in reports if r.cell}
    wanted = {code for codes in prefixes.values() for code in codes}
    cells = {c.code: c for c in db.session.scalars(select(Cell).where(Cell.code.in_(wanted)))} if wanted else {}
    return {rid: [cells[code] for code in dict.fromkeys(codes) if code in cells] for rid, codes in prefixes.items()}


def _last_events(report_ids: list[int]) -> dict[int, list[CaseEvent]]:
    rank = func.row_number().over(partition_by=CaseEvent.report_id, order_by=CaseEvent.id.desc()).label("rank")
    ranked = select(CaseEvent.id, rank).where(CaseEvent.report_id.in_(report_ids)).subquery()
    events: dict[int, list[CaseEvent]] = defaultdict(list)
    for event in db.session.scalars(
        select(CaseEvent)
        .join(ranked, ranked.c.id == CaseEvent.id)
        .where(ranked.c.rank <= LAST_EVENTS)
        .order_by(CaseEvent.id.desc())
    ):
        events[event.report_id].append(event)
    return events


def escalated_cases(user: User, now: datetime, page: int, page_size: int, **filters) -> Page:
    """A page of escalated_query with each case's chain of cells, time overdue and last events."""
    result = paginate(escalated_query(user, now, **filters), page, page_size)
    chains = _chains(result.items)
    events = _last_events([r.id for r in result.items])
    items = []
    for report in result.items:
        items.append(
            EscalatedCase(
                report=report,
                level=ESCALATION_LEVELS[report.escalation_level],
                chain=chains.get(report.id, []),
                late_since=sla.late_since(report, now),
                overdue_seconds=_overdue_seconds(report, now),
                last_events=events.get(report.id, []),
            )
        )
    return Page(items=items, page=result.page, page_size=result.page_size, total=result.total)
