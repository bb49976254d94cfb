"""GeoJSON answers: every FeatureCollection goes out in the request's crs through this one helper."""

from collections.abc import Iterable
from typing import Any

from flask import Response, jsonify

from app.lib.coords import shown, shown_geometry
from app.schemas.common import output_crs

GEOJSON_DOC = {
    "200": {
        "description": "An RFC 7946 FeatureCollection whose foreign member `crs` (wgs84, gcj02 or bd09) names the "
        "datum of its coordinates, the `crs` asked for; every vertex rounded to 7 decimals.",
        "content": {"application/geo+json": {}},
    }
}


def geojson_response(collection: dict[str, Any], point_properties: Iterable[str] = ()) -> Response:
    """The WGS-84 FeatureCollection in the request's crs: each geometry's every vertex, and the [lon, lat]
    properties named, converted and rounded; `crs` says which datum (RFC 7946 section 6.1 allows the member)."""
    crs = output_crs()
    point_properties = tuple(point_properties)

    def converted(feature: dict[str, Any]) -> dict[str, Any]:
        properties = feature.get("properties")
        if properties is not None and point_properties:
            properties = {
                name: list(shown(*value, crs)) if name in point_properties and value is not None else value
                for name, value in properties.items()
            }
        return {**feature, "geometry": shown_geometry(feature.get("geometry"), crs), "properties": properties}

    resp = jsonify({**collection, "crs": crs, "features": [converted(f) for f in collection["features"]]})
    resp.mimetype = "application/geo+json"
    return resp
