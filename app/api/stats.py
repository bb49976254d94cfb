"""Statistics for supervisors: figures per cell one level down."""

from flask.views import MethodView

from app.api.access import auth_required, current_user
from app.api.filters import cell_filter
from app.api.openapi import BEARER, Blueprint
from app.models import Role
from app.models.base import utcnow
from app.schemas.stats import SummaryArgs, SummaryOut
from app.services.insight import stats as stats_service

blp = Blueprint("stats", __name__, description="Statistics")


@blp.route("/stats/summary")
class StatsSummary(MethodView):
    @auth_required(Role.supervisor, Role.admin)
    @blp.doc(security=BEARER)
    @blp.arguments(SummaryArgs, location="query")
    @blp.response(200, SummaryOut)
    def get(self, args):
        """Per child of the cell over [from, to) (default the current local month), and their total: filed,
        closed, on time, 按期结案率, overdue backlog, escalations."""
        return stats_service.summary(current_user(), cell_filter(args), args.get("start"), args.get("end"), utcnow())
