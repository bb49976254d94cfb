"""API keys: admins issue (shown once, only a hash stored), list and revoke them; the CLI does the same."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import func, select

from app.auth.passwords import verify_password
from app.errors import Forbidden
from app.models import ApiKey, User
from app.services.people import api_keys as key_service
from tests.assertions import assert_problem
from tests.factories import auth_header, make_api_key, make_user

URL = "/api/v1/api-keys"
KEY = re.compile(r"g311_[A-Za-z0-9_-]{43}")


@pytest.fixture()
def admin(db):
    return make_user("admin")


def counts(db) -> tuple[int, int]:
    return (
        db.session.scalar(select(func.count()).select_from(ApiKey)),
        db.session.scalar(select(func.count()).select_from(User)),
    )


def keys_snapshot(db) -> list[tuple]:
    db.session.expire_all()
    return db.session.execute(
        select(ApiKey.id, ApiKey.name, ApiKey.key_hash, ApiKey.revoked_at, ApiKey.last_used_at).order_by(ApiKey.id)
    ).all()


# ---- POST /api-keys ---------------------------------------------------------------------------------------------


def test_admin_creates_a_key_shown_once_and_stored_as_a_hash(client, db, admin):
    resp = client.post(URL, json={"name": "市民通 app"}, headers=auth_header(admin))
    assert resp.status_code == 201, resp.json
    body = resp.json
    key = body["key"]
    assert KEY.fullmatch(key)
    assert body["name"] == "市民通 app"
    assert body["prefix"] == key[5:13]
    assert body["username"] == f"open311:{body['prefix']}"
    assert body["created_by"] == admin.username
    assert body["last_used_at"] is None and body["revoked_at"] is None
    assert body["created_at"].endswith("+08:00")
    row = db.session.get(ApiKey, body["id"])
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in {str(v) for v in db.session.execute(select(ApiKey.__table__)).one()}
    account = row.user
    assert (account.role, account.active, account.username) == ("resident", False, f"open311:{row.prefix}")
    assert not verify_password(account.password_hash, key)
    assert key_service.authenticate(key).id == row.id


def test_the_keys_account_cannot_sign_in(client, db, admin):
    body = client.post(URL, json={"name": "app"}, headers=auth_header(admin)).json
    for password in (body["key"], "", "!api-key-account"):
        resp = client.post("/api/v1/auth/login", json={"username": body["username"], "password": password or "x"})
        assert_problem(resp, 401, "invalid_credentials")


def test_two_keys_differ(client, db, admin):
    first = client.post(URL, json={"name": "a"}, headers=auth_header(admin)).json
    second = client.post(URL, json={"name": "a"}, headers=auth_header(admin)).json
    assert first["key"] != second["key"] and first["prefix"] != second["prefix"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 5}, "name"),
        ({"name": "ok", "scope": "all"}, "scope"),
    ],
)
def test_bad_bodies_are_422_and_create_nothing(client, db, admin, body, field):
    before = counts(db)
    body = assert_problem(client.post(URL, json=body, headers=auth_header(admin)), 422, "validation_failed")
    assert field in body["errors"]
    assert counts(db) == before


def test_malformed_json_is_400_and_creates_nothing(client, db, admin):
    before = counts(db)
    resp = client.post(URL, data='{"name": ', headers={**auth_header(admin), "Content-Type": "application/json"})
    assert_problem(resp, 400, "malformed_json")
    assert counts(db) == before


def test_oversized_body_is_413_and_creates_nothing(client, db, admin):
    before = counts(db)
    resp = client.post(URL, json={"name": "x" * (1024 * 1024 + 10)}, headers=auth_header(admin))
    assert_problem(resp, 413, "payload_too_large")
    assert counts(db) == before


@pytest.mark.parametrize("role", ["resident", "worker", "supervisor"])
def test_only_admins_create_keys(client, db, role):
    before = counts(db)
    user = make_user(role)
    before = counts(db)
    assert_problem(client.post(URL, json={"name": "x"}, headers=auth_header(user)), 403, "forbidden")
    assert counts(db) == before


def test_create_without_token_is_401(client, db):
    before = counts(db)
    assert_problem(client.post(URL, json={"name": "x"}), 401, "missing_token")
    assert counts(db) == before


# ---- GET /api-keys ----------------------------------------------------------------------------------------------


def test_list_shows_no_key_material(client, db, admin):
    issued = make_api_key("one")
    key_service.revoke_key(make_api_key("two").api_key)
    db.session.commit()
    resp = client.get(URL, headers=auth_header(admin))
    assert resp.status_code == 200
    assert (resp.json["page"], resp.json["page_size"], resp.json["total"]) == (1, 20, 2)
    items = resp.json["items"]
    assert [i["name"] for i in items] == ["one", "two"]
    assert items[0]["prefix"] == issued.api_key.prefix
    assert items[0]["revoked_at"] is None and items[1]["revoked_at"] is not None
    text = resp.get_data(as_text=True)
    assert issued.key not in text and issued.api_key.key_hash not in text
    assert all("key" not in i and "key_hash" not in i for i in items)


def test_list_is_paginated(client, db, admin):
    for n in range(3):
        make_api_key(f"k{n}")
    resp = client.get(URL, query_string={"page": 2, "page_size": 2}, headers=auth_header(admin))
    assert resp.status_code == 200
    assert [i["name"] for i in resp.json["items"]] == ["k2"] and resp.json["total"] == 3
    assert_problem(
        client.get(URL, query_string={"page_size": 101}, headers=auth_header(admin)), 422, "validation_failed"
    )


@pytest.mark.parametrize("role", ["resident", "worker", "supervisor"])
def test_only_admins_list_keys(client, db, role):
    make_api_key("one")
    assert_problem(client.get(URL, headers=auth_header(make_user(role))), 403, "forbidden")
    assert_problem(client.get(URL), 401, "missing_token")


# ---- DELETE /api-keys/{id} --------------------------------------------------------------------------------------


def test_revoke_is_204_idempotent_and_the_key_stops_working(client, db, admin):
    issued = make_api_key("one")
    other = make_api_key("two")
    resp = client.delete(f"{URL}/{issued.api_key.id}", headers=auth_header(admin))
    assert resp.status_code == 204 and resp.get_data() == b""
    first = keys_snapshot(db)
    assert first[0][3] is not None and first[1][3] is None
    assert client.delete(f"{URL}/{issued.api_key.id}", headers=auth_header(admin)).status_code == 204
    assert keys_snapshot(db) == first  # the first revocation time stays
    with pytest.raises(Forbidden):
        key_service.authenticate(issued.key)
    assert key_service.authenticate(other.key).id == other.api_key.id


def test_revoke_unknown_is_404(client, db, admin):
    make_api_key("one")
    before = keys_snapshot(db)
    assert_problem(client.delete(f"{URL}/999999", headers=auth_header(admin)), 404, "api_key_not_found")
    assert keys_snapshot(db) == before


@pytest.mark.parametrize("role", ["resident", "worker", "supervisor"])
def test_only_admins_revoke(client, db, role):
    issued = make_api_key("one")
    before = keys_snapshot(db)
    assert_problem(client.delete(f"{URL}/{issued.api_key.id}", headers=auth_header(make_user(role))), 403, "forbidden")
    assert_problem(client.delete(f"{URL}/{issued.api_key.id}"), 401, "missing_token")
    assert keys_snapshot(db) == before


# ---- authentication ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: None,
        lambda k: "",
        lambda k: k[:-1],
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),
        lambda k: k.replace("g311_", "g312_"),
        lambda k: "g311_" + "x" * 43,
        lambda k: k + "x",
    ],
)
def test_wrong_keys_are_refused(db, mangle):
    issued = make_api_key("one")
    with pytest.raises(Forbidden):
        key_service.authenticate(mangle(issued.key))


def test_authenticate_stamps_last_use(db):
    issued = make_api_key("one")
    assert key_service.authenticate(issued.key).last_used_at is not None


def test_a_read_does_not_stamp_the_keys_last_use(db):
    """Read requests write nothing (app.dialect.engine); a key's last use is its last write."""
    issued = make_api_key("one")
    assert key_service.authenticate(issued.key, stamp_use=False).last_used_at is None


# ---- CLI --------------------------------------------------------------------------------------------------------


def test_cli_creates_lists_and_revokes(app, db):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["api-keys", "create", "热线桥接"])
    assert result.exit_code == 0, result.output
    key = next(line for line in result.output.splitlines() if line.startswith("g311_"))
    assert KEY.fullmatch(key)
    row = db.session.scalars(select(ApiKey).where(ApiKey.name == "热线桥接")).one()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert row.created_by_id is None

    listed = runner.invoke(args=["api-keys", "list"])
    assert listed.exit_code == 0
    line = next(line for line in listed.output.splitlines() if "热线桥接" in line)
    assert line.startswith(f"{row.id}\tg311_{row.prefix}") and key not in listed.output
    assert "revoked -" in line

    revoked = runner.invoke(args=["api-keys", "revoke", str(row.id)])
    assert revoked.exit_code == 0 and f"revoked API key {row.id}" in revoked.output
    db.session.expire_all()
    assert db.session.get(ApiKey, row.id).revoked_at is not None
    with pytest.raises(Forbidden):
        key_service.authenticate(key)


def test_cli_revoke_unknown_fails(app, db):
    result = app.test_cli_runner().invoke(args=["api-keys", "revoke", "999999"])
    assert result.exit_code == 1
    assert "api_key_not_found" in result.output


def test_a_prefix_that_differs_only_in_case_is_not_reused(db, monkeypatch):
    randoms = iter(["AbCdEfGh" + "x" * 35, "abcdefgh" + "y" * 35, "Zz09_-Zz" + "z" * 35])
    monkeypatch.setattr(key_service.secrets, "token_urlsafe", lambda n: next(randoms))
    first = make_api_key("one")
    second = make_api_key("two")
    assert first.api_key.prefix == "AbCdEfGh"
    assert second.api_key.prefix == "Zz09_-Zz" and second.key == "g311_Zz09_-Zz" + "z" * 35
    assert second.api_key.user.username == "open311:Zz09_-Zz"
