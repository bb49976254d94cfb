"""Statistics in and out."""

from marshmallow import Schema, fields, validate

from app.schemas.auth import CellRef
from app.schemas.common import AwareDateTime, LocalDateTime


class SummaryArgs(Schema):
    cell = fields.String(
        required=True,
        validate=validate.Length(min=6, max=20),
        metadata={"description": "Code of the cell whose children are compared."},
    )
    start = AwareDateTime(required=True, data_key="from", metadata={"description": "Period start (inclusive)."})
    end = AwareDateTime(required=True, data_key="to", metadata={"description": "Period end (exclusive)."})


class CellFiguresOut(Schema):
    cell = fields.Nested(CellRef)
    filed = fields.Integer(metadata={"description": "Cases filed in the period."})
    closed = fields.Integer(metadata={"description": "Cases closed in the period."})
    closed_on_time = fields.Integer(metadata={"description": "Of those, closed by their due time (due_at)."})
    due = fields.Integer(metadata={"description": "Cases whose due time falls in the period."})
    due_on_hold = fields.Integer(metadata={"description": "Of those, on hold now (left out of the rate)."})
    due_closed_on_time = fields.Integer(metadata={"description": "Of those due, closed by their due time."})
    on_time_rate = fields.Float(
        allow_none=True,
        metadata={"description": "按期结案率 = due_closed_on_time / (due - due_on_hold); null when that is 0."},
    )
    overdue_backlog = fields.Integer(metadata={"description": "Open cases past their due time now."})
    avg_close_seconds = fields.Float(
        allow_none=True, metadata={"description": "Mean time from filing to closing of the cases closed in the period."}
    )
    escalations = fields.Integer(metadata={"description": "Escalation steps taken in the period."})
    satisfaction_avg = fields.Float(
        allow_none=True,
        metadata={"description": "Mean rating (1-5) of the cases rated in the period; null when none was."},
    )
    satisfaction_count = fields.Integer(metadata={"description": "Cases rated in the period."})


class SummaryOut(Schema):
    cell = fields.Nested(CellRef)
    start = LocalDateTime(data_key="from")
    end = LocalDateTime(data_key="to")
    children = fields.List(fields.Nested(CellFiguresOut))
    satisfaction_avg = fields.Float(allow_none=True, metadata={"description": "Over the whole cell."})
    satisfaction_count = fields.Integer(metadata={"description": "Over the whole cell."})
