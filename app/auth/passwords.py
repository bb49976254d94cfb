"""Argon2id password hashing with cost from configuration."""

from __future__ import annotations

import contextlib
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


def _current_hasher() -> PasswordHasher:
    cfg = current_app.config
    return _hasher(int(cfg["PASSWORD_TIME_COST"]), int(cfg["PASSWORD_MEMORY_KIB"]))


def hash_password(password: str) -> str:
    return _current_hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the user exists, so timing does not reveal usernames."""
    hasher = _current_hasher()
    if password_hash is None:
        password_hash = _dummy_hash(hasher.time_cost, hasher.memory_cost)
        with contextlib.suppress(VerificationError):
            hasher.verify(password_hash, password + "\x00never")
        return False
    try:
        return hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=8)
def _dummy_hash(time_cost: int, memory_kib: int) -> str:
    return _hasher(time_cost, memory_kib).hash("dummy password for unknown users")
