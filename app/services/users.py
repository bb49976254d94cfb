"""Creating accounts and registering residents."""
from __future__ import annotations

import re

from sqlalchemy import select

from app.auth.passwords import hash_password
from app.errors import Conflict, ValidationFailed
from app.extensions import db
from app.models import Cell, CellLevel, Role, User, WorkerCell
from app.services.auth import find_user_by_username

MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")
USERNAME = re.compile(r"^[A-Za-z0-9_.@+-]{3,64}$")
MIN_PASSWORD = 8


def create_user(*, username: str, password: str, role: str, cell_code: str | None = None,
                display_name: str | None = None, phone: str | None = None) -> User:
    errors: dict[str, list[str]] = {}
    if role not in {r.value for r in Role}:
        errors["role"] = [f"Must be one of {', '.join(r.value for r in Role)}."]
    if not USERNAME.match(username or ""):
        errors["username"] = ["3-64 letters, digits or _.@+-"]
    if phone is not None and not MAINLAND_MOBILE.match(phone):
        errors["phone"] = ["Must be a mainland China mobile number (11 digits starting with 1)."]
    if len(password or "") < MIN_PASSWORD or len(password) > 128:
        errors["password"] = [f"Must be {MIN_PASSWORD} to 128 characters."]
    cell = None
    if cell_code:
        cell = db.session.scalars(select(Cell).where(Cell.code == cell_code)).first()
        if cell is None:
            errors["cell"] = [f"No cell with code {cell_code}."]
        elif role == Role.worker.value and cell.level != CellLevel.grid.value:
            errors["cell"] = ["A worker serves grid-level cells."]
        elif role in (Role.resident.value, Role.admin.value):
            errors["cell"] = [f"A {role} has no cell."]
    elif role == Role.supervisor.value:
        errors["cell"] = ["A supervisor needs the cell whose subtree they oversee."]
    if errors:
        raise ValidationFailed(errors=errors)
    if find_user_by_username(username) is not None:
        raise Conflict(f"The username {username!r} is taken.", code="username_taken")
    if phone and db.session.scalars(select(User).where(User.phone == phone)).first():
        raise Conflict("That phone number is already registered.", code="phone_taken")

    user = User(username=username.strip(), password_hash=hash_password(password), role=role,
                display_name=display_name, phone=phone,
                cell_id=cell.id if cell is not None and role == Role.supervisor.value else None)
    db.session.add(user)
    db.session.flush()
    if cell is not None and role == Role.worker.value:
        db.session.add(WorkerCell(user_id=user.id, cell_id=cell.id))
        db.session.flush()
    return user


def register_resident(phone: str, password: str, display_name: str | None = None) -> User:
    if not MAINLAND_MOBILE.match(phone or ""):
        raise ValidationFailed(errors={"phone": ["Must be a mainland China mobile number (11 digits starting with 1)."]})
    # A resident signs in with their phone number as the username.
    return create_user(username=phone, password=password, role=Role.resident.value,
                       display_name=display_name, phone=phone)
