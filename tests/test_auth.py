"""Accounts and tokens: the auth blueprint, app/services/auth.py and app/auth/tokens.py."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import func, select, update

from app.auth import tokens
from app.models import AuthSession, Category, RefreshToken, Role, User
from app.models.base import utcnow
from app.services.people import sessions as auth_service
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    PASSWORD,
    committed_world,
    make_test_grid,
    make_user,
    tokens_for,
    wait_for_lock_waiter,
)

API = "/api/v1"
PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


# --- helpers -----------------------------------------------------------------------------------------


def count(db, model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def me(client, token: str):
    return client.get(f"{API}/me", headers=bearer(token))


def login(client, username: str, password: str = PASSWORD):
    return client.post(f"{API}/auth/login", json={"username": username, "password": password})


def refresh(client, refresh_token: str):
    return client.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token})


def logout(client, refresh_token: str):
    return client.post(f"{API}/auth/logout", json={"refresh_token": refresh_token})


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def sign(app, claims: dict, *, key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key if key is not None else app.config["JWT_SECRET"], algorithm=algorithm)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict) -> str:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    return f"{header}.{payload}."


@pytest.fixture()
def resident(db):
    return make_user(Role.resident, username="13800138000", phone="13800138000")


@pytest.fixture()
def access_claims(resident):
    """The claims of a genuine access token of a live login; tests break exactly one thing about them."""
    return claims_of(tokens_for(resident).access_token)


# --- register ----------------------------------------------------------------------------------------


def register(client, **body):
    return client.post(f"{API}/auth/register", json=body)


def test_register_creates_a_resident_whose_username_is_the_phone(client, db):
    before = count(db, User)
    resp = register(client, phone="13912345678", password="long-enough-1", display_name="王小明")
    assert resp.status_code == 201, resp.json
    body = resp.json
    assert body["username"] == "13912345678"
    assert body["phone"] == "13912345678"
    assert body["role"] == "resident"
    assert body["display_name"] == "王小明"
    assert body["active"] is True
    assert body["cell"] is None and body["served_cells"] == []
    assert "password" not in body and "password_hash" not in body
    assert count(db, User) == before + 1

    user = db.session.get(User, body["id"])
    assert user.username == "13912345678" and user.role == "resident"
    assert user.password_hash.startswith("$argon2id$")
    assert "long-enough-1" not in user.password_hash
    # The new resident signs in with the phone number.
    resp = login(client, "13912345678", "long-enough-1")
    assert resp.status_code == 200, resp.json
    assert me(client, resp.json["access_token"]).json["id"] == body["id"]


def test_register_without_display_name(client, db):
    resp = register(client, phone="13700000001", password="long-enough-1")
    assert resp.status_code == 201, resp.json
    assert resp.json["display_name"] is None


@pytest.mark.parametrize(
    "body, field",
    [
        ({"phone": "1391234567", "password": "long-enough-1"}, "phone"),  # 10 digits
        ({"phone": "12912345678", "password": "long-enough-1"}, "phone"),  # second digit 2
        ({"phone": "+8613912345678", "password": "long-enough-1"}, "phone"),
        ({"phone": "1391234567a", "password": "long-enough-1"}, "phone"),
        ({"phone": "13912345678", "password": "short7!"}, "password"),
        ({"phone": "13912345678", "password": "x" * 129}, "password"),
        ({"phone": "13912345678", "password": "long-enough-1", "role": "admin"}, "role"),  # unknown field
        ({"phone": 13912345678, "password": "long-enough-1"}, "phone"),  # number, not string
        ({"phone": "13912345678", "password": 12345678901}, "password"),
        ({"phone": "13912345678", "password": "long-enough-1", "display_name": ["x"]}, "display_name"),
        ({"password": "long-enough-1"}, "phone"),  # missing
        ({"phone": "13912345678"}, "password"),
    ],
)
def test_register_rejects_invalid_bodies(client, db, body, field):
    before = count(db, User)
    resp = client.post(f"{API}/auth/register", json=body)
    problem = assert_problem(resp, 422, "validation_failed")
    assert field in problem["errors"], problem
    assert count(db, User) == before


def test_register_rejects_malformed_json(client, db):
    before = count(db, User)
    resp = client.post(
        f"{API}/auth/register", data='{"phone": "13912345678", "password": ', content_type="application/json"
    )
    assert_problem(resp, 400, "malformed_json")
    assert count(db, User) == before


def test_register_rejects_a_json_array_body(client, db):
    before = count(db, User)
    resp = client.post(f"{API}/auth/register", json=["13912345678", "long-enough-1"])
    assert_problem(resp, 422, "validation_failed")
    assert count(db, User) == before


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_register_rejects_non_json_content_type(client, db, content_type):
    before = count(db, User)
    data = (
        "phone=13912345678&password=long-enough-1"
        if "form" in content_type
        else json.dumps({"phone": "13912345678", "password": "long-enough-1"})
    )
    resp = client.post(f"{API}/auth/register", data=data, content_type=content_type)
    assert_problem(resp, 415, "unsupported_media_type")
    assert count(db, User) == before


def test_register_rejects_bodies_over_one_mebibyte(client, db):
    before = count(db, User)
    data = json.dumps({"phone": "13912345678", "password": "long-enough-1", "display_name": "x" * (1024 * 1024)})
    assert len(data) > 1024 * 1024
    resp = client.post(f"{API}/auth/register", data=data, content_type="application/json")
    assert_problem(resp, 413, "payload_too_large")
    assert count(db, User) == before


def test_register_duplicate_phone_is_a_conflict(client, db):
    assert register(client, phone="13912345678", password="long-enough-1").status_code == 201
    before = count(db, User)
    resp = register(client, phone="13912345678", password="another-pass-2")
    assert_problem(resp, 409, "username_taken")
    assert count(db, User) == before
    # The original password still works; the rejected one does not.
    assert login(client, "13912345678", "long-enough-1").status_code == 200
    assert_problem(login(client, "13912345678", "another-pass-2"), 401, "invalid_credentials")


def test_register_phone_already_on_another_account_is_a_conflict(client, db):
    make_user(Role.worker, username="worker-zhang", phone="13512345678")
    before = count(db, User)
    resp = register(client, phone="13512345678", password="long-enough-1")
    assert_problem(resp, 409, "phone_taken")
    assert count(db, User) == before


# --- login -------------------------------------------------------------------------------------------


def test_login_returns_a_bearer_token_pair(client, app, resident):
    resp = login(client, resident.username)
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["access_token"] != body["refresh_token"]

    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    access = jwt.decode(
        body["access_token"],
        app.config["JWT_SECRET"],
        algorithms=["HS256"],
        audience=app.config["JWT_AUDIENCE"],
        issuer=app.config["JWT_ISSUER"],
    )
    refresh_claims = jwt.decode(
        body["refresh_token"],
        app.config["JWT_SECRET"],
        algorithms=["HS256"],
        audience=app.config["JWT_AUDIENCE"],
        issuer=app.config["JWT_ISSUER"],
    )
    assert access["typ"] == "access" and refresh_claims["typ"] == "refresh"
    assert access["sub"] == refresh_claims["sub"] == str(resident.id)
    assert access["sid"] == refresh_claims["sid"]
    assert access["jti"] != refresh_claims["jti"]
    assert access["exp"] - access["iat"] == 15 * 60
    assert refresh_claims["exp"] - refresh_claims["iat"] == 30 * 24 * 3600

    assert me(client, body["access_token"]).json["username"] == resident.username


def test_login_records_one_session_and_one_refresh_token(client, db, resident):
    sessions, refresh_tokens = count(db, AuthSession), count(db, RefreshToken)
    body = login(client, resident.username).json
    assert count(db, AuthSession) == sessions + 1
    assert count(db, RefreshToken) == refresh_tokens + 1
    row = db.session.get(RefreshToken, claims_of(body["refresh_token"])["jti"])
    assert row is not None and row.used_at is None
    assert row.session_id == claims_of(body["access_token"])["sid"]


def test_wrong_password_and_unknown_user_give_the_same_401(client, db, resident):
    sessions = count(db, AuthSession)
    wrong = login(client, resident.username, "not-the-password")
    unknown = login(client, "13999999999", "not-the-password")
    wrong_body = assert_problem(wrong, 401, "invalid_credentials")
    unknown_body = assert_problem(unknown, 401, "invalid_credentials")
    assert wrong_body == unknown_body
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]
    assert count(db, AuthSession) == sessions


def test_deactivated_user_cannot_log_in(client, db):
    user = make_user(Role.worker, active=False)
    sessions = count(db, AuthSession)
    inactive = assert_problem(login(client, user.username), 401, "invalid_credentials")
    # Indistinguishable from a wrong password: the response does not reveal that the account exists.
    wrong = assert_problem(login(client, user.username, "not-the-password"), 401, "invalid_credentials")
    assert inactive == wrong
    assert count(db, AuthSession) == sessions


def test_username_is_case_insensitive(client, db):
    user = make_user(Role.supervisor, username="Li.Ming", cell=make_test_grid()[COMMUNITY])
    for spelling in ("li.ming", "LI.MING", "Li.Ming"):
        resp = login(client, spelling)
        assert resp.status_code == 200, (spelling, resp.json)
        assert me(client, resp.json["access_token"]).json["id"] == user.id


@pytest.mark.parametrize(
    "body, field",
    [
        ({"username": "someone"}, "password"),
        ({"password": PASSWORD}, "username"),
        ({"username": "", "password": PASSWORD}, "username"),
        ({"username": "someone", "password": PASSWORD, "remember": True}, "remember"),
        ({"username": 13800138000, "password": PASSWORD}, "username"),
    ],
)
def test_login_rejects_invalid_bodies(client, db, resident, body, field):
    sessions = count(db, AuthSession)
    problem = assert_problem(client.post(f"{API}/auth/login", json=body), 422, "validation_failed")
    assert field in problem["errors"]
    assert count(db, AuthSession) == sessions


def test_login_rejects_malformed_json(client, db):
    resp = client.post(f"{API}/auth/login", data="{username:", content_type="application/json")
    assert_problem(resp, 400, "malformed_json")


# --- access tokens -----------------------------------------------------------------------------------


def test_forged_token_with_unchanged_claims_is_accepted(client, app, access_claims, resident):
    # The control for the forgeries below: re-signing a genuine token's claims yields a working token.
    resp = me(client, sign(app, access_claims))
    assert resp.status_code == 200, resp.json
    assert resp.json["id"] == resident.id


def test_alg_none_token_is_refused(client, access_claims):
    assert_problem(me(client, unsigned_token(access_claims)), 401, "invalid_token")


def test_token_signed_with_another_secret_is_refused(client, app, access_claims):
    token = sign(app, access_claims, key="another-secret-of-sufficient-length-0123456789")
    assert_problem(me(client, token), 401, "invalid_token")


def test_token_with_tampered_payload_is_refused(client, app, access_claims, db):
    other = make_user(Role.admin)
    genuine = sign(app, access_claims)
    header, _, signature = genuine.split(".")
    payload = b64url(json.dumps({**access_claims, "sub": str(other.id)}).encode())
    assert_problem(me(client, f"{header}.{payload}.{signature}"), 401, "invalid_token")


def test_token_with_another_hmac_algorithm_is_refused(client, app, access_claims):
    # The algorithm is pinned to HS256, even for a token signed with the right secret.
    assert_problem(me(client, sign(app, access_claims, algorithm="HS384")), 401, "invalid_token")


@pytest.mark.parametrize(
    "claim, value",
    [
        ("aud", "some-other-api"),
        ("iss", "some-other-issuer"),
    ],
)
def test_token_for_another_audience_or_issuer_is_refused(client, app, access_claims, claim, value):
    assert_problem(me(client, sign(app, {**access_claims, claim: value})), 401, "invalid_token")


def test_expired_token_is_refused(client, app, access_claims):
    now = int(time.time())
    token = sign(app, {**access_claims, "iat": now - 3600, "exp": now - 60})
    assert_problem(me(client, token), 401, "token_expired")


def test_a_verified_token_is_refused_once_it_expires(client, app, access_claims):
    # The worker keeps tokens it has verified (app.auth.tokens); the expiry is still checked on every use.
    exp = int(time.time()) + 1
    token = sign(app, {**access_claims, "exp": exp})
    assert me(client, token).status_code == 200
    while time.time() < exp:
        time.sleep(0.05)
    assert_problem(me(client, token), 401, "token_expired")


def test_a_verified_token_is_refused_after_the_secret_changes(client, app, access_claims, monkeypatch):
    token = sign(app, access_claims)
    assert me(client, token).status_code == 200
    monkeypatch.setitem(app.config, "JWT_SECRET", "a-rotated-secret-" + "x" * 32)
    assert_problem(me(client, token), 401, "invalid_token")


def test_token_issued_in_the_future_is_refused(client, app, access_claims):
    now = int(time.time())
    token = sign(app, {**access_claims, "iat": now + 3600, "exp": now + 7200})
    assert_problem(me(client, token), 401, "invalid_token")


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss", "aud", "jti", "typ", "sid"])
def test_token_missing_a_required_claim_is_refused(client, app, access_claims, claim):
    claims = {k: v for k, v in access_claims.items() if k != claim}
    assert claim in access_claims and claim not in claims
    assert_problem(me(client, sign(app, claims)), 401, "invalid_token")


@pytest.mark.parametrize(
    "claim, value",
    [
        ("sub", "not-a-number"),
        ("sid", 12345),
        ("sid", "00000000-0000-0000-0000-000000000000"),  # a session that does not exist
    ],
)
def test_token_with_a_malformed_or_unknown_subject_or_session_is_refused(client, app, access_claims, claim, value):
    assert_problem(me(client, sign(app, {**access_claims, claim: value})), 401, "invalid_token")


def test_token_of_another_users_session_is_refused(client, app, db, access_claims):
    # sub and sid must belong together: someone else's sub with my session is not my login.
    other = make_user(Role.admin)
    assert_problem(me(client, sign(app, {**access_claims, "sub": str(other.id)})), 401, "invalid_token")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "", "eyJhbGciOiJIUzI1NiJ9..", "x" * 5000])
def test_garbage_token_is_refused(client, token, db):
    resp = client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"})
    assert_problem(resp, 401, "invalid_token")


def test_missing_authorization_header_is_refused(client, db):
    assert_problem(client.get(f"{API}/me"), 401, "missing_token")


@pytest.mark.parametrize("scheme", ["Basic", "Token", "JWT"])
def test_non_bearer_scheme_is_refused(client, resident, scheme):
    token = tokens_for(resident).access_token
    resp = client.get(f"{API}/me", headers={"Authorization": f"{scheme} {token}"})
    assert_problem(resp, 401, "invalid_token")


def test_bare_token_without_scheme_is_refused(client, resident):
    token = tokens_for(resident).access_token
    assert_problem(client.get(f"{API}/me", headers={"Authorization": token}), 401, "invalid_token")


def test_bearer_scheme_is_case_insensitive(client, resident):
    token = tokens_for(resident).access_token
    resp = client.get(f"{API}/me", headers={"Authorization": f"bearer {token}"})
    assert resp.status_code == 200, resp.json


def test_refresh_token_is_not_an_access_token(client, resident):
    pair = tokens_for(resident)
    assert_problem(me(client, pair.refresh_token), 401, "wrong_token_type")


def test_access_token_is_not_a_refresh_token(client, db, resident):
    pair = tokens_for(resident)
    refresh_tokens = count(db, RefreshToken)
    assert_problem(refresh(client, pair.access_token), 401, "wrong_token_type")
    assert_problem(logout(client, pair.access_token), 401, "wrong_token_type")
    assert count(db, RefreshToken) == refresh_tokens
    # Neither attempt touched the login.
    assert me(client, pair.access_token).status_code == 200
    assert refresh(client, pair.refresh_token).status_code == 200


def test_right_token_with_wrong_role_is_forbidden(client, db, resident):
    body = {"code": "T-AUTH-1", "name": "道路不洁", "group": "市容环境", "time_limit_value": 4}
    categories = count(db, Category)
    resp = client.post(f"{API}/categories", json=body, headers=bearer(tokens_for(resident).access_token))
    assert_problem(resp, 403, "forbidden")
    assert count(db, Category) == categories
    # The same request by an admin goes through, so the 403 was about the role.
    admin = make_user(Role.admin)
    resp = client.post(f"{API}/categories", json=body, headers=bearer(tokens_for(admin).access_token))
    assert resp.status_code == 201, resp.json
    assert count(db, Category) == categories + 1


def test_wrong_role_without_token_is_401_not_403(client, db):
    resp = client.post(f"{API}/categories", json={"code": "T-AUTH-2", "name": "n", "group": "g", "time_limit_value": 4})
    assert_problem(resp, 401, "missing_token")


# --- refresh rotation --------------------------------------------------------------------------------


def test_refresh_rotates_the_pair(client, db, resident):
    first = tokens_for(resident)
    resp = refresh(client, first.refresh_token)
    assert resp.status_code == 200, resp.json
    second = resp.json
    assert set(second) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert second["token_type"] == "Bearer" and second["expires_in"] == 900
    assert second["refresh_token"] != first.refresh_token
    assert second["access_token"] != first.access_token
    # Same login, new token ids.
    old, new = claims_of(first.refresh_token), claims_of(second["refresh_token"])
    assert new["sid"] == old["sid"] and new["jti"] != old["jti"]
    assert db.session.get(RefreshToken, old["jti"]).used_at is not None
    assert db.session.get(RefreshToken, new["jti"]).used_at is None
    assert me(client, second["access_token"]).json["id"] == resident.id
    # The new refresh token rotates in turn.
    assert refresh(client, second["refresh_token"]).status_code == 200


def test_replayed_refresh_token_revokes_its_whole_login(client, db, resident):
    first = tokens_for(resident)
    other_login = tokens_for(resident)
    second = refresh(client, first.refresh_token).json
    third = refresh(client, second["refresh_token"]).json

    replay = refresh(client, first.refresh_token)
    assert_problem(replay, 401, "token_reused")

    # The revocation was kept although the request failed.
    sid = claims_of(first.refresh_token)["sid"]
    session = db.session.get(AuthSession, sid)
    db.session.refresh(session)
    assert session.revoked_at is not None
    assert session.revoked_reason == "refresh_reuse"

    # Every token of that login is dead: the newest refresh token and every access token.
    refresh_tokens = count(db, RefreshToken)
    assert_problem(refresh(client, third["refresh_token"]), 401, "token_revoked")
    assert count(db, RefreshToken) == refresh_tokens
    for access in (first.access_token, second["access_token"], third["access_token"]):
        assert_problem(me(client, access), 401, "token_revoked")
    # Replaying again is still refused.
    assert_problem(refresh(client, first.refresh_token), 401, "token_reused")

    # Another login of the same user is untouched.
    other_sid = claims_of(other_login.refresh_token)["sid"]
    assert db.session.get(AuthSession, other_sid).revoked_at is None
    assert me(client, other_login.access_token).status_code == 200
    rotated = refresh(client, other_login.refresh_token)
    assert rotated.status_code == 200, rotated.json
    assert me(client, rotated.json["access_token"]).json["id"] == resident.id


def test_replay_of_the_middle_token_also_revokes_the_login(client, db, resident):
    first = tokens_for(resident)
    second = refresh(client, first.refresh_token).json
    third = refresh(client, second["refresh_token"]).json
    exchanged_ago(db, second["refresh_token"], GRACE_S + 1)
    assert_problem(refresh(client, second["refresh_token"]), 401, "token_reused")
    assert_problem(refresh(client, third["refresh_token"]), 401, "token_revoked")
    assert_problem(me(client, third["access_token"]), 401, "token_revoked")


# --- a repeat within the grace window -----------------------------------------------------------------

GRACE_S = 10  # REFRESH_REUSE_GRACE_S's default, which the tests run with


def exchanged_ago(db, refresh_token: str, seconds: float) -> None:
    """Move a refresh token's exchange into the past: the grace window runs from its used_at."""
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.jti == claims_of(refresh_token)["jti"])
        .values(used_at=utcnow() - timedelta(seconds=seconds))
    )
    db.session.commit()  # a savepoint of the test's transaction; survives the requests' rollbacks


def session_of(db, token: str) -> AuthSession:
    session = db.session.get(AuthSession, claims_of(token)["sid"])
    db.session.refresh(session)
    return session


def test_a_repeat_within_the_grace_window_gets_the_same_pair(client, db, resident):
    first = tokens_for(resident)
    rotated = refresh(client, first.refresh_token)
    assert rotated.status_code == 200, rotated.json
    refresh_tokens = count(db, RefreshToken)

    again = refresh(client, first.refresh_token)
    assert again.status_code == 200, again.json
    # Byte for byte the first answer: both tabs (or the retry) hold the login's one newest refresh token.
    assert again.get_data() == rotated.get_data()
    assert count(db, RefreshToken) == refresh_tokens
    used = db.session.get(RefreshToken, claims_of(first.refresh_token)["jti"])
    assert used.replaced_by == claims_of(rotated.json["refresh_token"])["jti"]
    assert session_of(db, first.refresh_token).revoked_at is None
    assert me(client, again.json["access_token"]).json["id"] == resident.id
    # The shared successor rotates once as usual, and the login goes on.
    newest = refresh(client, again.json["refresh_token"])
    assert newest.status_code == 200, newest.json
    assert me(client, newest.json["access_token"]).status_code == 200
    assert me(client, first.access_token).status_code == 200


def test_a_repeat_near_the_end_of_the_grace_window_still_gets_the_pair(client, db, resident):
    first = tokens_for(resident)
    rotated = refresh(client, first.refresh_token)
    exchanged_ago(db, first.refresh_token, GRACE_S - 1)
    again = refresh(client, first.refresh_token)
    assert again.status_code == 200, again.json
    assert again.get_data() == rotated.get_data()
    assert session_of(db, first.refresh_token).revoked_at is None


def test_a_repeat_after_the_grace_window_revokes_the_login(client, db, resident):
    first = tokens_for(resident)
    other_login = tokens_for(resident)
    rotated = refresh(client, first.refresh_token).json
    exchanged_ago(db, first.refresh_token, GRACE_S + 1)
    refresh_tokens = count(db, RefreshToken)

    assert_problem(refresh(client, first.refresh_token), 401, "token_reused")
    session = session_of(db, first.refresh_token)
    assert session.revoked_at is not None and session.revoked_reason == "refresh_reuse"
    assert count(db, RefreshToken) == refresh_tokens
    # The pair the first exchange handed out dies with the login.
    assert_problem(refresh(client, rotated["refresh_token"]), 401, "token_revoked")
    assert_problem(me(client, rotated["access_token"]), 401, "token_revoked")
    assert_problem(refresh(client, first.refresh_token), 401, "token_reused")
    assert me(client, other_login.access_token).status_code == 200


def test_a_repeat_after_the_successor_was_rotated_revokes_the_login(client, db, resident):
    # Within the window, but the pair it would get again is spent: not a retry.
    first = tokens_for(resident)
    second = refresh(client, first.refresh_token).json
    third = refresh(client, second["refresh_token"]).json
    assert_problem(refresh(client, first.refresh_token), 401, "token_reused")
    assert session_of(db, first.refresh_token).revoked_reason == "refresh_reuse"
    assert_problem(me(client, third["access_token"]), 401, "token_revoked")


@pytest.fixture()
def no_grace(app):
    saved = app.config["REFRESH_REUSE_GRACE_S"]
    app.config["REFRESH_REUSE_GRACE_S"] = 0
    yield
    app.config["REFRESH_REUSE_GRACE_S"] = saved


def test_a_grace_window_of_zero_makes_every_repeat_a_replay(client, db, resident, no_grace):
    first = tokens_for(resident)
    rotated = refresh(client, first.refresh_token).json
    assert_problem(refresh(client, first.refresh_token), 401, "token_reused")
    assert session_of(db, first.refresh_token).revoked_reason == "refresh_reuse"
    assert_problem(me(client, rotated["access_token"]), 401, "token_revoked")


def test_a_repeat_after_logout_is_refused(client, db, resident):
    first = tokens_for(resident)
    rotated = refresh(client, first.refresh_token).json
    assert logout(client, rotated["refresh_token"]).status_code == 204
    refresh_tokens = count(db, RefreshToken)
    assert_problem(refresh(client, first.refresh_token), 401, "token_revoked")
    assert count(db, RefreshToken) == refresh_tokens
    assert session_of(db, first.refresh_token).revoked_reason == "logout"


def test_a_repeat_for_a_deactivated_account_is_refused(client, db, resident):
    first = tokens_for(resident)
    refresh(client, first.refresh_token)
    resident.active = False
    db.session.commit()
    assert_problem(refresh(client, first.refresh_token), 401, "account_inactive")


def test_a_repeat_never_hands_the_pair_to_another_user(client, app, db, resident):
    # Even signed with the right key, someone else's sub with this login's token gets nothing, and revokes nothing.
    first = tokens_for(resident)
    rotated = refresh(client, first.refresh_token)
    other = make_user(Role.admin)
    forged = sign(app, {**claims_of(first.refresh_token), "sub": str(other.id)})
    assert_problem(refresh(client, forged), 401, "invalid_token")
    assert session_of(db, first.refresh_token).revoked_at is None
    assert refresh(client, first.refresh_token).get_data() == rotated.get_data()


@pytest.fixture()
def live_resident(app):
    """A resident committed for other connections to see; removed afterwards."""
    with committed_world(app):
        yield make_user(Role.resident, username="13800138001", phone="13800138001")


def test_two_refreshes_with_one_token_at_once_both_get_the_pair(app, live_resident, backend, monkeypatch):
    from app.extensions import db as real_db

    first = tokens_for(live_resident)
    user_id, sid = live_resident.id, claims_of(first.refresh_token)["sid"]
    # This thread's session must not hold SQLite's write lock while the requests run.
    real_db.session.close()
    barrier = threading.Barrier(2, timeout=20)
    original_decode, original_issue = tokens.decode, auth_service._issue
    held = []

    def decode_together(token, typ):
        claims = original_decode(token, typ)
        barrier.wait()  # both requests hold the decoded token before either claims it
        return claims

    def issue_while_the_other_waits(*args):
        # Only the request that claimed the token gets here, holding its row: PostGIS shows the other one
        # queued on that lock; SQLite's second transaction waits for the write lock meanwhile.
        held.append(wait_for_lock_waiter() if backend == "postgis" else time.sleep(0.2))
        return original_issue(*args)

    monkeypatch.setattr(tokens, "decode", decode_together)
    monkeypatch.setattr(auth_service, "_issue", issue_while_the_other_waits)
    results = []

    def post():
        results.append(app.test_client().post(f"{API}/auth/refresh", json={"refresh_token": first.refresh_token}))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    monkeypatch.undo()

    assert [r.status_code for r in results] == [200, 200], [r.get_json() for r in results]
    assert results[0].get_data() == results[1].get_data()
    assert len(held) == 1
    if backend == "postgis":
        assert held == [True], "the second refresh never queued on the claimed row"
    real_db.session.expire_all()
    assert real_db.session.get(AuthSession, sid).revoked_at is None
    assert (
        real_db.session.scalar(select(func.count()).select_from(RefreshToken).where(RefreshToken.session_id == sid))
        == 2
    )
    pair = results[0].get_json()
    client = app.test_client()
    assert me(client, pair["access_token"]).json["id"] == user_id
    assert refresh(client, pair["refresh_token"]).status_code == 200


def test_refresh_with_an_unknown_but_well_signed_token_is_refused(client, app, db, resident):
    pair = tokens_for(resident)
    forged = sign(app, {**claims_of(pair.refresh_token), "jti": "00000000-0000-0000-0000-000000000000"})
    refresh_tokens = count(db, RefreshToken)
    assert_problem(refresh(client, forged), 401, "invalid_token")
    assert count(db, RefreshToken) == refresh_tokens
    # An unknown token is not a replay: the real login keeps working.
    assert db.session.get(AuthSession, claims_of(pair.refresh_token)["sid"]).revoked_at is None
    assert refresh(client, pair.refresh_token).status_code == 200


@pytest.mark.parametrize("token", ["garbage", "a.b.c"])
def test_refresh_with_garbage_is_refused(client, db, token):
    assert_problem(refresh(client, token), 401, "invalid_token")


def test_refresh_with_expired_token_is_refused(client, app, resident):
    now = int(time.time())
    claims = {**claims_of(tokens_for(resident).refresh_token), "iat": now - 7200, "exp": now - 60}
    assert_problem(refresh(client, sign(app, claims)), 401, "token_expired")


def test_refresh_after_the_login_expired_is_refused(client, db, resident):
    pair = tokens_for(resident)
    session = db.session.get(AuthSession, claims_of(pair.refresh_token)["sid"])
    session.expires_at = session.created_at - timedelta(seconds=1)
    db.session.commit()  # a savepoint of the test's transaction; survives the requests' rollbacks
    assert_problem(refresh(client, pair.refresh_token), 401, "token_expired")
    assert_problem(me(client, pair.access_token), 401, "token_expired")


def test_refresh_rejects_invalid_bodies(client, db):
    # No refresh_token means the refresh cookie (see below): without one, 401.
    assert_problem(client.post(f"{API}/auth/refresh", json={}), 401, "invalid_token")
    assert_problem(client.post(f"{API}/auth/refresh", json={"refresh_token": ""}), 422, "validation_failed")
    problem = assert_problem(
        client.post(f"{API}/auth/refresh", json={"refresh_token": "x", "extra": 1}), 422, "validation_failed"
    )
    assert "extra" in problem["errors"]
    assert_problem(client.post(f"{API}/auth/refresh", data="{", content_type="application/json"), 400, "malformed_json")


# --- logout ------------------------------------------------------------------------------------------


def test_logout_revokes_the_login(client, db, resident):
    pair = tokens_for(resident)
    other_login = tokens_for(resident)
    assert me(client, pair.access_token).status_code == 200

    resp = logout(client, pair.refresh_token)
    assert resp.status_code == 204
    assert resp.get_data() == b""

    session = db.session.get(AuthSession, claims_of(pair.refresh_token)["sid"])
    db.session.refresh(session)
    assert session.revoked_at is not None and session.revoked_reason == "logout"
    assert_problem(me(client, pair.access_token), 401, "token_revoked")
    assert_problem(refresh(client, pair.refresh_token), 401, "token_revoked")
    # Signing out of one login leaves the others alone.
    assert me(client, other_login.access_token).status_code == 200


def test_logout_with_a_rotated_refresh_token_still_ends_the_login(client, db, resident):
    first = tokens_for(resident)
    second = refresh(client, first.refresh_token).json
    assert logout(client, second["refresh_token"]).status_code == 204
    assert_problem(me(client, second["access_token"]), 401, "token_revoked")


@pytest.mark.parametrize("token", ["garbage", "a.b.c"])
def test_logout_with_garbage_is_refused(client, db, resident, token):
    pair = tokens_for(resident)
    assert_problem(logout(client, token), 401, "invalid_token")
    assert me(client, pair.access_token).status_code == 200


def test_logout_with_an_unknown_but_well_signed_token_is_refused(client, app, db, resident):
    pair = tokens_for(resident)
    forged = sign(app, {**claims_of(pair.refresh_token), "jti": "00000000-0000-0000-0000-000000000000"})
    assert_problem(logout(client, forged), 401, "invalid_token")
    assert db.session.get(AuthSession, claims_of(pair.refresh_token)["sid"]).revoked_at is None
    assert me(client, pair.access_token).status_code == 200


# --- deactivation after login ------------------------------------------------------------------------


def test_user_deactivated_after_login_is_refused(client, db, resident):
    pair = tokens_for(resident)
    assert me(client, pair.access_token).status_code == 200

    resident.active = False
    db.session.flush()
    db.session.commit()  # a savepoint of the test's transaction; survives the requests' rollbacks

    assert_problem(me(client, pair.access_token), 401, "account_inactive")
    refresh_tokens = count(db, RefreshToken)
    assert_problem(refresh(client, pair.refresh_token), 401, "account_inactive")
    assert count(db, RefreshToken) == refresh_tokens
    assert_problem(login(client, resident.username), 401, "invalid_credentials")


# --- /me ---------------------------------------------------------------------------------------------


def test_me_for_a_resident(client, resident):
    resp = me(client, tokens_for(resident).access_token)
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["id"] == resident.id
    assert body["username"] == "13800138000"
    assert body["phone"] == "13800138000"
    assert body["role"] == "resident"
    assert body["active"] is True
    assert body["cell"] is None
    assert body["served_cells"] == []
    assert body["created_at"].endswith("+08:00")
    assert "password_hash" not in body


def test_me_lists_a_workers_served_cells(client, db):
    cells = make_test_grid()
    codes = ["11010500100104", "11010500100101"]
    worker = make_user(Role.worker, served=[cells[c] for c in codes])
    body = me(client, tokens_for(worker).access_token).json
    assert body["role"] == "worker"
    assert body["cell"] is None
    assert [c["code"] for c in body["served_cells"]] == sorted(codes)
    first = body["served_cells"][0]
    assert first == {
        "id": cells["11010500100101"].id,
        "code": "11010500100101",
        "name": cells["11010500100101"].name,
        "level": "grid",
    }


def test_me_shows_a_supervisors_cell(client, db):
    cells = make_test_grid()
    supervisor = make_user(Role.supervisor, cell=cells[COMMUNITY])
    body = me(client, tokens_for(supervisor).access_token).json
    assert body["role"] == "supervisor"
    assert body["cell"] == {
        "id": cells[COMMUNITY].id,
        "code": COMMUNITY,
        "name": cells[COMMUNITY].name,
        "level": "community",
    }
    assert body["served_cells"] == []


# --- the browser clients' refresh cookie ---------------------------------------------------------------------------

COOKIE = "grid_refresh"


def cookie_login(client, username: str, password: str = PASSWORD):
    return client.post(f"{API}/auth/login", json={"username": username, "password": password, "refresh_cookie": True})


def set_cookie_header(resp) -> str:
    [header] = [value for name, value in resp.headers.items() if name == "Set-Cookie" and value.startswith(COOKIE)]
    return header


def cookie_value(client) -> str | None:
    cookie = client.get_cookie(COOKIE, path=f"{API}/auth")
    return cookie.value if cookie else None


def test_login_with_refresh_cookie_puts_the_refresh_token_in_an_httponly_strict_cookie(client, db):
    user = make_user("supervisor")
    resp = cookie_login(client, user.username)
    assert resp.status_code == 200, resp.json
    assert resp.json["refresh_token"] is None
    assert me(client, resp.json["access_token"]).json["id"] == user.id
    header = set_cookie_header(resp)
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "SameSite=Strict" in header and f"Path={API}/auth" in header
    assert "secure" not in attributes  # plain http (a loopback demo): a Secure cookie would never come back
    assert tokens.decode(cookie_value(client), tokens.REFRESH)["sub"] == str(user.id)
    # Without the flag nothing changes: the token is in the answer and no cookie is set.
    plain = login(client, user.username)
    assert plain.json["refresh_token"] and "Set-Cookie" not in plain.headers


def test_the_cookie_is_secure_over_https(client, db):
    user = make_user("supervisor")
    resp = client.post(
        f"{API}/auth/login",
        json={"username": user.username, "password": PASSWORD, "refresh_cookie": True},
        base_url="https://grid.example.org",
    )
    assert resp.status_code == 200
    assert "Secure" in set_cookie_header(resp)


def test_refresh_with_the_cookie_rotates_it_and_keeps_it_out_of_the_answer(client, db):
    user = make_user("supervisor")
    cookie_login(client, user.username)
    first = cookie_value(client)
    resp = client.post(f"{API}/auth/refresh", json={})
    assert resp.status_code == 200, resp.json
    assert resp.json["refresh_token"] is None
    assert me(client, resp.json["access_token"]).json["id"] == user.id
    second = cookie_value(client)
    assert second and second != first
    # The old cookie's token was used up: presenting it later (past the grace window) ends the login.
    db.session.execute(update(RefreshToken).values(used_at=utcnow() - timedelta(minutes=5)))
    replay = refresh(client, first)
    assert_problem(replay, 401, "token_reused")


def test_refresh_without_a_token_or_a_cookie_is_401(client, db):
    assert_problem(client.post(f"{API}/auth/refresh", json={}), 401, "invalid_token")
    assert_problem(client.post(f"{API}/auth/logout", json={}), 401, "invalid_token")


def test_a_bad_cookie_is_refused_and_cleared(client, db):
    client.set_cookie(COOKIE, "not-a-token", path=f"{API}/auth")
    resp = client.post(f"{API}/auth/refresh", json={})
    assert_problem(resp, 401, "invalid_token")
    assert "Max-Age=0" in set_cookie_header(resp) or "expires=Thu, 01 Jan 1970" in set_cookie_header(resp)
    assert cookie_value(client) is None


def test_the_cookie_counts_only_on_a_json_request(client, db):
    """CSRF: besides SameSite=Strict, a cross-site form (urlencoded, multipart or text/plain, or no body) is refused
    before the cookie's token is touched; only a same-origin script can send JSON here (no CORS is answered)."""
    user = make_user("supervisor")
    cookie_login(client, user.username)
    token = cookie_value(client)
    for kwargs in (
        {},
        {"data": "x=1", "content_type": "application/x-www-form-urlencoded"},
        {"data": "{}", "content_type": "text/plain"},
    ):
        resp = client.post(f"{API}/auth/refresh", **kwargs)
        assert_problem(resp, 415, "unsupported_media_type")
        resp = client.post(f"{API}/auth/logout", **kwargs)
        assert_problem(resp, 415, "unsupported_media_type")
    assert cookie_value(client) == token
    assert (
        db.session.scalar(select(func.count()).select_from(RefreshToken).where(RefreshToken.used_at.is_not(None))) == 0
    )
    assert (
        "Access-Control-Allow-Origin"
        not in client.options(f"{API}/auth/refresh", headers={"Origin": "https://evil.example"}).headers
    )


def test_wrong_password_with_refresh_cookie_sets_no_cookie(client, db):
    user = make_user("supervisor")
    resp = cookie_login(client, user.username, "wrong-password")
    assert_problem(resp, 401, "invalid_credentials")
    assert "Set-Cookie" not in resp.headers


def test_logout_with_the_cookie_ends_that_login_only_and_clears_it(client, db):
    user, other = make_user("supervisor"), make_user("supervisor")
    others = tokens_for(other)
    access = cookie_login(client, user.username).json["access_token"]
    resp = client.post(f"{API}/auth/logout", json={})
    assert resp.status_code == 204
    assert cookie_value(client) is None
    assert_problem(me(client, access), 401, "token_revoked")
    assert_problem(client.post(f"{API}/auth/refresh", json={}), 401, "invalid_token")
    # Another user's login is untouched.
    assert me(client, others.access_token).json["id"] == other.id


def test_a_refresh_token_in_the_body_wins_over_the_cookie(client, db):
    user, other = make_user("supervisor"), make_user("supervisor")
    cookie_login(client, user.username)
    cookie = cookie_value(client)
    theirs = tokens_for(other).refresh_token
    resp = refresh(client, theirs)
    assert resp.status_code == 200
    assert resp.json["refresh_token"]  # sent in the body, answered in the body
    assert me(client, resp.json["access_token"]).json["id"] == other.id
    assert cookie_value(client) == cookie
