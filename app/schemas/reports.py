"""Reports in and out."""
from geoalchemy2.shape import to_shape
from marshmallow import Schema, fields, validate

from app.models import ReportStatus
from app.schemas.auth import CellRef
from app.schemas.common import AwareDateTime, CrsField, Latitude, LocalDateTime, Longitude, PageArgs, page_of


class LocationIn(Schema):
    lon = Longitude()
    lat = Latitude()
    crs = CrsField()


class ReportCreateIn(Schema):
    category_code = fields.String(required=True, validate=validate.Length(min=1, max=32))
    description = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    location = fields.Nested(LocationIn, required=True)
    address = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class CategoryRef(Schema):
    code = fields.String()
    name = fields.String()
    group = fields.String()


def _location(report) -> dict:
    pt = to_shape(report.location)
    return {"lon": pt.x, "lat": pt.y, "crs": "wgs84"}


class ReportOut(Schema):
    id = fields.Integer()
    case_number = fields.String()
    status = fields.String()
    category = fields.Nested(CategoryRef)
    description = fields.String()
    address = fields.String(allow_none=True)
    location = fields.Function(_location, metadata={"description": "WGS-84, whatever crs was sent."})
    cell = fields.Nested(CellRef, allow_none=True)
    routed_by = fields.String(allow_none=True)
    routing_distance_m = fields.Float(allow_none=True)
    needs_triage = fields.Boolean()
    reporter_id = fields.Integer()
    deadline_at = LocalDateTime(allow_none=True)
    created_at = LocalDateTime()
    updated_at = LocalDateTime()


ReportPage = page_of(ReportOut, "ReportPage")


class ReportListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf([s.value for s in ReportStatus]))
    category = fields.String(validate=validate.Length(min=1, max=32))
    cell_id = fields.Integer(validate=validate.Range(min=1), metadata={"description": "That cell's subtree."})
    created_from = AwareDateTime()
    created_to = AwareDateTime()
    triage = fields.Boolean(metadata={"description": "Only reports no cell took (or only routed ones)."})


class EventOut(Schema):
    id = fields.Integer()
    action = fields.String()
    from_status = fields.String(allow_none=True)
    to_status = fields.String(allow_none=True)
    actor_id = fields.Integer(allow_none=True)
    actor_role = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    data = fields.Dict(allow_none=True)
    created_at = LocalDateTime()
