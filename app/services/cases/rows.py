"""Reports read as plain rows for pages that only show them: the same attributes as a Report, no ORM objects."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, inspect, select

from app.dialect.engine import DriverStatement, dialect_name
from app.extensions import db
from app.models import Category, Cell, Report, User
from app.models.reports import case_number
from app.services import versions

# Why: a page of 50 reports as ORM objects (identity map, four joined relationships, instance state) cost as much
# Python as the rest of a near or bbox request (`make bench-geo`). The page is read, presented and dumped, never
# changed, so it needs the values only.
_COLUMNS = [attr.key for attr in inspect(Report).column_attrs if attr.key not in ("location", "distance_m")]
_CELL = ("id", "code", "name", "level")
_CATEGORY = ("code", "name", "group", "public")


class ReportRow(SimpleNamespace):
    """A report's columns as attributes, with `category`, `cell`, `handling_cell`, `assignee` and `reporter` as
    small namespaces (None when unset), `point` its (lon, lat) and `distance_m` as asked for."""

    @property
    def case_number(self) -> str:
        return case_number(self.case_day, self.id)


_BASE: list[Select] = []


def _statement(where: list[ColumnElement[bool]], distance: ColumnElement | None) -> Select:
    # Built once: constructing 60 columns cost more than running the query.
    if not _BASE:
        _BASE.append(
            select(*[getattr(Report, key) for key in _COLUMNS], func.ST_X(Report.location), func.ST_Y(Report.location))
        )
    stmt = _BASE[0].where(*where)
    return stmt if distance is None else stmt.add_columns(distance)


# ---- What a row refers to: categories, cells and people, from the workers' caches ------------------------------
# Why: joining them cost PostgreSQL more to plan than to run (0.66 ms of planning for one report by id, every
# time, since each statement is planned for its values), and the same few rows came back on every page. Each cache
# is dropped when its cache_versions row moves (app.services.versions), as the logins' and categories' are.


def _referenced(cache_name: str, ids: set[int], load, kind: str = "row") -> dict[int, Any]:
    """Each id's entry of `kind` in the cache; `load(missing ids)` yields (id, value) for those missing (and may
    yield more, which are kept too)."""
    cache = versions.cache(cache_name)
    entries = cache.entries()
    missing = {i for i in ids if (kind, i) not in entries}
    if missing:
        # The version before the rows: a change committed in between only drops them at the next read.
        version = versions.current_version(cache_name)
        loaded = {(kind, key): value for key, value in load(missing)}
        cache.put_many(loaded, version)
        entries = {**entries, **loaded}
    return {i: entries.get((kind, i)) for i in ids}


def _load_categories(ids: set[int]):
    stmt = select(Category.id, *[getattr(Category, key) for key in _CATEGORY]).where(Category.id.in_(ids))
    for row in db.session.execute(stmt):
        yield row[0], SimpleNamespace(**dict(zip(_CATEGORY, row[1:], strict=True)))


# A grid this small is read whole at a worker's first miss (four short columns a cell, one query): a page of cases
# from all over it then costs no query per cell. A larger one is read by the ids missing.
WHOLE_GRID_UP_TO = 20_000
_WHOLE = ("whole",)


def _load_cells(ids: set[int]):
    cache = versions.cache(versions.CELLS)
    columns = select(*[getattr(Cell, key) for key in _CELL])
    if _WHOLE not in cache.entries():
        version = versions.current_version(versions.CELLS)
        rows = db.session.execute(columns.order_by(Cell.id).limit(WHOLE_GRID_UP_TO + 1)).all()
        whole = len(rows) <= WHOLE_GRID_UP_TO
        cache.put_many({_WHOLE: whole}, version)
        if whole:
            yield from ((row[0], SimpleNamespace(**dict(zip(_CELL, row, strict=True)))) for row in rows)
            return
    for row in db.session.execute(columns.where(Cell.id.in_(ids))):
        yield row[0], SimpleNamespace(**dict(zip(_CELL, row, strict=True)))


_WHOLE_POINTS = ("whole points",)


def _load_points(ids: set[int]):
    # A small grid's label points are read whole at a worker's first miss too: a public view of a case from anywhere
    # in it (a filing's similar cases, say) then costs no query.
    cache = versions.cache(versions.CELLS)
    surface = func.ST_PointOnSurface(Cell.geom)
    points = select(Cell.id, func.ST_X(surface), func.ST_Y(surface))
    if _WHOLE_POINTS not in cache.entries():
        version = versions.current_version(versions.CELLS)
        counted = select(Cell.id).limit(WHOLE_GRID_UP_TO + 1).subquery()
        whole = db.session.scalar(select(func.count()).select_from(counted)) <= WHOLE_GRID_UP_TO
        cache.put_many({_WHOLE_POINTS: whole}, version)
        if whole:
            yield from ((cell_id, (x, y)) for cell_id, x, y in db.session.execute(points))
            return
    for cell_id, x, y in db.session.execute(points.where(Cell.id.in_(ids))):
        yield cell_id, (x, y)


def cell_label_points(cell_ids) -> dict[int, tuple[float, float]]:
    """A point inside each cell (ST_PointOnSurface), from the workers' cells cache: one query for those missing."""
    wanted = {cid for cid in cell_ids if cid is not None}
    if not wanted:
        return {}
    found = _referenced(versions.CELLS, wanted, _load_points, kind="point")
    return {cid: point for cid, point in found.items() if point is not None}


def _load_people(ids: set[int]):
    # As an assignee and as a reporter: each shows only its own fields.
    for uid, username, display_name, phone in db.session.execute(
        select(User.id, User.username, User.display_name, User.phone).where(User.id.in_(ids))
    ):
        yield (
            uid,
            (
                SimpleNamespace(id=uid, username=username, display_name=display_name),
                SimpleNamespace(id=uid, display_name=display_name, phone=phone),
            ),
        )


def user_refs(user_ids: set[int]) -> dict[int, SimpleNamespace]:
    """id, username and display_name of each user, from the workers' people cache: one query for those missing."""
    return {uid: known[0] for uid, known in _referenced(versions.AUTH, user_ids, _load_people).items() if known}


def _builder(rows: list[Any], with_distance: bool) -> list[ReportRow]:
    n = len(_COLUMNS)
    at = {key: i for i, key in enumerate(_COLUMNS)}
    category_i, reporter_i, assignee_i = at["category_id"], at["reporter_id"], at["assignee_id"]
    cell_i, handling_i = at["cell_id"], at["handling_cell_id"]
    categories = _referenced(versions.CATEGORIES, {r[category_i] for r in rows}, _load_categories)
    cells = _referenced(
        versions.CELLS, {r[i] for r in rows for i in (cell_i, handling_i) if r[i] is not None}, _load_cells
    )
    people = _referenced(
        versions.AUTH, {r[i] for r in rows for i in (reporter_i, assignee_i) if r[i] is not None}, _load_people
    )
    built = []
    for row in rows:
        values: dict[str, Any] = dict(zip(_COLUMNS, row[:n], strict=True))
        values["point"] = (row[n], row[n + 1])
        values["location"] = None
        values["category"] = categories[row[category_i]]
        values["cell"] = cells[row[cell_i]] if row[cell_i] is not None else None
        values["handling_cell"] = cells[row[handling_i]] if row[handling_i] is not None else None
        values["assignee"] = people[row[assignee_i]][0] if row[assignee_i] is not None else None
        values["reporter"] = people[row[reporter_i]][1]
        values["distance_m"] = row[n + 2] if with_distance else None
        built.append(ReportRow(**values))
    return built


def report_rows(ids: list[int], *where: ColumnElement[bool], distance: ColumnElement | None = None) -> list[ReportRow]:
    """The reports of `ids` that also meet `where`, in the order of `ids`, as ReportRow; `distance` (an SQL
    expression over Report.location) fills distance_m."""
    if not ids:
        return []
    rows = db.session.execute(_statement([Report.id.in_(ids), *where], distance)).all()
    found = {report.id: report for report in _builder(rows, distance is not None)}
    return [found[i] for i in ids if i in found]


# Most scopes name their viewer (a resident's own cases, a worker's cells): a statement per viewer (and per list
# shape), a few kB each, kept apart from the cells' rows so that many viewers neither crowd those out nor grow a
# worker's memory unbounded.
KEPT_STATEMENTS_UP_TO = 2_000


def report_row_by_id(report_id: int, scope_key: Any, scope: Callable[[], ColumnElement[bool]]) -> list[ReportRow]:
    """report_rows([report_id], scope()), through a statement compiled once per scope_key (kept_statement) and run
    through the driver's cursor with the id bound.

    Why: SQLAlchemy's execution path (the statement's cache key over 57 columns, the result's metadata and row
    objects) cost more than the statement itself on the most frequent read there is."""
    found = kept_statement(
        "statements by id",
        scope_key,
        lambda: _statement([Report.id == bindparam("report_id", type_=Integer), scope()], None),
        report_id=0,
    )
    return _builder(found.run({"report_id": report_id}), False)


def kept_statement(store: str, key: Any, build: Callable[[], Select], **placeholders: Any) -> DriverStatement:
    """build() compiled for the session's dialect (DriverStatement), kept under `key` in a bounded store of its own
    (KEPT_STATEMENTS_UP_TO entries), dropped with the cells version: the scopes in these statements name cells.
    `key` must name everything build() reads but the cells' rows."""
    statements = versions.cache(versions.CELLS, store, KEPT_STATEMENTS_UP_TO)
    key = (dialect_name(), key)
    found = statements.get(key)
    if found is None:
        version = versions.current_version(versions.CELLS)
        found = DriverStatement(build(), db.session.get_bind().dialect, **placeholders)
        statements.put(key, found, version)
    return found


def report_rows_page(where: ColumnElement[bool], order_by: list, limit: int, offset: int) -> list[ReportRow]:
    """The reports meeting `where` in `order_by` order, `limit` of them from `offset`, as ReportRow."""
    stmt = _statement([where], None).order_by(*order_by).limit(limit).offset(offset)
    return _builder(db.session.execute(stmt).all(), False)


def first_rows(where: list[ColumnElement[bool]], order_by: list, limit: int, distance: ColumnElement) -> Select:
    """The first `limit` reports meeting `where` in `order_by` order, with their `distance`, as ReportRow's columns
    in one flat statement: for a few rows, where rows_of_statement's page of ids and its join cost PostgreSQL more
    to plan than they saved (each statement is planned for its values)."""
    return _statement(where, distance).order_by(*order_by).limit(limit)


def rows_of_statement(page: Select, distance: ColumnElement | None = None) -> Select:
    """The reports of `page`, a select of (Report.id, n) with n their position, in that order, as ReportRow's
    columns (run them with run_rows_of or run_driver_rows): the page and its rows in one statement."""
    sub = page.subquery()
    return _statement([], distance).join(sub, sub.c.id == Report.id).order_by(sub.c.n)


def run_rows_of(stmt: Select, with_distance: bool, params: dict[str, Any] | None = None) -> list[ReportRow]:
    return _builder(db.session.execute(stmt, params).all(), with_distance)


def run_driver_rows(stmt: DriverStatement, with_distance: bool, params: dict[str, Any]) -> list[ReportRow]:
    """run_rows_of for a rows_of_statement compiled once (DriverStatement): through the driver's cursor."""
    return rows_of_driver(stmt.run(params), with_distance)


def rows_of_driver(rows: list[tuple], with_distance: bool) -> list[ReportRow]:
    """The ReportRows of a rows_of_statement or first_rows compiled once and run elsewhere (engine.run_together)."""
    return _builder(rows, with_distance)
