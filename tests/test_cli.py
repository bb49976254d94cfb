"""CLI: `flask seed-demo` and `flask users create`, run through Flask's test runner inside the test's transaction."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import pytest
from geoalchemy2.shape import to_shape
from sqlalchemy import func, select

from app.models import Category, Cell, Role, User, WorkerCell
from app.services.people import sessions as auth_service
from app.services.people.workers import cells_served_today
from tests.factories import COMMUNITY, DISTRICT, STREET, make_category, make_report, make_test_grid, make_user

GRID_CELL = "11010500100101"
CODE_LENGTHS = {"district": {6}, "street": {9}, "community": {12}, "grid": {14, 15}}


def run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def count(db, model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def snapshot(db) -> dict:
    return {
        "cells": db.session.execute(select(Cell.id, Cell.code, Cell.level, Cell.parent_id).order_by(Cell.id)).all(),
        "categories": db.session.execute(
            select(Category.id, Category.code, Category.name, Category.time_limit_value, Category.active).order_by(
                Category.id
            )
        ).all(),
        "users": db.session.execute(select(User.id, User.username, User.role, User.cell_id).order_by(User.id)).all(),
        "worker_cells": db.session.execute(
            select(WorkerCell.user_id, WorkerCell.cell_id).order_by(WorkerCell.user_id, WorkerCell.cell_id)
        ).all(),
    }


# ---- seed-demo ----------------------------------------------------------------------------------


@pytest.fixture()
def seeded(app, db):
    result = run(app, "seed-demo", "--no-cases")  # the month of cases: tests/test_demo_month.py
    assert result.exit_code == 0, result.output
    return result


def test_seed_demo_creates_the_demo_district(app, db, seeded):
    levels = Counter(db.session.scalars(select(Cell.level)))
    assert levels["district"] == 1
    assert levels["street"] == 3
    assert levels["community"] >= 9
    assert levels["grid"] >= 100
    assert count(db, Category) >= 12
    assert db.session.scalar(select(func.count()).select_from(Category).where(Category.active.is_(True))) >= 12
    # Routine classes count working time, emergencies calendar hours (as the city-management tables do).
    units = dict(db.session.execute(select(Category.code, Category.time_limit_unit)).all())
    assert (units["0102"], units["0103"], units["0501"]) == ("working_hours", "working_days", "hours")
    # The demo class 演示 escalates within minutes, at every level, so a new install sees an escalation at once.
    demo = db.session.scalars(select(Category).where(Category.code == "0999")).one()
    assert (demo.name, demo.time_limit_value, demo.time_limit_unit) == ("演示", 5, "minutes")
    assert (demo.escalation_window_value, demo.escalation_window_unit) == (5, "minutes")
    # Road hazards are shown to everyone in full; every other class only in the public view.
    assert set(db.session.scalars(select(Category.code).where(Category.public.is_(True)))) == {"0502", "0503"}
    roles = set(db.session.scalars(select(User.role)))
    assert roles == {r.value for r in Role}
    # The accounts can sign in with the demo password, and a worker serves a grid cell.
    password = app.config["DEMO_PASSWORD"]
    for user in db.session.scalars(select(User)):
        assert auth_service.login(user.username, password).access_token
    for user in db.session.scalars(select(User).where(User.role == Role.worker.value)):
        served = cells_served_today(user.id)
        assert served and all(c.level == "grid" for c in served)
    for user in db.session.scalars(select(User).where(User.role == Role.supervisor.value)):
        assert user.cell is not None
    assert "demo accounts" in seeded.output
    assert "admin" in seeded.output


def test_seed_demo_twice_neither_duplicates_nor_wipes(app, db, seeded):
    # Local changes an operator made after the first run: a tuned category, an extra account, a report.
    tuned = db.session.scalars(select(Category).order_by(Category.code)).first()
    tuned.time_limit_value = 77
    tuned.active = False
    db.session.commit()
    extra = make_user("resident")
    grid = db.session.scalars(select(Cell).where(Cell.level == "grid").order_by(Cell.code)).first()
    centre = to_shape(grid.geom).representative_point()
    report = make_report(extra, make_category("X01"), centre.x, centre.y)
    before = snapshot(db)

    again = run(app, "seed-demo", "--no-cases")
    assert again.exit_code == 0, again.output
    assert "0 cells, 0 categories, 0 accounts added" in again.output
    db.session.expire_all()
    assert snapshot(db) == before
    assert db.session.get(Category, tuned.id).time_limit_value == 77
    assert db.session.get(User, extra.id) is not None
    assert db.session.get(type(report), report.id).cell_id == grid.id


def _shapes(cells):
    return {c.code: to_shape(c.geom) for c in cells}


def test_seed_demo_cells_tile_their_parents(app, db, seeded):
    cells = list(db.session.scalars(select(Cell)))
    by_id = {c.id: c for c in cells}
    shapes = _shapes(cells)
    children = defaultdict(list)
    for cell in cells:
        assert len(cell.code) in CODE_LENGTHS[cell.level], cell.code
        if cell.parent_id is None:
            assert cell.level == "district"
            continue
        parent = by_id[cell.parent_id]
        assert cell.code.startswith(parent.code), (cell.code, parent.code)
        assert ["district", "street", "community", "grid"].index(cell.level) == [
            "district",
            "street",
            "community",
            "grid",
        ].index(parent.level) + 1
        children[parent.code].append(cell.code)

    parents = [c for c in cells if c.level != "grid"]
    assert all(children[p.code] for p in parents), "every non-grid cell has children"
    for parent in parents:
        parent_shape = shapes[parent.code]
        assert parent_shape.is_valid and parent_shape.area > 0
        kids = [shapes[code] for code in children[parent.code]]
        assert all(k.is_valid for k in kids)
        total = sum(k.area for k in kids)
        assert abs(total - parent_shape.area) <= 0.001 * parent_shape.area, parent.code
        for a, b in itertools.combinations(kids, 2):
            assert a.intersection(b).area <= 1e-9 * parent_shape.area, parent.code
        # Areas alone could balance out; every child also lies inside its parent.
        for kid in kids:
            assert kid.difference(parent_shape).area <= 1e-9 * parent_shape.area, parent.code


def test_seed_demo_grid_cells_are_irregular_polygons(app, db, seeded):
    grids = list(db.session.scalars(select(Cell).where(Cell.level == "grid")))
    shapes = [to_shape(c.geom) for c in grids]
    # Real polygons, not all the same axis-aligned box.
    assert len({round(s.area, 12) for s in shapes}) > 1
    assert any(abs(s.area - s.envelope.area) > 1e-12 for s in shapes)


# ---- users create -------------------------------------------------------------------------------


@pytest.fixture()
def grid(db):
    return make_test_grid()


@pytest.mark.parametrize(
    "role, cell",
    [
        ("resident", None),
        ("admin", None),
        ("worker", GRID_CELL),
        ("supervisor", COMMUNITY),
        ("supervisor", DISTRICT),
    ],
)
def test_users_create_each_role(app, db, grid, role, cell):
    args = ["users", "create", "--username", f"new_{role}", "--password", "long-enough-1", "--role", role]
    if cell:
        args += ["--cell", cell]
    result = run(app, *args)
    assert result.exit_code == 0, result.output
    assert f"created {role} new_{role}" in result.output

    user = db.session.scalars(select(User).where(User.username == f"new_{role}")).one()
    assert user.role == role
    served = [c.code for c in cells_served_today(user.id)]
    if role == "worker":
        assert served == [GRID_CELL] and user.cell_id is None
    elif role == "supervisor":
        assert user.cell.code == cell and served == []
    else:
        assert user.cell_id is None and served == []
    assert auth_service.login(f"new_{role}", "long-enough-1").access_token


@pytest.mark.parametrize(
    "args, exit_code, message",
    [
        (["--role", "mayor"], 2, "mayor"),
        (["--role", "worker", "--cell", "999999999999"], 1, "999999999999"),
        (["--role", "worker", "--cell", COMMUNITY], 1, "grid"),
        (["--role", "worker", "--cell", STREET], 1, "grid"),
        (["--role", "supervisor", "--cell", "110199"], 1, "110199"),
        (["--role", "supervisor"], 1, "cell"),
        (["--role", "resident", "--cell", GRID_CELL], 1, "cell"),
        (["--role", "admin", "--password", "short"], 1, "password"),
        (["--role", "admin", "--username", "x"], 1, "username"),
        (["--role", "admin", "--username", "taken_name"], 1, "taken"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_users_create_rejects_bad_input_and_writes_nothing(app, db, grid, args, exit_code, message):
    make_user("admin", username="taken_name")
    before = snapshot(db)
    options = {"--username": "new_user", "--password": "long-enough-1"}
    for i in range(0, len(args), 2):
        options[args[i]] = args[i + 1]
    result = run(app, "users", "create", *itertools.chain.from_iterable(options.items()))
    assert result.exit_code == exit_code, result.output
    assert message in result.output
    assert "created" not in result.output
    db.session.expire_all()
    assert snapshot(db) == before
