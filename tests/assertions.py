"""Shared assertions: the problem+json shape every error answers with, and table snapshots."""

from __future__ import annotations

from geoalchemy2.shape import to_shape
from sqlalchemy import select

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
