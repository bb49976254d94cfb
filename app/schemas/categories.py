"""Categories in and out."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.models import LimitUnit
from app.schemas.common import LocalDateTime, StrictBoolean, StrictInteger, page_of

UNIT = validate.OneOf([u.value for u in LimitUnit])


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
    escalation_window_value = StrictInteger(load_default=1, validate=validate.Range(min=1, max=24 * 365),
                                            metadata={"description": "Time each higher level gets after an "
                                                                     "escalation."})
    escalation_window_unit = fields.String(load_default=LimitUnit.working_days.value, validate=UNIT)
    auto_accept = StrictBoolean(load_default=False, metadata={"description": "Residents' reports start accepted."})
    auto_dispatch = StrictBoolean(load_default=True,
                                  metadata={"description": "Accepted cases go to a worker of the cell at once."})
    self_handling = StrictBoolean(load_default=False,
                                  metadata={"description": "Workers may accept and assign in their own cells."})
    active = StrictBoolean(load_default=True)
    duplicate_radius_m = StrictInteger(load_default=250, validate=validate.Range(min=0, max=5000), metadata={
        "description": "New reports are offered the open cases of this category within this many metres "
                       "(0: none)."})
    requires_after_photo = StrictBoolean(
        load_default=False, metadata={"description": "Resolving a case needs an \"after\" photo on it."})


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

    @validates_schema
    def not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Give at least one field to change.")
