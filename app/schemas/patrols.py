"""Patrol check-in batches in, their outcome and the coverage of cells out."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load

from app.lib.coords import CRS_VALUES
from app.models.base import TIME_RANGE_ERROR, within_time_range
from app.models.patrols import PatrolPoint, reason
from app.schemas.auth import CellRef, UserRef
from app.schemas.common import Day, LocalDateTime, PageArgs, RequiredCellScopeArgs, page_of

MAX_POINTS = 1000
POINT_FIELDS = ("time", "lon", "lat", "crs", "accuracy")


def _number(
    raw: dict[str, Any],
    name: str,
    low: float | None,
    high: float | None,
    reasons: list[dict[str, str]],
    *,
    required: bool = True,
) -> float | None:
    if name not in raw or (raw[name] is None and not required):
        if required:
            reasons.append(reason(name, "required", "Missing data for required field."))
        return None
    value = raw[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        reasons.append(reason(name, "invalid_type", "Not a number."))
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer too large for a double
        value = math.inf
    if not math.isfinite(value):
        reasons.append(reason(name, "not_finite", "Must be a finite number."))
        return None
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        reasons.append(reason(name, "out_of_range", f"Must be {bounds}; got {value}."))
        return None
    return value


def _time(raw: dict[str, Any], reasons: list[dict[str, str]]) -> datetime | None:
    value = raw.get("time")
    if value is None:
        reasons.append(reason("time", "required", "Missing data for required field."))
        return None
    if not isinstance(value, str):
        reasons.append(reason("time", "invalid_type", "Not an ISO 8601 date-time string."))
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        reasons.append(reason("time", "invalid_datetime", "Not an ISO 8601 date-time."))
        return None
    if moment.tzinfo is None:
        reasons.append(reason("time", "missing_offset", "Give the UTC offset (e.g. +08:00 or Z)."))
        return None
    if not within_time_range(moment):
        reasons.append(reason("time", "out_of_range", TIME_RANGE_ERROR))
        return None
    return moment


def parse_point(index: int, raw: Any) -> tuple[PatrolPoint | None, list[dict[str, str]]]:
    """The point, or every reason it is impossible (all of them, not just the first)."""
    if not isinstance(raw, dict):
        return None, [reason("point", "invalid_type", "Each point is a JSON object.")]
    reasons = [reason(str(k), "unknown_field", "Unknown field.") for k in raw if k not in POINT_FIELDS]
    moment = _time(raw, reasons)
    lon = _number(raw, "lon", -180, 180, reasons)
    lat = _number(raw, "lat", -90, 90, reasons)
    accuracy = _number(raw, "accuracy", 0, None, reasons, required=False)
    crs = raw.get("crs", "wgs84")
    if crs not in CRS_VALUES:
        reasons.append(reason("crs", "unknown_crs", f"Must be one of: {', '.join(CRS_VALUES)}."))
    if reasons:
        return None, reasons
    return PatrolPoint(index=index, time=moment, lon=lon, lat=lat, crs=crs, accuracy=accuracy), []


class PointList(fields.Field):
    """The batch's list; its points are judged one by one after it loads, so one bad point refuses only itself."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise ValidationError("Must be a list of points.")
        if not value:
            raise ValidationError("Send at least one point.")
        if len(value) > MAX_POINTS:
            raise ValidationError(f"At most {MAX_POINTS:,} points per batch; got {len(value):,}.")
        return value


POINT_DOC = {
    "type": "object",
    "required": ["time", "lon", "lat"],
    "properties": {
        "time": {"type": "string", "format": "date-time", "description": "When the phone recorded it, with offset."},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "crs": {"type": "string", "enum": list(CRS_VALUES), "default": "wgs84"},
        "accuracy": {"type": ["number", "null"], "minimum": 0, "description": "Metres."},
    },
    "additionalProperties": False,
}


class CheckinBatchIn(Schema):
    points = PointList(
        required=True,
        metadata={
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_POINTS,
            "items": POINT_DOC,
            "description": "Impossible points are refused one by one (see `rejected`); the others are stored.",
        },
    )

    @post_load
    def _judge_points(self, data, **kwargs):
        valid, rejected = [], []
        for index, raw in enumerate(data["points"]):
            point, reasons = parse_point(index, raw)
            if reasons:
                rejected.append({"index": index, "reasons": reasons})
            else:
                valid.append(point)
        return {"points": valid, "rejected": rejected}


class ReasonOut(Schema):
    field = fields.String()
    code = fields.String(
        metadata={
            "description": "required, invalid_type, not_finite, out_of_range, unknown_crs, "
            "invalid_datetime, missing_offset, unknown_field, in_the_future"
        }
    )
    message = fields.String()


class RejectedPointOut(Schema):
    index = fields.Integer(metadata={"description": "Place of the point in the batch, from 0."})
    reasons = fields.List(fields.Nested(ReasonOut))


class CheckinResultOut(Schema):
    accepted = fields.Integer(metadata={"description": "Points that passed the checks."})
    stored = fields.Integer(metadata={"description": "Of those, new ones stored now."})
    duplicates = fields.Integer(metadata={"description": "Of those, already stored (same worker, same time)."})
    unrouted = fields.Integer(metadata={"description": "Of those, in no grid cell (stored without a cell)."})
    rejected = fields.List(fields.Nested(RejectedPointOut))


class CoverageArgs(RequiredCellScopeArgs, PageArgs):
    """The cell (cell_id or cell): itself if a grid cell, else its subtree's grid cells."""

    date = Day(load_default=None, metadata={"description": "Local day (TIMEZONE); default today."})


class CoverageWorkerOut(Schema):
    user = fields.Nested(UserRef)
    points = fields.Integer()
    first_at = LocalDateTime()
    last_at = LocalDateTime()
    distance_m = fields.Float(
        metadata={
            "description": "Geodesic metres between the worker's consecutive points "
            "in this cell that day, in time order."
        }
    )


class CoverageCellOut(Schema):
    cell = fields.Nested(CellRef)
    workers = fields.List(
        fields.Nested(CoverageWorkerOut), metadata={"description": "By username; none: nobody patrolled it."}
    )


class CoveragePage(page_of(CoverageCellOut, "CoveragePageBase")):
    date = fields.Date()
