"""Page-number pagination over a deterministic select()."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select

from app.extensions import db


@dataclass(frozen=True)
class Page:
    items: list[Any]
    page: int
    page_size: int
    total: int
    # With a count cap: True when the count stopped at it (there are more than `total` matches), else False.
    total_is_lower_bound: bool | None = None


def paginate(
    stmt: Select | None,
    page: int,
    page_size: int,
    *,
    count_cap: int | None = None,
    fetch: Callable[[int], list[Any]] | None = None,
    counted: Select | None = None,
    count: Callable[[], int] | None = None,
) -> Page:
    """The page, then the total. A short page tells the total itself, so only a full (or empty, past the
    end) page costs a count. With count_cap the count stops after count_cap + 1 matches.

    `fetch(offset)` returns the page for a caller that finds it its own way (the same rows as
    stmt.limit(page_size).offset(offset)); `counted`, the rows to count when not stmt itself (the same rows, fewer
    columns); `count()`, the count_statement's answer for a caller that runs it its own way (stmt may then be
    None)."""
    offset = (page - 1) * page_size
    if fetch is not None:
        items = fetch(offset)
    else:
        items = list(db.session.scalars(stmt.limit(page_size).offset(offset)).unique())
    capped = None if count_cap is None else False
    if len(items) < page_size and (items or offset == 0):
        return Page(items=items, page=page, page_size=page_size, total=offset + len(items), total_is_lower_bound=capped)
    total = count() if count is not None else db.session.scalar(count_statement(stmt, count_cap, counted))
    if count_cap is not None and total > count_cap:
        return Page(
            items=items,
            page=page,
            page_size=page_size,
            total=max(count_cap, offset + len(items)),
            total_is_lower_bound=True,
        )
    return Page(items=items, page=page, page_size=page_size, total=total, total_is_lower_bound=capped)


def count_statement(stmt: Select, count_cap: int | None = None, counted: Select | None = None) -> Select:
    """The count paginate sends: of `counted` (else stmt's rows), stopping after count_cap + 1 matches."""
    counted = (stmt if counted is None else counted).order_by(None)
    if count_cap is not None:
        counted = counted.limit(count_cap + 1)
    return select(func.count()).select_from(counted.subquery())
