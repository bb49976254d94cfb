"""Residents: their own reports, rating a closed case, following someone else's open case."""

from flask.views import MethodView

from app.api.access import auth_required, current_user
from app.api.idempotency import idempotent
from app.api.openapi import BEARER, Blueprint, documents_if_match
from app.api.reports import _if_match
from app.schemas.reports import ReportOut, ReportPage
from app.schemas.residents import FollowIn, FollowOut, MyReportsArgs, RateIn
from app.services.cases import lifecycle as cases, reports as report_service
from app.services.pagination import paginate
from app.services.public import residents, view as public_view

blp = Blueprint("residents", __name__, description="Residents: own reports, rating, following")

IF_MATCH_OPTIONAL = (
    "If-Match is optional here (a resident's app may not keep ETags); when sent it must match "
    "the case's ETag, else 412."
)


@blp.route("/me/reports")
class MyReports(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(MyReportsArgs, location="query")
    @blp.response(200, ReportPage)
    def get(self, args):
        """The reports you filed, newest first; filter by status."""
        user = current_user()
        stmt = residents.my_reports_query(user, status=args.get("status"))
        return public_view.present_page(user, paginate(stmt, args["page"], args["page_size"]))


@blp.route("/reports/<int:report_id>/actions/rate")
class RateAction(MethodView):
    @auth_required()
    @idempotent
    @blp.doc(security=BEARER)
    @documents_if_match(required=False)
    @blp.arguments(RateIn)
    @blp.response(
        200, ReportOut, headers={"ETag": {"description": "The case's new version.", "schema": {"type": "string"}}}
    )
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(412, response="PRECONDITION_FAILED")
    def post(self, data, report_id):
        """Rate your closed case 1-5, with an optional comment; once (409 already_rated).

        Only the resident who filed it (others 403, unseen cases 404); 409 transition_not_allowed before it is
        closed. Writes a `rate` event and moves the ETag. If-Match is optional here (a resident's app may not
        keep ETags); when sent it must match the case's ETag, else 412."""
        user = current_user()
        report = residents.rate(user, report_service.get_report_for(user, report_id), _if_match(), **data)
        return public_view.present(user, report), 200, {"ETag": cases.etag(report)}


def _follow_view(name, perform, summary):
    @auth_required()
    @idempotent
    @blp.doc(security=BEARER)
    @documents_if_match(required=False)
    @blp.arguments(FollowIn)
    @blp.response(200, FollowOut)
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(412, response="PRECONDITION_FAILED")
    def post(self, data, report_id):
        return perform(current_user(), report_id, _if_match())

    post.__doc__ = f"{summary} {IF_MATCH_OPTIONAL}"
    view = type(f"{name.title()}Action", (MethodView,), {"post": post})
    blp.route(f"/reports/<int:report_id>/actions/{name}")(view)


_follow_view(
    "follow",
    residents.follow,
    "Follow an open case (one offered as similar, say) instead of filing it again.\n\nResidents only. You "
    "then see its public view and history and hear when it ends. Any open case of an active category "
    "may be followed; following again changes nothing; your own case is 409 own_case.",
)
_follow_view(
    "unfollow",
    residents.unfollow,
    "Stop following a case.\n\nResidents only; when you do not follow it, nothing changes.",
)
