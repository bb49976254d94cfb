"""Throttling of the sign-in, sign-up and refresh endpoints."""

import pytest
from sqlalchemy import func, select

from app.extensions import limiter
from app.models import User
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
    resp = client.post(LOGIN, json={"username": "nobody", "password": "whatever-1"})
    assert resp.status_code == 401
    assert resp.headers["X-RateLimit-Limit"] == "3"
    assert resp.headers["X-RateLimit-Remaining"] == "2"
