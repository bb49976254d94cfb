"""Cells in and out, the import file and routing results."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.models import CellLevel
from app.schemas.auth import CellRef
from app.schemas.common import (
    BBox,
    CrsArgs,
    GeometryOut,
    Id,
    Latitude,
    LocalDateTime,
    Longitude,
    OneOrMore,
    OutputCrsField,
    PageArgs,
    PointOut,
    StrictBoolean,
    page_of,
)

LEVELS = [lv.value for lv in CellLevel]


class CellOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    level = fields.String()
    parent_id = fields.Integer(allow_none=True)
    active = fields.Boolean()
    created_at = LocalDateTime()
    updated_at = LocalDateTime()


CellPage = page_of(CellOut, "CellPage")


class CellDetailOut(CellOut):
    geometry = GeometryOut(
        metadata={"description": "GeoJSON MultiPolygon (RFC 7946 layout, lon/lat) in the read's `crs`."}
    )
    ancestors = fields.List(fields.Nested(CellRef), metadata={"description": "Root first."})


class CellFilterArgs(Schema):
    level = OneOrMore(fields.String(validate=validate.OneOf(LEVELS)))
    parent_id = Id(from_query=True)
    code = fields.String(validate=validate.Regexp(r"^\d{1,20}$"), metadata={"description": "Code prefix."})
    bbox = BBox(metadata={"description": "min_lon,min_lat,max_lon,max_lat"})
    active = fields.Boolean()


class CellListArgs(CellFilterArgs, PageArgs):
    pass


class CellGeoJSONArgs(CrsArgs, CellFilterArgs):
    pass


class GeometryIn(fields.Dict):
    """A GeoJSON geometry object; its shape is checked by the grid service."""


class CellCreateIn(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^\d{6,15}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    parent_code = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^\d{6,15}$"))
    geometry = GeometryIn(required=True)
    active = StrictBoolean(load_default=True)


class CellUpdateIn(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    geometry = GeometryIn()
    active = StrictBoolean()

    @validates_schema
    def not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Give at least one of name, geometry, active.")


class FeatureCollectionIn(Schema):
    type = fields.String(required=True, validate=validate.Equal("FeatureCollection"))
    features = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1, max=100_000))
    # Members QGIS and other tools write; RFC 7946 allows them.
    name = fields.String()
    bbox = fields.List(fields.Float())
    crs = fields.Dict()

    @validates_schema
    def wgs84_only(self, data, **kwargs):
        crs = data.get("crs")
        if crs:
            name = str((crs.get("properties") or {}).get("name", ""))
            if not (name.endswith("CRS84") or name.endswith("4326")):
                raise ValidationError("Only WGS-84 (OGC:CRS84 / EPSG:4326) coordinates are accepted.", "crs")


class ImportResultOut(Schema):
    created = fields.Integer()
    updated = fields.Integer()


class LocateArgs(Schema):
    lon = Longitude(from_query=True)
    lat = Latitude(from_query=True)
    crs = OutputCrsField()


class LocateOut(Schema):
    cell = fields.Nested(CellRef)
    ancestors = fields.List(fields.Nested(CellRef))
    routed_by = fields.String(
        metadata={"description": "covers: inside the cell; nearest: within the fallback distance"}
    )
    distance_m = fields.Float()
    location = PointOut(metadata={"description": "The point that was routed, {lon, lat, crs}, in the `crs` asked for."})
