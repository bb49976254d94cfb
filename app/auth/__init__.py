"""Credentials: password hashing (Argon2id) and the signed JWT access and refresh tokens."""
