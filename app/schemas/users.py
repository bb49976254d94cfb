"""People management in and out: listing filters, an admin's create and edit, a user's own edit."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.lib.i18n import LANGUAGES
from app.models import Role
from app.schemas.auth import LANGUAGE_DESCRIPTION, UserOut
from app.schemas.common import CellScopeArgs, OneOrMore, PageArgs, StrictBoolean, page_of

ROLES = [r.value for r in Role]


class UserListArgs(CellScopeArgs, PageArgs):
    """cell_id or cell: supervisors of that cell and workers serving it today."""

    role = OneOrMore(fields.String(validate=validate.OneOf(ROLES)))
    active = fields.Boolean()
    q = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "Part of the username, display name or phone number."},
    )


UserPage = page_of(UserOut, "UserPage")


class UserCreateIn(Schema):
    username = fields.String(required=True, validate=validate.Length(min=3, max=64))
    password = fields.String(required=True, validate=validate.Length(min=8, max=128))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    display_name = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=100))
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20))
    cell_code = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=20),
        metadata={"description": "A supervisor's subtree root, or a worker's first (primary, from today) grid cell."},
    )


class UserUpdateIn(Schema):
    display_name = fields.String(allow_none=True, validate=validate.Length(min=1, max=100))
    phone = fields.String(allow_none=True, validate=validate.Length(max=20))
    role = fields.String(validate=validate.OneOf(ROLES))
    cell_code = fields.String(
        allow_none=True,
        validate=validate.Length(min=1, max=20),
        metadata={"description": "A supervisor's subtree root."},
    )
    active = StrictBoolean(metadata={"description": "false deactivates: no login, every token refused."})
    password = fields.String(
        validate=validate.Length(min=8, max=128),
        metadata={"description": "A password reset; ends every login of the user."},
    )
    language = fields.String(validate=validate.OneOf(LANGUAGES), metadata={"description": LANGUAGE_DESCRIPTION})


class MeUpdateIn(Schema):
    display_name = fields.String(allow_none=True, validate=validate.Length(min=1, max=100))
    phone = fields.String(allow_none=True, validate=validate.Length(max=20))
    password = fields.String(validate=validate.Length(min=8, max=128))
    old_password = fields.String(validate=validate.Length(min=1, max=128))
    language = fields.String(validate=validate.OneOf(LANGUAGES), metadata={"description": LANGUAGE_DESCRIPTION})

    @validates_schema
    def _old_with_new(self, data, **_kw):
        if "password" in data and "old_password" not in data:
            raise ValidationError("Send old_password with a new password.", "old_password")
        if "old_password" in data and "password" not in data:
            raise ValidationError("old_password only goes with a new password.", "old_password")
