"""The grid: browse, locate, edit and import cells."""

from flask import current_app
from flask.views import MethodView

from app.api.access import auth_required
from app.api.boundary import body_limit
from app.api.geojson import GEOJSON_DOC, geojson_response
from app.api.idempotency import idempotent
from app.api.openapi import BEARER, Blueprint
from app.errors import Unrouted
from app.lib.geometry import to_geojson
from app.lib.i18n import tr
from app.models import Role
from app.schemas.cells import (
    CellCreateIn,
    CellDetailOut,
    CellGeoJSONArgs,
    CellListArgs,
    CellOut,
    CellPage,
    CellUpdateIn,
    FeatureCollectionIn,
    ImportResultOut,
    LocateArgs,
    LocateOut,
)
from app.schemas.common import CrsArgs, PageArgs
from app.services.grid import cells as grid_service
from app.services.grid.routing import route
from app.services.pagination import paginate

blp = Blueprint("cells", __name__, description="Grid cells: district > street > community > grid")

ADMIN_ONLY = (Role.admin,)


def _detail(cell):
    # Raw values: the response schema (CellDetailOut) does the one and only dump.
    return {
        **{name: getattr(cell, name) for name in CellOut().fields},
        "geometry": to_geojson(cell.geom),
        "ancestors": grid_service.ancestors(cell),
    }


@blp.route("/cells")
class Cells(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(CellListArgs, location="query")
    @blp.response(200, CellPage)
    def get(self, args):
        """Cells ordered by code, filtered by level, parent, code prefix and bounding box."""
        page, size = args.pop("page"), args.pop("page_size")
        return paginate(grid_service.cells_query(code_prefix=args.pop("code", None), **args), page, size)

    @auth_required(*ADMIN_ONLY)
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(CellCreateIn)
    @blp.response(201, CellDetailOut)
    def post(self, data):
        """Create one cell (admin), checked as a one-feature import."""
        return _detail(grid_service.create_cell(**data))


@blp.route("/cells.geojson")
class CellsGeoJSON(MethodView):
    @auth_required()
    @blp.doc(security=BEARER, responses=GEOJSON_DOC)
    @blp.arguments(CellGeoJSONArgs, location="query")
    def get(self, args):
        """The matching cells as an RFC 7946 FeatureCollection for QGIS or Leaflet."""
        args.pop("crs")
        return geojson_response(grid_service.cells_feature_collection(code_prefix=args.pop("code", None), **args))


@blp.route("/cells/locate")
class Locate(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(LocateArgs, location="query")
    @blp.response(200, LocateOut)
    def get(self, args):
        """Route a point to its grid cell; 404 when no cell is within the fallback distance."""
        result = route(args["lon"], args["lat"], args["crs"])
        if result.cell is None:
            raise Unrouted(
                tr(
                    "({lon}, {lat}) in {crs} lies in no grid cell and none is within {distance} m.",
                    lon=args["lon"],
                    lat=args["lat"],
                    crs=args["crs"],
                    distance=current_app.config["ROUTING_MAX_DISTANCE_M"],
                )
            )
        return {
            "cell": result.cell,
            "ancestors": grid_service.ancestors(result.cell),
            "routed_by": result.routed_by,
            "distance_m": result.distance_m,
            "location": {"lon": result.lon, "lat": result.lat},
        }


@blp.route("/cells/import")
class Import(MethodView):
    @body_limit("GRID_IMPORT_MAX_BYTES")
    @auth_required(*ADMIN_ONLY)
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(FeatureCollectionIn)
    @blp.response(200, ImportResultOut)
    def post(self, data):
        """Import a FeatureCollection (code, name, level, parent_code): all or nothing; same codes update."""
        return grid_service.import_cells(data["features"])


@blp.route("/cells/<int:cell_id>")
class CellItem(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(CrsArgs, location="query")
    @blp.response(200, CellDetailOut)
    def get(self, _args, cell_id):
        """One cell with its GeoJSON geometry and its ancestors, root first."""
        return _detail(grid_service.get_cell(cell_id))

    @auth_required(*ADMIN_ONLY)
    @blp.doc(security=BEARER)
    @blp.arguments(CellUpdateIn)
    @blp.response(200, CellDetailOut)
    def patch(self, data, cell_id):
        """Rename, (de)activate or redraw a cell (admin)."""
        return _detail(grid_service.update_cell(grid_service.get_cell(cell_id), data))

    @auth_required(*ADMIN_ONLY)
    @blp.doc(security=BEARER)
    @blp.response(204)
    def delete(self, cell_id):
        """Delete a cell (admin); 409 while it has children, reports or users."""
        grid_service.delete_cell(grid_service.get_cell(cell_id))


@blp.route("/cells/<int:cell_id>/children")
class Children(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, CellPage)
    def get(self, args, cell_id):
        """The cell's direct children, ordered by code."""
        cell = grid_service.get_cell(cell_id)
        return paginate(grid_service.cells_query(parent_id=cell.id), args["page"], args["page_size"])
