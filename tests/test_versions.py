"""Process caches (app/services/versions.py): live logins and categories, and their invalidation across workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, text, update

from app.models import Category, Cell, Role, User, WorkerCell
from app.services import versions
from tests.factories import (
    COMMUNITY,
    PASSWORD,
    committed_world,
    make_assignment,
    make_category,
    make_report,
    make_test_grid,
    make_user,
    tokens_for,
)

API = "/api/v1"
ROOT = Path(__file__).resolve().parent.parent

# Another worker: its own interpreter and app on the same database, answering GET /api/v1/me for each token it
# reads on stdin with one JSON line (status, problem code). It keeps its process caches between requests.
OTHER_WORKER = """
import json, sys
from app import create_app
app = create_app("testing")
client = app.test_client()
for line in sys.stdin:
    answer = client.get("/api/v1/me", headers={"Authorization": "Bearer " + line.strip()})
    print(json.dumps([answer.status_code, (answer.json or {}).get("code")]), flush=True)
"""


class OtherWorker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", OTHER_WORKER],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def me(self, token: str) -> list:
        self.proc.stdin.write(token + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hits(app, name: str) -> int:
    """The app's entries in a cache that were found by key (logins by session id, categories by code), not the
    rows that pages refer to by id (app.services.cases.rows)."""
    entries = app.extensions.get("grid.versioned_caches", {}).get((name, ""), versions.VersionedCache(name))._entries
    return sum(1 for key in entries if isinstance(key, str))


@pytest.fixture()
def other_worker():
    worker = OtherWorker()
    yield worker
    worker.close()


@pytest.mark.parametrize("revoke", ["logout", "deactivate", "password"])
def test_a_revocation_on_one_worker_is_refused_at_once_by_another_process(app, other_worker, revoke):
    """Worker B (another process) has the login in its cache; A revokes it and commits; B's next request is refused."""
    with committed_world(app):
        grid = make_test_grid()
        admin = make_user(Role.admin, cell=grid[COMMUNITY])
        resident = make_user(Role.resident)
        pair = tokens_for(resident)
        admin_token = tokens_for(admin).access_token
        client = app.test_client()
        for _ in range(2):  # the second answer comes from B's cache
            assert other_worker.me(pair.access_token) == [200, None]
        if revoke == "logout":
            assert client.post(f"{API}/auth/logout", json={"refresh_token": pair.refresh_token}).status_code == 204
            expected = [401, "token_revoked"]
        elif revoke == "deactivate":
            answer = client.patch(f"{API}/users/{resident.id}", json={"active": False}, headers=bearer(admin_token))
            assert answer.status_code == 200, answer.json
            expected = [401, "token_revoked"]  # deactivation ends its logins too
        else:
            other = tokens_for(resident)  # the login that changes the password; `pair`'s ends with it
            answer = client.patch(
                f"{API}/me",
                json={"password": "a-new-password-123", "old_password": PASSWORD},
                headers=bearer(other.access_token),
            )
            assert answer.status_code == 200, answer.json
            expected = [401, "token_revoked"]
        assert other_worker.me(pair.access_token) == expected


def test_a_second_app_sees_a_change_made_through_the_first(app, db):
    """Two app instances (two workers' caches) on one database: sessions, users and categories."""
    from app import create_app

    second = create_app("testing")
    grid = make_test_grid()
    category = make_category(code="pothole")
    resident = make_user(Role.resident)
    token = tokens_for(resident).access_token
    body = {"category_code": "pothole", "description": "a hole", "location": {"lon": 116.4005, "lat": 39.9005}}
    clients = app.test_client(), second.test_client()
    for client in clients:
        assert client.get(f"{API}/me", headers=bearer(token)).json["display_name"] == resident.display_name
        assert client.post(f"{API}/reports", json=body, headers=bearer(token)).status_code == 201
    assert hits(second, versions.AUTH) == 1 and hits(second, versions.CATEGORIES) == 1

    # A change the first makes (here straight in SQL, as a CLI or another host would) reaches the second.
    db.session.execute(update(User).where(User.id == resident.id).values(display_name="renamed"))
    db.session.execute(update(Category).where(Category.id == category.id).values(active=False))
    db.session.commit()
    assert clients[1].get(f"{API}/me", headers=bearer(token)).json["display_name"] == "renamed"
    answer = clients[1].post(f"{API}/reports", json=body, headers=bearer(token))
    assert answer.status_code == 422 and "category_code" in answer.json["errors"]
    assert grid  # the grid routes the reports above


def test_versions_move_only_with_their_tables(app, db):
    def current() -> dict[str, int]:
        return dict(db.session.execute(text("SELECT name, version FROM cache_versions")).all())

    make_category(code="pothole")
    before = current()
    # A new account moves auth too: SQLite gives a rolled-back account's id to the next one, and a page may have
    # cached a name under that id inside the rolled-back transaction.
    make_user(Role.resident)
    after_insert = current()
    assert after_insert["auth"] != before["auth"]
    assert {k: v for k, v in after_insert.items() if k != "auth"} == {k: v for k, v in before.items() if k != "auth"}
    before = after_insert
    db.session.execute(update(User).values(display_name="x"))
    after_user = current()
    assert after_user["auth"] != before["auth"] and after_user["categories"] == before["categories"]
    db.session.execute(update(Category).values(name="y"))
    after_category = current()
    assert after_category["categories"] != after_user["categories"] and after_category["auth"] == after_user["auth"]


def test_a_page_shows_a_renamed_cell_and_person_at_the_next_read_of_another_app(app, db):
    """The cells and people a report row refers to come from each worker's cache: a rename made elsewhere (SQL, as
    a CLI or another host would) shows at the other app's next read."""
    from app import create_app

    second = create_app("testing")
    make_test_grid()
    category = make_category(code="pothole")
    resident = make_user(Role.resident)
    admin = make_user(Role.admin)
    report = make_report(resident, category, 116.4005, 39.9005)
    client = second.test_client()
    token = tokens_for(admin).access_token

    def shown() -> tuple[str, str, str]:
        answer = client.get(f"{API}/reports/{report.id}", headers=bearer(token))
        assert answer.status_code == 200, answer.json
        return answer.json["cell"]["name"], answer.json["handling_cell"]["name"], answer.json["reporter"]["name"]

    first = shown()
    assert first[2] == resident.display_name
    db.session.execute(update(Cell).where(Cell.id == report.cell_id).values(name="改名网格"))
    db.session.execute(update(User).where(User.id == resident.id).values(display_name="改名居民"))
    db.session.commit()
    assert shown() == ("改名网格", "改名网格", "改名居民")


def test_cells_move_only_their_version(app, db):
    def current() -> dict[str, int]:
        return dict(db.session.execute(text("SELECT name, version FROM cache_versions")).all())

    cells = make_test_grid()
    before = current()
    db.session.execute(update(Cell).where(Cell.id == cells[COMMUNITY].id).values(name="x"))
    after = current()
    assert after["cells"] != before["cells"]
    assert (after["auth"], after["categories"]) == (before["auth"], before["categories"])


def test_assignments_move_only_their_version(app, db):
    def current() -> dict[str, int]:
        return dict(db.session.execute(text("SELECT name, version FROM cache_versions")).all())

    cells = make_test_grid()
    worker = make_user(Role.worker)
    others = ("auth", "categories", "cells")
    for change in (
        lambda: make_assignment(worker, cells[COMMUNITY]),
        lambda: db.session.execute(update(WorkerCell).values(duty="backup")),
        lambda: db.session.execute(delete(WorkerCell)),
    ):
        before = current()
        change()
        after = current()
        assert after["assignments"] != before["assignments"]
        assert [after[name] for name in others] == [before[name] for name in others]


def test_the_watched_tables_are_those_whose_triggers_move_a_version(app, db):
    """versions.WATCHED_TABLES decides when a request reads the versions again after a write of its own: it must
    name every table a trigger moves a version for."""
    if db.session.get_bind().dialect.name == "postgresql":
        found = text(
            "SELECT DISTINCT event_object_table FROM information_schema.triggers "
            "WHERE action_statement LIKE '%bump_cache_version%'"
        )
    else:
        found = text(
            "SELECT DISTINCT tbl_name FROM sqlite_master WHERE type = 'trigger' AND sql LIKE '%cache_versions%'"
        )
    assert set(db.session.scalars(found)) == versions.WATCHED_TABLES


def test_a_request_reads_the_versions_again_only_after_writing_a_watched_table(app, db, client):
    """Filing writes reports, events and notices: the versions it read first still hold. A write to a watched table
    in the same request makes the next cache look-up read them again."""
    from flask import request as current_request

    from app.extensions import db as _db
    from app.models import Report
    from tests.assertions import statements_sent

    make_test_grid()
    category = make_category(code="pothole")
    resident = make_user(Role.resident)
    report = make_report(resident, category, 116.4005, 39.9005)
    with app.test_request_context(), statements_sent("cache_versions") as sent:
        versions.current_version(versions.AUTH)
        _db.session.execute(update(Report).where(Report.id == report.id).values(description="x"))
        report.address = "y"
        _db.session.flush()
        versions.current_version(versions.AUTH)
        assert len(sent) == 1
        _db.session.execute(update(Category).where(Category.id == category.id).values(name="z"))
        versions.current_version(versions.AUTH)
        assert len(sent) == 2
        resident.display_name = "w"
        _db.session.flush()
        assert versions._ENVIRON_KEY not in current_request.environ


def test_an_attached_row_is_as_a_query_would_have_loaded_it(db):
    from sqlalchemy import inspect

    from tests.assertions import statements_sent

    user = make_user(Role.resident)
    db.session.flush()
    db.session.refresh(user)
    values, user_id = versions.snapshot(user), user.id
    db.session.expunge_all()
    attached = versions.attach(User, values)
    assert attached in db.session and not db.session.new and not db.session.dirty
    with statements_sent("users") as sent:
        assert {key: getattr(attached, key) for key in values} == values
    assert sent == []
    # The same row again is the session's own object.
    assert versions.attach(User, values) is attached
    # A change is written as for a loaded object, with the value it had as its history.
    attached.display_name = "改过的名字"
    assert inspect(attached).attrs.display_name.history.deleted == [values["display_name"]]
    with statements_sent("UPDATE users") as updates:
        db.session.flush()
    assert len(updates) == 1 and "display_name" in updates[0] and "phone" not in updates[0]
    db.session.expire_all()
    assert db.session.get(User, user_id).display_name == "改过的名字"
