"""Authentication: password hashing, JWT access and refresh tokens, role checks."""
