"""API keys in and out: the key itself appears only in the answer that creates it."""

from marshmallow import Schema, fields, validate

from app.schemas.common import LocalDateTime, page_of


class ApiKeyCreateIn(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))


class ApiKeyOut(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String(metadata={"description": "The key's first characters after g311_, to tell keys apart."})
    username = fields.Function(
        lambda k: k.user.username, metadata={"description": "The account its Open311 requests are filed as."}
    )
    created_by = fields.Function(lambda k: k.created_by.username if k.created_by else None)
    created_at = LocalDateTime()
    last_used_at = LocalDateTime(allow_none=True)
    revoked_at = LocalDateTime(allow_none=True)


class ApiKeyIssuedOut(ApiKeyOut):
    key = fields.String(metadata={"description": "The key: shown once, only a hash of it is stored."})


ApiKeyPage = page_of(ApiKeyOut, "ApiKeyPage")
