"""Throttling of the sign-in, sign-up and refresh endpoints."""

import pytest
from sqlalchemy import func, select

from app.extensions import limiter
from app.models import User
from config import DEFAULT_AUTH_RATE_LIMIT, DEFAULT_LOGIN_ACCOUNT_RATE_LIMIT
from tests.assertions import assert_problem
from tests.factories import PASSWORD, make_user

LOGIN = "/api/v1/auth/login"


@pytest.fixture()
def tight_limit(app, monkeypatch):
    monkeypatch.setitem(app.config, "AUTH_RATE_LIMIT", "3 per minute")
    limiter.reset()
    yield
    limiter.reset()


def test_login_is_throttled_per_client_after_the_limit(client, db, tight_limit):
    user = make_user("resident")
    for _ in range(3):
        assert client.post(LOGIN, json={"username": user.username, "password": "wrong-password"}).status_code == 401
    resp = client.post(LOGIN, json={"username": user.username, "password": PASSWORD})
    body = assert_problem(resp, 429, "too_many_requests")
    assert "3 per 1 minute" in body["detail"]
    assert int(resp.headers["Retry-After"]) > 0
    # Another client address has its own budget.
    other = client.post(
        LOGIN, json={"username": user.username, "password": PASSWORD}, environ_base={"REMOTE_ADDR": "10.0.0.9"}
    )
    assert other.status_code == 200


def test_register_and_refresh_share_the_auth_budget(client, db, tight_limit):
    before = db.session.scalar(select(func.count()).select_from(User))
    for n in range(3):
        resp = client.post("/api/v1/auth/register", json={"phone": f"1390000000{n}", "password": "long-enough-1"})
        assert resp.status_code == 201
    assert_problem(
        client.post("/api/v1/auth/register", json={"phone": "13900000009", "password": "long-enough-1"}),
        429,
        "too_many_requests",
    )
    assert_problem(client.post("/api/v1/auth/refresh", json={"refresh_token": "x"}), 429, "too_many_requests")
    # The throttled sign-up created nobody.
    assert db.session.scalar(select(func.count()).select_from(User)) == before + 3


def test_other_endpoints_are_not_throttled(client, db, tight_limit):
    for _ in range(6):
        assert client.get("/api/v1/categories").status_code == 200


def test_responses_carry_the_remaining_budget(client, db, tight_limit):
    resp = client.post("/api/v1/auth/register", json={"phone": "13900000001", "password": "long-enough-1"})
    assert resp.status_code == 201
    assert resp.headers["X-RateLimit-Limit"] == "3"
    assert resp.headers["X-RateLimit-Remaining"] == "2"


# ---- per account and per address -----------------------------------------------------------------


@pytest.fixture()
def default_limits(app, monkeypatch):
    """The production defaults, which the testing config raises out of the way."""
    monkeypatch.setitem(app.config, "AUTH_RATE_LIMIT", DEFAULT_AUTH_RATE_LIMIT)
    monkeypatch.setitem(app.config, "LOGIN_ACCOUNT_RATE_LIMIT", DEFAULT_LOGIN_ACCOUNT_RATE_LIMIT)
    limiter.reset()
    yield
    limiter.reset()


NAT = {"REMOTE_ADDR": "203.0.113.7"}


def test_a_street_office_behind_one_address_signs_its_shift_in(client, db, default_limits):
    workers = [make_user("worker", username=f"shift.worker{n:02d}") for n in range(30)]
    for worker in workers:
        resp = client.post(LOGIN, json={"username": worker.username, "password": PASSWORD}, environ_base=NAT)
        assert resp.status_code == 200, resp.get_data(as_text=True)
    # A few typos on the way do not lock anyone out either.
    for worker in workers[:5]:
        bad = {"username": worker.username, "password": "typo-password"}
        assert client.post(LOGIN, json=bad, environ_base=NAT).status_code == 401
        assert (
            client.post(LOGIN, json={"username": worker.username, "password": PASSWORD}, environ_base=NAT).status_code
            == 200
        )


def test_guessing_one_accounts_password_is_throttled_from_any_address(client, db, default_limits):
    user = make_user("worker", username="target.worker")
    for n in range(5):
        resp = client.post(
            LOGIN,
            json={"username": user.username, "password": f"guess-number-{n}"},
            environ_base={"REMOTE_ADDR": f"198.51.100.{n + 1}"},
        )
        assert resp.status_code == 401
    # The 6th try, from yet another address, is refused before the password is looked at: the right one too.
    for password in ("guess-number-6", PASSWORD):
        resp = client.post(
            LOGIN, json={"username": " Target.Worker", "password": password}, environ_base={"REMOTE_ADDR": "192.0.2.1"}
        )
        body = assert_problem(resp, 429, "too_many_requests")
        assert "5 per 1 minute" in body["detail"]
        assert 0 < int(resp.headers["Retry-After"]) <= 60
    # Other accounts at those addresses are not affected.
    other = make_user("worker", username="other.worker")
    resp = client.post(
        LOGIN, json={"username": other.username, "password": PASSWORD}, environ_base={"REMOTE_ADDR": "198.51.100.1"}
    )
    assert resp.status_code == 200


def test_successful_sign_ins_do_not_spend_the_accounts_budget(client, db, default_limits):
    user = make_user("worker", username="busy.worker")
    for _ in range(8):
        resp = client.post(LOGIN, json={"username": user.username, "password": PASSWORD}, environ_base=NAT)
        assert resp.status_code == 200


def test_the_address_limit_stops_a_spray_over_many_accounts(client, db, default_limits):
    for n in range(60):
        resp = client.post(LOGIN, json={"username": f"sprayed{n:03d}", "password": "guess-123"}, environ_base=NAT)
        assert resp.status_code == 401
    resp = client.post(LOGIN, json={"username": "sprayed999", "password": "guess-123"}, environ_base=NAT)
    body = assert_problem(resp, 429, "too_many_requests")
    assert "60 per 1 minute" in body["detail"]
    assert int(resp.headers["Retry-After"]) > 0
    # Another address still signs in.
    user = make_user("worker", username="elsewhere.worker")
    resp = client.post(
        LOGIN, json={"username": user.username, "password": PASSWORD}, environ_base={"REMOTE_ADDR": "192.0.2.55"}
    )
    assert resp.status_code == 200


def test_the_account_limit_is_configurable(client, db, app, monkeypatch, default_limits):
    monkeypatch.setitem(app.config, "LOGIN_ACCOUNT_RATE_LIMIT", "2 per minute")
    for _ in range(2):
        assert client.post(LOGIN, json={"username": "someone", "password": "guess-123"}).status_code == 401
    assert_problem(client.post(LOGIN, json={"username": "someone", "password": "guess-123"}), 429, "too_many_requests")


# ---- Redis down -----------------------------------------------------------------------------------


@pytest.fixture()
def redis_down(app, tight_limit):
    """The limiter's storage is a Redis that refuses connections (nothing listens on port 1)."""
    from limits.storage import RedisStorage
    from limits.strategies import STRATEGIES

    storage = RedisStorage("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    saved = limiter._storage, limiter._limiter, limiter._storage_dead
    strategy = STRATEGIES[app.config.get("RATELIMIT_STRATEGY", "fixed-window")]
    limiter._storage, limiter._limiter, limiter._storage_dead = storage, strategy(storage), False
    yield
    # Put the memory storage back before tight_limit resets the counters.
    limiter._storage, limiter._limiter, limiter._storage_dead = saved
    limiter._fallback_storage.reset()


def test_redis_down_keeps_the_service_up_and_throttles_in_memory(client, db, redis_down):
    user = make_user("resident")
    # Sign-ins are answered (no 500 for a counter) and the limit still holds, counted in this process's memory.
    for _ in range(3):
        assert client.post(LOGIN, json={"username": user.username, "password": "wrong-password"}).status_code == 401
    assert_problem(client.post(LOGIN, json={"username": user.username, "password": PASSWORD}), 429, "too_many_requests")
    assert limiter._storage_dead
    # What is not throttled is served as ever.
    assert client.get("/api/v1/categories").status_code == 200


def test_only_an_answer_that_asks_to_wait_carries_retry_after(client, db, tight_limit):
    user = make_user("resident")
    signed_in = client.post(LOGIN, json={"username": user.username, "password": PASSWORD})
    assert signed_in.status_code == 200 and "Retry-After" not in signed_in.headers
    assert "X-RateLimit-Remaining" in signed_in.headers  # the budget is still told
    wrong = client.post(LOGIN, json={"username": user.username, "password": "wrong-password"})
    assert wrong.status_code == 401 and "Retry-After" not in wrong.headers
    client.post(LOGIN, json={"username": user.username, "password": "wrong-password"})
    throttled = client.post(LOGIN, json={"username": user.username, "password": PASSWORD})
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
