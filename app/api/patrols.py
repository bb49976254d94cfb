"""Patrols: workers' GPS check-ins and the coverage of grid cells on a day."""

from flask.views import MethodView

from app.api.access import auth_required, current_user
from app.api.filters import cell_filter
from app.api.idempotency import idempotent
from app.api.openapi import BEARER, Blueprint
from app.models import Role
from app.schemas.patrols import (
    CheckinBatchIn,
    CheckinResultOut,
    CoverageArgs,
    CoveragePage,
)
from app.services.calendar.worktime import local_day
from app.services.field import patrols as patrol_service
from app.services.pagination import paginate

blp = Blueprint("patrols", __name__, description="Patrol check-ins and coverage")


@blp.route("/patrols/checkins")
class Checkins(MethodView):
    @auth_required(Role.worker)
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(CheckinBatchIn)
    @blp.response(201, CheckinResultOut)
    def post(self, data):
        """Store a batch of up to 1,000 GPS points, each routed to its grid cell.

        Impossible points (time more than PATROL_MAX_CLOCK_SKEW_S ahead of the server, accuracy below 0,
        coordinates out of range or not finite, unknown crs, unknown fields) are refused one by one with their
        reasons and the rest stored; a point already stored (same worker, same time) is counted as a duplicate
        and not stored again. A wrongly shaped batch is refused whole (422), and so is a batch whose every point
        is impossible (422 `no_valid_points`, the reasons in `errors.points`): then nothing is stored."""
        return patrol_service.record_checkins(current_user(), data["points"], data["rejected"])


@blp.route("/patrols/coverage")
class Coverage(MethodView):
    @auth_required(Role.worker, Role.supervisor, Role.admin)
    @blp.doc(security=BEARER)
    @blp.arguments(CoverageArgs, location="query")
    @blp.response(200, CoveragePage)
    def get(self, args):
        """Per grid cell under `cell`, the workers who patrolled it on `date`: points, first and last time, metres.

        Admins see any cell, supervisors their subtree (403 outside it), workers the cells they serve today."""
        cells = patrol_service.coverage_cells(current_user(), cell_filter(args))
        page = paginate(cells, args["page"], args["page_size"])
        day = args["date"] or local_day()
        return {
            "items": patrol_service.coverage(page.items, day),
            "page": page.page,
            "page_size": page.page_size,
            "total": page.total,
            "date": day,
        }
