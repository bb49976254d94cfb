"""Password hashing (app/auth/passwords.py): salted Argon2id, never the plain password."""

from __future__ import annotations

import pytest

from app.auth.passwords import hash_password, verify_password


@pytest.fixture()
def ctx(app):
    with app.app_context():
        yield app


def test_hash_is_argon2id_with_the_configured_cost(ctx):
    hashed = hash_password("correct-horse-9")
    assert hashed.startswith("$argon2id$")
    assert "correct-horse-9" not in hashed
    cost = f"m={ctx.config['PASSWORD_MEMORY_KIB']},t={ctx.config['PASSWORD_TIME_COST']},p=1"
    assert cost in hashed


def test_hashes_are_salted(ctx):
    first, second = hash_password("same password"), hash_password("same password")
    assert first != second
    assert verify_password(first, "same password") and verify_password(second, "same password")


def test_verify_accepts_only_the_right_password(ctx):
    hashed = hash_password("correct-horse-9")
    assert verify_password(hashed, "correct-horse-9") is True
    assert verify_password(hashed, "correct-horse-8") is False
    assert verify_password(hashed, "Correct-horse-9") is False
    assert verify_password(hashed, "") is False


def test_verify_without_a_user_or_with_a_broken_hash_is_false(ctx):
    assert verify_password(None, "anything") is False
    assert verify_password("not-a-hash", "anything") is False
    assert verify_password("$argon2id$v=19$m=1024,t=1,p=1$broken", "anything") is False
