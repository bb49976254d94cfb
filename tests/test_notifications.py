"""Notifications: my list and marking one read (the API), and who is told of what (each row of NOTICES)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app.extensions import db as _db
from app.lib import i18n
from app.models import CaseEvent, Notification, Report, User
from app.models.base import utcnow
from app.services.cases import lifecycle, notifications
from app.services.cases.escalation import escalate_batch
from app.services.public import residents, view as public_view
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    STREET,
    auth_header,
    make_category,
    make_offered,
    make_report,
    make_test_grid,
    make_user,
    set_case,
)

URL = "/api/v1/notifications"
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def add(db, user, title, minutes, read=False):
    note = Notification(
        user_id=user.id,
        kind="escalation",
        title=title,
        data={"level": 1},
        created_at=T0 + timedelta(minutes=minutes),
        read_at=T0 + timedelta(hours=5) if read else None,
    )
    db.session.add(note)
    db.session.commit()
    return note


@pytest.fixture()
def world(db):
    alice, bob = make_user("supervisor"), make_user("worker")
    notes = [add(db, alice, "first", 1), add(db, alice, "second", 2, read=True), add(db, alice, "third", 3)]
    theirs = add(db, bob, "bob's", 4)
    return SimpleNamespace(alice=alice, bob=bob, notes=notes, theirs=theirs)


def read_state(db):
    db.session.expire_all()
    return db.session.execute(select(Notification.id, Notification.read_at).order_by(Notification.id)).all()


def test_list_is_mine_newest_first(client, world):
    resp = client.get(URL, headers=auth_header(world.alice))
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()
    assert [n["title"] for n in data["items"]] == ["third", "second", "first"]
    assert data["total"] == 3
    first = data["items"][0]
    assert first["kind"] == "escalation" and first["data"] == {"level": 1} and first["read_at"] is None
    assert first["created_at"].endswith("+08:00")  # local time of the configured TIMEZONE


@pytest.mark.parametrize("unread, titles", [("true", ["third", "first"]), ("false", ["second"])])
def test_unread_filter(client, world, unread, titles):
    resp = client.get(URL, query_string={"unread": unread}, headers=auth_header(world.alice))
    assert [n["title"] for n in resp.get_json()["items"]] == titles


def test_pages(client, world):
    resp = client.get(URL, query_string={"page": 2, "page_size": 2}, headers=auth_header(world.alice))
    data = resp.get_json()
    assert ([n["title"] for n in data["items"]], data["total"], data["page"]) == (["first"], 3, 2)


@pytest.mark.parametrize(
    "query, field",
    [
        ({"unread": "maybe"}, "unread"),
        ({"page": 0}, "page"),
        ({"page_size": 101}, "page_size"),
        ({"page_size": "x"}, "page_size"),
    ],
)
def test_bad_list_arguments_are_422(client, world, query, field):
    resp = client.get(URL, query_string=query, headers=auth_header(world.alice))
    body = assert_problem(resp, 422, "validation_failed")
    assert field in body["errors"]


def test_list_needs_a_token(client, world):
    assert_problem(client.get(URL), 401, "missing_token")


def test_mark_read(client, db, world):
    note = world.notes[0]
    resp = client.post(f"{URL}/{note.id}/read", headers=auth_header(world.alice))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["read_at"] is not None
    db.session.expire_all()
    first_read = db.session.get(Notification, note.id).read_at
    assert first_read is not None
    # Again: still read, the first time kept; an empty JSON object is accepted too.
    again = client.post(f"{URL}/{note.id}/read", json={}, headers=auth_header(world.alice))
    assert again.status_code == 200
    db.session.expire_all()
    assert db.session.get(Notification, note.id).read_at == first_read
    unread = client.get(URL, query_string={"unread": "true"}, headers=auth_header(world.alice)).get_json()
    assert [n["title"] for n in unread["items"]] == ["third"]


def test_someone_elses_notification_is_404_and_stays_unread(client, db, world):
    before = read_state(db)
    resp = client.post(f"{URL}/{world.theirs.id}/read", headers=auth_header(world.alice))
    assert_problem(resp, 404, "notification_not_found")
    assert_problem(client.post(f"{URL}/999999/read", headers=auth_header(world.alice)), 404, "notification_not_found")
    assert read_state(db) == before


def test_mark_read_bad_input(client, db, world):
    before = read_state(db)
    url = f"{URL}/{world.notes[0].id}/read"
    assert_problem(
        client.post(url, data='{"x": ', content_type="application/json", headers=auth_header(world.alice)),
        400,
        "malformed_json",
    )
    body = assert_problem(
        client.post(url, json={"read": True}, headers=auth_header(world.alice)), 422, "validation_failed"
    )
    assert "read" in body["errors"]
    assert_problem(
        client.post(
            url,
            data=json.dumps({"x": "y" * (1024 * 1024)}),
            content_type="application/json",
            headers=auth_header(world.alice),
        ),
        413,
        "payload_too_large",
    )
    assert_problem(client.post(url), 401, "missing_token")
    assert client.post(f"{URL}/abc/read", headers=auth_header(world.alice)).status_code == 404
    assert read_state(db) == before


# ---- who is told of what: each row of NOTICES, driven through the services -----------------------------------

SW, NE = "11010500100101", "11010500100104"
SW_POINT = (116.405, 39.905)
CATEGORY = "暴露垃圾"


@pytest.fixture()
def town(db):
    cells = make_test_grid()
    t = SimpleNamespace(cells=cells, category=make_category(hours=4, auto_dispatch=False, name=CATEGORY))
    t.reporter = make_user("resident")
    t.follower = make_user("resident", language="en")
    t.worker = make_user("worker", served=[cells[SW]])
    t.worker_en = make_user("worker", served=[cells[SW]], language="en")
    t.community_sup = make_user("supervisor", cell=cells[COMMUNITY])
    t.street_sup = make_user("supervisor", cell=cells[STREET], language="en")
    t.district_sup = make_user("supervisor", cell=cells[DISTRICT])
    t.ne_sup = make_user("supervisor", cell=cells[NE])
    t.inactive_sup = make_user("supervisor", cell=cells[COMMUNITY], active=False)
    t.admin = make_user("admin")
    t.subtree = {t.community_sup.id, t.street_sup.id, t.district_sup.id}
    return t


def filed(t, *, category=None, point=SW_POINT, followed=True) -> Report:
    """A resident's report, followed by a second resident (whom the case was offered to)."""
    report = make_report(t.reporter, category or t.category, *point)
    if followed:
        make_offered(t.follower, report)
        residents.follow(t.follower, report.id, None)
        _db.session.commit()
    return report


def move(report, action, user, **kwargs) -> Report:
    """One step of the loop through the service, with the case's current version, committed as a request would."""
    _db.session.expire_all()
    report = _db.session.get(Report, report.id)
    getattr(lifecycle, {"return": "return_case"}.get(action, action))(user, report, {report.version}, **kwargs)
    _db.session.commit()
    return report


def told(report, kind) -> list[Notification]:
    _db.session.expire_all()
    return list(
        _db.session.scalars(select(Notification).where(Notification.report_id == report.id, Notification.kind == kind))
    )


def sweep_at(now):
    while escalate_batch(now).claimed:
        _db.session.commit()
    _db.session.commit()


def _on_clock(report, **columns):
    now = utcnow()
    values = {"accepted_at": now - timedelta(hours=3), "due_at": now + timedelta(hours=1)}
    return set_case(report, **{**values, **columns})


# trigger → (prepare and act: returns (report, actor or None), the recipients' attribute names)
def _assign_by_hand(t):
    report = set_case(filed(t), status="accepted")
    return move(report, "assign", t.community_sup, assignee_id=t.worker_en.id), t.community_sup


def _assign_by_dispatch(t):
    report = filed(t, category=make_category(hours=4, auto_dispatch=True, name=CATEGORY))
    return move(report, "accept", t.community_sup), t.community_sup


def _accept(t):
    return move(filed(t), "accept", t.community_sup), t.community_sup


def _assigned(t, status="assigned", **columns):
    return _on_clock(set_case(filed(t), status=status, assignee_id=t.worker.id, **columns))


def _return(t):
    return move(_assigned(t), "return", t.worker, reason="不属本网格"), t.worker


def _request_extension(t):
    return move(_assigned(t, "in_progress"), "request_extension", t.worker, value=2, reason="需要协调"), t.worker


def _approve_extension(t):
    report = _assigned(t, "in_progress", time_limit_value=4, time_limit_unit="hours", extension_requested=2)
    return move(report, "approve_extension", t.community_sup, note="同意"), t.community_sup


def _deny_extension(t):
    report = _assigned(t, "in_progress", extension_requested=2)
    return move(report, "deny_extension", t.community_sup, reason="不同意"), t.community_sup


def _rework(t):
    return move(_assigned(t, "resolved"), "rework", t.community_sup, note="未清理干净"), t.community_sup


def _supervise(t):
    return move(_assigned(t, "in_progress"), "supervise", t.district_sup, note="请今天办结"), t.district_sup


def _resolve(t):
    return move(_assigned(t, "in_progress"), "resolve", t.worker, note="已清运"), t.worker


def _verify(t):
    return move(_assigned(t, "resolved"), "verify", t.worker_en, note="核查通过"), t.worker_en


def _close(t):
    return move(_assigned(t, "resolved"), "close", t.community_sup, note="已办结"), t.community_sup


def _reject(t):
    return move(filed(t), "reject", t.community_sup, reason="不属于受理范围"), t.community_sup


def _mark_duplicate(t):
    original = set_case(make_report(t.follower, t.category, *SW_POINT), status="accepted")
    report = set_case(filed(t), status="accepted")
    return move(report, "mark_duplicate", t.community_sup, duplicate_of=original.id, note="内部: 重复"), t.community_sup


def _cancel(t):
    return move(filed(t), "cancel", t.reporter), t.reporter


def _remind(t):
    now = utcnow()
    report = _assigned(t, warn_at=now - timedelta(minutes=5), deadline_at=now + timedelta(hours=1))
    sweep_at(now)
    return report, None


def _escalate(t):
    now = utcnow()
    report = _assigned(t, warn_at=now - timedelta(hours=2), deadline_at=now - timedelta(hours=1))
    sweep_at(now)
    return report, None


def _critical(t):
    now = utcnow()
    report = _assigned(
        t,
        escalation_level=3,
        handling_cell_id=t.cells[DISTRICT].id,
        warn_at=now - timedelta(hours=2),
        deadline_at=now - timedelta(hours=1),
    )
    sweep_at(now)
    return report, None


def _unassigned(t):
    # Nobody serves the NE grid cell: dispatch finds no worker and tells its supervisors.
    auto = make_category(hours=4, auto_dispatch=True, name=CATEGORY)
    report = filed(t, category=auto, point=(116.415, 39.915), followed=False)
    return move(report, "accept", t.community_sup), t.community_sup


ROWS = {
    # name: (how, kind, who is told)
    "assigned by hand": (_assign_by_hand, "case_assigned", lambda t: {t.worker_en.id}),
    "assigned by dispatch": (_assign_by_dispatch, "case_assigned", lambda t: {t.worker.id}),
    "accepted": (_accept, "case_accepted", lambda t: {t.reporter.id}),
    "returned": (_return, "case_returned", lambda t: t.subtree),
    "extension requested": (_request_extension, "extension_requested", lambda t: t.subtree),
    "extension approved": (_approve_extension, "extension_approved", lambda t: {t.worker.id}),
    "extension denied": (_deny_extension, "extension_denied", lambda t: {t.worker.id}),
    "rework": (_rework, "case_rework", lambda t: {t.worker.id}),
    "督办": (_supervise, "supervision", lambda t: {t.worker.id}),
    "deadline warning": (_remind, "reminder", lambda t: t.subtree | {t.worker.id}),
    "escalated": (_escalate, "escalation", lambda t: {t.community_sup.id, t.worker.id}),
    "critical": (_critical, "critical", lambda t: {t.district_sup.id}),
    # The supervisor who accepted is the one who acted.
    "no worker for dispatch": (
        _unassigned,
        "case_unassigned",
        lambda t: t.subtree - {t.community_sup.id} | {t.ne_sup.id},
    ),
    "resolved": (_resolve, "case_resolved", lambda t: {t.reporter.id, t.follower.id}),
    "closed by verify": (_verify, "case_closed", lambda t: {t.reporter.id, t.follower.id}),
    "closed": (_close, "case_closed", lambda t: {t.reporter.id, t.follower.id}),
    "rejected": (_reject, "case_rejected", lambda t: {t.reporter.id, t.follower.id}),
    "duplicate": (_mark_duplicate, "case_duplicate", lambda t: {t.reporter.id, t.follower.id}),
    "cancelled": (_cancel, "case_cancelled", lambda t: {t.follower.id}),
}


def expected_title(notice, language, report, cell) -> str:
    return i18n.translate(notice.title.msgid, language).format(
        case_number=report.case_number, category=CATEGORY, cell=cell.name, level=""
    )


@pytest.mark.parametrize("row", list(ROWS))
def test_each_row_tells_whom_it_names_once_in_their_language(town, row):
    how, kind, who = ROWS[row]
    report, actor = how(town)
    notes = told(report, kind)
    recipients = [n.user_id for n in notes]
    assert sorted(recipients) == sorted(who(town)), row  # each once, nobody else (no inactive account)
    assert actor is None or actor.id not in recipients
    notice = next(n for n in notifications.NOTICES.values() if n.kind == kind)
    report = _db.session.get(Report, report.id)
    languages = {u.id: u.language for u in _db.session.scalars(select(User).where(User.id.in_(recipients)))}
    # Residents read the cell of the public view (the handling cell); staff the case's grid cell.
    cell = report.handling_cell if notice.public else report.cell
    for note in notes:
        language = languages[note.user_id]
        assert note.title == expected_title(notice, language, report, cell), (row, language)
        assert report.case_number in note.title and CATEGORY in note.title and cell.name in note.title
        assert note.data["case_number"] == report.case_number and note.data["cell_code"] == cell.code
        if language == "zh-CN":
            assert "：" in note.title and not note.title.isascii()
        else:
            assert note.title.startswith(notice.title.msgid.split(":")[0] + ": ")


def test_every_row_of_the_table_is_tested():
    assert {kind for _how, kind, _who in ROWS.values()} == {n.kind for n in notifications.NOTICES.values()}


def test_supervision_reads_in_chinese_and_in_english(town):
    report, _ = _supervise(town)
    (zh,) = told(report, "supervision")
    number = _db.session.get(Report, report.id).case_number
    assert (zh.title, zh.body) == (f"督办：{number} 暴露垃圾 · cell {SW}", "请今天办结")
    report = set_case(_db.session.get(Report, report.id), assignee_id=town.worker_en.id)
    move(report, "supervise", town.community_sup, note="again")
    (en,) = [n for n in told(report, "supervision") if n.user_id == town.worker_en.id]
    assert en.title == f"Supervision: {number} 暴露垃圾 · cell {SW}"


def test_an_escalation_reads_its_level_in_the_recipients_language(town):
    report, _ = _escalate(town)
    by_user = {n.user_id: n for n in told(report, "escalation")}
    assert by_user[town.community_sup.id].body == "已超期，升级至社区层级。"
    set_case(_db.session.get(User, town.community_sup.id), active=False)
    now = utcnow() + timedelta(days=30)
    sweep_at(now)  # to the street, whose supervisor reads English
    (street,) = [n for n in told(report, "escalation") if n.data["level"] == 2 and n.user_id != town.worker.id]
    assert (street.user_id, street.body) == (town.street_sup.id, "Overdue; escalated to the street level.")


def test_an_escalation_with_nobody_at_the_new_level_tells_the_nearest_level_above(town):
    set_case(_db.session.get(User, town.community_sup.id), active=False)
    report, _ = _escalate(town)
    assert {n.user_id for n in told(report, "escalation")} == {town.street_sup.id, town.worker.id}


def test_a_worker_who_assigns_a_case_to_themselves_is_not_told(town):
    own = make_category(hours=4, auto_dispatch=False, self_handling=True, name=CATEGORY)
    report = set_case(filed(town, category=own), status="accepted")
    move(report, "assign", town.worker, assignee_id=town.worker.id)
    assert told(report, "case_assigned") == []


def test_a_step_or_a_sweep_is_told_once(town):
    report, _ = _supervise(town)
    event = _db.session.scalars(
        select(CaseEvent).where(CaseEvent.report_id == report.id, CaseEvent.action == "supervise")
    ).one()
    assert notifications.announce(event) == 0
    # A second 督办 is another step: told again.
    move(report, "supervise", town.district_sup, note="再次督办")
    assert len(told(report, "supervision")) == 2
    warned, _ = _remind(town)
    before = len(told(warned, "reminder"))
    assert notifications.announce_batch("remind", [warned.id], utcnow()) == 0
    assert len(told(warned, "reminder")) == before


def test_residents_read_the_handling_cell_and_no_staff_name_or_internal_note(town):
    report = filed(town)
    report = move(report, "accept", town.community_sup, note="内部: 王师傅去看")
    report = move(report, "assign", town.community_sup, assignee_id=town.worker.id, note="内部: 交给王师傅")
    report = move(report, "start", town.worker)
    report = move(report, "hold", town.worker, reason="内部: 等车")
    report = move(report, "resume", town.worker)
    now = utcnow() + timedelta(days=30)
    sweep_at(now)  # escalated to the community: the handling cell is no longer the grid cell
    report = move(report, "resolve", town.worker, note="已清运")
    report = move(report, "close", town.street_sup, note="已办结")
    staff = list(_db.session.scalars(select(User).where(User.role != "resident")))
    names = {u.username for u in staff} | {u.display_name for u in staff}
    report = _db.session.get(Report, report.id)
    for resident in (town.reporter, town.follower):
        notes = list(_db.session.scalars(select(Notification).where(Notification.user_id == resident.id)))
        assert {n.kind for n in notes} >= {"case_resolved", "case_closed"}
        for note in notes:
            text = json.dumps([note.title, note.body, note.data], ensure_ascii=False)
            assert not any(name in text for name in names), text
            assert "内部" not in text and "王师傅" not in text
            assert set(note.data) == {"case_number", "status", "cell_code"}
        closed = next(n for n in notes if n.kind == "case_closed")
        assert report.handling_cell.name in closed.title and closed.data["cell_code"] == COMMUNITY
        assert closed.body == "已办结"
    # The worker reads the grid cell.
    (assigned,) = told(report, "case_assigned")
    assert assigned.title.endswith(f"cell {SW}") and assigned.body == "内部: 交给王师傅"


def test_every_resident_notice_carries_a_note_only_when_it_is_public():
    for trigger, notice in notifications.NOTICES.items():
        assert not (notice.public and set(notice.tell) - notifications.PUBLIC), trigger  # no mixed audience
        if notice.public and notice.note:
            assert trigger in public_view.PUBLIC_NOTE_ACTIONS, trigger
