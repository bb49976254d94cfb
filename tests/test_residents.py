"""Residents: own reports, public history, rating, following, similar open cases, who sees a reporter's data."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, text

from app.models import CaseEvent, Category, Notification, Report, ReportFollower
from app.models.base import utcnow
from app.models.reports import FINAL_STATUSES, OPEN_STATUSES, ReportStatus
from app.services.cases import lifecycle as cases, notifications
from app.services.public import residents, view as public_view
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    OTHER_COMMUNITY,
    OTHER_GRID,
    auth_header,
    make_category,
    make_offered,
    make_report,
    make_two_district_grid,
    make_user,
    set_case,
)

URL = "/api/v1/reports"
SW, NE = "11010500100101", "11010500100104"
SW_POINT, NE_POINT, OTHER_POINT = (116.405, 39.905), (116.415, 39.915), (116.505, 39.905)
OVERSIZED = '{"comment": "' + "x" * (1024 * 1024) + '"}'
PHONE = "13800138001"


@pytest.fixture()
def w(db):
    cells = make_two_district_grid()
    return SimpleNamespace(
        cells=cells,
        category=make_category(hours=4, auto_dispatch=False),
        resident=make_user("resident", username=PHONE, phone=PHONE),
        resident2=make_user("resident", phone="13800138002"),
        resident3=make_user("resident"),
        worker=make_user("worker", served=[cells[SW]]),
        worker2=make_user("worker", served=[cells[SW]]),
        other_worker=make_user("worker", served=[cells[OTHER_GRID]]),
        supervisor=make_user("supervisor", cell=cells[COMMUNITY]),
        other_supervisor=make_user("supervisor", cell=cells[OTHER_COMMUNITY]),
        root_supervisor=make_user("supervisor", cell=cells[DISTRICT]),
        admin=make_user("admin"),
    )


def case(w, status="submitted", *, point=SW_POINT, reporter=None, category=None, description="test report", **columns):
    report = make_report(reporter or w.resident, category or w.category, *point, description=description)
    if status in {"assigned", "in_progress", "resolved", "closed"}:
        columns.setdefault("assignee_id", w.worker.id)
    if status == "closed":
        columns.setdefault("closed_at", utcnow())
    return set_case(report, status=status, **columns) if status != "submitted" or columns else report


def stored(db, report) -> Report:
    db.session.expire_all()
    return db.session.get(Report, report.id)


def count(db, model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def snapshot(db, report) -> tuple:
    r = stored(db, report)
    return (
        r.status,
        r.version,
        r.rating,
        r.rating_comment,
        r.rated_at,
        r.updated_at,
        count(db, CaseEvent, CaseEvent.report_id == r.id),
        count(db, Notification),
        count(db, ReportFollower),
    )


def step(db, report, action, user, **kwargs):
    """Move a case with the service (If-Match: its current version) and commit, as one request would."""
    report = stored(db, report)
    perform = getattr(cases, {"return": "return_case"}.get(action, action))
    perform(user, report, {report.version}, **kwargs)
    db.session.commit()
    return report


def post(client, report, action, user, body=None, *, if_match=None, raw=None):
    headers = auth_header(user) if user is not None else {}
    if if_match is not None:
        headers["If-Match"] = if_match
    url = f"{URL}/{report.id}/actions/{action}"
    if raw is not None:
        return client.post(url, data=raw, content_type="application/json", headers=headers)
    return client.post(url, json={} if body is None else body, headers=headers)


def get(client, path, user, **query):
    return client.get(path, query_string=query, headers=auth_header(user))


def follow(client, report, resident):
    """The case is offered to the resident (they filed the same nearby), then they follow it."""
    make_offered(resident, report)
    resp = post(client, report, "follow", resident)
    assert resp.status_code == 200, resp.json
    return resp


# ---- GET /me/reports ------------------------------------------------------------------------------


def test_my_reports_lists_only_mine_newest_first(client, db, w):
    mine = [case(w), case(w, "closed"), case(w, "accepted", point=NE_POINT)]
    theirs = case(w, reporter=w.resident2)
    residents.follow(w.resident, theirs.id, None)  # followed cases are not "my reports"
    db.session.commit()
    resp = get(client, "/api/v1/me/reports", w.resident)
    assert resp.status_code == 200, resp.json
    assert [item["id"] for item in resp.json["items"]] == [r.id for r in reversed(mine)]
    assert (resp.json["total"], resp.json["page"], resp.json["page_size"]) == (3, 1, 20)
    assert all(item["reporter"]["phone"] == PHONE for item in resp.json["items"])


def test_my_reports_paginate_and_filter_by_status(client, db, w):
    mine = [case(w) for _ in range(3)] + [case(w, "closed")]
    page2 = get(client, "/api/v1/me/reports", w.resident, page=2, page_size=2).json
    assert [i["id"] for i in page2["items"]] == [mine[1].id, mine[0].id] and page2["total"] == 4
    closed = get(client, "/api/v1/me/reports", w.resident, status="closed").json
    assert [i["id"] for i in closed["items"]] == [mine[3].id] and closed["total"] == 1
    assert get(client, "/api/v1/me/reports", w.resident2).json == {"items": [], "page": 1, "page_size": 20, "total": 0}


def test_a_worker_sees_the_reports_they_filed(client, db, w):
    filed = case(w, reporter=w.worker)
    case(w)
    assert [i["id"] for i in get(client, "/api/v1/me/reports", w.worker).json["items"]] == [filed.id]


@pytest.mark.parametrize("query", [{"status": "open"}, {"page": 0}, {"page_size": 101}, {"page_size": "x"}])
def test_my_reports_bad_query_is_422(client, db, w, query):
    assert_problem(get(client, "/api/v1/me/reports", w.resident, **query), 422, "validation_failed")


def test_my_reports_needs_a_token(client, db, w):
    assert_problem(client.get("/api/v1/me/reports"), 401, "missing_token")


# ---- public history ---------------------------------------------------------------------------------


def _walk_full_loop(db, w):
    report = case(w)
    step(db, report, "accept", w.supervisor, note="内部: 属实")
    step(db, report, "assign", w.supervisor, assignee_id=w.worker.id, note="内部: 请王师傅处理")
    step(db, report, "start", w.worker)
    step(db, report, "hold", w.worker, reason="内部: 等车")
    step(db, report, "resume", w.worker)
    step(db, report, "supervise", w.supervisor, note="内部: 今日办结")
    step(db, report, "resolve", w.worker, note="已清运")
    step(db, report, "rework", w.supervisor, note="内部: 周边仍有")
    step(db, report, "start", w.worker)
    step(db, report, "resolve", w.worker, note="已全部清运")
    step(db, report, "verify", w.supervisor, note="现场核查通过")
    return report


INTERNAL_NOTES = ("内部: 属实", "内部: 请王师傅处理", "内部: 等车", "内部: 今日办结", "内部: 周边仍有")
PUBLIC_LOOP = [
    ("create", None, "submitted", None),
    ("accept", "submitted", "accepted", None),
    ("assign", "accepted", "assigned", None),
    ("start", "assigned", "in_progress", None),
    ("hold", "in_progress", "on_hold", None),
    ("resume", "on_hold", "in_progress", None),
    ("resolve", "in_progress", "resolved", "已清运"),
    ("rework", "resolved", "assigned", None),
    ("start", "assigned", "in_progress", None),
    ("resolve", "in_progress", "resolved", "已全部清运"),
    ("verify", "resolved", "closed", "现场核查通过"),
]


def _public(resp):
    assert resp.status_code == 200, resp.json
    for entry in resp.json:
        assert set(entry) == {"id", "action", "from_status", "to_status", "actor", "note", "created_at"}, entry
    return [(e["action"], e["from_status"], e["to_status"], e["note"]) for e in resp.json]


def test_the_reporter_reads_the_public_history(client, db, w):
    report = _walk_full_loop(db, w)
    resp = get(client, f"{URL}/{report.id}/events", w.resident)
    assert _public(resp) == PUBLIC_LOOP
    assert [e["actor"] for e in resp.json] == ["you"] + ["staff"] * 10
    text = resp.get_data(as_text=True)
    for secret in (*INTERNAL_NOTES, w.worker.username, w.supervisor.username, str(w.worker.display_name)):
        assert secret not in text


def test_a_follower_reads_the_same_public_history_with_the_reporter_as_a_role(client, db, w):
    report = case(w)
    make_offered(w.resident2, report)
    residents.follow(w.resident2, report.id, None)
    db.session.commit()
    step(db, report, "reject", w.supervisor, reason="不属于受理范围")
    resp = get(client, f"{URL}/{report.id}/events", w.resident2)
    assert _public(resp) == [("create", None, "submitted", None), ("reject", "submitted", "rejected", "不属于受理范围")]
    assert [e["actor"] for e in resp.json] == ["reporter", "staff"]


def test_own_notes_and_the_rating_show_only_to_the_reporter(client, db, w):
    report = case(w, "closed")
    # Followed while it was open.
    db.session.add(ReportFollower(report_id=report.id, user_id=w.resident2.id))
    db.session.commit()
    assert post(client, report, "rate", w.resident, {"score": 2, "comment": "太慢了"}).status_code == 200
    mine = get(client, f"{URL}/{report.id}/events", w.resident).json
    assert (mine[-1]["action"], mine[-1]["actor"], mine[-1]["note"]) == ("rate", "you", "太慢了")
    theirs = get(client, f"{URL}/{report.id}/events", w.resident2)
    assert "rate" not in [e["action"] for e in theirs.json] and "太慢了" not in theirs.get_data(as_text=True)


def test_a_cancel_note_is_the_reporters_own(client, db, w):
    report = case(w)
    step(db, report, "cancel", w.resident, note="已自行解决")
    assert _public(get(client, f"{URL}/{report.id}/events", w.resident))[-1] == (
        "cancel",
        "submitted",
        "cancelled",
        "已自行解决",
    )


@pytest.mark.parametrize("who", ["worker", "supervisor", "root_supervisor", "admin"])
def test_staff_read_the_full_history(client, db, w, who):
    report = _walk_full_loop(db, w)
    resp = get(client, f"{URL}/{report.id}/events", getattr(w, who))
    assert resp.status_code == 200, resp.json
    assert len(resp.json) == 12 and "supervise" in [e["action"] for e in resp.json]
    assert resp.json[1]["note"] == "内部: 属实" and resp.json[1]["actor_id"] == w.supervisor.id
    assert all("actor" not in e for e in resp.json)


@pytest.mark.parametrize("who", ["resident2", "other_worker", "other_supervisor"])
def test_history_of_a_case_you_cannot_see_is_404(client, db, w, who):
    report = case(w)
    assert_problem(get(client, f"{URL}/{report.id}/events", getattr(w, who)), 404, "report_not_found")


def test_public_note_actions_are_one_documented_set():
    assert {"reject", "resolve", "verify", "close"} == public_view.PUBLIC_NOTE_ACTIONS


# ---- rating -----------------------------------------------------------------------------------------


def test_the_reporter_rates_a_closed_case_once(client, db, w):
    report = case(w, "closed")
    before = stored(db, report).version
    resp = post(client, report, "rate", w.resident, {"score": 4, "comment": "处理及时"})
    assert resp.status_code == 200, resp.json
    assert (resp.json["rating"], resp.json["rating_comment"]) == (4, "处理及时")
    assert resp.json["rated_at"] is not None
    assert resp.headers["ETag"] == f'"{before + 1}"'
    after = stored(db, report)
    assert (after.rating, after.rating_comment, after.version, after.status) == (4, "处理及时", before + 1, "closed")
    event = db.session.scalars(
        select(CaseEvent).where(CaseEvent.report_id == report.id).order_by(CaseEvent.id.desc())
    ).first()
    assert (event.action, event.actor_id, event.from_status, event.to_status, event.note, event.data) == (
        "rate",
        w.resident.id,
        "closed",
        "closed",
        "处理及时",
        {"score": 4},
    )
    assert event.created_at == after.rated_at

    again = snapshot(db, report)
    assert_problem(post(client, report, "rate", w.resident, {"score": 5}), 409, "already_rated")
    assert snapshot(db, report) == again


@pytest.mark.parametrize("score", [1, 5])
def test_the_score_ends_are_accepted_and_the_comment_is_optional(client, db, w, score):
    report = case(w, "closed")
    resp = post(client, report, "rate", w.resident, {"score": score})
    assert resp.status_code == 200, resp.json
    assert (stored(db, report).rating, stored(db, report).rating_comment) == (score, None)


def test_a_comment_of_1000_characters_is_accepted(client, db, w):
    report = case(w, "closed")
    assert post(client, report, "rate", w.resident, {"score": 3, "comment": "好" * 1000}).status_code == 200
    assert len(stored(db, report).rating_comment) == 1000


def test_if_match_is_optional_but_checked_when_sent(client, db, w):
    report = case(w, "closed")
    before = snapshot(db, report)
    stale = f'"{stored(db, report).version - 1}"'
    assert_problem(post(client, report, "rate", w.resident, {"score": 4}, if_match=stale), 412, "version_mismatch")
    assert snapshot(db, report) == before
    current = f'"{stored(db, report).version}"'
    assert post(client, report, "rate", w.resident, {"score": 4}, if_match=current).status_code == 200


@pytest.mark.parametrize(
    "status",
    ["submitted", "accepted", "assigned", "in_progress", "on_hold", "resolved", "rejected", "duplicate", "cancelled"],
)
def test_only_a_closed_case_is_rated(client, db, w, status):
    report = case(w, status)
    before = snapshot(db, report)
    problem = assert_problem(post(client, report, "rate", w.resident, {"score": 4}), 409, "transition_not_allowed")
    assert problem["case_status"] == status
    assert snapshot(db, report) == before


@pytest.mark.parametrize(
    "who, status, code",
    [
        ("resident2", 404, "report_not_found"),
        ("other_worker", 404, "report_not_found"),
        ("other_supervisor", 404, "report_not_found"),
        ("worker", 403, "action_forbidden"),
        ("supervisor", 403, "action_forbidden"),
        ("admin", 403, "action_forbidden"),
        ("follower", 403, "action_forbidden"),
    ],
)
def test_nobody_but_the_reporter_rates(client, db, w, who, status, code):
    report = case(w, "closed")
    if who == "follower":
        db.session.add(ReportFollower(report_id=report.id, user_id=w.resident2.id))
        db.session.commit()
        user = w.resident2
    else:
        user = getattr(w, who)
    before = snapshot(db, report)
    assert_problem(post(client, report, "rate", user, {"score": 4}), status, code)
    assert snapshot(db, report) == before


@pytest.mark.parametrize(
    "body, field",
    [
        ({"score": 0}, "score"),
        ({"score": 6}, "score"),
        ({"score": -1}, "score"),
        ({"score": "5"}, "score"),
        ({"score": 4.5}, "score"),
        ({"score": 4.0}, "score"),
        ({"score": True}, "score"),
        ({"score": None}, "score"),
        ({}, "score"),
        ({"comment": "好"}, "score"),
        ({"score": 4, "comment": "x" * 1001}, "comment"),
        ({"score": 4, "comment": ""}, "comment"),
        ({"score": 4, "comment": 5}, "comment"),
        ({"score": 4, "stars": 5}, "stars"),
    ],
)
def test_bad_ratings_are_422_and_change_nothing(client, db, w, body, field):
    report = case(w, "closed")
    before = snapshot(db, report)
    problem = assert_problem(post(client, report, "rate", w.resident, body), 422, "validation_failed")
    assert field in json.dumps(problem["errors"]), problem
    assert snapshot(db, report) == before


@pytest.mark.parametrize(
    "raw, status, code",
    [("{not json", 400, "malformed_json"), ("[4]", 422, "validation_failed"), (OVERSIZED, 413, "payload_too_large")],
    ids=["malformed", "not-an-object", "oversized"],
)
def test_unreadable_rating_bodies_change_nothing(client, db, w, raw, status, code):
    report = case(w, "closed")
    before = snapshot(db, report)
    assert_problem(post(client, report, "rate", w.resident, raw=raw), status, code)
    assert snapshot(db, report) == before


def test_rating_needs_a_token(client, db, w):
    report = case(w, "closed")
    before = snapshot(db, report)
    assert_problem(post(client, report, "rate", None, {"score": 4}), 401, "missing_token")
    assert snapshot(db, report) == before


def test_rating_an_unknown_case_is_404(client, db, w):
    assert_problem(
        client.post(f"{URL}/999999/actions/rate", json={"score": 4}, headers=auth_header(w.resident)),
        404,
        "report_not_found",
    )


# ---- following --------------------------------------------------------------------------------------

PUBLIC_KEYS = {
    "id",
    "case_number",
    "category",
    "status",
    "handling_cell",
    "created_at",
    "closed_at",
    "location",
    "view",
}


def test_a_resident_follows_an_open_case_and_then_sees_its_public_view(client, db, w):
    corner = (116.4119, 39.9191)  # in the north-east cell, far from the point inside it that the view shows
    report = case(w, "assigned", point=corner)
    assert_problem(get(client, f"{URL}/{report.id}", w.resident2), 404, "report_not_found")
    assert_problem(post(client, report, "follow", w.resident2), 404, "report_not_found")  # not offered to them
    mine = make_offered(w.resident2, report)
    version = stored(db, report).version
    resp = post(client, report, "follow", w.resident2)
    assert resp.status_code == 200, resp.json
    assert (resp.json["report_id"], resp.json["following"]) == (report.id, True) and resp.json["since"]
    assert count(db, ReportFollower, ReportFollower.report_id == report.id) == 1
    assert stored(db, report).version == version  # following is not a change of the case

    view = get(client, f"{URL}/{report.id}", w.resident2)
    assert view.status_code == 200, view.json
    out = view.json
    assert set(out) == PUBLIC_KEYS and out["view"] == "public"
    assert (out["status"], out["category"]["code"], out["handling_cell"]["code"]) == ("assigned", w.category.code, NE)
    # A point inside the handling cell, not the report's own.
    assert out["location"] == {
        "lon": pytest.approx(116.415),
        "lat": pytest.approx(39.915),
        "crs": "wgs84",
        "precision": "cell",
    }
    text = view.get_data(as_text=True)
    assert PHONE not in text and "test report" not in text
    listed = {i["id"]: i for i in get(client, URL, w.resident2).json["items"]}
    assert set(listed) == {report.id, mine.id}
    assert set(listed[report.id]) == PUBLIC_KEYS and listed[mine.id]["view"] == "full"
    assert [i["id"] for i in get(client, "/api/v1/me/reports", w.resident2).json["items"]] == [mine.id]
    assert get(client, f"{URL}/{report.id}/events", w.resident2).status_code == 200


def test_following_again_changes_nothing_and_unfollowing_hides_the_case(client, db, w):
    report = case(w)
    first = follow(client, report, w.resident2).json
    assert post(client, report, "follow", w.resident2).json == first
    assert count(db, ReportFollower) == 1
    resp = post(client, report, "unfollow", w.resident2)
    assert resp.status_code == 200, resp.json
    assert resp.json == {"report_id": report.id, "following": False, "since": None}
    assert count(db, ReportFollower) == 0
    assert_problem(get(client, f"{URL}/{report.id}", w.resident2), 404, "report_not_found")
    assert post(client, report, "unfollow", w.resident2).json["following"] is False


def test_a_followed_case_stays_visible_after_it_closes(client, db, w):
    report = case(w, "resolved")
    follow(client, report, w.resident2)
    step(db, report, "close", w.supervisor, note="结案")
    assert get(client, f"{URL}/{report.id}", w.resident2).json["status"] == "closed"
    # Unfollowing a closed case works; following it again does not.
    assert post(client, report, "unfollow", w.resident2).status_code == 200
    assert_problem(post(client, report, "follow", w.resident2), 404, "report_not_found")


def test_only_a_case_offered_to_the_resident_may_be_followed(client, db, w):
    """Offered: the same category, within its duplicate radius of a report the resident filed."""
    far_east = (SW_POINT[0] + 400 / M_PER_DEG_LON, SW_POINT[1])
    report = case(w, "in_progress", point=OTHER_POINT, assignee_id=w.other_worker.id)
    for mine in (
        case(w, reporter=w.resident3, point=OTHER_POINT, category=make_category()),  # another category
        case(w, reporter=w.resident3, point=far_east),
    ):  # the category, but 400 m from the case
        assert_problem(post(client, report, "follow", w.resident3), 404, "report_not_found")
    nearby = (OTHER_POINT[0] + 100 / M_PER_DEG_LON, OTHER_POINT[1])
    case(w, reporter=w.resident3, point=nearby, status="closed")  # even a report of theirs that has ended
    assert post(client, report, "follow", w.resident3).status_code == 200
    assert count(db, ReportFollower) == 1


def test_a_category_offering_nothing_offers_nothing_to_follow(client, db, w):
    w.category.duplicate_radius_m = 0
    db.session.commit()
    report = case(w)
    make_offered(w.resident2, report)
    assert_problem(post(client, report, "follow", w.resident2), 404, "report_not_found")


@pytest.mark.parametrize("status", ["closed", "rejected", "duplicate", "cancelled"])
def test_an_ended_case_cannot_be_followed(client, db, w, status):
    report = case(w, status)
    before = snapshot(db, report)
    assert_problem(post(client, report, "follow", w.resident2), 404, "report_not_found")
    assert snapshot(db, report) == before


def test_a_case_of_an_inactive_category_cannot_be_followed(client, db, w):
    report = case(w)
    w.category.active = False
    db.session.commit()
    assert_problem(post(client, report, "follow", w.resident2), 404, "report_not_found")
    assert count(db, ReportFollower) == 0


def test_an_unknown_case_cannot_be_followed(client, db, w):
    assert_problem(
        client.post(f"{URL}/999999/actions/follow", json={}, headers=auth_header(w.resident2)), 404, "report_not_found"
    )


def test_your_own_case_is_409(client, db, w):
    report = case(w)
    assert_problem(post(client, report, "follow", w.resident), 409, "own_case")
    assert count(db, ReportFollower) == 0


@pytest.mark.parametrize("who", ["worker", "supervisor", "admin"])
@pytest.mark.parametrize("action", ["follow", "unfollow"])
def test_only_residents_follow(client, db, w, who, action):
    report = case(w)
    before = snapshot(db, report)
    assert_problem(post(client, report, action, getattr(w, who)), 403, "action_forbidden")
    assert snapshot(db, report) == before


@pytest.mark.parametrize("action", ["follow", "unfollow"])
def test_follow_checks_a_sent_if_match(client, db, w, action):
    report = case(w)
    make_offered(w.resident2, report)
    if action == "unfollow":
        post(client, report, "follow", w.resident2)
    before = snapshot(db, report)
    assert_problem(post(client, report, action, w.resident2, if_match='"999"'), 412, "version_mismatch")
    assert snapshot(db, report) == before
    current = f'"{stored(db, report).version}"'
    assert post(client, report, action, w.resident2, if_match=current).status_code == 200


@pytest.mark.parametrize("action", ["follow", "unfollow"])
@pytest.mark.parametrize(
    "raw, status, code",
    [
        ("{not json", 400, "malformed_json"),
        ('{"notify": true}', 422, "validation_failed"),
        (OVERSIZED, 413, "payload_too_large"),
    ],
    ids=["malformed", "unknown-field", "oversized"],
)
def test_bad_follow_bodies_change_nothing(client, db, w, action, raw, status, code):
    report = case(w)
    make_offered(w.resident2, report)
    if action == "unfollow":
        post(client, report, "follow", w.resident2)
    before = snapshot(db, report)
    assert_problem(post(client, report, action, w.resident2, raw=raw), status, code)
    assert snapshot(db, report) == before


@pytest.mark.parametrize("action", ["follow", "unfollow"])
def test_following_needs_a_token(client, db, w, action):
    report = case(w)
    assert_problem(post(client, report, action, None), 401, "missing_token")
    assert count(db, ReportFollower) == 0


def test_a_follower_cannot_act_on_the_case(client, db, w):
    report = case(w)
    follow(client, report, w.resident2)
    before = snapshot(db, report)
    resp = client.post(
        f"{URL}/{report.id}/actions/cancel",
        json={},
        headers={**auth_header(w.resident2), "If-Match": f'"{stored(db, report).version}"'},
    )
    assert_problem(resp, 403, "action_forbidden")
    assert snapshot(db, report) == before


# ---- notifications when a case ends -----------------------------------------------------------------


def _notes(db, report):
    db.session.expire_all()
    return sorted(
        (n.user_id, n.kind, n.body)
        for n in db.session.scalars(
            select(Notification).where(Notification.report_id == report.id, Notification.kind.like("case_%"))
        )
    )


@pytest.mark.parametrize("action", ["verify", "close"])
def test_the_reporter_and_followers_hear_when_the_case_closes(client, db, w, action):
    report = case(w, "resolved")
    follow(client, report, w.resident2)
    follow(client, report, w.resident3)
    post(client, report, "unfollow", w.resident3)
    step(db, report, action, w.supervisor, note="已办结")
    assert _notes(db, report) == sorted(
        [(w.resident.id, "case_closed", "已办结"), (w.resident2.id, "case_closed", "已办结")]
    )


def test_the_reporter_hears_of_a_rejection_with_its_reason(client, db, w):
    report = case(w)
    step(db, report, "reject", w.supervisor, reason="不属于受理范围")
    assert _notes(db, report) == [(w.resident.id, "case_rejected", "不属于受理范围")]


def test_a_duplicate_tells_its_reporter_and_followers_without_the_internal_note(client, db, w):
    original = case(w, "accepted", point=NE_POINT, reporter=w.resident3)
    report = case(w, "accepted")
    follow(client, report, w.resident2)
    step(db, report, "mark_duplicate", w.supervisor, duplicate_of=original.id, note="内部: 重复")
    # The table's fixed text instead of the internal note.
    body = notifications.NOTICES["mark_duplicate"].body.render("zh-CN")
    assert _notes(db, report) == sorted(
        [(w.resident.id, "case_duplicate", body), (w.resident2.id, "case_duplicate", body)]
    )
    assert _notes(db, original) == []


def test_a_cancelled_case_tells_its_followers_not_the_reporter_who_cancelled(client, db, w):
    report = case(w)
    follow(client, report, w.resident2)
    step(db, report, "cancel", w.resident)
    body = notifications.NOTICES["cancel"].body.render("zh-CN")
    assert _notes(db, report) == [(w.resident2.id, "case_cancelled", body)]


def test_a_workers_own_report_tells_only_its_followers(client, db, w):
    report = case(w, "resolved", reporter=w.worker2)
    follow(client, report, w.resident2)
    step(db, report, "verify", w.supervisor, note="核查通过")
    assert _notes(db, report) == [(w.resident2.id, "case_closed", "核查通过")]


def test_the_case_ended_notice_is_written_once(db, w):
    report = case(w, "resolved")
    step(db, report, "close", w.supervisor, note="已办结")
    event = db.session.scalars(
        select(CaseEvent).where(CaseEvent.report_id == report.id, CaseEvent.action == "close")
    ).one()
    assert notifications.announce(event) == 0
    assert len(_notes(db, report)) == 1


# ---- similar open cases when filing -----------------------------------------------------------------

M_PER_DEG_LON = 85_390  # at latitude 39.905, within 0.1 %
SIMILAR_KEYS = PUBLIC_KEYS


def file(client, w, user=None, point=SW_POINT, category=None):
    body = {
        "category_code": (category or w.category).code,
        "description": "垃圾满溢",
        "location": {"lon": point[0], "lat": point[1]},
    }
    resp = client.post(URL, json=body, headers=auth_header(user or w.resident2))
    assert resp.status_code == 201, resp.json
    return resp.json


def east(metres):
    return SW_POINT[0] + metres / M_PER_DEG_LON, SW_POINT[1]


def test_filing_offers_the_five_nearest_open_cases_of_the_category(client, db, w):
    statuses = ["submitted", "accepted", "assigned", "in_progress", "on_hold", "resolved"]
    open_cases = [
        case(w, status, point=east(10 * (i + 1)), reporter=w.resident3 if i % 2 else w.resident)
        for i, status in enumerate(statuses)
    ]
    case(w, "closed", point=east(5))
    case(w, "rejected", point=east(6))
    case(w, point=east(5), category=make_category())
    case(w, point=east(300))
    out = file(client, w)
    similar = out["similar_open_cases"]
    assert [s["id"] for s in similar] == [r.id for r in open_cases[:5]]
    assert [s["status"] for s in similar] == statuses[:5]
    for i, item in enumerate(similar):
        # The public view, even of the filer's own case (open_cases[0] is resident's, not resident2's).
        assert set(item) == SIMILAR_KEYS and item["view"] == "public"
        assert item["case_number"] == stored(db, open_cases[i]).case_number
        assert item["location"]["precision"] == "cell" and item["handling_cell"]["code"] == SW
    assert out["id"] not in [s["id"] for s in similar]
    text = json.dumps(similar, ensure_ascii=False)
    assert PHONE not in text and "reporter" not in text and "address" not in text and "test report" not in text


def test_a_public_category_offers_description_exact_point_and_distance(client, db, w):
    public = make_category(public=True)
    nearby = case(w, point=east(20), category=public, description="路" * 200)
    similar = file(client, w, category=public)["similar_open_cases"]
    assert [s["id"] for s in similar] == [nearby.id]
    assert set(similar[0]) == SIMILAR_KEYS | {"description", "distance_m"}
    assert similar[0]["description"] == "路" * 200
    assert similar[0]["distance_m"] == pytest.approx(20, rel=2e-3)
    assert similar[0]["location"] == {
        "lon": pytest.approx(east(20)[0]),
        "lat": pytest.approx(east(20)[1]),
        "crs": "wgs84",
        "precision": "exact",
    }


def test_the_radius_is_set_per_category(client, db, w):
    far = case(w, point=east(400))
    first = file(client, w, point=east(800))
    assert first["similar_open_cases"] == []
    resp = client.patch(
        f"/api/v1/categories/{w.category.id}", json={"duplicate_radius_m": 500}, headers=auth_header(w.admin)
    )
    assert resp.status_code == 200 and resp.json["duplicate_radius_m"] == 500
    # From 0 m: the one at 400 m now, not the one at 800 m.
    assert [s["id"] for s in file(client, w)["similar_open_cases"]] == [far.id]
    client.patch(f"/api/v1/categories/{w.category.id}", json={"duplicate_radius_m": 0}, headers=auth_header(w.admin))
    assert file(client, w)["similar_open_cases"] == []


def test_cases_the_filer_cannot_see_are_offered_and_can_be_followed(client, db, w):
    theirs = case(w, "assigned", point=east(15))
    assert_problem(post(client, theirs, "follow", w.resident2), 404, "report_not_found")
    out = file(client, w, user=w.resident2)
    assert [s["id"] for s in out["similar_open_cases"]] == [theirs.id]
    assert post(client, theirs, "follow", w.resident2).status_code == 200


def test_a_worker_filing_gets_the_list_too(client, db, w):
    nearby = case(w, point=east(15))
    assert [s["id"] for s in file(client, w, user=w.worker)["similar_open_cases"]] == [nearby.id]


def test_the_open_cases_spatial_index_leaves_out_exactly_the_final_statuses(db, backend):
    # The similar cases' read and the index say "open" as "not final": the same while every status is one or the other.
    assert {status.value for status in ReportStatus} == OPEN_STATUSES | FINAL_STATUSES
    assert not OPEN_STATUSES & FINAL_STATUSES
    if backend != "postgis":
        pytest.skip("the open cases' spatial index is PostgreSQL's")
    definition = db.session.execute(
        text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_reports_open_category_location'")
    ).scalar_one()
    # A final status added without a migration of the index would leave its cases in it.
    assert set(re.findall(r"'(\w+)'", definition)) == set(FINAL_STATUSES)


def test_the_similar_cases_read_uses_the_open_cases_spatial_index(db, w, backend):
    """A filing's read of the open cases of a category near the point reads the open cases' own spatial index by
    category: with the index of every case gone, PostgreSQL still finds one for it rather than the category's or the
    status' index or the table."""
    if backend != "postgis":
        pytest.skip("the open cases' spatial index is PostgreSQL's")
    statement, values = residents.similar_cases_read(w.category, *SW_POINT)
    connection = db.session.connection()
    connection.exec_driver_sql("DROP INDEX idx_reports_location")
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    plan = "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement.sql}", statement.params(values)))
    assert "ix_reports_open_category_location" in plan, plan
    assert "ix_reports_status" not in plan and "ix_reports_category_id" not in plan, plan


def test_only_the_filing_answer_carries_similar_cases(client, db, w):
    case(w, point=east(15))
    out = file(client, w)
    assert out["similar_open_cases"]
    assert "similar_open_cases" not in get(client, f"{URL}/{out['id']}", w.resident2).json
    assert all("similar_open_cases" not in item for item in get(client, URL, w.resident2).json["items"])


# ---- categories: duplicate_radius_m -----------------------------------------------------------------


def _category_body(**overrides):
    return {"code": "DUP1", "name": "占道", "group": "街面秩序", "time_limit_value": 4, **overrides}


def test_a_category_has_a_duplicate_radius(client, db, w):
    resp = client.post("/api/v1/categories", json=_category_body(), headers=auth_header(w.admin))
    assert resp.status_code == 201, resp.json
    assert resp.json["duplicate_radius_m"] == 250
    resp = client.post(
        "/api/v1/categories", json=_category_body(code="DUP2", duplicate_radius_m=5000), headers=auth_header(w.admin)
    )
    assert resp.json["duplicate_radius_m"] == 5000
    assert db.session.get(Category, resp.json["id"]).duplicate_radius_m == 5000
    listed = client.get("/api/v1/categories", query_string={"page_size": 100}).json["items"]
    assert {c["code"]: c["duplicate_radius_m"] for c in listed}["DUP1"] == 250


@pytest.mark.parametrize("value", [-1, 5001, "100", 100.5, True, None])
def test_a_bad_duplicate_radius_is_422_and_changes_nothing(client, db, w, value):
    categories = count(db, Category)
    resp = client.post(
        "/api/v1/categories", json=_category_body(duplicate_radius_m=value), headers=auth_header(w.admin)
    )
    assert "duplicate_radius_m" in assert_problem(resp, 422, "validation_failed")["errors"]
    assert count(db, Category) == categories
    resp = client.patch(
        f"/api/v1/categories/{w.category.id}", json={"duplicate_radius_m": value}, headers=auth_header(w.admin)
    )
    assert "duplicate_radius_m" in assert_problem(resp, 422, "validation_failed")["errors"]
    db.session.expire_all()
    assert db.session.get(Category, w.category.id).duplicate_radius_m == 250


def test_only_admins_set_the_radius(client, db, w):
    resp = client.patch(
        f"/api/v1/categories/{w.category.id}", json={"duplicate_radius_m": 10}, headers=auth_header(w.supervisor)
    )
    assert_problem(resp, 403, "forbidden")
    db.session.expire_all()
    assert db.session.get(Category, w.category.id).duplicate_radius_m == 250


# ---- the reporter's personal data -------------------------------------------------------------------


def _reporter_of(client, user, report):
    resp = get(client, f"{URL}/{report.id}", user)
    assert resp.status_code == 200, resp.json
    return resp.json


@pytest.mark.parametrize("who", ["resident", "supervisor", "root_supervisor", "admin"])
def test_the_reporter_supervisors_of_the_subtree_and_admins_see_name_and_phone(client, db, w, who):
    report = case(w, "assigned")
    out = _reporter_of(client, getattr(w, who), report)
    assert out["reporter"] == {"id": w.resident.id, "name": w.resident.display_name, "phone": PHONE}
    assert out["reporter_id"] == w.resident.id


@pytest.mark.parametrize("who", ["worker", "worker2"])
def test_workers_handle_the_case_without_the_reporters_name_and_phone(client, db, w, who):
    report = case(w, "assigned", assignee_id=w.worker2.id)
    resp = get(client, f"{URL}/{report.id}", getattr(w, who))
    assert resp.json["reporter"] is None and resp.json["reporter_id"] == w.resident.id
    assert resp.json["assignee"]["id"] == w.worker2.id
    assert PHONE not in resp.get_data(as_text=True) and w.resident.display_name not in resp.get_data(as_text=True)


def test_lists_and_searches_decide_per_viewer(client, db, w):
    reports = [case(w, "assigned"), case(w, "accepted", point=NE_POINT, reporter=w.resident2)]
    for user, shown in ((w.supervisor, True), (w.admin, True), (w.worker, False)):
        items = get(client, URL, user).json["items"]
        assert items, user
        for item in items:
            assert (item["reporter"] is not None) == shown, (user, item)
        search = client.post(
            f"{URL}/search",
            json={
                "within_geojson": {
                    "type": "Polygon",
                    "coordinates": [
                        [[116.40, 39.90], [116.42, 39.90], [116.42, 39.92], [116.40, 39.92], [116.40, 39.90]]
                    ],
                }
            },
            headers=auth_header(user),
        )
        assert search.status_code == 200, search.json
        assert all((item["reporter"] is not None) == shown for item in search.json["items"])
    mine = get(client, URL, w.resident2).json["items"]
    assert [(i["id"], i["reporter"]["phone"]) for i in mine] == [(reports[1].id, "13800138002")]


def test_action_answers_follow_the_same_rule(client, db, w):
    report = case(w, "assigned")
    version = stored(db, report).version
    started = client.post(
        f"{URL}/{report.id}/actions/start", json={}, headers={**auth_header(w.worker), "If-Match": f'"{version}"'}
    )
    assert started.status_code == 200 and started.json["reporter"] is None
    held = client.post(
        f"{URL}/{report.id}/actions/supervise",
        json={"note": "快"},
        headers={**auth_header(w.supervisor), "If-Match": started.headers["ETag"]},
    )
    assert held.status_code == 200 and held.json["reporter"]["phone"] == PHONE


def test_the_filing_answer_shows_the_reporter_their_own_data(client, db, w):
    out = file(client, w, user=w.resident)
    assert out["reporter"] == {"id": w.resident.id, "name": w.resident.display_name, "phone": PHONE}


def test_residents_see_no_staff_names_on_their_case(client, db, w):
    report = case(w, "assigned")
    assert _reporter_of(client, w.resident, report)["assignee"] is None


def test_the_triage_queue_shows_the_reporter_to_root_supervisors(client, db, w):
    report = case(w, point=(100.0, 30.0))
    assert stored(db, report).cell_id is None
    assert _reporter_of(client, w.root_supervisor, report)["reporter"]["phone"] == PHONE
    assert_problem(get(client, f"{URL}/{report.id}", w.supervisor), 404, "report_not_found")


def test_maps_histories_and_notices_carry_no_reporter_data(client, db, w):
    report = case(w, "resolved")
    step(db, report, "verify", w.supervisor, note="好")
    for user in (w.worker, w.supervisor):
        for path in ("/api/v1/reports.geojson", f"{URL}/{report.id}/events", "/api/v1/notifications"):
            text = get(client, path, user).get_data(as_text=True)
            assert PHONE not in text and w.resident.display_name not in text, path


def test_may_see_personal_data_per_role(db, w):
    report = stored(db, case(w, "assigned"))
    allowed = {
        "resident": True,
        "resident2": False,
        "worker": False,
        "other_worker": False,
        "supervisor": True,
        "root_supervisor": True,
        "other_supervisor": False,
        "admin": True,
    }
    assert {who: public_view.may_see_personal_data(getattr(w, who), report) for who in allowed} == allowed
    assert public_view.may_see_personal_data(None, report) is False


# ---- the public view in lists, maps and counts ------------------------------------------------------

PRIVATE_FILTERS = [
    {"cell_id": "CELL"},
    {"triage": "false"},
    {"sla_state": "green"},
    {"escalation_level": 0},
    {"overdue": "false"},
    {"near": "116.405,39.905", "radius": 500},
    {"bbox": "116.40,39.90,116.42,39.92"},
    {"within": "CELL"},
]


@pytest.fixture()
def followed(client, db, w):
    """resident2 follows resident's accepted case; their own report (what offered it) is at the same point."""
    now = utcnow()
    theirs = case(
        w,
        "accepted",
        point=(116.4021, 39.9081),
        accepted_at=now,
        deadline_at=now + timedelta(hours=4),
        warn_at=now + timedelta(hours=3),
        due_at=now + timedelta(hours=4),
    )
    follow(client, theirs, w.resident2)
    mine = db.session.scalars(select(Report).where(Report.reporter_id == w.resident2.id)).one()
    return SimpleNamespace(theirs=theirs, mine=mine)


def test_public_filters_match_followed_cases_too(client, db, w, followed):
    for query in (
        {},
        {"status": "accepted"},
        {"category": w.category.code},
        {"created_from": "2020-01-01T00:00:00+08:00"},
    ):
        ids = {i["id"] for i in get(client, URL, w.resident2, **query).json["items"]}
        assert followed.theirs.id in ids, query


@pytest.mark.parametrize("query", PRIVATE_FILTERS, ids=lambda q: "+".join(q))
def test_a_filter_on_what_the_public_view_leaves_out_matches_only_your_own_cases(client, db, w, followed, query):
    """Else a follower could narrow a box, a radius or a cell down to the exact point, or read the clock."""
    query = {k: (w.cells[SW].id if v == "CELL" else v) for k, v in query.items()}
    resp = get(client, URL, w.resident2, **query)
    assert resp.status_code == 200, resp.json
    # Their own submitted report has no clock, so it is not green; it matches every other filter.
    assert [i["id"] for i in resp.json["items"]] == ([] if "sla_state" in query else [followed.mine.id])
    staff = {i["id"] for i in get(client, URL, w.supervisor, **query).json["items"]}
    assert followed.theirs.id in staff


def test_residents_cannot_filter_by_assignee(client, db, w, followed):
    set_case(followed.theirs, status="assigned", assignee_id=w.worker.id)
    for user in (w.resident2, w.resident):
        problem = assert_problem(get(client, URL, user, assignee_id=w.worker.id), 422, "validation_failed")
        assert "assignee_id" in problem["errors"]
    assert [i["id"] for i in get(client, URL, w.supervisor, assignee_id=w.worker.id).json["items"]] == [
        followed.theirs.id
    ]


def test_the_map_shows_a_followed_case_inside_its_cell_without_its_clock(client, db, w, followed):
    resp = get(client, "/api/v1/reports.geojson", w.resident2)
    assert resp.status_code == 200, resp.json
    features = {f["id"]: f for f in resp.json["features"]}
    assert features[followed.theirs.id]["geometry"]["coordinates"] == [116.405, 39.905]  # the cell's inside point
    assert features[followed.theirs.id]["properties"]["sla_state"] is None
    assert features[followed.mine.id]["geometry"]["coordinates"] == [116.4021, 39.9081]
    staff = {f["id"]: f for f in get(client, "/api/v1/reports.geojson", w.supervisor).json["features"]}
    assert staff[followed.theirs.id]["geometry"]["coordinates"] == [116.4021, 39.9081]
    assert staff[followed.theirs.id]["properties"]["sla_state"] == "green"


def test_a_public_category_shows_its_exact_point_to_followers(client, db, w, followed):
    w.category.public = True
    db.session.commit()
    out = get(client, f"{URL}/{followed.theirs.id}", w.resident2).json
    assert out["view"] == "public" and out["description"] == "test report"
    assert out["location"] == {"lon": 116.4021, "lat": 39.9081, "crs": "wgs84", "precision": "exact"}
    features = {f["id"]: f for f in get(client, "/api/v1/reports.geojson", w.resident2).json["features"]}
    assert features[followed.theirs.id]["geometry"]["coordinates"] == [116.4021, 39.9081]


def test_cell_counts_of_a_resident_are_their_own_cases(client, db, w, followed):
    out = get(client, f"/api/v1/cells/{w.cells[COMMUNITY].id}/reports/summary", w.resident2).json
    assert out["total"] == 1 and out["by_status"] == {"submitted": 1}
    staff = get(client, f"/api/v1/cells/{w.cells[COMMUNITY].id}/reports/summary", w.supervisor).json
    assert staff["total"] == 2


def test_a_case_in_triage_has_no_public_location(client, db, w):
    far = case(w, point=(100.0, 30.0))
    make_offered(w.resident2, far)
    assert post(client, far, "follow", w.resident2).status_code == 200
    out = get(client, f"{URL}/{far.id}", w.resident2).json
    assert (out["view"], out["location"], out["handling_cell"]) == ("public", None, None)


def test_categories_take_and_show_the_public_flag(client, db, w):
    resp = client.post("/api/v1/categories", json=_category_body(code="PUB1"), headers=auth_header(w.admin))
    assert resp.status_code == 201 and resp.json["public"] is False
    resp = client.patch(f"/api/v1/categories/{resp.json['id']}", json={"public": True}, headers=auth_header(w.admin))
    assert resp.status_code == 200 and resp.json["public"] is True
    for value in ("true", 1, None):
        resp = client.patch(f"/api/v1/categories/{w.category.id}", json={"public": value}, headers=auth_header(w.admin))
        assert "public" in assert_problem(resp, 422, "validation_failed")["errors"]
    assert_problem(
        client.patch(f"/api/v1/categories/{w.category.id}", json={"public": True}, headers=auth_header(w.supervisor)),
        403,
        "forbidden",
    )
    db.session.expire_all()
    assert db.session.get(Category, w.category.id).public is False
