"""cache_versions: the version of each process cache's source tables, moved by database triggers on change."""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class CacheVersion(db.Model):
    """One row per cache (auth, categories); written only by the triggers of migration b7e2c41d9a05."""

    __tablename__ = "cache_versions"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
