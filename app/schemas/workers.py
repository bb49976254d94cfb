"""Worker assignments, duty changes and the workers' overview."""

from marshmallow import Schema, fields, validate

from app.models import Duty
from app.schemas.auth import CellRef, UserRef
from app.schemas.common import (
    CellScopeArgs,
    CrsArgs,
    Day,
    Id,
    LocalDateTime,
    PageArgs,
    PointSchema,
    page_of,
    shown_point,
)
from app.schemas.reports import LocationIn


class AssignmentIn(Schema):
    user_id = Id(required=True)
    duty = fields.String(load_default=Duty.primary.value, validate=validate.OneOf([d.value for d in Duty]))
    valid_from = Day(load_default=None, metadata={"description": "Local day; default today."})
    valid_to = Day(
        load_default=None,
        allow_none=True,
        metadata={"description": "Last local day served (inclusive); none: open-ended."},
    )


class AssignmentOut(Schema):
    id = fields.Integer()
    user = fields.Nested(UserRef)
    cell = fields.Nested(CellRef)
    duty = fields.String()
    valid_from = fields.Date()
    valid_to = fields.Date(allow_none=True)
    created_at = LocalDateTime()


AssignmentPage = page_of(AssignmentOut, "AssignmentPage")


class AssignmentListArgs(PageArgs):
    on = Day(metadata={"description": "Only assignments in force on this local day."})


class DutyIn(Schema):
    duty = fields.String(required=True, validate=validate.OneOf(["on", "off"]))
    position = fields.Nested(LocationIn, required=True)


class PositionOut(PointSchema):
    at = LocalDateTime()
    source = fields.String(metadata={"description": "duty, report or patrol: what told us the position."})


class DutyOut(Schema):
    duty = fields.Function(lambda entry: "on" if entry.on_duty else "off")
    position = fields.Function(lambda entry: shown_point({"lon": entry.lon, "lat": entry.lat}))
    at = LocalDateTime(attribute="created_at")


class WorkerCellOut(Schema):
    assignment_id = fields.Integer()
    duty = fields.String()
    valid_from = fields.Date()
    valid_to = fields.Date(allow_none=True)
    cell = fields.Nested(CellRef)


class WorkerOut(Schema):
    id = fields.Integer(attribute="user.id")
    username = fields.String(attribute="user.username")
    display_name = fields.String(attribute="user.display_name", allow_none=True)
    phone = fields.String(attribute="user.phone", allow_none=True)
    cells = fields.List(fields.Nested(WorkerCellOut), metadata={"description": "Assignments in force today."})
    on_duty = fields.Boolean()
    open_cases = fields.Integer()
    overdue_cases = fields.Integer()
    last_position = fields.Nested(PositionOut, allow_none=True)


WorkerPage = page_of(WorkerOut, "WorkerPage")


class WorkerListArgs(CrsArgs, CellScopeArgs, PageArgs):
    """cell_id or cell: only workers serving that cell today."""

    on_duty = fields.Boolean()
