"""The grid: district > street > community > grid cells with their polygons."""

from __future__ import annotations

import enum

from geoalchemy2 import Geometry
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Integer,
    Select,
    String,
    and_,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import TimestampMixin


class CellLevel(str, enum.Enum):
    district = "district"
    street = "street"
    community = "community"
    grid = "grid"

    @property
    def rank(self) -> int:
        return LEVEL_ORDER.index(self)

    @property
    def child(self) -> CellLevel | None:
        return LEVEL_ORDER[self.rank + 1] if self.rank + 1 < len(LEVEL_ORDER) else None


LEVEL_ORDER = [CellLevel.district, CellLevel.street, CellLevel.community, CellLevel.grid]
# 6-digit county code (GB/T 2260) + 3-digit street + 3-digit community + 2- or 3-digit grid number.
CODE_LENGTHS = {
    CellLevel.district: (6,),
    CellLevel.street: (9,),
    CellLevel.community: (12,),
    CellLevel.grid: (14, 15),
}


def subtree_bounds(code):
    """Code range of a subtree; ':' sorts right after '9', so a B-tree range scan finds every descendant. `code`
    is a string or a column (then the upper end is SQL concatenation)."""
    return code, code + ":"


def in_subtree(code_column, root_code) -> ColumnElement[bool]:
    """SQL: the code column names the root or one of its descendants (a child's code starts with its parent's).

    The root is a code or a code column; either way the test is a range the codes' B-tree index answers."""
    low, high = subtree_bounds(root_code)
    return and_(code_column >= low, code_column < high)


def code_in_subtree(code: str, root_code: str) -> bool:
    """The same rule in Python, for a cell already loaded."""
    low, high = subtree_bounds(root_code)
    return low <= code < high


def subtree_cell_ids(root_code: str) -> Select:
    """The ids of the root's cell and of every cell under it."""
    return select(Cell.id).where(in_subtree(Cell.code, root_code))


class Cell(TimestampMixin, db.Model):
    __tablename__ = "cells"
    __table_args__ = (CheckConstraint("level IN ('district', 'street', 'community', 'grid')", name="level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    level: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("cells.id", ondelete="RESTRICT"), index=True)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    parent: Mapped[Cell | None] = relationship(remote_side=[id])

    def __repr__(self) -> str:
        return f"<Cell {self.code} {self.level}>"
