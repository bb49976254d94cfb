"""Near and bbox pages through kept statements (app.services.insight.list_pages) answer what the general path does."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from app.lib.geofilter import GeoFilter
from app.models.base import utcnow
from app.services import versions
from app.services.insight import geoqueries, list_pages
from tests.factories import auth_header, set_case
from tests.test_geo_queries import CENTRE, SW, URL, at, file, world  # noqa: F401  (the fixture)

NEAR = GeoFilter(near=CENTRE, radius=900)
BOX = GeoFilter(bbox=(116.40, 39.90, 116.42, 39.915))


@pytest.fixture()
def spread(db, world):  # noqa: F811
    """Reports around CENTRE in two categories, in several statuses and ages, filed by two residents."""
    rng = random.Random(7)
    made = []
    for n in range(14):
        reporter = world.resident if n % 3 else world.resident2
        category = world.category if n % 4 else world.other_category
        made.append(file(world, at(60 * (n + 1), azimuth=rng.uniform(0, 360)), user=reporter, category=category))
    now = utcnow()
    for n, report in enumerate(made):
        # Some in each of the newest-first windows (a week, 8 weeks, older), some closed.
        set_case(report, created_at=now - timedelta(days=(0, 20, 90)[n % 3], minutes=n))
        if n % 5 == 0:
            set_case(report, status="closed")
    return made


def _summary(page):
    return (
        [(r.id, None if r.distance_m is None else round(r.distance_m, 6)) for r in page.items],
        page.total,
        page.total_is_lower_bound,
    )


def _both(app, user, filters, geo, page, size):
    with app.test_request_context():
        general = geoqueries.paginate_reports(geoqueries.reports_query(user, geo=geo, **filters), geo, page, size)
    with app.test_request_context():
        kept = list_pages.reports_page(user, dict(filters), geo, page, size)
    return _summary(general), _summary(kept)


SHAPES = [
    ({}, NEAR),
    ({}, BOX),
    ({}, GeoFilter(near=CENTRE, radius=900, bbox=(116.40, 39.90, 116.412, 39.915))),
    ({"status": ["submitted", "closed"]}, NEAR),
    ({"status": ["closed"]}, BOX),
    ({"triage": False}, NEAR),
    ({"escalation_level": [0]}, BOX),
]


def test_kept_pages_answer_what_the_general_path_does(app, world, spread, monkeypatch):  # noqa: F811
    """Every viewer, every kept shape, the first pages and one past the end, with a count cap small enough to
    bind: the same rows, distances, totals and flags as paginate_reports over reports_query."""
    monkeypatch.setattr(geoqueries, "COUNT_CAP", 5)
    viewers = (world.admin, world.supervisor, world.worker, world.resident, world.resident2)
    compared = 0
    for viewer in viewers:
        shapes = [
            *SHAPES,
            ({"category_code": [world.other_category.code]}, NEAR),
            ({"cell_id": world.cells[SW].id}, BOX),
        ]
        if viewer.role in ("admin", "supervisor", "worker"):
            shapes.append(({"assignee_id": world.worker.id}, NEAR))
        for filters, geo in shapes:
            for page, size in ((1, 3), (2, 3), (3, 4), (1, 50), (9, 3)):
                general, kept = _both(app, viewer, filters, geo, page, size)
                assert kept == general, (viewer.role, filters, geo, page, size)
                compared += bool(general[0])
    assert compared > 60, "most of the pages compared hold rows"


def test_a_staff_filter_is_refused_to_residents_on_the_kept_path_too(app, world, spread):  # noqa: F811
    from app.errors import ValidationFailed

    for _ in range(2):  # a refusal is never kept
        with app.test_request_context(), pytest.raises(ValidationFailed):
            list_pages.reports_page(world.resident, {"assignee_id": world.worker.id}, NEAR, 1, 10)


def test_each_shape_is_built_once_and_other_lists_take_the_general_path(app, world, spread, monkeypatch):  # noqa: F811
    """A second page, another point or another box reuse the shape's statements; a list with a filter the kept
    path does not serve (free text, a polygon) builds nothing there and still answers."""
    built = []
    filtered = geoqueries.filtered_reports
    monkeypatch.setattr(list_pages, "filtered_reports", lambda *a, **k: built.append(k) or filtered(*a, **k))
    store = (versions.CELLS, "list statements")
    app.extensions.get("grid.versioned_caches", {}).pop(store, None)
    for lon in (116.404, 116.405, 116.406):
        for page in (1, 2):
            with app.test_request_context():
                list_pages.reports_page(world.admin, {}, GeoFilter(near=(lon, 39.905), radius=900), page, 3)
    assert len(built) == 1, "the shape's statements were built from one query"
    with app.test_request_context():
        kept = len(versions.cache(*store).entries())
        list_pages.reports_page(world.admin, {"q": "test"}, NEAR, 1, 3)
        within = GeoFilter(within=world.cells[SW].id)
        assert list_pages.reports_page(world.admin, {}, within, 1, 3).total >= 1
        assert len(versions.cache(*store).entries()) == kept
    assert len(built) == 1


def test_the_kept_lists_follow_a_category_and_a_scope_as_they_change(app, db, client, world, spread):  # noqa: F811
    """A category's code and a supervisor's cell are read into the kept statements: changing either is seen by
    the next list."""
    from app.models import Cell

    query = {"near": "%r,%r" % CENTRE, "radius": 900, "page_size": 50}

    def listed(user, **extra):
        resp = client.get(URL, query_string={**query, **extra}, headers=auth_header(user))
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return {item["id"] for item in resp.json["items"]}

    theirs = {r.id for r in spread if r.category_id == world.other_category.id}
    assert listed(world.admin, category=world.other_category.code) == theirs
    old_code = world.other_category.code
    world.other_category.code = "ZZ9"
    db.session.flush()
    world.category.code = old_code
    db.session.commit()
    assert listed(world.admin, category=old_code) == {r.id for r in spread} - theirs

    seen = listed(world.supervisor)
    assert seen, "the supervisor's community holds cases near the centre"
    elsewhere = db.session.scalar(db.select(Cell).where(Cell.level == "community", Cell.id != world.supervisor.cell_id))
    world.supervisor.cell_id = elsewhere.id
    db.session.commit()
    assert listed(world.supervisor) == {r.id for r in spread if r.reporter_id == world.supervisor.id}
