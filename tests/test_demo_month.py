"""The demo month (`flask seed-demo`'s cases): every status, a consistent history, escalations the district
supervisor sees, photos, ratings and analytics that answer, and a second run that adds nothing."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.models import (
    OPEN_STATUSES,
    Attachment,
    CaseEvent,
    Category,
    Notification,
    Report,
    ReportStatus,
    User,
)
from app.models.base import clock_at, utcnow
from app.services.demo_month import DAYS, SEED, SOURCE, Clock, Planner, _grid_cells, _next_tick, _people, photo
from tests.factories import make_report, set_case

API = "/api/v1"


@pytest.fixture()
def month(app, db, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "UPLOAD_DIR", str(tmp_path / "uploads"))
    started = utcnow()
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "demo month: " in result.output and "cases added" in result.output, result.output
    return started


def _login(client, app, username: str) -> dict:
    resp = client.post(f"{API}/auth/login", json={"username": username, "password": app.config["DEMO_PASSWORD"]})
    assert resp.status_code == 200, resp.json
    return {"Authorization": f"Bearer {resp.json['access_token']}"}


def _demo_reports(db) -> list[Report]:
    return list(db.session.scalars(select(Report).where(Report.source == SOURCE).order_by(Report.id)))


def test_the_month_has_every_status_and_a_consistent_history(app, db, month):
    reports = _demo_reports(db)
    assert 40 <= len(reports) <= 120
    statuses = Counter(r.status for r in reports)
    assert set(statuses) == {s.value for s in ReportStatus}, statuses
    assert statuses["closed"] >= len(reports) // 4
    events = db.session.scalars(
        select(CaseEvent).join(Report, Report.id == CaseEvent.report_id).where(Report.source == SOURCE)
    ).all()
    by_case: dict[int, list[CaseEvent]] = {}
    for event in sorted(events, key=lambda e: e.id):
        by_case.setdefault(event.report_id, []).append(event)
    oldest = month - timedelta(days=DAYS + 1)
    for report in reports:
        history = by_case[report.id]
        assert history[0].action == "create"
        times = [e.created_at for e in history]
        # In the order written, at the moments they tell of: within the month, never ahead of the clock.
        assert times == sorted(times), (report.case_number, [(e.action, e.created_at) for e in history])
        assert oldest <= times[0] and times[-1] <= utcnow()
        assert report.created_at == times[0] and report.case_number.startswith(f"{times[0]:%Y}")
        # The last step that moved the status left the case where it stands.
        moves = [e for e in history if e.action not in ("attach", "supervise", "rate", "escalate", "critical")]
        assert moves[-1].to_status == report.status, (report.case_number, [(e.action, e.to_status) for e in history])
    # Filing is spread over the month, mostly in working hours (local time).
    days = {r.case_day for r in reports}
    assert len(days) >= 15
    actions = Counter(e.action for e in events)
    for action in ("accept", "assign", "start", "resolve", "verify", "close", "reject", "rework", "hold", "resume"):
        assert actions[action] >= 1, actions
    for action in ("request_extension", "approve_extension", "return", "reroute", "mark_duplicate", "cancel"):
        assert actions[action] >= 1, actions
    assert actions["escalate"] >= 10 and actions["critical"] >= 1 and actions["supervise"] >= 1, actions
    # The sweep's and the steps' notices were written with them.
    notified = db.session.scalar(
        select(func.count()).select_from(Notification).join(Report, Report.id == Notification.report_id)
    )
    assert notified >= len(reports)


def test_the_district_supervisor_sees_escalated_overdue_cases(app, client, db, month):
    headers = _login(client, app, "district_supervisor")
    resp = client.get(f"{API}/escalations?page_size=100", headers=headers)
    assert resp.status_code == 200, resp.json
    items = resp.json["items"]
    assert len(items) >= 5
    assert {i["level"] for i in items} >= {"community", "street", "district"}
    assert any(i["critical"] for i in items)
    assert all(i["late_since"] and i["overdue_seconds"] > 0 for i in items)
    overdue = [i["overdue_seconds"] for i in items]
    assert overdue == sorted(overdue, reverse=True)
    # Red (late) and yellow (due soon) open cases are listed by their lights.
    red = client.get(f"{API}/reports?sla_state=red&status=in_progress&page_size=100", headers=headers)
    assert red.status_code == 200 and red.json["items"], red.json
    yellow = client.get(f"{API}/reports?sla_state=yellow&page_size=100", headers=headers)
    assert yellow.status_code == 200 and yellow.json["items"], yellow.json
    assert all(r["status"] in OPEN_STATUSES for r in yellow.json["items"])


def test_the_month_feeds_the_statistics_and_the_analytics(app, client, db, month):
    headers = _login(client, app, "district_supervisor")
    # The current month (the default period) has the overdue backlog whatever the day; the month's 30 days the rest.
    current = client.get(f"{API}/stats/summary?cell=330106", headers=headers)
    assert current.status_code == 200, current.json
    assert sum(c["overdue_backlog"] for c in current.json["children"]) > 0
    period = f"from={(month - timedelta(days=DAYS + 1)).date()}&to={(month + timedelta(days=1)).date()}"
    summary = client.get(f"{API}/stats/summary?cell=330106&{period}", headers=headers)
    assert summary.status_code == 200, summary.json
    children = summary.json["children"]
    assert sum(c["filed"] for c in children) >= 40 and sum(c["closed"] for c in children) >= 15
    assert sum(c["satisfaction_count"] for c in children) >= 5
    assert any(c["on_time_rate"] is not None for c in children)
    trend = client.get(f"{API}/analytics/trend?cell=330106", headers=headers)
    assert trend.status_code == 200 and sum(i["filed"] for i in trend.json["items"]) > 0
    assert sum(1 for i in trend.json["items"] if i["filed"]) >= 10, "filed on many days of the month"
    heatmap = client.get(f"{API}/analytics/heatmap?cell=330106", headers=headers)
    assert heatmap.status_code == 200 and heatmap.json["features"], heatmap.json
    hotspots = client.get(f"{API}/analytics/hotspots?cell=330106", headers=headers)
    assert hotspots.status_code == 200 and hotspots.json["features"], hotspots.json
    # Ratings from the residents who filed the closed cases.
    rated = [r for r in _demo_reports(db) if r.rating is not None]
    assert len(rated) >= 5
    assert all(r.status == "closed" and 1 <= r.rating <= 5 and r.rated_at >= r.closed_at for r in rated)


def test_the_month_photos_are_readable(app, client, db, month):
    headers = _login(client, app, "district_supervisor")
    photos = db.session.scalars(
        select(Attachment).join(Report, Report.id == Attachment.report_id).where(Report.source == SOURCE)
    ).all()
    assert len(photos) >= 5
    assert {p.stage for p in photos} >= {"before", "after"}
    for attachment in photos[:10]:
        resp = client.get(f"{API}/reports/{attachment.report_id}/attachments/{attachment.id}/content", headers=headers)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.data[:8] == b"\x89PNG\r\n\x1a\n" and len(resp.data) == attachment.size_bytes
        assert (attachment.width, attachment.height) == (96, 72)


def test_a_second_run_adds_nothing(app, db, month):
    def counts():
        return [
            db.session.scalar(select(func.count()).select_from(model))
            for model in (Report, CaseEvent, Notification, Attachment, User)
        ]

    before = counts()
    again = app.test_cli_runner().invoke(args=["seed-demo"])
    assert again.exit_code == 0, again.output
    assert "0 cells, 0 categories, 0 accounts added" in again.output
    assert "demo month: the cases are there already" in again.output
    assert counts() == before


def test_no_cases_leaves_the_district_empty(app, db, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "UPLOAD_DIR", str(tmp_path / "uploads"))
    result = app.test_cli_runner().invoke(args=["seed-demo", "--no-cases"])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(func.count()).select_from(Report)) == 0
    assert "demo month" not in result.output


def test_the_clock_and_the_photos_are_the_planner_s():
    at = utcnow().replace(year=2026, month=3, day=2, hour=9, minute=7)
    with clock_at(at):
        assert utcnow() == at
    assert utcnow() != at
    assert _next_tick(at).minute == 15 and _next_tick(at.replace(minute=15, second=0, microsecond=0)).minute == 30
    assert photo(random.Random(1), "before") == photo(random.Random(1), "before")
    assert photo(random.Random(1), "before") != photo(random.Random(1), "after")


def test_the_plan_is_the_same_whatever_the_day(app, db):
    """Seeded: the same cases, places, people and steps on any day the seed runs; only the moments move."""
    result = app.test_cli_runner().invoke(args=["seed-demo", "--no-cases"])
    assert result.exit_code == 0, result.output
    cells = _grid_cells("330106")
    now = utcnow()
    people, _ = _people(app.config["DEMO_PASSWORD"], "330106", cells, now - timedelta(days=DAYS + 7))

    def plan(at):
        rng = random.Random(SEED)
        cases = Planner(rng, Clock(at, rng), people, cells).plan()
        return [(c.category, c.cell.code, c.description, c.reporter.username, [s[1] for s in c.steps]) for c in cases]

    today = plan(now)
    assert today == plan(now)
    # A Saturday and a Tuesday draw alike.
    assert plan(now - timedelta(days=3)) == today == plan(now - timedelta(days=6))
    assert len({c[1] for c in today}) >= 20, "spread over many grid cells"


def test_the_month_s_sweeps_leave_other_cases_alone(app, db, tmp_path, monkeypatch):
    """The sweeps run at past moments over the demo's cases only: a case of the install's own, overdue since long
    before, is left to the real sweep (it would otherwise get an escalation dated weeks ago)."""
    monkeypatch.setitem(app.config, "UPLOAD_DIR", str(tmp_path / "uploads"))
    assert app.test_cli_runner().invoke(args=["seed-demo", "--no-cases"]).exit_code == 0
    worker = db.session.scalars(select(User).where(User.username == "worker1")).one()
    category = db.session.scalars(select(Category).where(Category.code == "0104")).one()
    own = make_report(worker, category, 120.1012, 30.2411)
    long_ago = utcnow() - timedelta(days=20)
    set_case(own, status="in_progress", deadline_at=long_ago, warn_at=long_ago, due_at=long_ago)
    assert app.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    db.session.expire_all()
    assert db.session.get(Report, own.id).escalation_level == 0
    assert not db.session.scalars(
        select(CaseEvent).where(CaseEvent.report_id == own.id, CaseEvent.action == "escalate")
    ).all()
    assert db.session.scalar(select(func.count()).select_from(Report).where(Report.source == SOURCE)) > 0
