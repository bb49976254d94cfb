"""The sync feed's query and page."""

from marshmallow import Schema, fields, validate

from app.schemas.common import CrsArgs
from app.schemas.compiled import CompiledSchema
from app.schemas.notifications import NotificationOut
from app.schemas.reports import EventOut, ReportOut

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000


class SyncReportOut(ReportOut):
    """ReportOut and its version: an offline client acts on the case with If-Match: "<version>"."""

    version = fields.Integer()


class SyncEventOut(EventOut):
    """EventOut and the case it belongs to, which a feed mixing many cases needs."""

    report_id = fields.Integer()


_DATA_SCHEMAS = {"case": SyncReportOut(), "event": SyncEventOut(), "notification": NotificationOut()}


class SyncArgs(CrsArgs):
    cursor = fields.String(metadata={"description": "next_cursor of the previous page; none for a full sync."})
    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))


class ChangeOut(CompiledSchema):
    type = fields.String(metadata={"description": "case | event | notification"})
    id = fields.Integer()
    data = fields.Method(
        "_data",
        metadata={
            "description": "By type: a ReportOut with its version, an EventOut "
            "with its report_id, or a NotificationOut."
        },
    )

    def _data(self, change):
        return _DATA_SCHEMAS[change.type].dump(change.data)


class SyncPageOut(Schema):
    changes = fields.List(fields.Nested(ChangeOut))
    next_cursor = fields.String()
    has_more = fields.Boolean()
