"""A page of a report list: near and bbox lists through statements kept per shape, every other list as built."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from sqlalchemy import Float, Integer, Select, bindparam, case, select

from app.dialect import spatial
from app.lib.coords import to_wgs84
from app.lib.geofilter import GeoFilter
from app.models import Report, User
from app.models.base import utcnow
from app.services import versions
from app.services.cases.reports import visibility_key
from app.services.cases.rows import ReportRow, kept_statement, run_driver_rows
from app.services.insight import geoqueries
from app.services.insight.geoqueries import (
    NEWEST_FIRST,
    RECENT_WINDOWS,
    filtered_reports,
    page_statement,
    paginate_reports,
    reports_query,
)
from app.services.pagination import Page, count_statement, paginate

# Why: a near or bbox page is three statements whose values change on every request (the point, the box, the
# bound, the time window) while their shape (the viewer's scope, the filters) repeats. Built by SQLAlchemy on every
# request (expressions, the cache key over 57 columns, its result objects) they cost about as much Python as the
# database took to answer them (`make bench-geo`). Kept per shape with every changing value a bind parameter, they
# go through the driver's cursor as the read by id does. The filters kept are those whose values are few (a
# status, a category, a cell); the others (free text, dates, the SLA filters that depend on the hour) and the
# polygon filters take the general path.
KEPT_FILTERS = frozenset({"status", "category_code", "cell_id", "triage", "escalation_level", "assignee_id"})

_OFFSET, _N = bindparam("offset", type_=Integer), bindparam("n", type_=Integer)
_LON, _LAT = bindparam("lon", type_=Float), bindparam("lat", type_=Float)
_BBOX_NAMES = ("bbox_min_lon", "bbox_min_lat", "bbox_max_lon", "bbox_max_lat")
_BBOX = tuple(bindparam(name, type_=Float) for name in _BBOX_NAMES)
_SINCE = bindparam("since", type_=Report.created_at.type)


def reports_page(user: User, filters: dict[str, Any], geo: GeoFilter | None, page: int, page_size: int) -> Page:
    """The page paginate_reports(reports_query(user, geo=geo, **filters), geo, page, page_size) gives, rows and
    total alike."""
    shape = _shape(user, filters, geo)
    if shape is None:
        return paginate_reports(reports_query(user, geo=geo, **filters), geo, page, page_size)
    return _KeptList(shape, user, filters, geo, page_size).page(page)


def _shape(user: User, filters: dict[str, Any], geo: GeoFilter | None) -> tuple | None:
    """Everything the kept statements are built from but the cells' rows (their store's version covers those), or
    None for a list they do not serve."""
    if geo is None or geo.within is not None or geo.polygon is not None:
        return None
    sent = {name: value for name, value in filters.items() if value is not None}
    if not sent.keys() <= KEPT_FILTERS:
        return None
    # A list filter matches any of its values: their order and repeats change nothing.
    values = tuple(sorted((name, tuple(sorted(set(v))) if isinstance(v, list) else v) for name, v in sent.items()))
    # Codes name categories by id inside the statement.
    categories = versions.current_version(versions.CATEGORIES) if "category_code" in sent else None
    return (visibility_key(user), values, categories, geo.near is not None, geo.bbox is not None)


class _KeptList:
    """One request's page of a kept shape: the same steps as paginate_reports, each a kept statement."""

    def __init__(self, shape: tuple, user: User, filters: dict[str, Any], geo: GeoFilter, page_size: int) -> None:
        self.shape, self.user, self.filters, self.geo, self.page_size = shape, user, filters, geo, page_size
        self.values: dict[str, Any] = {}
        self.near: tuple[float, float] | None = None
        if geo.near is not None:
            self.near = to_wgs84(geo.near[0], geo.near[1], geo.crs)
            self.values.update(spatial.within_distance_values(*self.near, geo.radius))
        if geo.bbox is not None:
            self.values.update(zip(_BBOX_NAMES, (float(v) for v in geo.bbox), strict=True))
        # The cap as geoqueries keeps it: a count's statement is kept per cap.
        self.cap = geoqueries.COUNT_CAP
        # The count near's bound statement brought along, when it ran it.
        self.counted: int | None = None

    def page(self, page: int) -> Page:
        fetch = self._nearest_page if self.near is not None else self._newest_page
        return paginate(None, page, self.page_size, count_cap=self.cap, fetch=fetch, count=self._count)

    def _run(self, part: str, build: Callable[[], Select], **values: Any) -> list[tuple]:
        params = {**self.values, **values}
        return self._kept(part, build, params).run(params)

    def _rows(self, part: str, build: Callable[[], Select], **values: Any) -> list[ReportRow]:
        params = {**self.values, **values}
        return run_driver_rows(self._kept(part, build, params), self.near is not None, params)

    def _kept(self, part: str, build: Callable[[], Select], params: dict[str, Any]):
        return kept_statement("list statements", (self.shape, self.page_size, part), build, **params)

    # Built only when a statement of the shape is not kept yet.
    @cached_property
    def _restricted(self) -> Select:
        stmt = filtered_reports(self.user, spatial_filter=True, **self.filters)
        if self.geo.near is not None:
            stmt = stmt.where(spatial.points_within_distance_bound(Report.location, Report.id))
        if self.geo.bbox is not None:
            stmt = stmt.where(spatial.in_box(Report.location, Report.id, _BBOX))
        return stmt

    @cached_property
    def _ordered(self) -> Select:
        if self.near is None:
            return self._restricted.order_by(*NEWEST_FIRST)
        return self._restricted.order_by(spatial.local_distance_m(Report.location, _LON, _LAT), Report.id)

    def _page_of(self, stmt: Select) -> Select:
        distance = spatial.distance_m(Report.location, _LON, _LAT) if self.near is not None else None
        return page_statement(stmt, _OFFSET, self.page_size, distance)

    def _bounding_and_count(self) -> Select:
        # Why one statement: when the n nearest are all found the page is full, and paginate will want the count;
        # asked for in the same round trip, it costs no statement of its own. PostgreSQL runs the count's subquery
        # (an InitPlan) only when the CASE reaches it.
        bound = spatial.nearest_bound_statement(self._ordered, Report.location, _LON, _LAT, _N).subquery()
        found, furthest = bound.c
        return select(found, furthest, case((found >= _N, self._counted().scalar_subquery())))

    def _page_within_bound(self) -> Select:
        return self._page_of(self._ordered.where(spatial.points_within_estimate_bound(Report.location, Report.id)))

    def _page_since(self) -> Select:
        return self._page_of(self._ordered.where(Report.created_at >= _SINCE))

    def _whole_page(self) -> Select:
        return self._page_of(self._ordered)

    def _counted(self) -> Select:
        return count_statement(self._restricted, self.cap, self._restricted.with_only_columns(Report.id))

    def _nearest_page(self, offset: int) -> list[ReportRow]:
        # As geoqueries._nearest_page: every row of the page lies within the n-th nearest row's distance.
        n = offset + self.page_size
        bound = None
        if spatial.walks_nearest_first():
            found, furthest, self.counted = self._run(f"bound, count to {self.cap}", self._bounding_and_count, n=n)[0]
            bound = furthest if found >= n else None
        if bound is None:
            return self._rows("page", self._whole_page, offset=offset)
        within = spatial.within_estimate_values(*self.near, bound)
        return self._rows("page within bound", self._page_within_bound, offset=offset, **within)

    def _newest_page(self, offset: int) -> list[ReportRow]:
        # As geoqueries._newest_page: a window that fills the page holds the newest offset + page_size rows.
        now = utcnow()
        for window in RECENT_WINDOWS:
            rows = self._rows("page since", self._page_since, offset=offset, since=now - window)
            if len(rows) == self.page_size:
                return rows
        return self._rows("page", self._whole_page, offset=offset)

    def _count(self) -> int:
        if self.counted is not None:
            return self.counted
        return self._run(f"count to {self.cap}", self._counted)[0][0]
