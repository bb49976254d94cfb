"""Shared fields and schemas: strict JSON types, local timestamps, pagination, problems."""

from __future__ import annotations

import math
import re
from contextvars import ContextVar, Token
from datetime import date, datetime
from zoneinfo import ZoneInfo

import orjson
from flask import current_app, has_app_context, has_request_context, request
from marshmallow import Schema, ValidationError, fields, post_dump, validate, validates_schema

from app.lib.coords import CRS_VALUES, shown, shown_geometry
from app.lib.i18n import tr
from app.lib.localtime import day_bounds
from app.models import ESCALATION_LEVELS
from app.models.base import MAX_ID, TIME_RANGE_ERROR, within_time_range

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class StrictFloat(fields.Float):
    """A JSON number; strings like "12.5" are a type error, not silently converted."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError("Not a number.")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictInteger(fields.Integer):
    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("Not an integer.")
        return super()._deserialize(value, attr, data, **kwargs)


def Id(*, from_query: bool = False, **kw):  # noqa: N802 - reads as a field type
    """A row id, 1..MAX_ID: a larger one names nothing and would overflow the database's integer."""
    field = fields.Integer if from_query else StrictInteger
    return field(validate=validate.Range(min=1, max=MAX_ID), **kw)


class StrictBoolean(fields.Boolean):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("Not a boolean (true or false).")
        return value


# What every value of one dump shares (the answer's time zone and output datum), read once per dump by
# app.schemas.compiled instead of through Flask's proxies for each of a page's thousands of values.
_DUMP_SETTINGS: ContextVar[tuple[ZoneInfo, str] | None] = ContextVar("dump_settings", default=None)


def begin_dump() -> Token | None:
    """From here to end_dump, local_zone() and output_crs() answer from one read of the app's TIMEZONE and the
    request's crs; None (nothing to end) inside another dump or outside an app."""
    if _DUMP_SETTINGS.get() is not None or not has_app_context():
        return None
    return _DUMP_SETTINGS.set((ZoneInfo(current_app.config["TIMEZONE"]), _request_crs()))


def end_dump(token: Token | None) -> None:
    if token is not None:
        _DUMP_SETTINGS.reset(token)


def local_zone() -> ZoneInfo:
    settings = _DUMP_SETTINGS.get()
    return settings[0] if settings is not None else ZoneInfo(current_app.config["TIMEZONE"])


# Why: a page of 50 cases holds some 400 times, and datetime.isoformat of a zoned time cost 40 % of its dump.
# orjson writes the same text in a third of the time (checked against isoformat for every zone, 1972-2100, folds
# included; tests/test_compiled_schema.py). Before 1972 some zones' offsets had seconds, which orjson rounds away.
_ORJSON_SAME_FROM_YEAR = 1972
_dumps = orjson.dumps


def isoformat(moment: datetime) -> str:
    """moment.isoformat() for an aware datetime."""
    if moment.year < _ORJSON_SAME_FROM_YEAR:
        return moment.isoformat()
    return _dumps(moment)[1:-1].decode()


class LocalDateTime(fields.DateTime):
    """ISO 8601 with the offset of the configured TIMEZONE."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return isoformat(value.astimezone(local_zone()))

    def compiled_converter(self):
        """_serialize for app.schemas.compiled, as its (kind, payload) (a subclass with its own _serialize keeps it)."""
        if type(self)._serialize is not LocalDateTime._serialize:
            return "call", lambda value, obj: self._serialize(value, None, obj)
        return "local_datetime", None


class AwareDateTime(fields.AwareDateTime):
    """Input datetimes must carry an offset (a bare local time is ambiguous) and lie within the time range."""

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        if not within_time_range(moment):
            raise ValidationError(TIME_RANGE_ERROR)
        return moment


class Day(fields.Date):
    """An input calendar date within the time range: its local midnight must convert to UTC and back."""

    def _deserialize(self, value, attr, data, **kwargs):
        day = super()._deserialize(value, attr, data, **kwargs)
        if not within_time_range(day):
            raise ValidationError(TIME_RANGE_ERROR)
        return day


class DateOrDateTime(fields.String):
    """A period bound as a filter takes it: a date (the local day in TIMEZONE) or a datetime with its offset.

    A date as the start of a period means the start of that local day; as its end (`end=True`) the end of that day,
    included: the start of the next local day, since every period is half-open [from, to). A datetime is taken as
    given. A bare local datetime is ambiguous and refused. Loads an aware UTC-comparable datetime."""

    DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

    def __init__(self, *, end: bool = False, **kw):
        self.end = end
        meta = kw.pop("metadata", {})
        what = "the end of that local day, included" if end else "the start of that local day"
        meta["description"] = (
            f"{meta.get('description', '')} A date (2026-11-27: {what}, in TIMEZONE) or a datetime with "
            "its offset (2026-11-27T08:00:00+08:00)."
        ).strip()
        meta.setdefault("example", "2026-11-27")
        super().__init__(metadata=meta, **kw)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Not a date or a datetime.")
        if self.DATE.match(value):
            try:
                day = date.fromisoformat(value)
            except ValueError as exc:
                raise ValidationError("Not a valid date.") from exc
            if not within_time_range(day):
                raise ValidationError(TIME_RANGE_ERROR)
            start, following = day_bounds(day, current_app.config["TIMEZONE"])
            return following if self.end else start
        return AwareDateTime()._deserialize(value, attr, data, **kwargs)


def Longitude(*, from_query: bool = False, **kw):  # noqa: N802 - reads as a field type
    # Query strings carry numbers as text; JSON bodies must send real numbers.
    field = fields.Float if from_query else StrictFloat
    return field(required=True, allow_nan=False, validate=validate.Range(-180, 180), **kw)


def Latitude(*, from_query: bool = False, **kw):  # noqa: N802
    field = fields.Float if from_query else StrictFloat
    return field(required=True, allow_nan=False, validate=validate.Range(-90, 90), **kw)


class CrsField(fields.String):
    def __init__(self, **kw):
        super().__init__(load_default="wgs84", validate=validate.OneOf(CRS_VALUES), **kw)


CELL_CODE = validate.Regexp(r"^\d{6,20}$", error="A cell code is 6 to 20 digits.")


class CellScopeArgs(Schema):
    """The one way a filter names a cell: `cell_id` (its id) or `cell` (its code), either or both (then they must
    name the same cell). Loaded as they are; app.services.grid.cells.resolve_cell turns them into the cell (422
    when none has that id or code, or when the two disagree). A cell scopes to its subtree."""

    cell_id = Id(from_query=True, metadata={"description": "The cell by its id (or give `cell`, its code)."})
    cell = fields.String(
        validate=CELL_CODE, metadata={"description": "The cell by its code (or give `cell_id`, its id)."}
    )


class RequiredCellScopeArgs(CellScopeArgs):
    """CellScopeArgs where the cell is not optional."""

    @validates_schema
    def _one_cell(self, data, **kwargs):
        if "cell_id" not in data and "cell" not in data:
            raise ValidationError("Give the cell: cell_id (its id) or cell (its code).", "cell")


class EscalationLevel(fields.String):
    """An escalation level by name or number, the same set everywhere: grid (0), community (1), street (2),
    district (3). Loads the number, which is what outputs carry (`escalation_level`)."""

    CHOICES = [*ESCALATION_LEVELS, *(str(n) for n in range(len(ESCALATION_LEVELS)))]
    NAMED = ", ".join(f"{name} ({n})" for n, name in enumerate(ESCALATION_LEVELS))

    def __init__(self, **kw):
        meta = kw.pop("metadata", {})
        meta["description"] = f"{meta.get('description', '')} By name or number: {self.NAMED}.".strip()
        meta["enum"] = self.CHOICES
        super().__init__(metadata=meta, **kw)

    def _deserialize(self, value, attr, data, **kwargs):
        # A JSON body (POST /reports/search) may send the number as a number.
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value not in self.CHOICES:
            raise ValidationError(f"Must be one of {self.NAMED}.")
        return int(value) if value.isdigit() else ESCALATION_LEVELS.index(value)


OUTPUT_CRS_DESCRIPTION = (
    "wgs84 (default) | gcj02 | bd09: the datum of every coordinate in the answer (and of any point sent with "
    "the request), so a Chinese map SDK needs no conversion. Coordinates are rounded to 7 decimals (1 cm)."
)


OUTPUT_CRS_KEY = "grid.output_crs"


class OutputCrsField(CrsField):
    """A read's `crs`: once valid, the request's answer gives its coordinates in it (see `output_crs`)."""

    def __init__(self, **kw):
        kw.setdefault("metadata", {"description": OUTPUT_CRS_DESCRIPTION})
        super().__init__(**kw)

    def deserialize(self, value, attr=None, data=None, **kwargs):
        crs = super().deserialize(value, attr, data, **kwargs)
        # One channel from the query to every coordinate dumped for this request, whatever builds the answer; kept on
        # the request itself, since tests (and CLI commands) share one app context between requests.
        if has_request_context():
            request.environ[OUTPUT_CRS_KEY] = crs
        return crs


def output_crs() -> str:
    """The datum the current request's answer gives coordinates in: the `crs` its query asked for, else wgs84."""
    settings = _DUMP_SETTINGS.get()
    return settings[1] if settings is not None else _request_crs()


def _request_crs() -> str:
    return request.environ.get(OUTPUT_CRS_KEY, "wgs84") if has_request_context() else "wgs84"


class CrsArgs(Schema):
    """The `crs` of every read that answers with coordinates."""

    crs = OutputCrsField()


def shown_point(point: dict) -> dict:
    """A WGS-84 point object ({lon, lat, ...}) in the request's crs, rounded, with `crs` saying which."""
    crs = output_crs()
    lon, lat = shown(point["lon"], point["lat"], crs)
    return {**point, "lon": lon, "lat": lat, "crs": crs}


class PointOut(fields.Field):
    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else shown_point(value)


class PointSchema(Schema):
    """An output object whose lon and lat are a WGS-84 point: dumped as `shown_point` says."""

    lon = fields.Float()
    lat = fields.Float()
    crs = fields.String(metadata={"description": "The datum of lon and lat: the `crs` the read asked for."})

    @post_dump
    def _in_output_crs(self, data, **kwargs):
        return shown_point(data) if data.get("lon") is not None else data


class GeometryOut(fields.Dict):
    """A WGS-84 GeoJSON geometry answered in the request's crs, every vertex rounded."""

    def _serialize(self, value, attr, obj, **kwargs):
        return shown_geometry(value, output_crs())


class PageArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))


class PageMeta(Schema):
    page = fields.Integer()
    page_size = fields.Integer()
    total = fields.Integer()


def page_of(item_schema: type[Schema], name: str) -> type[Schema]:
    """The envelope every list uses: {items, page, page_size, total}, dumped through a compiled plan."""
    from app.schemas.compiled import CompiledSchema  # it builds on this module

    return type(name, (PageMeta, CompiledSchema), {"items": fields.List(fields.Nested(item_schema))})


class BBox(fields.Field):
    """min_lon,min_lat,max_lon,max_lat in WGS-84."""

    def _deserialize(self, value, attr, data, **kwargs):
        parts = str(value).split(",")
        if len(parts) != 4:
            raise ValidationError("bbox is min_lon,min_lat,max_lon,max_lat.")
        try:
            min_lon, min_lat, max_lon, max_lat = (float(p) for p in parts)
        except ValueError as exc:
            raise ValidationError("bbox values must be numbers.") from exc
        if not all(math.isfinite(v) for v in (min_lon, min_lat, max_lon, max_lat)):
            raise ValidationError("bbox values must be finite numbers.")
        if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180 and -90 <= min_lat <= 90 and -90 <= max_lat <= 90):
            raise ValidationError("bbox is out of range: lon in [-180, 180], lat in [-90, 90].")
        if min_lon > max_lon or min_lat > max_lat:
            raise ValidationError("bbox minimum is above its maximum.")
        return min_lon, min_lat, max_lon, max_lat


class LonLat(fields.Field):
    """lon,lat as one query value, e.g. near=116.40,39.91."""

    def _deserialize(self, value, attr, data, **kwargs):
        parts = str(value).split(",")
        try:
            lon, lat = (float(p) for p in parts)
        except ValueError as exc:
            raise ValidationError("Expected lon,lat as two numbers.") from exc
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise ValidationError("lon and lat must be finite numbers.")
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValidationError("Out of range: lon in [-180, 180], lat in [-90, 90].")
        return lon, lat


MAX_VALUES = 50


class OneOrMore(fields.String):
    """One value or several, comma-separated (status=submitted,accepted), each loaded by `item`: a list, in the
    order sent, without repeats. Each bad value is named in the error.

    Documented as a string with a pattern: the choices of the item's OneOf, else any text between commas."""

    def __init__(self, item: fields.Field, **kw):
        self.item = item
        choices = next((v.choices for v in item.validators if isinstance(v, validate.OneOf)), None)
        choices = choices or item.metadata.get("enum")
        one = "|".join(re.escape(str(c)) for c in choices) if choices else "[^,]+"
        metadata = kw.pop("metadata", {})
        description = metadata.get("description", "")
        metadata = {
            **metadata,
            "pattern": f"^(?:{one})(?:,(?:{one}))*$",
            "description": f"{description} One value or several, comma-separated.".strip(),
        }
        super().__init__(metadata=metadata, **kw)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        parts = list(dict.fromkeys(part.strip() for part in text.split(",")))
        if len(parts) > MAX_VALUES:
            raise ValidationError([tr("At most {count} values.", count=MAX_VALUES)])
        loaded, problems = [], []
        for part in parts:
            try:
                loaded.append(self.item.deserialize(part))
            except ValidationError as exc:
                reason = " ".join(str(m) for m in exc.messages) if isinstance(exc.messages, list) else ""
                problems.append(tr("{value} is not valid: {reason}", value=part, reason=reason))
        if problems:
            raise ValidationError(problems)
        return loaded


PROBLEM_MIMETYPE = "application/problem+json"


class ProblemSchema(Schema):
    """RFC 7807 problem details, as every error answers.

    The members after `instance` are our extension members (RFC 7807 section 3.2), each present only on the
    problems that carry it. Every member an error may carry is declared here: the document stays closed to
    others, so the fuzz (tests/test_fuzz.py) catches a new one that nobody documented."""

    type = fields.String(metadata={"description": "URI reference naming the problem type"})
    title = fields.String(
        metadata={"description": "In the request's Accept-Language: zh-CN (the default, and for any other) or en"}
    )
    status = fields.Integer()
    detail = fields.String(metadata={"description": "In the request's Accept-Language, like the title"})
    code = fields.String(metadata={"description": "Stable machine-readable code, the same in every language"})
    instance = fields.String(metadata={"description": "The request path"})
    errors = fields.Raw(
        metadata={
            "description": "validation_failed and the like: the fields in error, each with "
            "its messages; a grid import: its bad features"
        }
    )
    action = fields.String(metadata={"description": "transition_not_allowed: the action refused"})
    case_status = fields.String(
        metadata={"description": "transition_not_allowed: the case's status, which the action may not leave from"}
    )
