"""SQL that each dialect spells its own way: JSON rows and objects, insert-or-skip, intervals, local periods, chained
inserts."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    ColumnElement,
    Insert,
    Select,
    String,
    Table,
    Text,
    cast,
    column,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import replacement_traverse

from app.dialect.engine import DriverStatement, is_postgis, run_together
from app.extensions import db


def rows_table(name: str, columns: dict[str, Any], rows: list[tuple]):
    """Python rows as a table to join in SQL, sent as one JSON parameter.

    A VALUES list would need a bind parameter per value and SQLite caps compound SELECTs at 500, so a batch of
    points travels as one JSON array: PostgreSQL reads it with json_to_recordset, SQLite with json_each."""
    if is_postgis():
        payload = json.dumps([dict(zip(columns, row, strict=True)) for row in rows])
        return (
            func.json_to_recordset(cast(literal(payload), postgresql.JSON))
            .table_valued(*(column(n, t) for n, t in columns.items()))
            .render_derived(name=name, with_types=True)
        )
    each = func.json_each(literal(json.dumps([list(row) for row in rows]))).table_valued("value")
    return select(
        *(cast(func.json_extract(each.c.value, f"$[{i}]"), t).label(n) for i, (n, t) in enumerate(columns.items()))
    ).subquery(name)


def materialized(cte):
    """Ask PostgreSQL to compute the CTE once, before the join (its row estimates can be far off); SQLite
    has no such hint and needs none."""
    return cte.prefix_with("MATERIALIZED") if is_postgis() else cte


def insert_ignoring_duplicates(target: Table) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING: a row whose unique key exists already is skipped, not an error."""
    dialect = postgresql if is_postgis() else sqlite
    return dialect.insert(target).on_conflict_do_nothing()


def json_object(**pairs) -> ColumnElement:
    """A JSON object built in SQL from column expressions (keys are fixed names, not user input)."""
    fn = func.json_build_object if is_postgis() else func.json_object
    args = []
    for key, value in pairs.items():
        args += [literal_column(f"'{key}'"), value]
    return fn(*args, type_=JSON)


def case_number(case_day: ColumnElement, report_id: ColumnElement) -> ColumnElement[str]:
    """The human case number of app.models.reports.case_number in SQL: the filing day as YYYYMMDD, then the id
    with at least 7 digits (a notice written by INSERT ... SELECT names the case as people know it)."""
    if is_postgis():
        digits = cast(report_id, Text)
        return func.to_char(case_day, literal_column("'YYYYMMDD'"), type_=String).concat(
            func.lpad(digits, func.greatest(7, func.length(digits)), literal_column("'0'"))
        )
    return func.strftime(literal_column("'%Y%m%d'"), case_day, type_=String).concat(
        func.printf(literal_column("'%07d'"), report_id)
    )


def seconds_between(start, end) -> ColumnElement[float]:
    """end - start in seconds, for two timestamp columns."""
    if is_postgis():
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def local_period_counts(stmt: Select, column, unit: str, tz: str) -> dict[Any, int]:
    """Counts of the rows of `stmt` by the local day, ISO week (Monday) or month start of `column`.

    Keys are the periods' first local days. PostgreSQL groups in SQL; SQLite knows no time zones, so its
    rows are bucketed here with zoneinfo."""
    if is_postgis():
        bucket = func.date(func.date_trunc(unit, func.timezone(tz, column)))
        rows = db.session.execute(stmt.with_only_columns(bucket, func.count()).order_by(None).group_by(bucket))
        return {day: n for day, n in rows}
    zone = ZoneInfo(tz)
    counts: dict[Any, int] = {}
    for (moment,) in db.session.execute(stmt.with_only_columns(column).order_by(None)):
        day = moment.astimezone(zone).date()
        if unit == "week":
            day -= timedelta(days=day.weekday())
        elif unit == "month":
            day = day.replace(day=1)
        counts[day] = counts.get(day, 0) + 1
    return counts


def contains_text(column, needle: str) -> ColumnElement[bool]:
    """The column holds `needle` (any script, Latin letters in any case), the user's text taken literally.

    PostgreSQL: ILIKE, which the pg_trgm GIN indexes on reports' texts serve for needles of 3+ characters (the
    migration reports_text_search), with %, _ and the escape character escaped. SQLite: instr, which treats no
    character specially; lower() folds only ASCII there, as SQLite's LIKE would."""
    if is_postgis():
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.ilike(f"%{escaped}%", escape="\\")
    return func.instr(func.lower(column), func.lower(literal(needle, String))) > 0


# ---- A row and the rows that name it, in one round trip where the database allows --------------------------------


def chained_inserts(parent: Insert, child: Insert, parent_id: str = "parent_id") -> tuple[Any, ...]:
    """The statements that write `parent` (an INSERT ... RETURNING its id alone) and then `child`, an INSERT of one
    or more rows whose bound parameter `parent_id` stands for that id. Build once, run with run_chained_inserts.

    PostgreSQL: one statement, the parent a writable CTE and the child reading its id from it (one round trip, and
    no ORM unit of work around the rows). SQLite has no writable CTEs: the two statements, one after the other.
    A child that returns its rows' ids (RETURNING id) gives the last of them as well."""
    if db.session.get_bind().dialect.name != "postgresql":
        return (parent, child)
    written = parent.cte("parent_row")

    def from_parent(element):
        if isinstance(element, BindParameter) and element.key == parent_id:
            return select(written.c.id).scalar_subquery()
        return None

    child_row = replacement_traverse(child, {}, from_parent).cte("child_rows")
    if child.exported_columns:
        return (select(written.c.id, select(func.max(child_row.c.id)).scalar_subquery()),)
    return (select(written.c.id).add_cte(child_row),)


def run_chained_inserts(
    statements: tuple[Any, ...],
    values: dict[str, Any],
    parent_id: str = "parent_id",
    read_first: tuple[DriverStatement, dict[str, Any]] | None = None,
) -> tuple[int, int | None, list[tuple] | None]:
    """Run chained_inserts' statements with `values` (each statement takes those it names): the parent's id, the
    child's last id when it returns them (else None), and the rows of `read_first`, a read (statement and values)
    run just before the write, so it does not see the new rows: on PostgreSQL in the same round trip."""
    read_rows = None
    if read_first is not None and len(statements) == 1:
        read_rows, written = run_together(read_first, (_for_the_driver(statements[0], values), values))
        first = written[0]
    else:
        if read_first is not None:
            read_rows = read_first[0].run(read_first[1])
        first = db.session.execute(statements[0], values).one()
    new_id, last_child_id = first[0], (first[1] if len(first) > 1 else None)
    for statement in statements[1:]:
        result = db.session.execute(statement, {**values, parent_id: new_id})
        if result.returns_rows:
            last_child_id = max(row[0] for row in result)
    return new_id, last_child_id, read_rows


# id of a kept chained statement -> (the statement, kept so that its id stays its own; it compiled for the driver)
_FOR_THE_DRIVER: dict[int, tuple[Any, DriverStatement]] = {}


def _for_the_driver(statement: Any, values: dict[str, Any]) -> DriverStatement:
    # Callers keep their chained statements (built once per shape), so these are as few.
    found = _FOR_THE_DRIVER.get(id(statement))
    if found is None or found[0] is not statement:
        found = _FOR_THE_DRIVER[id(statement)] = (
            statement,
            DriverStatement(statement, db.session.get_bind().dialect, **values),
        )
    return found[1]
