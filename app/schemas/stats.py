"""Statistics in and out."""

from marshmallow import Schema, fields

from app.schemas.auth import CellRef
from app.schemas.common import DateOrDateTime, LocalDateTime, RequiredCellScopeArgs


class SummaryArgs(RequiredCellScopeArgs):
    """The cell whose children are compared (cell_id or cell) and the period [from, to)."""

    start = DateOrDateTime(
        data_key="from", metadata={"description": "Period start (included); default the current local month's."}
    )
    end = DateOrDateTime(
        end=True,
        data_key="to",
        metadata={"description": "Period end (a datetime: excluded); default the current local month's."},
    )


class CellFiguresOut(Schema):
    cell = fields.Nested(CellRef)
    filed = fields.Integer(metadata={"description": "Cases filed in the period."})
    closed = fields.Integer(metadata={"description": "Cases closed in the period."})
    closed_on_time = fields.Integer(metadata={"description": "Of those, closed on time (not late)."})
    due = fields.Integer(
        metadata={
            "description": "Cases due in the period: their due time (for a late case the first one it missed, "
            "late_since; else due_at) in [from, to). Rejected, duplicate and cancelled cases are never due."
        }
    )
    due_on_hold = fields.Integer(metadata={"description": "Of those due, on hold now."})
    due_closed_on_time = fields.Integer(metadata={"description": "Of those due, closed and not late."})
    due_missed = fields.Integer(
        metadata={"description": "Of those due, late (open or closed): the due time passed before the case closed."}
    )
    on_time_rate = fields.Float(
        allow_none=True,
        metadata={
            "description": "按期结案率 = due_closed_on_time / (due_closed_on_time + due_missed): only the cases due "
            "in the period that are decided (closed, or late). Open cases not yet late (not yet due, or on hold "
            "before their due time) are left out, so a `to` in the future counts nothing as missed before it is. "
            "Null when none is decided."
        },
    )
    overdue_backlog = fields.Integer(
        metadata={"description": "Open cases late now (past their due time, or late since an earlier level)."}
    )
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
    total = fields.Nested(
        CellFiguresOut,
        metadata={
            "description": "The cell asked about: the sum of its children's rows (counts summed; on_time_rate, "
            "avg_close_seconds and satisfaction_avg recomputed from the summed counts, not averaged)."
        },
    )
    satisfaction_avg = fields.Float(allow_none=True, metadata={"description": "Over the whole cell."})
    satisfaction_count = fields.Integer(metadata={"description": "Over the whole cell."})
