"""Filing and reading reports."""
from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api import BEARER
from app.auth.decorators import auth_required, current_user
from app.models import Role
from app.schemas.reports import (CellSummaryOut, EventOut, ReportCreateIn, ReportGeoJSONArgs, ReportListArgs,
                                 ReportOut, ReportPage, ReportSearchIn)
from app.services import geoqueries
from app.services import grid as grid_service
from app.services import reports as report_service
from app.services.pagination import paginate

blp = Blueprint("reports", __name__, description="Reports (cases)")


@blp.route("/reports")
class Reports(MethodView):
    @auth_required(Role.resident, Role.worker)
    @blp.doc(security=BEARER)
    @blp.arguments(ReportCreateIn)
    @blp.response(201, ReportOut)
    def post(self, data):
        """File a report; it is routed to the grid cell that owns its location (or to triage)."""
        return report_service.create_report(current_user(), **data)

    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(ReportListArgs, location="query")
    @blp.response(200, ReportPage)
    def get(self, args):
        """Reports the caller may see, newest first (nearest first with near)."""
        page, size = args.pop("page"), args.pop("page_size")
        return paginate(_query(args), page, size)


@blp.route("/reports/<int:report_id>")
class ReportItem(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, ReportOut)
    def get(self, report_id):
        """One report; 404 when it does not exist or the caller may not see it."""
        return report_service.get_report_for(current_user(), report_id)


@blp.route("/reports/<int:report_id>/events")
class ReportEvents(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, EventOut(many=True))
    def get(self, report_id):
        """The report's history, oldest first."""
        return report_service.history(report_service.get_report_for(current_user(), report_id))


def _query(args):
    return report_service.reports_query(current_user(), category_code=args.pop("category", None), **args)


@blp.route("/reports/search")
class ReportSearch(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(ReportSearchIn)
    @blp.response(200, ReportPage)
    def post(self, data):
        """Reports inside a GeoJSON Polygon (within_geojson), with every filter of GET /reports in the body."""
        page, size = data.pop("page"), data.pop("page_size")
        return paginate(_query(data), page, size)


@blp.route("/reports.geojson")
class ReportsGeoJSON(MethodView):
    @auth_required()
    @blp.doc(security=BEARER, responses={"200": {"content": {"application/geo+json": {}}}})
    @blp.arguments(ReportGeoJSONArgs, location="query")
    def get(self, args):
        """The matching reports as map points (no personal data), at most 5,000, with a truncated flag."""
        resp = jsonify(geoqueries.feature_collection(_query(args)))
        resp.mimetype = "application/geo+json"
        return resp


@blp.route("/cells/<int:cell_id>/reports/summary")
class CellReportSummary(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, CellSummaryOut)
    def get(self, cell_id):
        """Counts by status and SLA state of the reports the caller may see, for the cell and each child."""
        return geoqueries.cell_summary(current_user(), grid_service.get_cell(cell_id))
