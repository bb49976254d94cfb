"""Report categories and their time limits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.errors import Conflict, NotFound
from app.extensions import db
from app.lib.i18n import tr
from app.models import Category
from app.services import versions


def active_categories_query():
    return select(Category).where(Category.active.is_(True)).order_by(Category.code)


def get_category(category_id: int) -> Category:
    category = db.session.get(Category, category_id)
    if category is None:
        raise NotFound(tr("No category with id {category_id}.", category_id=category_id), code="category_not_found")
    return category


def find_active_by_code(code: str) -> Category | None:
    """Through the app's category cache (app.services.versions): any change to categories empties it everywhere."""
    cached = versions.cache(versions.CATEGORIES)
    known = cached.get(code)
    if known is not None:
        return versions.attach(Category, known)
    version = versions.current_version(versions.CATEGORIES)
    category = db.session.scalars(select(Category).where(Category.code == code, Category.active.is_(True))).first()
    if category is not None:
        cached.put(code, versions.snapshot(category), version)
    return category


def create_category(data: dict[str, Any]) -> Category:
    if db.session.scalars(select(Category).where(Category.code == data["code"])).first():
        raise Conflict(tr("A category with code {code} exists.", code=data["code"]), code="category_code_taken")
    category = Category(**data)
    db.session.add(category)
    db.session.flush()
    return category


def update_category(category: Category, changes: dict[str, Any]) -> Category:
    for key, value in changes.items():
        setattr(category, key, value)
    db.session.flush()
    return category


def upsert_category(data: dict[str, Any]) -> tuple[Category, bool]:
    """Insert by code, or leave an existing one as the admins may have tuned it."""
    existing = db.session.scalars(select(Category).where(Category.code == data["code"])).first()
    if existing is not None:
        return existing, False
    return create_category(data), True
