"""The compiled dump (app.schemas.compiled) answers exactly what marshmallow's own loop answers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from marshmallow import Schema, fields, missing, post_dump, pre_dump

from app.extensions import db as _db
from app.models import CaseEvent, Notification
from app.models.base import utcnow
from app.schemas.common import OUTPUT_CRS_KEY
from app.schemas.compiled import CompiledSchema
from app.schemas.notifications import NotificationOut
from app.schemas.reports import EventOut, ReportOut, ReportPage
from app.schemas.sync import SyncEventOut, SyncReportOut
from app.schemas.tasks import TaskOut
from app.services.field.tasks import as_tasks
from app.services.pagination import Page
from app.services.public import view as public_view
from tests.factories import COMMUNITY, make_case, make_category, make_test_grid, make_user

SW = "11010500100101"


def plain(schema_class: type[Schema], obj, many: bool = False, monkeypatch=None):
    """The dump by marshmallow's own loop: a fresh schema whose compiled _serialize is marshmallow's."""
    monkeypatch.setattr(CompiledSchema, "_serialize", Schema._serialize)
    try:
        return schema_class().dump(obj, many=many)
    finally:
        monkeypatch.undo()


@pytest.fixture()
def cases(db):
    cells = make_test_grid()
    admin, worker = make_user("admin"), make_user("worker", username="wang", served=[cells[SW]])
    supervisor = make_user("supervisor", cell=cells[COMMUNITY])
    reporter, other = make_user("resident", phone="13800000000"), make_user("resident")
    hidden, shown = make_category(), make_category(public=True)
    now = utcnow()
    reports = [
        make_case(reporter, hidden, cells[SW], status="submitted"),
        make_case(
            reporter,
            shown,
            cells[SW],
            status="in_progress",
            assignee_id=worker.id,
            accepted_at=now - timedelta(hours=5),
            assigned_at=now - timedelta(hours=4),
            deadline_at=now - timedelta(hours=1),
            warn_at=now - timedelta(hours=2),
            due_at=now - timedelta(hours=1),
            time_limit_value=4,
            time_limit_unit="hours",
            attributes={"size": ["big"]},
            contact_email="a@example.org",
            routing_distance_m=12.5,
        ),
        make_case(reporter, hidden, None, status="submitted", address="某路 1 号"),
        make_case(
            reporter,
            hidden,
            cells[SW],
            status="closed",
            closed_at=now,
            rating=4,
            rating_comment="ok",
            rated_at=now,
            accepted_at=now - timedelta(hours=3),
            deadline_at=now + timedelta(hours=1),
            due_at=now + timedelta(hours=1),
        ),
    ]
    _db.session.add(CaseEvent(report_id=reports[1].id, actor_id=worker.id, actor_role="worker", action="start"))
    _db.session.add(CaseEvent(report_id=reports[1].id, actor_id=None, actor_role="system", action="remind"))
    _db.session.add(
        Notification(user_id=worker.id, kind="supervision", title="督办", body=None, report_id=reports[1].id)
    )
    _db.session.commit()
    return admin, worker, supervisor, reporter, other, reports


@pytest.mark.parametrize("crs", ["wgs84", "gcj02"])
def test_reports_tasks_and_sync_dump_as_marshmallow_does(app, cases, crs, monkeypatch):
    admin, worker, supervisor, reporter, other, reports = cases
    with app.test_request_context(environ_base={OUTPUT_CRS_KEY: crs}):
        for viewer in (admin, worker, supervisor, reporter, other, None):
            shown = public_view.present_all(viewer, reports)
            for item in shown:
                assert ReportOut().dump(item) == plain(ReportOut, item, monkeypatch=monkeypatch)
                assert SyncReportOut().dump(item) == plain(SyncReportOut, item, monkeypatch=monkeypatch)
            page = Page(items=shown, page=1, page_size=20, total=4, total_is_lower_bound=None)
            assert ReportPage().dump(page) == plain(ReportPage, page, monkeypatch=monkeypatch)
            tasks = public_view.present_all(viewer, as_tasks(reports))
            assert TaskOut(many=True).dump(tasks) == plain(TaskOut, tasks, many=True, monkeypatch=monkeypatch)
        events = list(_db.session.scalars(_db.select(CaseEvent)))
        for viewer in (admin, reporter):
            history = public_view.events_for(viewer, events)
            for schema in (EventOut, SyncEventOut):
                assert schema(many=True).dump(history) == plain(schema, history, many=True, monkeypatch=monkeypatch)
        notes = list(_db.session.scalars(_db.select(Notification)))
        assert NotificationOut(many=True).dump(notes) == plain(
            NotificationOut, notes, many=True, monkeypatch=monkeypatch
        )


def test_missing_values_defaults_keys_and_dotted_attributes(app):
    class Inner(CompiledSchema):
        x = fields.Integer()

    class Outer(CompiledSchema):
        a = fields.Integer(attribute="b.c")
        d = fields.String(dump_default="none")
        e = fields.Float(data_key="E")
        f = fields.Nested(Inner, many=True)
        g = fields.Function(lambda obj: "computed")
        h = fields.Dict()

    obj = {"b": {"c": "7"}, "e": 2, "f": [{"x": "3"}, {}], "h": {"k": 1}}
    assert Outer().dump(obj) == {"a": 7, "d": "none", "E": 2.0, "f": [{"x": 3}, {}], "g": "computed", "h": {"k": 1}}
    assert Outer(only=("a",)).dump(obj) == {"a": 7}
    assert Outer().dump({}) == {"d": "none", "g": "computed"}
    assert missing is not None


def test_nested_schemas_with_hooks_dump_as_marshmallow_does(app, monkeypatch):
    # A nested schema's hooks that take one item run item by item around its plan, each given the item as it came;
    # one that takes the whole collection sends the nested dump back to marshmallow's own. A list of a nested
    # schema (a page's items) dumps each item as the nested field would.
    class Inner(CompiledSchema):
        x = fields.Integer()

        @pre_dump
        def _double(self, obj, **kwargs):
            return {"x": obj["x"] * 2}

        @post_dump(pass_original=True)
        def _was(self, data, original, **kwargs):
            return {**data, "was": original["x"]}

        @post_dump
        def _many(self, data, many, **kwargs):
            return {**data, "many": many}

    class Collected(Inner):
        @post_dump(pass_collection=True)
        def _envelope(self, data, many, **kwargs):
            return {"items": data} if many else data

    class Outer(CompiledSchema):
        one = fields.Nested(Inner, allow_none=True)
        some = fields.Nested(Inner, many=True)
        collected = fields.Nested(Collected, many=True)
        listed = fields.List(fields.Nested(Inner))  # as every page's items

    obj = {"one": {"x": 1}, "some": [{"x": 2}, {"x": 3}], "collected": [{"x": 4}], "listed": [{"x": 5}, None]}
    with app.app_context():
        ours = Outer().dump(obj)
        assert ours == plain(Outer, obj, monkeypatch=monkeypatch)
        assert Outer().dump({"one": None, "some": []}) == plain(
            Outer, {"one": None, "some": []}, monkeypatch=monkeypatch
        )
    assert ours["one"] == {"x": 2, "was": 1, "many": False}
    assert ours["some"] == [{"x": 4, "was": 2, "many": True}, {"x": 6, "was": 3, "many": True}]
    assert ours["collected"] == {"items": [{"x": 8, "was": 4, "many": True}]}
    assert ours["listed"] == [{"x": 10, "was": 5, "many": False}, None]


def test_the_generated_dump_of_objects_keeps_the_loops_rules(app, monkeypatch):
    # Objects without __getitem__ go through the function generated from the plan; dicts and dotted sources through
    # the loop. Both must answer what marshmallow's own loop answers, missing attributes and defaults included.
    from types import SimpleNamespace

    from app.schemas.common import LocalDateTime

    class Inner(CompiledSchema):
        x = fields.Integer()
        when = LocalDateTime(allow_none=True)

    class Outer(CompiledSchema):
        a = fields.Integer(attribute="b")
        d = fields.String(dump_default="none")
        e = fields.Float(data_key="E")
        f = fields.Nested(Inner, many=True)
        i = fields.Nested(Inner, allow_none=True)
        g = fields.Function(lambda obj: "computed")
        h = fields.Dict()
        k = fields.Boolean()
        n = fields.Integer(dump_default=lambda: 5)

    now = utcnow()
    full = SimpleNamespace(
        b="7", d="x", e=2, f=[SimpleNamespace(x="3", when=now), SimpleNamespace()], i=None, h={"k": 1}, k=False, n=None
    )
    for obj in (full, SimpleNamespace(), SimpleNamespace(i=SimpleNamespace(x=1, when=None), k=True)):
        with app.app_context():
            ours = Outer().dump(obj)
            assert ours == plain(Outer, obj, monkeypatch=monkeypatch)
    with app.app_context():
        assert Outer().dump(full)["f"][0] == {"x": 3, "when": now.astimezone(local_zone_of(app)).isoformat()}
        assert Outer().dump(SimpleNamespace()) == {"d": "none", "g": "computed", "n": 5}


def local_zone_of(app):
    from zoneinfo import ZoneInfo

    return ZoneInfo(app.config["TIMEZONE"])


def test_times_are_written_as_isoformat_writes_them():
    # Every zone, before and after 1972 (when offsets with seconds ended), whole seconds and not, both folds.
    import random
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo, available_timezones

    from app.schemas.common import isoformat

    rng = random.Random(5)
    moments = [
        datetime(1959, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # Berlin's fold: 02:30 twice
        datetime(2026, 10, 25, 1, 30, 0, 5, tzinfo=UTC),
    ]
    for zone in sorted(available_timezones()):
        local = ZoneInfo(zone)
        for _ in range(3):
            moment = datetime.fromtimestamp(rng.uniform(-2.2e9, 4.1e9), UTC)
            moments.append(moment.replace(microsecond=0) if rng.random() < 0.3 else moment)
        for moment in moments[-3:] + moments[:3]:
            shown = moment.astimezone(local)
            assert isoformat(shown) == shown.isoformat(), (zone, moment)
    monrovia = datetime(1959, 12, 31, 23, 59, 59, tzinfo=UTC).astimezone(ZoneInfo("Africa/Monrovia"))
    assert isoformat(monrovia).endswith("-00:44:30")
