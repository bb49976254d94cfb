"""Analytics query strings and the trend response."""

from marshmallow import Schema, fields, validate

from app.schemas.common import CellScopeArgs, CrsArgs, DateOrDateTime


class AnalyticsArgs(CellScopeArgs):
    created_from = DateOrDateTime(
        data_key="from", metadata={"description": "Filed at or after; default 30 days before `to`."}
    )
    created_to = DateOrDateTime(end=True, data_key="to", metadata={"description": "Filed before; default now."})
    category = fields.String(validate=validate.Length(min=1, max=32))


class HotspotArgs(CrsArgs, AnalyticsArgs):
    eps_m = fields.Float(
        load_default=100.0,
        validate=validate.Range(1, 2000),
        metadata={"description": "DBSCAN neighbourhood radius in metres."},
    )
    min_points = fields.Integer(
        load_default=5,
        validate=validate.Range(2, 1000),
        metadata={"description": "Reports within eps_m (itself included) that make a core."},
    )


class HeatmapArgs(CrsArgs, AnalyticsArgs):
    size_m = fields.Integer(
        load_default=200, validate=validate.Range(50, 2000), metadata={"description": "Side of a square in metres."}
    )


class TrendArgs(AnalyticsArgs):
    interval = fields.String(load_default="day", validate=validate.OneOf(["day", "week", "month"]))


class TrendItem(Schema):
    start = fields.String(metadata={"description": "Local start of the period (TIMEZONE)."})
    filed = fields.Integer()
    closed = fields.Integer()


class TrendOut(Schema):
    interval = fields.String()
    timezone = fields.String()
    from_ = fields.String(data_key="from", attribute="from")
    to = fields.String()
    items = fields.List(fields.Nested(TrendItem))
