"""Residents' requests and answers: own reports, rating, following, similar open cases."""

from marshmallow import Schema, fields, validate

from app.models import ReportStatus
from app.schemas.common import CrsArgs, LocalDateTime, OneOrMore, PageArgs, StrictInteger
from app.schemas.reports import ReportOut

MAX_COMMENT = 1000


class MyReportsArgs(CrsArgs, PageArgs):
    status = OneOrMore(fields.String(validate=validate.OneOf([s.value for s in ReportStatus])))


class RateIn(Schema):
    score = StrictInteger(
        required=True,
        validate=validate.Range(min=1, max=5),
        metadata={"description": "1 (very unsatisfied) to 5 (very satisfied)."},
    )
    comment = fields.String(validate=validate.Length(min=1, max=MAX_COMMENT))


class FollowIn(Schema):
    """No fields: the case is in the path."""


class FollowOut(Schema):
    report_id = fields.Integer()
    following = fields.Boolean()
    since = LocalDateTime(allow_none=True)


class SimilarCaseOut(ReportOut):
    """The public view of an open case near the new report (distance_m only when its category is public)."""


class ReportCreatedOut(ReportOut):
    similar_open_cases = fields.List(
        fields.Nested(SimilarCaseOut),
        metadata={
            "description": "Up to 5 open cases of the same category within its duplicate_radius_m, nearest first, in "
            "their public view: follow one (POST /reports/{id}/actions/follow) rather than file it "
            "twice."
        },
    )
