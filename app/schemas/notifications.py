"""Notifications out, and the list's filter."""

from marshmallow import Schema, fields

from app.schemas.common import LocalDateTime, PageArgs, page_of


class NotificationOut(Schema):
    id = fields.Integer()
    kind = fields.String(metadata={"description": "escalation, critical, reminder, ..."})
    title = fields.String()
    body = fields.String(allow_none=True)
    report_id = fields.Integer(allow_none=True)
    data = fields.Dict(allow_none=True)
    created_at = LocalDateTime()
    read_at = LocalDateTime(allow_none=True)


NotificationPage = page_of(NotificationOut, "NotificationPage")


class MarkReadIn(Schema):
    """No fields: the body may be empty or {}; anything else is an unknown field."""


class NotificationListArgs(PageArgs):
    unread = fields.Boolean(metadata={"description": "true: only unread; false: only read."})
