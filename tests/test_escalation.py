"""Escalation sweep: one level per sweep up the grid, critical at the top, reminders, idempotency, concurrency."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from app import cli
from app.models import CaseEvent, Notification, Report
from app.services.cases import sla
from app.services.cases.escalation import SweepResult, escalate_batch
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    STREET,
    delete_committed,
    make_case,
    make_category,
    make_cell,
    make_test_grid,
    make_user,
)

SW = "11010500100101"
NE = "11010500100104"
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def sweep(now: datetime, limit: int = 5000) -> SweepResult:
    total = SweepResult()
    while True:
        batch = escalate_batch(now, limit)
        total += batch
        if batch.claimed == 0:
            return total


def build_world():
    cells = make_test_grid()
    other = make_cell("110106", "district", (116.50, 39.90, 116.51, 39.91))
    category = make_category(hours=4)
    category.escalation_window_value, category.escalation_window_unit = 2, "hours"
    return SimpleNamespace(
        cells=cells,
        category=category,
        resident=make_user("resident"),
        worker=make_user("worker", served=[cells[SW]]),
        community_sup=make_user("supervisor", cell=cells[COMMUNITY]),
        street_sup=make_user("supervisor", cell=cells[STREET]),
        district_sup=make_user("supervisor", cell=cells[DISTRICT]),
        grid_sup=make_user("supervisor", cell=cells[NE]),
        other_sup=make_user("supervisor", cell=other),
        inactive_sup=make_user("supervisor", cell=cells[COMMUNITY], active=False),
    )


@pytest.fixture()
def world(db):
    return build_world()


def overdue_case(world, **fields):
    values = {
        "status": "assigned",
        "assignee_id": world.worker.id,
        "accepted_at": NOW - 5 * HOUR,
        "due_at": NOW - HOUR,
        "deadline_at": NOW - HOUR,
        "warn_at": NOW - 2 * HOUR,
    }
    values.update(fields)
    return make_case(world.resident, world.category, world.cells[SW], **values)


def counts(db) -> tuple[int, int]:
    return (
        db.session.scalar(select(func.count()).select_from(CaseEvent)),
        db.session.scalar(select(func.count()).select_from(Notification)),
    )


def fresh(db, report) -> Report:
    db.session.expire_all()
    return db.session.get(Report, report.id)


def notified(db, report, kind) -> set[int]:
    return set(
        db.session.scalars(
            select(Notification.user_id).where(Notification.report_id == report.id, Notification.kind == kind)
        )
    )


def test_one_level_per_sweep_up_the_chain_then_critical(db, world):
    case = overdue_case(world)
    version = case.version
    # The supervisors of the new level and the worker who has the case (NOTICES["escalate"]).
    chain = [
        (1, COMMUNITY, {world.community_sup.id, world.worker.id}),
        (2, STREET, {world.street_sup.id, world.worker.id}),
        (3, DISTRICT, {world.district_sup.id, world.worker.id}),
    ]
    now = NOW
    for level, code, supervisors in chain:
        result = sweep(now)
        assert (result.escalated, result.critical) == (1, 0)
        report = fresh(db, case)
        assert report.escalation_level == level
        assert report.handling_cell_id == world.cells[code].id
        assert report.escalated_at == now
        assert report.deadline_at == now + 2 * HOUR
        assert report.warn_at == now + timedelta(hours=1.6)
        assert report.due_at == NOW - HOUR  # escalation never moves the case's own due time
        assert report.version == version + level
        assert report.critical is False
        events = list(
            db.session.scalars(
                select(CaseEvent)
                .where(CaseEvent.report_id == case.id, CaseEvent.action == "escalate")
                .order_by(CaseEvent.id)
            )
        )
        assert len(events) == level
        last = events[-1]
        assert (last.actor_id, last.actor_role, last.from_status, last.to_status) == (
            None,
            "system",
            "assigned",
            "assigned",
        )
        assert last.data == {"from_level": level - 1, "to_level": level, "cell_code": code}
        assert last.created_at == now
        notes = list(
            db.session.scalars(
                select(Notification).where(
                    Notification.report_id == case.id, Notification.data["level"].as_integer() == level
                )
            )
        )
        assert {n.user_id for n in notes} == supervisors
        assert all(n.kind == "escalation" and n.read_at is None for n in notes)
        now += 3 * HOUR  # past the new level's 2-hour window

    result = sweep(now)
    assert (result.escalated, result.critical) == (0, 1)
    report = fresh(db, case)
    assert (report.escalation_level, report.critical, report.handling_cell_id) == (3, True, world.cells[DISTRICT].id)
    assert report.version == version + 4
    critical = list(db.session.scalars(select(CaseEvent).where(CaseEvent.action == "critical")))
    assert len(critical) == 1 and critical[0].data == {"level": 3, "cell_code": DISTRICT}
    assert notified(db, case, "critical") == {world.district_sup.id}

    # At the top and flagged: later sweeps leave it alone.
    before = counts(db)
    assert sweep(now + 10 * HOUR).claimed == 0
    assert counts(db) == before
    assert fresh(db, case).version == version + 4


def test_the_sweep_records_the_missed_due_time_and_keeps_it_up_the_levels(db, world):
    case = overdue_case(world)
    assert sweep(NOW).escalated == 1
    report = fresh(db, case)
    assert (report.escalation_level, report.late_since, report.due_at) == (1, NOW - HOUR, NOW - HOUR)
    # Inside the community's fresh window: its own light is green, the case's stays red.
    assert (sla.sla_state(report, NOW), sla.level_sla_state(report, NOW)) == ("red", "green")
    assert sweep(NOW + 3 * HOUR).escalated == 1
    report = fresh(db, case)
    assert (report.escalation_level, report.late_since) == (2, NOW - HOUR)
    assert sla.level_sla_state(report, NOW + 3 * HOUR) == "green"


def test_a_second_run_changes_nothing(db, world):
    cases = [overdue_case(world) for _ in range(3)] + [
        overdue_case(world, escalation_level=3, critical=False, handling_cell_id=world.cells[DISTRICT].id)
    ]
    first = sweep(NOW)
    assert (first.escalated, first.critical) == (3, 1)
    before = counts(db)
    versions = [fresh(db, c).version for c in cases]
    assert sweep(NOW).claimed == 0
    assert counts(db) == before
    assert [fresh(db, c).version for c in cases] == versions


def test_small_batches_reach_every_case(db, world):
    cases = [overdue_case(world) for _ in range(5)]
    result = sweep(NOW, limit=2)
    assert result.escalated == 5
    assert {fresh(db, c).escalation_level for c in cases} == {1}
    assert db.session.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.action == "escalate")) == 5


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "on_hold", "hold_started_at": NOW - 2 * HOUR},
        {"status": "resolved", "resolved_at": NOW - 2 * HOUR},
        {"status": "closed", "closed_at": NOW - 2 * HOUR},
        {"status": "submitted"},
        {"status": "duplicate"},
        {"deadline_at": NOW + HOUR, "warn_at": NOW + 30 * 60 * timedelta(seconds=1)},  # not yet due: green
        {"deadline_at": None, "warn_at": None},  # no clock
    ],
)
def test_cases_whose_clock_does_not_run_out_are_untouched(db, world, fields):
    case = overdue_case(world, **fields)
    version = case.version
    before = counts(db)
    assert sweep(NOW).claimed == 0
    assert counts(db) == before
    report = fresh(db, case)
    assert (report.escalation_level, report.version, report.handling_cell_id) == (0, version, world.cells[SW].id)


def test_yellow_cases_warn_their_assignee_and_supervisors_once_per_level(db, world):
    case = overdue_case(world, deadline_at=NOW + HOUR, warn_at=NOW - HOUR)
    unassigned = overdue_case(world, assignee_id=None, status="accepted", deadline_at=NOW + HOUR, warn_at=NOW - HOUR)
    version = case.version
    result = sweep(NOW)
    assert (result.reminded, result.escalated) == (2, 0)
    # The supervisors whose subtree holds the grid cell (active ones: not the one at NE, not the inactive one).
    supervisors = {world.community_sup.id, world.street_sup.id, world.district_sup.id}
    assert notified(db, case, "reminder") == supervisors | {world.worker.id}
    assert notified(db, unassigned, "reminder") == supervisors
    notes = list(db.session.scalars(select(Notification).where(Notification.report_id == case.id)))
    assert {(n.data["level"], n.data["cell_code"], n.data["status"]) for n in notes} == {(0, SW, "assigned")}
    report = fresh(db, case)
    assert (report.reminded_level, report.version) == (0, version)
    assert fresh(db, unassigned).reminded_level == 0

    before = counts(db)
    assert sweep(NOW + 30 * timedelta(minutes=1)).claimed == 0
    assert counts(db) == before

    # Overdue: escalated to the community (green again), then yellow at that level: one more reminder.
    assert sweep(NOW + 2 * HOUR).escalated == 2
    later = NOW + 2 * HOUR + timedelta(hours=1.7)
    result = sweep(later)
    assert (result.reminded, result.escalated) == (2, 0)
    assert fresh(db, case).reminded_level == 1
    assert sweep(later).claimed == 0
    reminders = db.session.execute(
        select(Notification.user_id, Notification.data).where(
            Notification.kind == "reminder", Notification.report_id == case.id
        )
    ).all()
    # At the community level its supervisors and those above it are the subtree's.
    at_community = {u for u, data in reminders if data["level"] == 1}
    assert at_community == {world.community_sup.id, world.street_sup.id, world.district_sup.id, world.worker.id}
    assert sorted({data["level"] for _, data in reminders}) == [0, 1]


def test_a_case_without_a_cell_is_not_escalated(db, world):
    case = make_case(
        world.resident, world.category, None, status="accepted", deadline_at=NOW - HOUR, warn_at=NOW - 2 * HOUR
    )
    assert sweep(NOW).claimed == 0
    assert fresh(db, case).escalation_level == 0


# ---- the command ------------------------------------------------------------------------------------


def test_flask_escalate_command(app, db, world):
    case = overdue_case(world, deadline_at=datetime.now(UTC) - HOUR)
    result = app.test_cli_runner().invoke(args=["escalate", "--batch-size", "10"])
    assert result.exit_code == 0, result.output
    assert "1 escalated, 0 marked critical, 0 reminded, 2 notifications" in result.output
    assert fresh(db, case).escalation_level == 1
    again = app.test_cli_runner().invoke(args=["escalate"])
    assert "0 escalated, 0 marked critical, 0 reminded, 0 notifications" in again.output


def test_flask_escalate_every_loops_until_interrupted(app, db, world, monkeypatch):
    overdue_case(world, deadline_at=datetime.now(UTC) - HOUR)
    sleeps = []

    def fake_sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("app.cli.time.sleep", fake_sleep)
    result = app.test_cli_runner().invoke(args=["escalate", "--every", "5"])
    assert result.exit_code == 0, result.output
    assert sleeps == [5, 5]
    assert result.output.count("escalate:") == 3  # two sweeps logged, then "stopped"
    assert "escalate: stopped" in result.output


def test_flask_escalate_every_outlives_a_database_outage(app, db, world, monkeypatch):
    case = overdue_case(world, deadline_at=datetime.now(UTC) - HOUR)
    real_sweep = cli.escalation_sweep
    calls = []

    def sweep_after_an_outage(batch_size):
        calls.append(batch_size)
        if len(calls) == 1:
            raise OperationalError("SELECT 1", {}, Exception("the database system is shutting down"))
        return real_sweep(batch_size)

    sleeps = []

    def fake_sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "escalation_sweep", sweep_after_an_outage)
    monkeypatch.setattr("app.cli.time.sleep", fake_sleep)
    result = app.test_cli_runner().invoke(args=["escalate", "--every", "5"])
    assert result.exit_code == 0, result.output
    assert "escalate: database unavailable (OperationalError), next sweep in 5 s" in result.output
    assert "1 escalated" in result.output
    assert fresh(db, case).escalation_level == 1


def test_flask_escalate_once_fails_on_a_database_outage(app, db, monkeypatch):
    def down(_batch_size):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(cli, "escalation_sweep", down)
    result = app.test_cli_runner().invoke(args=["escalate"])
    # Run once (cron), the failure is the exit status, for cron's mail or the timer's unit state.
    assert result.exit_code != 0
    assert isinstance(result.exception, OperationalError)


@pytest.mark.parametrize("args", [["--every", "0"], ["--every", "x"], ["--batch-size", "0"]])
def test_flask_escalate_rejects_bad_options(app, db, args):
    result = app.test_cli_runner().invoke(args=["escalate", *args])
    assert result.exit_code == 2


# ---- concurrency -----------------------------------------------------------------------------


def test_four_concurrent_sweeps_escalate_each_case_once_per_level(app, backend):
    """Four sweeps in their own threads, sessions and connections over committed data.

    PostGIS: the batches claim rows with SKIP LOCKED. SpatiaLite: the writers take turns (BEGIN IMMEDIATE)."""
    from app.extensions import db

    with app.app_context():
        try:
            world = build_world()
            cases = [overdue_case(world) for _ in range(60)]
            ids = [c.id for c in cases]
            db.session.commit()
            barrier = threading.Barrier(4)
            errors = []

            def run(now):
                with app.app_context():
                    try:
                        barrier.wait()
                        while True:
                            batch = escalate_batch(now, 7)
                            db.session.commit()
                            if batch.claimed == 0:
                                break
                    except Exception as exc:  # noqa: BLE001 - reported by the main thread
                        errors.append(exc)
                        db.session.rollback()
                    finally:
                        db.session.remove()

            for now in (NOW, NOW + 3 * HOUR):
                threads = [threading.Thread(target=run, args=(now,)) for _ in range(4)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            assert errors == []
            db.session.expire_all()
            events = db.session.execute(
                select(CaseEvent.report_id, CaseEvent.data).where(
                    CaseEvent.report_id.in_(ids), CaseEvent.action == "escalate"
                )
            ).all()
            per_level = Counter((report_id, data["to_level"]) for report_id, data in events)
            assert per_level == {(i, level): 1 for i in ids for level in (1, 2)}
            assert set(db.session.scalars(select(Report.escalation_level).where(Report.id.in_(ids)))) == {2}
            # Each sweep: the new level's supervisor and the worker.
            assert (
                db.session.scalar(select(func.count()).select_from(Notification).where(Notification.report_id.in_(ids)))
                == 60 * 4
            )
        finally:
            db.session.rollback()
            _delete_everything(db)


def _delete_everything(db):
    with db.engine.begin() as conn:
        delete_committed(conn)


def test_a_limit_in_minutes_escalates_within_minutes_and_each_level_gets_its_minutes(db, world):
    """The demo unit: a 5-minute limit is red after 5 minutes and the sweep moves it up; the next level gets 5 more."""
    category = make_category(hours=5, unit="minutes", window=5, window_unit="minutes")
    report = make_case(world.resident, category, world.cells[SW], status="assigned", assignee_id=world.worker.id)
    sla.start_clock(report, NOW)
    db.session.flush()
    assert (report.deadline_at - NOW, report.warn_at - NOW) == (timedelta(minutes=5), timedelta(minutes=4))
    assert sweep(NOW + timedelta(minutes=4, seconds=59)).escalated == 0
    assert sweep(NOW + timedelta(minutes=6)).escalated == 1
    report = fresh(db, report)
    assert report.escalation_level == 1
    assert report.deadline_at - (NOW + timedelta(minutes=6)) == timedelta(minutes=5)
    assert sweep(NOW + timedelta(minutes=12)).escalated == 1
    assert fresh(db, report).escalation_level == 2
