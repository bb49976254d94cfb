"""The lights and the late rule (app/services/cases/sla.py): Python and SQL agree on every kind of case; the
migration's fill of late_since."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from itertools import product
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import not_, select

from app.models import OPEN_STATUSES, CaseEvent, Report, ReportStatus
from app.models.base import utcnow
from app.services.cases import sla
from tests.factories import make_case, make_category, make_test_grid, make_user

SW = "11010500100101"
HOUR = timedelta(hours=1)
MIGRATION = next(Path(__file__).parent.parent.glob("migrations/versions/*_reports_late_since.py"))


@pytest.fixture()
def world(db):
    cells = make_test_grid()
    return SimpleNamespace(cells=cells, category=make_category(hours=4), resident=make_user("resident"))


def clocks(now):
    """Every shape a case's clock takes, named; columns relative to `now` (boundaries exactly at now included)."""
    return {
        "no clock": {},
        "green": {"due_at": now + 3 * HOUR, "deadline_at": now + 3 * HOUR, "warn_at": now + 2 * HOUR},
        "warn now": {"due_at": now + HOUR, "deadline_at": now + HOUR, "warn_at": now},
        "due now": {"due_at": now, "deadline_at": now, "warn_at": now - HOUR},
        "past due": {"due_at": now - HOUR, "deadline_at": now - HOUR, "warn_at": now - 2 * HOUR},
        "escalated, new window": {
            "due_at": now - HOUR,
            "late_since": now - HOUR,
            "deadline_at": now + 5 * HOUR,
            "warn_at": now + 4 * HOUR,
            "escalation_level": 1,
        },
        "escalated, level yellow": {
            "due_at": now - 5 * HOUR,
            "late_since": now - 5 * HOUR,
            "deadline_at": now + HOUR,
            "warn_at": now - HOUR,
            "escalation_level": 1,
        },
        "escalated, level red": {
            "due_at": now - 9 * HOUR,
            "late_since": now - 9 * HOUR,
            "deadline_at": now - HOUR,
            "warn_at": now - 2 * HOUR,
            "escalation_level": 2,
        },
        "extended after missing": {
            "due_at": now + 5 * HOUR,
            "late_since": now - HOUR,
            "deadline_at": now + 5 * HOUR,
            "warn_at": now + 4 * HOUR,
        },
        "held before due": {
            "due_at": now - HOUR,
            "deadline_at": now - HOUR,
            "warn_at": now - 2 * HOUR,
            "hold_started_at": now - 3 * HOUR,
        },
        "held after due": {
            "due_at": now - 2 * HOUR,
            "deadline_at": now - 2 * HOUR,
            "warn_at": now - 3 * HOUR,
            "hold_started_at": now - HOUR,
        },
        "closed on time": {
            "due_at": now - HOUR,
            "deadline_at": now - HOUR,
            "warn_at": now - 2 * HOUR,
            "closed_at": now - 2 * HOUR,
        },
        "closed at due": {"due_at": now - HOUR, "deadline_at": now - HOUR, "closed_at": now - HOUR},
        "closed late": {"due_at": now - 2 * HOUR, "deadline_at": now - 2 * HOUR, "closed_at": now - HOUR},
    }


def test_python_and_sql_agree_on_every_status_and_clock(db, world):
    now = utcnow()
    made = {}
    for status, (name, columns) in product([s.value for s in ReportStatus], clocks(now).items()):
        made[make_case(world.resident, world.category, world.cells[SW], status=status, **columns).id] = (status, name)
    rows = db.session.execute(
        select(
            Report,
            sla.sla_state_expr(now),
            sla.level_sla_state_expr(now),
            sla.late_since_expr(now),
            sla.late_filter(now),
            sla.overdue_backlog_filter(now),
        ).where(Report.id.in_(made))
    ).all()
    assert len(rows) == len(made)
    for report, state, level_state, late_since, late, backlog in rows:
        case = made[report.id]
        assert state == sla.sla_state(report, now), case
        assert level_state == sla.level_sla_state(report, now), case
        assert late_since == sla.late_since(report, now), case
        assert bool(late) == (sla.late_since(report, now) is not None), case
        assert bool(backlog) == (report.status in OPEN_STATUSES and bool(late)), case
    # The negations are two-valued: every case is late or not, in the backlog or not.
    for condition in (sla.late_filter(now), sla.overdue_backlog_filter(now)):
        split = [
            set(db.session.scalars(select(Report.id).where(Report.id.in_(made), where)))
            for where in (condition, not_(condition))
        ]
        assert split[0] | split[1] == set(made) and not split[0] & split[1]


@pytest.mark.parametrize(
    "status, clock, expected",
    [
        # (sla_state, level_sla_state, late)
        ("assigned", "green", ("green", "green", False)),
        ("assigned", "warn now", ("yellow", "yellow", False)),
        ("assigned", "due now", ("yellow", "yellow", False)),
        ("assigned", "past due", ("red", "red", True)),
        # The case: escalated once, green at the community's new window, and still late.
        ("assigned", "escalated, new window", ("red", "green", True)),
        ("in_progress", "escalated, level yellow", ("red", "yellow", True)),
        ("assigned", "escalated, level red", ("red", "red", True)),
        ("in_progress", "extended after missing", ("red", "green", True)),
        ("on_hold", "held before due", ("green", "green", False)),
        ("on_hold", "held after due", ("red", "red", True)),
        ("resolved", "past due", ("red", "red", True)),
        ("closed", "closed on time", ("green", None, False)),
        ("closed", "closed at due", ("green", None, False)),
        ("closed", "closed late", ("red", None, True)),
        ("closed", "escalated, new window", ("red", None, True)),
        ("duplicate", "past due", ("green", None, False)),
        ("duplicate", "escalated, new window", ("red", None, True)),
        ("submitted", "no clock", (None, None, False)),
        ("accepted", "no clock", (None, None, False)),
    ],
)
def test_the_lights_of_each_kind_of_case(db, world, status, clock, expected):
    now = utcnow()
    report = make_case(world.resident, world.category, world.cells[SW], status=status, **clocks(now)[clock])
    assert (sla.sla_state(report, now), sla.level_sla_state(report, now), sla.late_since(report, now) is not None) == (
        expected
    )


def test_late_since_is_the_first_due_time_missed(db, world):
    now = utcnow()
    columns = clocks(now)
    assert sla.late_since(make_case(world.resident, world.category, None, **columns["past due"]), now) == now - HOUR
    held = make_case(world.resident, world.category, None, status="on_hold", **columns["held after due"])
    assert sla.late_since(held, now) == now - 2 * HOUR
    extended = make_case(world.resident, world.category, None, **columns["extended after missing"])
    assert sla.late_since(extended, now) == now - HOUR


def test_note_lateness_records_only_a_missed_due_time_and_never_moves_it(db, world):
    now = utcnow()
    columns = clocks(now)
    running = make_case(world.resident, world.category, None, **columns["green"])
    sla.note_lateness(running, now)
    assert running.late_since is None
    late = make_case(world.resident, world.category, None, **columns["past due"])
    sla.note_lateness(late, now)
    assert late.late_since == now - HOUR
    late.due_at = now + 5 * HOUR  # an extension approved afterwards
    sla.note_lateness(late, now)
    assert late.late_since == now - HOUR and sla.sla_state(late, now) == "red"


# ---- the migration's fill -----------------------------------------------------------------------------------


def _migration():
    spec = importlib.util.spec_from_file_location("late_since_migration", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migration_fills_late_since_of_existing_cases(db, world):
    now = utcnow()
    cell = world.cells[SW]

    def case(status="assigned", events=(), **columns):
        report = make_case(world.resident, world.category, cell, status=status, accepted_at=now - 20 * HOUR, **columns)
        for action, at in events:
            db.session.add(CaseEvent(report_id=report.id, actor_role="system", action=action, created_at=at))
        db.session.commit()
        return report

    escalated = case(escalation_level=2, due_at=now - 6 * HOUR, events=[("escalate", now - 5 * HOUR)])
    # An extension approved after the escalation moved due_at past it: the escalation's moment bounds the miss.
    extended = case(escalation_level=1, due_at=now + 9 * HOUR, events=[("escalate", now - 3 * HOUR)])
    # Escalated before an earlier return (before accepted_at): that escalation does not count.
    again = case(
        escalation_level=1,
        due_at=now + 9 * HOUR,
        events=[("escalate", now - 30 * HOUR), ("escalate", now - 2 * HOUR)],
    )
    closed_late = case("closed", due_at=now - 4 * HOUR, closed_at=now - HOUR)
    closed_on_time = case("closed", due_at=now - HOUR, closed_at=now - 4 * HOUR)
    closed_after_escalation = case(
        "closed", escalation_level=1, due_at=now - 8 * HOUR, closed_at=now - HOUR, events=[("escalate", now - 7 * HOUR)]
    )
    duplicate_late = case("duplicate", due_at=now - 4 * HOUR, events=[("mark_duplicate", now - HOUR)])
    duplicate_on_time = case("duplicate", due_at=now - HOUR, events=[("mark_duplicate", now - 4 * HOUR)])
    duplicate_held = case(
        "duplicate", due_at=now - 4 * HOUR, hold_started_at=now - 5 * HOUR, events=[("mark_duplicate", now - HOUR)]
    )
    open_past_due = case(due_at=now - HOUR)  # left to the live rule
    recorded = case(escalation_level=1, due_at=now - 6 * HOUR, late_since=now - 10 * HOUR)

    _migration().fill(db.session.connection())
    db.session.expire_all()
    filled = {report_id: late for report_id, late in db.session.execute(select(Report.id, Report.late_since))}
    assert filled[escalated.id] == now - 6 * HOUR
    assert filled[extended.id] == now - 3 * HOUR
    assert filled[again.id] == now - 2 * HOUR
    assert filled[closed_late.id] == now - 4 * HOUR
    assert filled[closed_on_time.id] is None
    assert filled[closed_after_escalation.id] == now - 8 * HOUR
    assert filled[duplicate_late.id] == now - 4 * HOUR
    assert filled[duplicate_on_time.id] is None
    assert filled[duplicate_held.id] is None
    assert filled[open_past_due.id] is None
    assert sla.late_since(db.session.get(Report, open_past_due.id), now) == now - HOUR
    assert filled[recorded.id] == now - 10 * HOUR
