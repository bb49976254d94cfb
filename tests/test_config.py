"""Configuration from the environment: production refuses to start without its secrets."""

from __future__ import annotations

import stat

import pytest

import config
from config import ConfigError, load_config

GOOD_SECRET = "s" * 32
PG_URL = "postgresql+psycopg://grid@db.internal:5432/grid"

ENV_VARS = [
    "APP_ENV",
    "JWT_SECRET",
    "DATABASE_URL",
    "ROUTING_MAX_DISTANCE_M",
    "TIMEZONE",
    "MAX_BODY_BYTES",
    "TEST_DATABASE_URL",
    "DEMO_PASSWORD",
    "REFRESH_REUSE_GRACE_S",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    # A development config writes its generated secret here, never into the checkout.
    monkeypatch.setattr(config, "INSTANCE_DIR", tmp_path)


def test_production_refuses_to_start_without_jwt_secret(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_config("production")


def test_production_refuses_a_short_jwt_secret(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    monkeypatch.setenv("JWT_SECRET", "s" * 31)
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_config("production")


def test_production_refuses_to_start_without_database_url(monkeypatch):
    monkeypatch.setenv("JWT_SECRET", GOOD_SECRET)
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_config("production")


def test_production_starts_with_secret_and_database(monkeypatch):
    monkeypatch.setenv("JWT_SECRET", GOOD_SECRET)
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    cfg = load_config("production")
    assert cfg.ENV_NAME == "production"
    assert cfg.JWT_SECRET == GOOD_SECRET
    assert cfg.SQLALCHEMY_DATABASE_URI == PG_URL
    assert cfg.TESTING is False
    assert cfg.ROUTING_MAX_DISTANCE_M == 200
    assert cfg.TIMEZONE == "Asia/Shanghai"
    assert cfg.MAX_CONTENT_LENGTH == 1024 * 1024


def test_app_env_selects_the_config(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_config()


def test_create_app_refuses_production_without_secret(monkeypatch):
    from app import create_app

    monkeypatch.setenv("DATABASE_URL", PG_URL)
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        create_app("production")


@pytest.mark.parametrize(
    "given, expected",
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/x.sqlite", "sqlite:////tmp/x.sqlite"),
    ],
)
def test_libpq_style_database_urls_get_the_psycopg_driver(monkeypatch, given, expected):
    monkeypatch.setenv("JWT_SECRET", GOOD_SECRET)
    monkeypatch.setenv("DATABASE_URL", given)
    assert expected == load_config("production").SQLALCHEMY_DATABASE_URI


def test_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("JWT_SECRET", GOOD_SECRET)
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    monkeypatch.setenv("ROUTING_MAX_DISTANCE_M", "350")
    monkeypatch.setenv("TIMEZONE", "Asia/Urumqi")
    cfg = load_config("production")
    assert (cfg.ROUTING_MAX_DISTANCE_M, cfg.TIMEZONE) == (350, "Asia/Urumqi")


@pytest.mark.parametrize("value, message", [("lots", "integer"), ("-1", "negative")])
def test_bad_routing_distance_is_refused(monkeypatch, value, message):
    monkeypatch.setenv("ROUTING_MAX_DISTANCE_M", value)
    with pytest.raises(ConfigError, match=message):
        load_config("testing")


def test_refresh_reuse_grace_defaults_to_ten_seconds_and_comes_from_the_environment(monkeypatch):
    assert load_config("testing").REFRESH_REUSE_GRACE_S == 10
    for value in ("0", "60"):
        monkeypatch.setenv("REFRESH_REUSE_GRACE_S", value)
        assert int(value) == load_config("testing").REFRESH_REUSE_GRACE_S


@pytest.mark.parametrize("value, message", [("ten", "integer"), ("-1", r"0 \(off\) to 60"), ("61", r"0 \(off\) to 60")])
def test_bad_refresh_reuse_grace_is_refused(monkeypatch, value, message):
    monkeypatch.setenv("REFRESH_REUSE_GRACE_S", value)
    with pytest.raises(ConfigError, match=f"REFRESH_REUSE_GRACE_S.*{message}"):
        load_config("testing")


def test_unknown_app_env_is_refused():
    with pytest.raises(ConfigError, match="APP_ENV"):
        load_config("staging")


def test_development_generates_one_private_secret(tmp_path):
    first = load_config("development")
    second = load_config("development")
    assert len(first.JWT_SECRET) >= 32
    assert first.JWT_SECRET == second.JWT_SECRET  # every worker of one checkout agrees
    secret_file = tmp_path / ".jwt-dev-secret"
    assert secret_file.read_text().strip() == first.JWT_SECRET
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert first.SQLALCHEMY_DATABASE_URI.startswith("sqlite:///")


def test_development_uses_a_given_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("JWT_SECRET", GOOD_SECRET)
    assert load_config("development").JWT_SECRET == GOOD_SECRET
    assert not (tmp_path / ".jwt-dev-secret").exists()


def test_a_phone_pattern_that_is_not_a_regular_expression_is_refused(monkeypatch):
    monkeypatch.setenv("PHONE_PATTERN", "1[3-9")
    with pytest.raises(ConfigError, match="PHONE_PATTERN"):
        load_config("development")


def test_sign_in_limits_default_per_address_and_per_account_and_come_from_the_environment(monkeypatch):
    config = load_config("development")
    assert (config.AUTH_RATE_LIMIT, config.LOGIN_ACCOUNT_RATE_LIMIT) == (
        "60 per minute;600 per hour",
        "5 per minute;20 per hour",
    )
    monkeypatch.setenv("AUTH_RATE_LIMIT", "100 per minute")
    monkeypatch.setenv("LOGIN_ACCOUNT_RATE_LIMIT", "3 per minute;10 per hour")
    config = load_config("development")
    assert (config.AUTH_RATE_LIMIT, config.LOGIN_ACCOUNT_RATE_LIMIT) == ("100 per minute", "3 per minute;10 per hour")


@pytest.mark.parametrize("name", ["AUTH_RATE_LIMIT", "LOGIN_ACCOUNT_RATE_LIMIT"])
def test_a_malformed_sign_in_limit_is_refused(monkeypatch, name):
    monkeypatch.setenv(name, "five a minute")
    with pytest.raises(ConfigError, match=name):
        load_config("testing")
