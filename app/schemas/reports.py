"""Reports in and out."""

import math

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_dump,
    post_load,
    pre_dump,
    validate,
    validates_schema,
)

from app.lib.geofilter import COUNT_CAP, GeoFilter, polygon_from_geojson
from app.lib.geometry import GeometryProblem
from app.lib.i18n import tr
from app.models import ESCALATION_LEVELS, SLA_STATES, ReportStatus
from app.models.reports import parse_case_number
from app.schemas.auth import CellRef, UserRef
from app.schemas.common import (
    BBox,
    CellScopeArgs,
    CrsArgs,
    CrsField,
    DateOrDateTime,
    EscalationLevel,
    Id,
    Latitude,
    LocalDateTime,
    Longitude,
    LonLat,
    OneOrMore,
    PageArgs,
    PointOut,
    StrictInteger,
    page_of,
)
from app.schemas.compiled import CompiledSchema


class LocationIn(Schema):
    lon = Longitude()
    lat = Latitude()
    crs = CrsField()


class AttributeAnswers(fields.Dict):
    """Answers by attribute code, each a string, a number or a list of strings (a multivaluelist's keys): loaded
    as Open311 form values (lists of strings), which the case service checks as Open311 POST does."""

    MAX_ANSWERS = 100

    def __init__(self, **kw):
        kw["metadata"] = {"maxProperties": self.MAX_ANSWERS, **kw.get("metadata", {})}
        super().__init__(keys=fields.String(validate=validate.Length(min=1, max=100)), **kw)

    def _deserialize(self, value, attr, data, **kwargs):
        answers = super()._deserialize(value, attr, data, **kwargs)
        if len(answers) > self.MAX_ANSWERS:
            raise ValidationError(f"At most {self.MAX_ANSWERS} answers.")
        sent, errors = {}, {}
        for code, answer in answers.items():
            if isinstance(answer, str):
                sent[code] = [answer]
            elif isinstance(answer, (int, float)) and not isinstance(answer, bool) and math.isfinite(answer):
                sent[code] = [str(answer)]
            elif isinstance(answer, list) and answer and all(isinstance(v, str) for v in answer):
                sent[code] = answer
            else:
                errors[code] = ["Answer with a string, a number or a non-empty list of strings."]
        if errors:
            raise ValidationError(errors)
        return sent


class ReportCreateIn(Schema):
    category_code = fields.String(required=True, validate=validate.Length(min=1, max=32))
    description = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    location = fields.Nested(LocationIn, required=True)
    address = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    attributes = AttributeAnswers(
        load_default=dict,
        metadata={
            "description": "Answers to the category's Open311 attributes (GET /open311/v2/services/{code}), by "
            "code: a string, a number or, for a multivaluelist, a list of keys. Checked as Open311 POST checks "
            "attribute[code]: an unknown code, a missing required answer, a value not in the list or of the wrong "
            "datatype is 422 with errors.attributes.<code>."
        },
    )


class CategoryRef(CompiledSchema):
    code = fields.String()
    name = fields.String()
    group = fields.String()


class ReporterOut(CompiledSchema):
    id = fields.Integer()
    name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)


class ContactOut(CompiledSchema):
    """What an Open311 client sent about the person filing: personal data, under the reporter's rule."""

    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    device_id = fields.String(allow_none=True)
    account_id = fields.String(allow_none=True)


class ReportOut(CompiledSchema):
    """A case as its viewer may see it, decided before dumping by app.services.public.view.present: the full view
    for its reporter and the staff in scope; for anyone else (a follower, say) only the fields of the public
    view."""

    view = fields.String(
        metadata={
            "description": "full | public. The public view carries only id, case_number, "
            "category, status, handling_cell, created_at, closed_at and a "
            "location rounded to the handling cell (precision: cell), plus "
            "description and the exact point (precision: exact) when the "
            "category is public."
        }
    )
    id = fields.Integer()
    case_number = fields.String()
    status = fields.String()
    category = fields.Nested(CategoryRef)
    description = fields.String()
    address = fields.String(allow_none=True)
    location = PointOut(
        allow_none=True,
        metadata={
            "description": "{lon, lat, crs}: in the `crs` the read asked for (wgs84 by default, and always for the "
            "answer to a POST), whatever crs the point was filed in. In the public view also `precision`: cell (a "
            "point inside the handling cell; null while in triage) or exact."
        },
    )
    cell = fields.Nested(CellRef, allow_none=True)
    routed_by = fields.String(allow_none=True)
    routing_distance_m = fields.Float(allow_none=True)
    distance_m = fields.Float(allow_none=True, metadata={"description": "Metres to `near`; null otherwise."})
    needs_triage = fields.Boolean()
    reporter_id = fields.Integer()
    sla_state = fields.Function(
        lambda case: case.sla_state,
        allow_none=True,
        metadata={
            "description": "The case's light: red once it is late (see `late`), and it stays red until the case ends "
            "and after, whatever level handles it; else green, or yellow when 80 % of the handling level's window "
            "is used; null before acceptance."
        },
    )
    late = fields.Boolean(
        metadata={
            "description": "True once the case has missed its own due time (due_at) while open, or closed after it; "
            "it stays true until the case ends (a return, which restarts the clock, clears it)."
        },
    )
    late_since = LocalDateTime(
        allow_none=True,
        metadata={
            "description": "The first due time the case missed; an extension or a hold afterwards does not move it. "
            "Null while not late."
        },
    )
    level_deadline_at = LocalDateTime(
        allow_none=True,
        metadata={"description": "The handling level's own deadline: each escalation gives the new level a window."},
    )
    level_sla_state = fields.String(
        allow_none=True,
        validate=validate.OneOf(SLA_STATES),
        metadata={
            "description": "The handling level's own light: green | yellow (80 % of its window used) | red (past "
            "level_deadline_at: the next sweep escalates it); null before acceptance and once the case has ended."
        },
    )
    assignee = fields.Nested(UserRef, allow_none=True)
    accepted_at = LocalDateTime(allow_none=True)
    assigned_at = LocalDateTime(allow_none=True)
    resolved_at = LocalDateTime(allow_none=True)
    closed_at = LocalDateTime(allow_none=True)
    deadline_at = LocalDateTime(
        allow_none=True, metadata={"description": "The handling level's deadline (the same as level_deadline_at)."}
    )
    warn_at = LocalDateTime(allow_none=True)
    due_at = LocalDateTime(
        allow_none=True,
        metadata={"description": "The case's own due time (limit, holds, extensions); escalation leaves it."},
    )
    time_limit_value = fields.Integer(allow_none=True)
    time_limit_unit = fields.String(allow_none=True)
    extension_value = fields.Integer()
    extension_requested = fields.Integer(allow_none=True)
    escalation_level = fields.Integer(metadata={"description": f"0..3: {', '.join(ESCALATION_LEVELS)}."})
    handling_cell = fields.Nested(CellRef, allow_none=True)
    critical = fields.Boolean()
    duplicate_of = fields.Integer(attribute="duplicate_of_id", allow_none=True)
    created_at = LocalDateTime()
    updated_at = LocalDateTime()
    # Filled per viewer by the presenter (never loaded from the relationship for those who may not see it).
    reporter = fields.Nested(
        ReporterOut,
        attribute="personal_data_of_reporter",
        allow_none=True,
        metadata={
            "description": "The reporter's name and phone: for the reporter, supervisors of the case's subtree and "
            "admins; null for everyone else."
        },
    )
    contact = fields.Nested(
        ContactOut,
        attribute="personal_data_of_contact",
        allow_none=True,
        metadata={
            "description": "The contact an Open311 client sent with the request (null when none): under the same "
            "rule as `reporter`."
        },
    )
    rating = fields.Integer(allow_none=True, metadata={"description": "The reporter's 1-5 rating, once closed."})
    rating_comment = fields.String(allow_none=True)
    rated_at = LocalDateTime(allow_none=True)

    @pre_dump
    def _presented(self, case, **kwargs):
        # A raw Report would show every field to everyone: who sees what is decided before dumping, in one place.
        if not hasattr(case, "shown"):
            raise TypeError("present the case (app.services.public.view.present) before dumping it")
        return case

    @post_dump(pass_original=True)
    def _only_what_is_shown(self, data, case, **kwargs):
        return data if case.shown is None else {key: value for key, value in data.items() if key in case.shown}

    source = fields.String(metadata={"description": "api | open311 | demo (the demo month of `flask seed-demo`)"})
    media_url = fields.String(allow_none=True, metadata={"description": "Open311 media_url as sent (never fetched)."})
    address_id = fields.String(allow_none=True)
    zipcode = fields.String(allow_none=True)
    attributes = fields.Dict(allow_none=True, metadata={"description": "Open311 attribute answers by code."})


class ReportPage(page_of(ReportOut, "ReportPageBase")):
    total_is_lower_bound = fields.Boolean(
        metadata={
            "description": "True when the list has spatial filters (near, bbox, within, within_geojson) and more "
            f"than {COUNT_CAP:,} matches: counting stops there, so `total` is {COUNT_CAP:,} (or the end "
            "of this page) and means more than that. False when `total` is exact. Absent without spatial "
            "filters (their total is always exact)."
        }
    )

    @post_dump
    def _flag_only_with_spatial_filters(self, data, **kwargs):
        if data.get("total_is_lower_bound") is None:
            data.pop("total_is_lower_bound", None)
        return data


GEO_KEYS = ("near", "radius", "bbox", "within", "polygon")
MAX_BOX_SIDE_DEG = 0.5


def _small_box(box) -> None:
    if box[2] - box[0] > MAX_BOX_SIDE_DEG or box[3] - box[1] > MAX_BOX_SIDE_DEG:
        raise ValidationError(f"bbox is larger than {MAX_BOX_SIDE_DEG} degree on a side.")


def _a_case_number(text: str) -> None:
    if parse_case_number(text) is None:
        raise ValidationError([tr("Not a case number: {text}.", text=text[:40])])


class ReportListArgs(CrsArgs, CellScopeArgs, PageArgs):
    q = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={
            "description": "A case number finds that case; for the reporter's data holders (supervisors of the "
            "subtree, admins) a phone number finds that reporter's cases; any other text is looked for in the "
            "description and address (residents: in their own cases only)."
        },
    )
    case_number = fields.String(
        validate=_a_case_number,
        metadata={"description": "Exactly this case (e.g. 202611270000123).", "pattern": r"^\d{15,18}$"},
    )
    status = OneOrMore(fields.String(validate=validate.OneOf([s.value for s in ReportStatus])))
    category = OneOrMore(fields.String(validate=validate.Length(min=1, max=32)), metadata={"description": "Codes."})
    created_from = DateOrDateTime(metadata={"description": "Filed at or after."})
    created_to = DateOrDateTime(end=True, metadata={"description": "Filed before."})
    triage = fields.Boolean(metadata={"description": "Only reports no cell took (or only routed ones)."})
    sla_state = OneOrMore(fields.String(validate=validate.OneOf(SLA_STATES)))
    escalation_level = OneOrMore(EscalationLevel())
    assignee_id = Id(from_query=True)
    overdue = fields.Boolean(
        metadata={"description": "Only open cases that are late (what overdue_backlog counts), or only the others."}
    )
    near = LonLat(metadata={"description": "lon,lat in `crs`: reports within `radius`, nearest first."})
    radius = fields.Float(validate=validate.Range(1, 5000), metadata={"description": "Metres, with near."})
    bbox = BBox(
        validate=_small_box,
        metadata={"description": "min_lon,min_lat,max_lon,max_lat (WGS-84), at most 0.5 degree a side."},
    )
    within = Id(from_query=True, metadata={"description": "Inside that cell's polygon, wherever routed."})

    @validates_schema
    def _near_needs_radius(self, data, **kwargs):
        if "near" in data and "radius" not in data:
            raise ValidationError("near needs a radius in metres.", "radius")
        if "radius" in data and "near" not in data:
            raise ValidationError("radius needs near=lon,lat.", "near")

    @post_load
    def _geo(self, data, **kwargs):
        spatial = {key: data.pop(key) for key in GEO_KEYS if key in data}
        crs = data.pop("crs", "wgs84")
        data["geo"] = GeoFilter(crs=crs, **spatial) if spatial else None
        return data


class ReportGeoJSONArgs(ReportListArgs):
    class Meta:
        exclude = ("page", "page_size")


class PolygonField(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return polygon_from_geojson(value)
        except GeometryProblem as exc:
            raise ValidationError(str(exc)) from exc


class ReportSearchIn(ReportListArgs):
    polygon = PolygonField(
        required=True,
        data_key="within_geojson",
        metadata={"description": "GeoJSON Polygon (WGS-84), at most 1,000 vertices."},
    )


class CountsOut(Schema):
    total = fields.Integer()
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_sla_state = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "green, yellow, red (late: as sla_state of GET /reports/{id}); none: not accepted."},
    )


class ChildCountsOut(CountsOut):
    cell = fields.Nested(CellRef)


class CellSummaryOut(ChildCountsOut):
    children = fields.List(fields.Nested(ChildCountsOut))


class EventOut(CompiledSchema):
    id = fields.Integer()
    action = fields.String()
    from_status = fields.String(allow_none=True)
    to_status = fields.String(allow_none=True)
    actor_id = fields.Integer(allow_none=True)
    actor_role = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    data = fields.Dict(allow_none=True)
    actor = fields.String(
        metadata={
            "description": "Residents' public history only, instead of actor_id, actor_role "
            "and data: you | reporter | staff | system."
        }
    )
    created_at = LocalDateTime()


# Requests of the case actions: each its own schema, unknown fields refused.
def _note(required: bool = False):
    return fields.String(required=required, validate=validate.Length(min=1, max=2000))


class NoteIn(Schema):
    note = _note()


class NoteRequiredIn(Schema):
    note = _note(required=True)


class ReasonIn(Schema):
    reason = _note(required=True)


class AssignIn(Schema):
    assignee_id = Id(required=True)
    note = _note()


class RerouteIn(Schema):
    cell_id = Id(required=True)
    note = _note()


class ExtensionRequestIn(Schema):
    value = StrictInteger(
        required=True,
        validate=validate.Range(min=1, max=24 * 365),
        metadata={"description": "Extra time in the unit of the case's limit."},
    )
    reason = _note(required=True)


class DuplicateIn(Schema):
    duplicate_of = Id(required=True)
    note = _note()
