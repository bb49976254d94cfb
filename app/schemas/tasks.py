"""A worker's tasks and cells out."""

from marshmallow import Schema, fields, validate

from app.models import LISTABLE_TASK_STATUSES, TASK_STATUSES
from app.schemas.auth import UserRef
from app.schemas.common import CellScopeArgs, CrsArgs, GeometryOut, LocalDateTime, OneOrMore, PageArgs, page_of
from app.schemas.compiled import CompiledSchema
from app.schemas.reports import ReportOut


class TaskListArgs(CrsArgs, CellScopeArgs, PageArgs):
    """cell_id or cell: only cases routed to that cell's subtree."""

    status = OneOrMore(
        fields.String(validate=validate.OneOf(LISTABLE_TASK_STATUSES)),
        metadata={
            "description": f"Only these statuses; default {', '.join(TASK_STATUSES)} (resolved cases wait on a check)."
        },
    )


class LastEventOut(CompiledSchema):
    action = fields.String()
    at = LocalDateTime()
    actor = fields.Nested(UserRef, allow_none=True, metadata={"description": "Null for the system."})
    actor_role = fields.String(allow_none=True)
    note = fields.String(allow_none=True)


class TaskOut(ReportOut):
    last_event = fields.Nested(LastEventOut, allow_none=True)


TaskPage = page_of(TaskOut, "TaskPage")


class MyCellOut(Schema):
    id = fields.Integer(attribute="cell.id")
    code = fields.String(attribute="cell.code")
    name = fields.String(attribute="cell.name")
    level = fields.String(attribute="cell.level")
    duty = fields.String(metadata={"description": "primary or backup (workers), supervisor (a subtree root)."})
    valid_from = fields.Date(allow_none=True)
    valid_to = fields.Date(allow_none=True)
    geometry = GeometryOut(
        metadata={"description": "GeoJSON MultiPolygon (RFC 7946 layout, lon/lat) in the read's `crs`."}
    )
