"""Reports read as rows (app.services.cases.rows) answer exactly what the ORM reports answer."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import with_expression

from app.dialect import spatial
from app.extensions import db as _db
from app.models import Report
from app.schemas.common import OUTPUT_CRS_KEY
from app.schemas.reports import ReportOut
from app.schemas.sync import SyncReportOut
from app.services.cases.reports import listed_reports
from app.services.cases.rows import report_rows
from app.services.public import view as public_view
from tests.assertions import statements_sent
from tests.test_compiled_schema import cases  # noqa: F401  (the fixture)


@pytest.mark.parametrize("crs", ["wgs84", "bd09"])
def test_rows_dump_as_the_orm_reports_do(app, cases, crs):  # noqa: F811
    admin, worker, supervisor, reporter, other, reports = cases
    ids = [r.id for r in reversed(reports)]
    distance = spatial.distance_m(Report.location, 116.4, 39.9)
    with app.test_request_context(environ_base={OUTPUT_CRS_KEY: crs}):
        for viewer in (admin, worker, supervisor, reporter, other, None):
            stmt = (
                listed_reports()
                .options(with_expression(Report.distance_m, distance))
                .where(Report.id.in_(ids))
                .execution_options(populate_existing=True)
            )
            by_id = {r.id: r for r in _db.session.scalars(stmt).unique()}
            orm = public_view.present_all(viewer, [by_id[i] for i in ids])
            rows = public_view.present_all(viewer, report_rows(ids, distance=distance))
            for schema in (ReportOut(many=True), SyncReportOut(many=True)):
                assert schema.dump(rows) == schema.dump(orm)
            assert [r["id"] for r in ReportOut(many=True).dump(rows)] == ids


def test_rows_keep_the_order_of_ids_and_drop_what_where_refuses(cases):  # noqa: F811
    *_, reports = cases
    ids = [reports[2].id, reports[0].id, 10**9]
    assert [r.id for r in report_rows(ids)] == [reports[2].id, reports[0].id]
    assert report_rows(ids, Report.status == "closed") == []
    assert report_rows([]) == []


def test_a_small_grid_is_read_whole_at_a_workers_first_miss(app, db, cases, monkeypatch):  # noqa: F811
    """The first row that names a cell reads every cell (four short columns), so later pages ask for none; a grid
    above WHOLE_GRID_UP_TO is read by the ids missing."""
    from sqlalchemy import func, select

    from app.models import Cell
    from app.services import versions
    from app.services.cases import rows as rows_module

    *_, reports = cases
    every_cell = _db.session.scalar(select(func.count()).select_from(Cell))
    with statements_sent("FROM cells") as sent:
        with app.test_request_context():
            versions.cache(versions.CELLS).clear()
            report_rows([reports[0].id])
            assert len(sent) == 1 and "cells.id IN" not in sent[0]
            cached = versions.cache(versions.CELLS).entries()
            assert sum(1 for key in cached if key[0] == "row") == every_cell
            report_rows([r.id for r in reports])
            assert len(sent) == 1
        monkeypatch.setattr(rows_module, "WHOLE_GRID_UP_TO", 2)
        with app.test_request_context():
            versions.cache(versions.CELLS).clear()
            sent.clear()
            found = report_rows([reports[0].id])
            assert found[0].cell.code == reports[0].cell.code
            assert any("cells.id IN" in statement for statement in sent)
            assert sum(1 for key in versions.cache(versions.CELLS).entries() if key[0] == "row") < every_cell


def test_a_small_grids_label_points_are_read_whole_at_a_workers_first_miss(app, db, cases, monkeypatch):  # noqa: F811
    """The first label point asked for reads every cell's (one query), so later public views ask for none; a grid
    above WHOLE_GRID_UP_TO is read by the ids missing. The points are the cells' own, whole or not."""
    from sqlalchemy import func, select

    from app.models import Cell
    from app.services import versions
    from app.services.cases import rows as rows_module
    from app.services.cases.rows import cell_label_points

    surface = func.ST_PointOnSurface(Cell.geom)
    points = select(Cell.id, func.ST_X(surface), func.ST_Y(surface))
    expected = {cid: (x, y) for cid, x, y in _db.session.execute(points)}
    first, *others = sorted(expected)
    with statements_sent("ST_PointOnSurface") as sent:
        with app.test_request_context():
            versions.cache(versions.CELLS).clear()
            assert cell_label_points([first]) == {first: expected[first]}
            assert len(sent) == 1 and "cells.id IN" not in sent[0]
            assert cell_label_points(others) == {cid: expected[cid] for cid in others}
            assert len(sent) == 1
        monkeypatch.setattr(rows_module, "WHOLE_GRID_UP_TO", 2)
        with app.test_request_context():
            versions.cache(versions.CELLS).clear()
            sent.clear()
            assert cell_label_points([first]) == {first: expected[first]}
            assert len(sent) == 1 and "cells.id IN" in sent[0]
            assert sum(1 for key in versions.cache(versions.CELLS).entries() if key[0] == "point") == 1


def test_a_read_by_id_follows_the_viewers_scope_as_it_changes(app, db, cases):  # noqa: F811
    """read_report_for keeps one statement per visibility_key: a supervisor moved to another cell, a worker whose
    assignment ended and a recoded cell each read by the scope they have now, never by a statement built before."""
    from datetime import timedelta

    from app.errors import NotFound
    from app.models import Cell, WorkerCell
    from app.models.base import clock_at, utcnow
    from app.services.calendar.worktime import local_day
    from app.services.cases.reports import read_report_for
    from tests.factories import COMMUNITY

    admin, worker, supervisor, reporter, other, reports = cases
    case = reports[0]  # in the worker's grid cell, under the supervisor's community
    case_cell = _db.session.get(Cell, case.cell_id)
    sibling = _db.session.scalar(
        _db.select(Cell).where(Cell.level == "grid", Cell.id != case_cell.id).order_by(Cell.id).limit(1)
    )

    def sees(viewer) -> bool:
        with app.test_request_context():
            try:
                return read_report_for(viewer, case.id).id == case.id
            except NotFound:
                return False

    assert [sees(v) for v in (admin, worker, supervisor, reporter, other)] == [True, True, True, True, False]

    # The supervisor moves to a sibling grid cell: the case is outside their subtree now.
    supervisor.cell_id = sibling.id
    _db.session.commit()
    assert not sees(supervisor)

    # Their cell takes the community's code (the community another): the case's cell is under it, though the
    # supervisor's row did not change; a cell's change moves the cells version.
    community = _db.session.scalar(_db.select(Cell).where(Cell.code == COMMUNITY))
    community.code = COMMUNITY[:-1] + "9"
    _db.session.flush()
    sibling.code = COMMUNITY
    _db.session.commit()
    assert sees(supervisor)

    # The worker's assignment ends today: in three days the cell is no longer theirs.
    assignment = _db.session.scalar(_db.select(WorkerCell).where(WorkerCell.user_id == worker.id))
    assignment.valid_to = local_day()
    _db.session.commit()
    assert sees(worker)
    with clock_at(utcnow() + timedelta(days=3)):
        assert not sees(worker)


def test_a_read_by_id_through_the_driver_answers_what_sqlalchemy_reads(app, cases):  # noqa: F811
    """Every column of read_report_for's row, read through the driver's cursor with the types' own conversions
    (aware UTC datetimes, floats, JSON), equals the row SQLAlchemy reads, for every viewer that may see the case."""
    from app.errors import NotFound
    from app.services.cases.reports import read_report_for, visibility

    admin, worker, supervisor, reporter, other, reports = cases
    compared = 0
    for viewer in (admin, worker, supervisor, reporter, other):
        for report in reports:
            with app.test_request_context():
                expected = report_rows([report.id], visibility(viewer))
                try:
                    found = read_report_for(viewer, report.id)
                except NotFound:
                    assert expected == []
                    continue
            assert vars(found) == vars(expected[0])
            assert all(value.tzinfo is not None for value in vars(found).values() if hasattr(value, "astimezone")), (
                "datetimes come back aware"
            )
            compared += 1
    assert compared >= len(reports) + 3


def test_the_statements_by_id_are_a_bounded_store_of_their_own(app, cases, monkeypatch):  # noqa: F811
    """One statement per viewer's scope, at most KEPT_STATEMENTS_UP_TO, kept apart from the cells' rows: many
    viewers neither push the grid out of the cells cache nor grow a worker's memory without bound."""
    from app.services import versions
    from app.services.cases import rows as rows_module
    from app.services.cases.reports import read_report_for

    admin, worker, supervisor, reporter, other, reports = cases
    monkeypatch.setattr(rows_module, "KEPT_STATEMENTS_UP_TO", 2)
    app.extensions.get("grid.versioned_caches", {}).pop((versions.CELLS, "statements by id"), None)
    with app.test_request_context():
        read_report_for(admin, reports[0].id)
        grid = {key for key in versions.cache(versions.CELLS).entries() if key[0] == "row"}
        assert grid, "the read filled the cells cache"
    for viewer in (admin, worker, supervisor, reporter):
        with app.test_request_context():
            assert read_report_for(viewer, reports[0].id).id == reports[0].id
            statements = versions.cache(versions.CELLS, "statements by id").entries()
            assert 1 <= len(statements) <= 2
            assert grid <= set(versions.cache(versions.CELLS).entries()), "the cells' rows stay"
