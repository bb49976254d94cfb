"""The cell a query names (cell_id or cell, app.schemas.common.CellScopeArgs), resolved once for every view."""

from __future__ import annotations

from typing import Any

from app.models import Cell
from app.services.grid.cells import resolve_cell


def cell_filter(args: dict[str, Any]) -> Cell | None:
    """Pops cell_id and cell from the loaded arguments; the cell they name, or None (422 when they name none)."""
    return resolve_cell(args.pop("cell_id", None), args.pop("cell", None))


def cell_id_filter(args: dict[str, Any]) -> int | None:
    cell = cell_filter(args)
    return cell.id if cell is not None else None
