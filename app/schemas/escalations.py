"""Escalated cases for supervisor review."""

from marshmallow import Schema, fields

from app.schemas.auth import CellRef
from app.schemas.common import CellScopeArgs, EscalationLevel, LocalDateTime, OneOrMore, PageArgs, page_of
from app.schemas.reports import CategoryRef, EventOut


class AssigneeRef(Schema):
    id = fields.Integer()
    display_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)


class EscalatedCaseOut(Schema):
    id = fields.Integer(attribute="report.id")
    case_number = fields.String(attribute="report.case_number")
    status = fields.String(attribute="report.status")
    category = fields.Nested(CategoryRef, attribute="report.category")
    description = fields.String(attribute="report.description")
    escalation_level = fields.Integer(
        attribute="report.escalation_level", metadata={"description": "0..3: grid, community, street, district."}
    )
    level = fields.String(metadata={"description": "escalation_level by name: community, street or district."})
    critical = fields.Boolean(attribute="report.critical")
    handling_cell = fields.Nested(CellRef, attribute="report.handling_cell", allow_none=True)
    chain = fields.List(
        fields.Nested(CellRef),
        metadata={"description": "The case's cell and its ancestors, grid first, district last."},
    )
    assignee = fields.Nested(AssigneeRef, attribute="report.assignee", allow_none=True)
    escalated_at = LocalDateTime(attribute="report.escalated_at", allow_none=True)
    deadline_at = LocalDateTime(attribute="report.deadline_at", allow_none=True)
    due_at = LocalDateTime(attribute="report.due_at", allow_none=True)
    late_since = LocalDateTime(
        allow_none=True, metadata={"description": "The first due time the case missed (see GET /reports/{id})."}
    )
    overdue_seconds = fields.Float(
        metadata={
            "description": "Seconds since late_since, to now or, on hold, to when the clock stopped; 0 if not late. "
            "The current level's own deadline is deadline_at."
        }
    )
    last_events = fields.List(fields.Nested(EventOut), metadata={"description": "Newest first, at most 3."})


EscalatedCasePage = page_of(EscalatedCaseOut, "EscalatedCasePage")


class EscalationListArgs(CellScopeArgs, PageArgs):
    """cell_id or cell: only cases handled in that cell's subtree."""

    escalation_level = OneOrMore(EscalationLevel())
