"""Shared assertions: the problem+json shape every error answers with, table snapshots, the statements sent."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from geoalchemy2.shape import to_shape
from sqlalchemy import event, select

from app.extensions import db
from app.models import Cell

PROBLEM = "application/problem+json"


def assert_problem(resp, status: int, code: str) -> dict:
    """An RFC 7807 body with our stable code; 401s also carry a Bearer challenge."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == PROBLEM
    body = resp.get_json(force=True)
    assert body["status"] == status, body
    assert body["code"] == code, body
    assert body["type"] == f"/problems/{code}"
    for key in ("title", "detail"):
        assert body[key], key
    if status == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    return body


def cells_snapshot() -> list[tuple]:
    """Every cell as stored, geometry included, read fresh from the database."""
    rows = db.session.execute(
        select(
            Cell.id, Cell.code, Cell.name, Cell.level, Cell.parent_id, Cell.active, Cell.updated_at, Cell.geom
        ).order_by(Cell.id)
    ).all()
    return [(*row[:-1], to_shape(row[-1]).wkt) for row in rows]


@contextmanager
def statements_sent(containing: str) -> Iterator[list[str]]:
    """The statements the session's engine sends while inside whose text holds `containing`, as they are sent."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if containing in statement:
            sent.append(statement)

    engine = db.session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)
