"""Categories in and out."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.models import LimitUnit
from app.schemas.common import LocalDateTime, StrictBoolean, StrictInteger, page_of


class CategoryOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    group = fields.String()
    description = fields.String(allow_none=True)
    keywords = fields.String(allow_none=True)
    time_limit_value = fields.Integer()
    time_limit_unit = fields.String()
    active = fields.Boolean()
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
    time_limit_unit = fields.String(load_default=LimitUnit.hours.value,
                                    validate=validate.OneOf([u.value for u in LimitUnit]))
    active = StrictBoolean(load_default=True)


class CategoryUpdateIn(Schema):
    name = fields.String(validate=validate.Length(min=1, max=100))
    group = fields.String(validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=4000))
    keywords = fields.String(allow_none=True, validate=validate.Length(max=500))
    time_limit_value = StrictInteger(validate=validate.Range(min=1, max=24 * 365))
    time_limit_unit = fields.String(validate=validate.OneOf([u.value for u in LimitUnit]))
    active = StrictBoolean()

    @validates_schema
    def not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Give at least one field to change.")
