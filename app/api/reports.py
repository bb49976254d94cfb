"""Filing and reading reports."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api import BEARER
from app.auth.decorators import auth_required, current_user
from app.models import Role
from app.schemas.reports import EventOut, ReportCreateIn, ReportListArgs, ReportOut, ReportPage
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
        """Reports the caller may see, newest first."""
        page, size = args.pop("page"), args.pop("page_size")
        return paginate(report_service.reports_query(current_user(), category_code=args.pop("category", None),
                                                     **args), page, size)


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
