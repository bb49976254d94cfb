"""Notifications API: my list (newest first, unread filter, pages) and marking one read; others' stay hidden."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app.models import Notification
from app.services.cases.notifications import notify
from tests.assertions import assert_problem
from tests.factories import auth_header, make_user

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


def test_notify_skips_a_repeated_dedupe_key(db, world):
    assert notify([world.bob.id, world.bob.id], kind="reminder", title="t", dedupe_prefix="x:1") == 1
    assert notify([world.bob.id], kind="reminder", title="t", dedupe_prefix="x:1") == 0
