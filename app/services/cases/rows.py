"""Reports read as plain rows for pages that only show them: the same attributes as a Report, no ORM objects."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import ColumnElement, Select, func, inspect, select
from sqlalchemy.orm import aliased

from app.extensions import db
from app.models import Category, Cell, Report, User
from app.models.reports import case_number

# Why: a page of 50 reports as ORM objects (identity map, four joined relationships, instance state) cost as much
# Python as the rest of a near or bbox request (`make bench-geo`). The page is read, presented and dumped, never
# changed, so it needs the values only.
_COLUMNS = [attr.key for attr in inspect(Report).column_attrs if attr.key not in ("location", "distance_m")]
_CELL = ("id", "code", "name", "level")
_ASSIGNEE = ("id", "username", "display_name")
_REPORTER = ("id", "display_name", "phone")
_CATEGORY = ("code", "name", "group", "public")


class ReportRow(SimpleNamespace):
    """A report's columns as attributes, with `category`, `cell`, `handling_cell`, `assignee` and `reporter` as
    small namespaces (None when unset), `point` its (lon, lat) and `distance_m` as asked for."""

    @property
    def case_number(self) -> str:
        return case_number(self.case_day, self.id)


_BASE: list[Select] = []


def _statement(where: list[ColumnElement[bool]], distance: ColumnElement | None) -> Select:
    # Built once: constructing 70 columns and four joins cost more than running the query.
    if not _BASE:
        _BASE.append(_base())
    stmt = _BASE[0].where(*where)
    return stmt if distance is None else stmt.add_columns(distance)


def _base() -> Select:
    cell, handling, assignee, reporter = aliased(Cell), aliased(Cell), aliased(User), aliased(User)
    columns = [getattr(Report, key) for key in _COLUMNS]
    columns += [func.ST_X(Report.location), func.ST_Y(Report.location)]
    columns += [getattr(Category, key) for key in _CATEGORY]
    columns += [getattr(cell, key) for key in _CELL] + [getattr(handling, key) for key in _CELL]
    columns += [getattr(assignee, key) for key in _ASSIGNEE] + [getattr(reporter, key) for key in _REPORTER]
    return (
        select(*columns)
        .join(Category, Category.id == Report.category_id)
        .outerjoin(cell, cell.id == Report.cell_id)
        .outerjoin(handling, handling.id == Report.handling_cell_id)
        .outerjoin(assignee, assignee.id == Report.assignee_id)
        .join(reporter, reporter.id == Report.reporter_id)
    )


def _part(values: tuple, names: tuple[str, ...]) -> SimpleNamespace | None:
    return None if values[0] is None else SimpleNamespace(**dict(zip(names, values, strict=True)))


def report_rows(ids: list[int], *where: ColumnElement[bool], distance: ColumnElement | None = None) -> list[ReportRow]:
    """The reports of `ids` that also meet `where`, in the order of `ids`, as ReportRow; `distance` (an SQL
    expression over Report.location) fills distance_m."""
    if not ids:
        return []
    n = len(_COLUMNS)
    found: dict[int, ReportRow] = {}
    for row in db.session.execute(_statement([Report.id.in_(ids), *where], distance)):
        report = _build(row, n, distance is not None)
        found[report.id] = report
    return [found[i] for i in ids if i in found]


def _build(row: Any, n: int, with_distance: bool) -> ReportRow:
    values: dict[str, Any] = dict(zip(_COLUMNS, row[:n], strict=True))
    rest = row[n:]
    values["point"] = (rest[0], rest[1])
    values["location"] = None
    values["category"] = SimpleNamespace(**dict(zip(_CATEGORY, rest[2:6], strict=True)))
    values["cell"] = _part(rest[6:10], _CELL)
    values["handling_cell"] = _part(rest[10:14], _CELL)
    values["assignee"] = _part(rest[14:17], _ASSIGNEE)
    values["reporter"] = _part(rest[17:20], _REPORTER)
    values["distance_m"] = rest[20] if with_distance else None
    return ReportRow(**values)


def report_rows_page(where: ColumnElement[bool], order_by: list, limit: int, offset: int) -> list[ReportRow]:
    """The reports meeting `where` in `order_by` order, `limit` of them from `offset`, as ReportRow."""
    stmt = _statement([where], None).order_by(*order_by).limit(limit).offset(offset)
    n = len(_COLUMNS)
    return [_build(row, n, False) for row in db.session.execute(stmt)]


def report_rows_of(page: Select, distance: ColumnElement | None = None, params: dict[str, Any] | None = None):
    """The reports of `page`, a select of (Report.id, n) with n their position, in that order, as ReportRow: the
    page and its rows in one statement (`params`: values of its bound parameters)."""
    return run_rows_of(rows_of_statement(page, distance), distance is not None, params)


def rows_of_statement(page: Select, distance: ColumnElement | None = None) -> Select:
    """report_rows_of's statement, for a caller that builds it once and runs it with run_rows_of."""
    sub = page.subquery()
    return _statement([], distance).join(sub, sub.c.id == Report.id).order_by(sub.c.n)


def run_rows_of(stmt: Select, with_distance: bool, params: dict[str, Any] | None = None) -> list[ReportRow]:
    n = len(_COLUMNS)
    return [_build(row, n, with_distance) for row in db.session.execute(stmt, params)]
