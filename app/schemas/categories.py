"""Categories in and out."""

from collections.abc import Mapping

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.models import LimitUnit
from app.schemas.common import LocalDateTime, StrictBoolean, StrictInteger, page_of

UNIT = validate.OneOf([u.value for u in LimitUnit])
DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
LIST_DATATYPES = ("singlevaluelist", "multivaluelist")
PUBLIC_DESCRIPTION = (
    "Everyone who may see a case's public view also sees its description, exact location and "
    '"after" photos (default false: case number, category, status, handling cell, times, '
    "public history and the location rounded to the handling cell only)."
)


class AttributeValueSchema(Schema):
    key = fields.String(required=True, validate=validate.Length(min=1, max=100))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class AttributeSchema(Schema):
    """An Open311 service attribute: a question asked when a request of this category is filed."""

    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,50}$"))
    # false: an informational text shown to the reporter, never an input.
    variable = StrictBoolean(load_default=True)
    datatype = fields.String(required=True, validate=validate.OneOf(DATATYPES))
    required = StrictBoolean(load_default=False)
    datatype_description = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=500))
    order = StrictInteger(required=True, validate=validate.Range(min=1, max=1000))
    description = fields.String(required=True, validate=validate.Length(min=1, max=1000))
    values = fields.List(
        fields.Nested(AttributeValueSchema), load_default=list, dump_default=list, validate=validate.Length(max=100)
    )

    @validates_schema
    def values_match_datatype(self, data, **kwargs):
        values = data.get("values") or []
        if data.get("datatype") in LIST_DATATYPES and not values:
            raise ValidationError("A list datatype needs at least one value.", "values")
        if data.get("datatype") not in LIST_DATATYPES and values:
            raise ValidationError("Only singlevaluelist and multivaluelist take values.", "values")
        keys = [v["key"] for v in values]
        if len(keys) != len(set(keys)):
            raise ValidationError("Value keys must be unique.", "values")

    def get_attribute(self, obj, attr, default):
        # Definitions are stored as JSON objects: read their keys only. A definition stored without "values"
        # would otherwise dump the dict's own values() method.
        if isinstance(obj, Mapping):
            return obj.get(attr, default)
        return super().get_attribute(obj, attr, default)


def _unique_attribute_codes(attributes):
    codes = [a["code"] for a in attributes or []]
    if len(codes) != len(set(codes)):
        raise ValidationError("Attribute codes must be unique.")


def Attributes():  # noqa: N802 - reads as a field type
    return fields.List(
        fields.Nested(AttributeSchema),
        allow_none=True,
        validate=[validate.Length(max=50), _unique_attribute_codes],
        metadata={"description": "Open311 attribute definitions asked on filing."},
    )


class CategoryOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    group = fields.String()
    description = fields.String(allow_none=True)
    keywords = fields.String(allow_none=True)
    time_limit_value = fields.Integer()
    time_limit_unit = fields.String()
    escalation_window_value = fields.Integer()
    escalation_window_unit = fields.String()
    auto_accept = fields.Boolean()
    auto_dispatch = fields.Boolean()
    self_handling = fields.Boolean()
    active = fields.Boolean()
    duplicate_radius_m = fields.Integer()
    requires_after_photo = fields.Boolean()
    public = fields.Boolean(metadata={"description": PUBLIC_DESCRIPTION})
    attributes = fields.List(fields.Nested(AttributeSchema), allow_none=True)
    created_at = LocalDateTime()
    updated_at = LocalDateTime()


CategoryPage = page_of(CategoryOut, "CategoryPage")


class CategoryCreateIn(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.-]{1,32}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    group = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=4000))
    keywords = fields.String(allow_none=True, validate=validate.Length(max=500))
    time_limit_value = StrictInteger(required=True, validate=validate.Range(min=1, max=24 * 365))
    time_limit_unit = fields.String(load_default=LimitUnit.hours.value, validate=UNIT)
    escalation_window_value = StrictInteger(
        load_default=1,
        validate=validate.Range(min=1, max=24 * 365),
        metadata={"description": "Time each higher level gets after an escalation."},
    )
    escalation_window_unit = fields.String(load_default=LimitUnit.working_days.value, validate=UNIT)
    auto_accept = StrictBoolean(load_default=False, metadata={"description": "Residents' reports start accepted."})
    auto_dispatch = StrictBoolean(
        load_default=True, metadata={"description": "Accepted cases go to a worker of the cell at once."}
    )
    self_handling = StrictBoolean(
        load_default=False, metadata={"description": "Workers may accept and assign in their own cells."}
    )
    active = StrictBoolean(load_default=True)
    duplicate_radius_m = StrictInteger(
        load_default=250,
        validate=validate.Range(min=0, max=5000),
        metadata={
            "description": "New reports are offered the open cases of this category within this many metres (0: none)."
        },
    )
    requires_after_photo = StrictBoolean(
        load_default=False, metadata={"description": 'Resolving a case needs an "after" photo on it.'}
    )
    public = StrictBoolean(load_default=False, metadata={"description": PUBLIC_DESCRIPTION})
    attributes = Attributes()


class CategoryUpdateIn(Schema):
    name = fields.String(validate=validate.Length(min=1, max=100))
    group = fields.String(validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=4000))
    keywords = fields.String(allow_none=True, validate=validate.Length(max=500))
    time_limit_value = StrictInteger(validate=validate.Range(min=1, max=24 * 365))
    time_limit_unit = fields.String(validate=UNIT)
    escalation_window_value = StrictInteger(validate=validate.Range(min=1, max=24 * 365))
    escalation_window_unit = fields.String(validate=UNIT)
    auto_accept = StrictBoolean()
    auto_dispatch = StrictBoolean()
    self_handling = StrictBoolean()
    active = StrictBoolean()
    duplicate_radius_m = StrictInteger(validate=validate.Range(min=0, max=5000))
    requires_after_photo = StrictBoolean()
    public = StrictBoolean(metadata={"description": PUBLIC_DESCRIPTION})
    attributes = Attributes()

    @validates_schema
    def not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Give at least one field to change.")
