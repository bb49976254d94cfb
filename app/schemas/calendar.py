"""Work calendar days in and out."""

from datetime import date

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.lib.hours import parse_hours
from app.models import DayKind

FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
MAX_RANGE_DAYS = 366
_IN_RANGE = validate.Range(min=FIRST_DAY, max=LAST_DAY, error="Dates run from 2000-01-01 to 2099-12-31.")


class DayPath(Schema):
    day = fields.Date(required=True, validate=_IN_RANGE)


class DayRangeArgs(Schema):
    first = fields.Date(required=True, data_key="from", validate=_IN_RANGE)
    last = fields.Date(required=True, data_key="to", validate=_IN_RANGE)

    @validates_schema
    def bounded(self, data, **kwargs):
        if data["last"] < data["first"]:
            raise ValidationError("'to' is before 'from'.", "to")
        if (data["last"] - data["first"]).days >= MAX_RANGE_DAYS:
            raise ValidationError(f"Ask for at most {MAX_RANGE_DAYS} days at a time.", "to")


class DayPutIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in DayKind]))
    name = fields.String(allow_none=True, validate=validate.Length(max=100))
    hours = fields.List(
        fields.String(validate=validate.Length(max=11)),
        allow_none=True,
        validate=validate.Length(min=1, max=8),
        metadata={
            "description": 'Working hours of this date, e.g. ["09:00-12:00"]; '
            "workdays only; omitted: the standard day's hours"
        },
    )

    @validates_schema
    def hours_fit_kind(self, data, **kwargs):
        hours = data.get("hours")
        if not hours:
            return
        if data["kind"] != DayKind.workday.value:
            raise ValidationError("Only a workday has working hours.", "hours")
        try:
            parse_hours(",".join(hours))
        except ValueError as exc:
            raise ValidationError(str(exc), "hours") from exc


class DayOut(Schema):
    date = fields.Date()
    weekday = fields.Integer(metadata={"description": "ISO weekday, 1 = Monday"})
    kind = fields.String(metadata={"description": "workday, holiday, or rest (a weekly day off)"})
    hours = fields.List(fields.String())
    working_hours = fields.Float()
    name = fields.String(allow_none=True)
    source = fields.String(metadata={"description": "weekly (the WORK_HOURS schedule), library or admin"})


class DayList(Schema):
    first = fields.Date(data_key="from")
    last = fields.Date(data_key="to")
    items = fields.List(fields.Nested(DayOut))


class DayChangeOut(DayOut):
    recomputed_cases = fields.Integer(metadata={"description": "open cases whose deadlines were re-derived"})
