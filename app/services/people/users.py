"""Accounts: creating, registering residents, listing, editing, deactivating; a user's own profile."""

from __future__ import annotations

import functools
import re
from typing import Any

from flask import current_app
from sqlalchemy import Select, func, or_, select

from app.auth.passwords import hash_password, verify_password
from app.dialect import locks
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.extensions import db
from app.lib.i18n import tr
from app.models import Cell, CellLevel, Duty, Role, User, WorkerCell
from app.services.calendar.worktime import local_day
from app.services.people.sessions import find_user_by_username, revoke_user_sessions
from app.services.people.workers import check_manages, current_on, served_cells_of


@functools.lru_cache(maxsize=4)
def _phone_pattern(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def valid_phone(phone: str | None) -> bool:
    """Whether a phone number has the configured format (PHONE_PATTERN; mainland China mobiles by default)."""
    return bool(phone) and _phone_pattern(current_app.config["PHONE_PATTERN"]).fullmatch(phone) is not None


USERNAME = re.compile(r"^[A-Za-z0-9_.@+-]{3,64}$")
MIN_PASSWORD = 8


def create_user(
    *,
    username: str,
    password: str,
    role: str,
    cell_code: str | None = None,
    display_name: str | None = None,
    phone: str | None = None,
) -> User:
    errors: dict[str, list[str]] = {}
    if role not in {r.value for r in Role}:
        errors["role"] = [f"Must be one of {', '.join(r.value for r in Role)}."]
    if not USERNAME.match(username or ""):
        errors["username"] = ["3-64 letters, digits or _.@+-"]
    if phone is not None and not valid_phone(phone):
        errors["phone"] = [phone_error()]
    if len(password or "") < MIN_PASSWORD or len(password) > 128:
        errors["password"] = [f"Must be {MIN_PASSWORD} to 128 characters."]
    cell = None
    if cell_code:
        cell = db.session.scalars(select(Cell).where(Cell.code == cell_code)).first()
        if cell is None:
            errors["cell_code"] = [f"No cell with code {cell_code}."]
        elif role == Role.worker.value and cell.level != CellLevel.grid.value:
            errors["cell_code"] = ["A worker serves grid-level cells."]
        elif role in (Role.resident.value, Role.admin.value):
            errors["cell_code"] = [f"A {role} has no cell."]
    elif role == Role.supervisor.value:
        errors["cell_code"] = ["A supervisor needs the cell whose subtree they oversee."]
    if errors:
        raise ValidationFailed(errors=errors)
    if find_user_by_username(username) is not None:
        raise Conflict(tr("The username {username!r} is taken.", username=username), code="username_taken")
    if phone and db.session.scalars(select(User).where(User.phone == phone)).first():
        raise Conflict(tr("That phone number is already registered."), code="phone_taken")

    user = User(
        username=username.strip(),
        password_hash=hash_password(password),
        role=role,
        display_name=display_name,
        phone=phone,
        cell_id=cell.id if cell is not None and role == Role.supervisor.value else None,
    )
    db.session.add(user)
    db.session.flush()
    if cell is not None and role == Role.worker.value:
        db.session.add(WorkerCell(user_id=user.id, cell_id=cell.id, duty=Duty.primary.value, valid_from=local_day()))
        db.session.flush()
    return user


def create_user_by(actor: User, **data: Any) -> User:
    """An account made through the API: admins make any; a supervisor makes workers of a grid cell in their subtree.

    A street office staffs its own grid cells without waiting for the city's admins; every other role (and the
    cells, categories and supervisors themselves) stays with the admins.
    """
    if actor.role != Role.admin.value:
        if data.get("role") != Role.worker.value:
            raise Forbidden(tr("A supervisor creates worker accounts only."), code="role_not_allowed")
        code = data.get("cell_code")
        if not code:
            raise ValidationFailed(
                errors={"cell_code": [tr("A supervisor's new worker needs a grid cell of their subtree.")]}
            )
        cell = db.session.scalars(select(Cell).where(Cell.code == code)).first()
        if cell is not None:
            check_manages(actor, cell)
    return create_user(**data)


def register_resident(phone: str, password: str, display_name: str | None = None) -> User:
    if not valid_phone(phone):
        raise ValidationFailed(errors={"phone": [phone_error()]})
    # A resident signs in with their phone number as the username.
    return create_user(
        username=phone, password=password, role=Role.resident.value, display_name=display_name, phone=phone
    )


def phone_error() -> str:
    return current_app.config["PHONE_ERROR"]


def get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(tr("No user with id {user_id}.", user_id=user_id), code="user_not_found")
    return user


def users_query(
    *, role: list[str] | None = None, active: bool | None = None, cell_id: int | None = None, q: str | None = None
) -> Select:
    """Users by role, state, cell (a supervisor's own cell or a worker's cell today) and a text search."""
    stmt = select(User)
    if role:
        stmt = stmt.where(User.role.in_(role))
    if active is not None:
        stmt = stmt.where(User.active.is_(active))
    if cell_id is not None:
        serving = select(WorkerCell.user_id).where(WorkerCell.cell_id == cell_id, current_on(local_day()))
        stmt = stmt.where(or_(User.cell_id == cell_id, User.id.in_(serving)))
    if q:
        needle = q.strip().lower()
        stmt = stmt.where(
            or_(
                func.lower(User.username).contains(needle, autoescape=True),
                func.lower(User.display_name).contains(needle, autoescape=True),
                User.phone.contains(needle, autoescape=True),
            )
        )
    return stmt.order_by(User.username, User.id)


def _check_phone(phone: str | None, user: User) -> None:
    if phone is None:
        return
    if not valid_phone(phone):
        raise ValidationFailed(errors={"phone": [phone_error()]})
    if db.session.scalar(select(User.id).where(User.phone == phone, User.id != user.id)) is not None:
        raise Conflict(tr("That phone number is already registered."), code="phone_taken")


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= 128:
        raise ValidationFailed(
            errors={"password": [tr("Must be {shortest} to 128 characters.", shortest=MIN_PASSWORD)]}
        )


def update_user(actor: User, user: User, changes: dict[str, Any]) -> User:
    """An admin's edit: name, phone, role (with a supervisor's cell), active, password reset, language.

    Deactivating or resetting the password ends every login of the user at once. No change may leave the
    service without an active admin.
    """
    role = changes.get("role", user.role)
    if role not in {r.value for r in Role}:
        raise ValidationFailed(errors={"role": [tr("Must be one of {roles}.", roles=", ".join(r.value for r in Role))]})
    if user.id == actor.id and (changes.get("active") is False or role != user.role):
        raise Conflict(tr("You cannot deactivate yourself or change your own role."), code="self_lockout")
    if _is_active_admin(user.role, user.active) and not _is_active_admin(role, changes.get("active", user.active)):
        # Before any change is flushed: holding one user's row while queueing for the admins' locks could
        # deadlock with a concurrent edit that holds another.
        _require_another_active_admin(user)
    cell_id = user.cell_id if role == Role.supervisor.value else None
    if "cell_code" in changes:
        code = changes["cell_code"]
        cell = db.session.scalars(select(Cell).where(Cell.code == code)).first() if code else None
        if code and cell is None:
            raise ValidationFailed(errors={"cell_code": [tr("No cell with code {code}.", code=code)]})
        if cell is not None and role != Role.supervisor.value:
            raise ValidationFailed(
                errors={
                    "cell_code": [tr("Only a supervisor has a cell; assign workers through /cells/{{id}}/workers.")]
                }
            )
        cell_id = cell.id if cell is not None else None
    if role == Role.supervisor.value and cell_id is None:
        raise ValidationFailed(errors={"cell_code": [tr("A supervisor needs the cell whose subtree they oversee.")]})
    if "phone" in changes:
        _check_phone(changes["phone"], user)
        user.phone = changes["phone"]
    if "display_name" in changes:
        user.display_name = changes["display_name"]
    if "language" in changes:
        user.language = changes["language"]
    user.role, user.cell_id = role, cell_id
    if "password" in changes:
        _check_password(changes["password"])
        user.password_hash = hash_password(changes["password"])
        revoke_user_sessions(user.id, "password_reset")
    if "active" in changes:
        if user.active and not changes["active"]:
            revoke_user_sessions(user.id, "deactivated")
        user.active = changes["active"]
    db.session.flush()
    return user


def _is_active_admin(role: str, active: bool) -> bool:
    return role == Role.admin.value and bool(active)


def _require_another_active_admin(user: User) -> None:
    """Refuse (409 last_active_admin) unless an active admin other than `user` remains.

    The active admins' rows are locked first and stay locked until the commit, so two admins demoting each
    other at once cannot both pass: on PostgreSQL the second waits for the first's commit and then no longer
    counts the admin the first demoted; on SQLite the second request runs only after the first."""
    admins = db.session.scalars(
        locks.lock_rows(select(User.id).where(User.role == Role.admin.value, User.active.is_(True)).order_by(User.id))
    ).all()
    if not any(admin_id != user.id for admin_id in admins):
        raise Conflict(
            tr("{username} is the last active admin; make another admin first.", username=user.username),
            code="last_active_admin",
        )


def update_me(user: User, changes: dict[str, Any], session_id: str) -> User:
    """A user's own edit: display name, phone, language, and a password change that proves the old one.

    A new password ends every other login of the user (whoever knew the old one is signed out); the login
    `session_id` that made the change stays signed in.
    """
    if "password" in changes:
        if not verify_password(user.password_hash, changes.get("old_password") or ""):
            raise ValidationFailed(errors={"old_password": [tr("Does not match your current password.")]})
        _check_password(changes["password"])
        user.password_hash = hash_password(changes["password"])
        revoke_user_sessions(user.id, "password_changed", keep=session_id)
    if "phone" in changes:
        _check_phone(changes["phone"], user)
        user.phone = changes["phone"]
    if "display_name" in changes:
        user.display_name = changes["display_name"]
    if "language" in changes:
        user.language = changes["language"]
    db.session.flush()
    return user


class Account:
    """A user as the accounts API shows them: their own fields and, for a worker, the grid cells served today."""

    def __init__(self, user: User, served_cells: list[Cell]) -> None:
        self.user = user
        self.served_cells = served_cells

    def __getattr__(self, name: str) -> Any:
        return getattr(self.user, name)


def accounts(users: list[User]) -> list[Account]:
    served = served_cells_of([u.id for u in users if u.role == Role.worker.value])
    return [Account(user, served.get(user.id, [])) for user in users]


def account(user: User) -> Account:
    return accounts([user])[0]
