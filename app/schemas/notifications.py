"""Notifications out, and the list's filter."""

from marshmallow import Schema, fields

from app.schemas.common import LocalDateTime, PageArgs, page_of
from app.schemas.compiled import CompiledSchema


class NotificationOut(CompiledSchema):
    id = fields.Integer()
    kind = fields.String(
        metadata={"description": "What happened: case_assigned, supervision, reminder, escalation, case_closed, ..."}
    )
    title = fields.String(
        metadata={"description": "Written in the recipient's language (their account's `language`) when it was sent"}
    )
    body = fields.String(allow_none=True, metadata={"description": "The step's note, or a fixed text"})
    report_id = fields.Integer(allow_none=True)
    data = fields.Dict(allow_none=True)
    created_at = LocalDateTime()
    read_at = LocalDateTime(allow_none=True)


NotificationPage = page_of(NotificationOut, "NotificationPage")


class MarkReadIn(Schema):
    """No fields: the body may be empty or {}; anything else is an unknown field."""


class NotificationListArgs(PageArgs):
    unread = fields.Boolean(metadata={"description": "true: only unread; false: only read."})
