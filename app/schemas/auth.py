"""Login, tokens, registration and the caller's profile."""

from marshmallow import Schema, fields, validate

from app.lib.i18n import LANGUAGES
from app.schemas.common import LocalDateTime
from app.schemas.compiled import CompiledSchema

LANGUAGE_DESCRIPTION = (
    "The language of the user's notifications: zh-CN (the default) or en. Error messages follow each request's "
    "Accept-Language instead."
)


REFRESH_COOKIE_DESCRIPTION = (
    "True: the refresh token goes into an HttpOnly, SameSite=Strict cookie scoped to /api/v1/auth (Secure over "
    "https) instead of the answer, whose refresh_token is then null. For browser clients (the console): no script "
    "can read the cookie; POST /auth/refresh and /auth/logout with an empty JSON object use it."
)


class LoginIn(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))
    refresh_cookie = fields.Boolean(load_default=False, metadata={"description": REFRESH_COOKIE_DESCRIPTION})


class RefreshIn(Schema):
    refresh_token = fields.String(
        validate=validate.Length(min=1, max=4096),
        metadata={
            "description": "Required unless the sign-in set the refresh cookie (refresh_cookie): without it the "
            "cookie is used (and, on refresh, replaced), only with a JSON body (Content-Type: application/json)."
        },
    )


class TokensOut(Schema):
    access_token = fields.String()
    refresh_token = fields.String(allow_none=True, metadata={"description": "Null when it went into the cookie."})
    token_type = fields.String()
    expires_in = fields.Integer()


class RegisterIn(Schema):
    # Its format (PHONE_PATTERN) is checked with the account's other rules.
    phone = fields.String(required=True, validate=validate.Length(min=1, max=20))
    password = fields.String(required=True, validate=validate.Length(min=8, max=128))
    display_name = fields.String(validate=validate.Length(min=1, max=100))


class UserRef(CompiledSchema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String(allow_none=True)


class CellRef(CompiledSchema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    level = fields.String()


class UserOut(Schema):
    id = fields.Integer()
    username = fields.String()
    role = fields.String()
    display_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    active = fields.Boolean()
    language = fields.String(metadata={"enum": list(LANGUAGES), "description": LANGUAGE_DESCRIPTION})
    cell = fields.Nested(CellRef, allow_none=True, metadata={"description": "A supervisor's subtree root."})
    served_cells = fields.List(fields.Nested(CellRef), metadata={"description": "A worker's grid cells."})
    created_at = LocalDateTime()
