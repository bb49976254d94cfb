"""Auto-dispatch: the order the rule picks a worker in, each fallback, the event and the notice when nobody serves."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app.extensions import db as _db
from app.models import CaseEvent, Notification, Report, User
from app.models.base import utcnow
from app.services.cases.dispatch import auto_dispatch
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    make_assignment,
    make_category,
    make_cell,
    make_duty,
    make_escalated_case,
    make_report,
    make_test_grid,
    make_user,
)

SW = "11010500100101"
NE = "11010500100104"
SW_POINT = (116.405, 39.905)


@pytest.fixture()
def world(db):
    cells = make_test_grid()
    other = make_cell("110106", "district", (116.50, 39.90, 116.51, 39.91))
    return SimpleNamespace(
        cells=cells,
        category=make_category(hours=4),
        resident=make_user("resident"),
        supervisor=make_user("supervisor", cell=cells[COMMUNITY]),
        root=make_user("supervisor", cell=cells[DISTRICT]),
        outsider=make_user("supervisor", cell=other),
    )


def accepted_case(world, category=None):
    """A resident's case in the south-west cell, put straight into accepted as the accept action leaves it."""
    report = make_report(world.resident, category or world.category, *SW_POINT)
    report.status = "accepted"
    report.accepted_at = utcnow()
    _db.session.commit()
    return report


def workload(world, worker, *, open_=0, overdue=0, closed=0, assigned_at=None):
    """Give a worker cases: open ones, overdue ones (clock running, due time passed) and closed ones."""
    now = utcnow()
    for status, count, deadline in (
        ("in_progress", open_, now + timedelta(hours=2)),
        ("assigned", overdue, now - timedelta(hours=1)),
        ("closed", closed, now - timedelta(hours=1)),
    ):
        for _ in range(count):
            report = make_report(world.resident, world.category, 116.415, 39.915)
            # At the grid level the level's deadline is the case's own due time.
            report.status, report.assignee_id, report.deadline_at, report.due_at = status, worker.id, deadline, deadline
            report.assigned_at = assigned_at or now - timedelta(days=1)
    _db.session.commit()


def primary(world, code=SW, **kw):
    worker = make_user("worker")
    make_assignment(worker, world.cells[code], duty="primary", **kw)
    return worker


def backup(world, code=SW, **kw):
    worker = make_user("worker")
    make_assignment(worker, world.cells[code], duty="backup", **kw)
    return worker


def dispatched_event(report) -> CaseEvent:
    events = _db.session.scalars(
        select(CaseEvent).where(CaseEvent.report_id == report.id, CaseEvent.action == "assign")
    ).all()
    assert len(events) == 1
    return events[0]


def test_primary_on_duty_with_fewest_open_cases_wins(db, world):
    busy, light = primary(world), primary(world)
    primary(world)  # off duty, no cases: loses to any primary on duty
    spare = backup(world)
    for worker in (busy, light, spare):
        make_duty(worker, True)
    workload(world, busy, open_=2)
    workload(world, light, open_=1, closed=3)  # closed cases are no load
    report = accepted_case(world)
    version = report.version
    now = utcnow()

    assert auto_dispatch(report, now) == light
    assert (report.assignee_id, report.assigned_at, report.status) == (light.id, now, "assigned")
    event = dispatched_event(report)
    assert (event.actor_id, event.actor_role, event.from_status, event.to_status) == (
        None,
        "system",
        "accepted",
        "assigned",
    )
    assert event.data == {"automatic": True, "reason": "primary_on_duty", "assignee_id": light.id}
    _db.session.commit()
    stored = _db.session.get(Report, report.id)
    assert stored.assignee_id == light.id and stored.version == version + 1


def test_tie_on_open_cases_goes_to_fewest_overdue(db, world):
    late, prompt = primary(world), primary(world)
    for worker in (late, prompt):
        make_duty(worker, True)
    workload(world, late, open_=1, overdue=1)
    workload(world, prompt, open_=2)  # two open as well, none overdue
    assert auto_dispatch(accepted_case(world), utcnow()) == prompt


def test_a_case_late_at_an_earlier_level_still_counts_as_overdue(db, world):
    late, prompt = primary(world), primary(world)
    for worker in (late, prompt):
        make_duty(worker, True)
    category = make_category(hours=4, window=8, window_unit="hours")
    make_escalated_case(world.resident, category, world.cells[SW], assignee_id=late.id)  # in its new window
    workload(world, prompt, open_=1)
    assert auto_dispatch(accepted_case(world), utcnow()) == prompt


def test_tie_on_load_goes_to_the_longest_since_last_assignment_never_assigned_first(db, world):
    recent, earlier, never = primary(world), primary(world), primary(world)
    for worker in (recent, earlier, never):
        make_duty(worker, True)
    now = utcnow()
    workload(world, recent, closed=1, assigned_at=now - timedelta(hours=1))
    workload(world, earlier, closed=1, assigned_at=now - timedelta(days=3))
    assert auto_dispatch(accepted_case(world), now) == never
    # With the never-assigned worker now holding a case, the one waiting longest is next.
    workload(world, never, open_=0, closed=1, assigned_at=now)
    assert auto_dispatch(accepted_case(world), utcnow()) == earlier


def test_latest_duty_change_counts(db, world):
    went_off, came_back = primary(world), primary(world)
    make_duty(went_off, True)
    make_duty(came_back, False)
    make_duty(came_back, True)
    make_duty(went_off, False)
    workload(world, came_back, open_=3)
    assert auto_dispatch(accepted_case(world), utcnow()) == came_back


def test_no_primary_on_duty_falls_to_the_primary_with_fewest_open_cases(db, world):
    loaded, free = primary(world), primary(world)
    on_duty_backup = backup(world)
    make_duty(on_duty_backup, True)
    workload(world, loaded, open_=1)
    report = accepted_case(world)
    assert auto_dispatch(report, utcnow()) == free
    assert dispatched_event(report).data["reason"] == "primary_off_duty"


def test_no_primary_falls_back_to_an_on_duty_backup_then_any_backup(db, world):
    idle, on_duty = backup(world), backup(world)
    make_duty(on_duty, True)
    workload(world, on_duty, open_=4)
    report = accepted_case(world)
    assert auto_dispatch(report, utcnow()) == on_duty
    assert dispatched_event(report).data["reason"] == "backup_on_duty"

    make_duty(on_duty, False)
    report = accepted_case(world)
    assert auto_dispatch(report, utcnow()) == idle
    assert dispatched_event(report).data["reason"] == "backup_off_duty"


def test_only_workers_serving_the_cell_today_and_active_count(db, world):
    today = date.today()
    primary(world, valid_to=date(2021, 1, 1))  # ended
    primary(world, valid_from=today + timedelta(days=30))  # not yet begun
    primary(world, code=NE)  # another cell
    gone = primary(world)
    gone.active = False
    _db.session.commit()
    stand_in = backup(world)
    for worker in _db.session.scalars(select(User).where(User.role == "worker")).all():
        make_duty(worker, True)
    report = accepted_case(world)
    assert auto_dispatch(report, utcnow()) == stand_in


def test_nobody_serving_leaves_the_case_and_notifies_the_cells_supervisors(db, world):
    primary(world, code=NE)
    report = accepted_case(world)
    assert auto_dispatch(report, utcnow()) is None
    assert report.status == "accepted" and report.assignee_id is None
    notified = _db.session.scalars(select(Notification).where(Notification.report_id == report.id)).all()
    assert sorted(n.user_id for n in notified) == sorted([world.supervisor.id, world.root.id])
    assert {n.kind for n in notified} == {"case_unassigned"}
    assert not _db.session.scalars(
        select(CaseEvent).where(CaseEvent.report_id == report.id, CaseEvent.action == "assign")
    ).all()
    # A second call for the same case does not notify twice.
    auto_dispatch(report, utcnow())
    assert len(_db.session.scalars(select(Notification).where(Notification.report_id == report.id)).all()) == 2


def test_category_without_auto_dispatch_waits_for_a_supervisor(db, world):
    worker = primary(world)
    make_duty(worker, True)
    report = accepted_case(world, make_category(auto_dispatch=False))
    assert auto_dispatch(report, utcnow()) is None
    assert report.status == "accepted" and report.assignee_id is None
    assert not _db.session.scalars(select(Notification).where(Notification.report_id == report.id)).all()
