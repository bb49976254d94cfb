"""Filing, finding and reading reports, and the actions that move a case round the loop."""

import re

from flask import request, url_for
from flask.views import MethodView

from app.api.access import auth_required, current_user
from app.api.filters import cell_id_filter
from app.api.geojson import GEOJSON_DOC, geojson_response
from app.api.idempotency import idempotent
from app.api.openapi import BEARER, Blueprint, documents_if_match
from app.models import Role
from app.schemas.common import CrsArgs
from app.schemas.reports import (
    AssignIn,
    CellSummaryOut,
    DuplicateIn,
    EventOut,
    ExtensionRequestIn,
    NoteIn,
    NoteRequiredIn,
    ReasonIn,
    ReportCreateIn,
    ReportGeoJSONArgs,
    ReportListArgs,
    ReportOut,
    ReportPage,
    ReportSearchIn,
    RerouteIn,
)
from app.schemas.residents import ReportCreatedOut
from app.services.cases import lifecycle as cases, reports as report_service
from app.services.grid import cells as grid_service
from app.services.insight import geoqueries, list_pages
from app.services.public import residents, view as public_view

blp = Blueprint("reports", __name__, description="Reports (cases)")


@blp.route("/reports")
class Reports(MethodView):
    @auth_required(Role.resident, Role.worker)
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(ReportCreateIn)
    @blp.response(
        201,
        ReportCreatedOut,
        headers={
            "Location": {"description": "The new case: /api/v1/reports/{id}.", "schema": {"type": "string"}},
            "ETag": {"description": "The case's version, for If-Match.", "schema": {"type": "string"}},
        },
    )
    def post(self, data):
        """File a report; it is routed to the grid cell that owns its location (or to triage).

        The answer lists the open cases of the same category nearby (similar_open_cases): a resident may follow
        one of them instead. A retry with the same Idempotency-Key gets the same status, body, Location and ETag."""
        user = current_user()
        report = residents.file_with_similar_cases(user, **data)
        headers = {"Location": url_for("reports.ReportItem", report_id=report.id), "ETag": cases.etag(report)}
        return public_view.present(user, report), 201, headers

    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(ReportListArgs, location="query")
    @blp.response(200, ReportPage)
    def get(self, args):
        """Reports the caller may see, newest first (nearest first with near)."""
        page, size = args.pop("page"), args.pop("page_size")
        user, geo = current_user(), args.pop("geo")
        return public_view.present_page(user, list_pages.reports_page(user, _filters(args), geo, page, size))


@blp.route("/reports/<int:report_id>")
class ReportItem(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(CrsArgs, location="query")
    @blp.response(200, ReportOut)
    def get(self, _args, report_id):
        """One report; 404 when it does not exist or the caller may not see it.

        The ETag header is the case's version: send it back as If-Match with every action."""
        user = current_user()
        report = report_service.read_report_for(user, report_id)
        return public_view.present(user, report), 200, {"ETag": cases.etag(report)}


@blp.route("/reports/<int:report_id>/events")
class ReportEvents(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, EventOut(many=True))
    def get(self, report_id):
        """The report's history, oldest first.

        Staff get every event. Residents (the reporter, a follower) get the public history: status changes, the
        public notes (reject, resolve, verify, close) and their own steps, with `actor` as a role (you, reporter,
        staff, system) instead of actor_id, actor_role and data; internal notes are never in it."""
        user = current_user()
        report = report_service.get_report_for(user, report_id)
        return public_view.events_for(user, report_service.history(report))


_STRONG_ETAG = re.compile(r'^"(\d{1,18})"$')


def _if_match() -> set[int] | None:
    """The versions the client last saw; None without the header. Weak and unknown tags match nothing."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    found = (_STRONG_ETAG.match(tag.strip()) for tag in header.split(","))
    return {int(m.group(1)) for m in found if m}


# (action, service function, request schema, what it does and who may do it)
ACTIONS = (
    (
        "accept",
        cases.accept,
        NoteIn,
        "Accept a submitted case; its clock starts. Supervisor of its subtree; a worker of its cell when the "
        "category allows self-handling.",
    ),
    ("reject", cases.reject, ReasonIn, "Reject a submitted case, with a reason. Supervisor."),
    (
        "assign",
        cases.assign,
        AssignIn,
        "Assign (or re-assign) an accepted case to a worker who serves its cell. Supervisor; a worker of the "
        "cell when self-handling.",
    ),
    ("start", cases.start, NoteIn, "Start work on an assigned case. Its assignee."),
    ("resolve", cases.resolve, NoteRequiredIn, "Report the case resolved, with a note. Its assignee."),
    (
        "verify",
        cases.verify,
        NoteIn,
        "Verify a resolved case and close it. Supervisor; a worker of the cell other than the one who resolved it.",
    ),
    ("close", cases.close, NoteIn, "Close a resolved case on your own sign-off (结案). Supervisor."),
    ("rework", cases.rework, NoteRequiredIn, "Send a resolved case back to its assignee, with a note. Supervisor."),
    (
        "return",
        cases.return_case,
        ReasonIn,
        "Return an assigned or in-progress case as the wrong cell or function, with a reason: it goes back to "
        "submitted without an assignee or a clock. Its assignee.",
    ),
    ("reroute", cases.reroute, RerouteIn, "Route a submitted case to another grid cell of your subtree. Supervisor."),
    ("hold", cases.hold, ReasonIn, "Put an in-progress case on hold, with a reason; its clock stops. Its assignee."),
    ("resume", cases.resume, NoteIn, "Resume a held case; its deadlines move by the time held. Its assignee."),
    (
        "request_extension",
        cases.request_extension,
        ExtensionRequestIn,
        "Ask for more time, in the unit of the case's limit, with a reason. Its assignee.",
    ),
    (
        "approve_extension",
        cases.approve_extension,
        NoteIn,
        "Grant the pending extension request; the deadlines move. Supervisor.",
    ),
    ("deny_extension", cases.deny_extension, ReasonIn, "Refuse the pending extension request. Supervisor."),
    (
        "mark_duplicate",
        cases.mark_duplicate,
        DuplicateIn,
        "Close an open case as a duplicate of an open case of the same community. Supervisor.",
    ),
    (
        "supervise",
        cases.supervise,
        NoteRequiredIn,
        "Add a supervision note (督办) to an open case; its assignee is notified. Supervisor.",
    ),
    ("cancel", cases.cancel, NoteIn, "Withdraw your own case while it is still submitted. Resident."),
)


def _action_view(name, perform, schema, summary):
    @auth_required()
    @idempotent
    @blp.doc(security=BEARER)
    @documents_if_match(required=True)
    @blp.arguments(schema)
    @blp.response(
        200, ReportOut, headers={"ETag": {"description": "The case's new version.", "schema": {"type": "string"}}}
    )
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(412, response="PRECONDITION_FAILED")
    @blp.alt_response(428, response="PRECONDITION_REQUIRED")
    def post(self, data, report_id):
        user = current_user()
        report = perform(user, report_service.get_report_for(user, report_id), _if_match(), **data)
        return public_view.present(user, report), 200, {"ETag": cases.etag(report)}

    title, _, who = summary.partition(". ")
    post.__doc__ = (
        f"{title}.\n\n{who} Needs If-Match with the case's ETag: 428 without it, 412 when stale; "
        "409 when its status does not allow this. Admins may take every action."
    )
    view = type("".join(part.title() for part in name.split("_")) + "Action", (MethodView,), {"post": post})
    blp.route(f"/reports/<int:report_id>/actions/{name}")(view)


for _action in ACTIONS:
    _action_view(*_action)


def _query(args):
    return geoqueries.reports_query(current_user(), **_filters(args))


def _filters(args) -> dict:
    """The loaded arguments as reports_query's filters (the cell resolved: 422 when none has that id or code)."""
    cell_id = cell_id_filter(args)
    return {"category_code": args.pop("category", None), "cell_id": cell_id, **args}


@blp.route("/reports/search")
class ReportSearch(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(ReportSearchIn)
    @blp.response(200, ReportPage)
    def post(self, data):
        """Reports inside a GeoJSON Polygon (within_geojson), with every filter of GET /reports in the body."""
        page, size = data.pop("page"), data.pop("page_size")
        return public_view.present_page(
            current_user(), geoqueries.paginate_reports(_query(data), data.get("geo"), page, size)
        )


@blp.route("/reports.geojson")
class ReportsGeoJSON(MethodView):
    @auth_required()
    @blp.doc(security=BEARER, responses=GEOJSON_DOC)
    @blp.arguments(ReportGeoJSONArgs, location="query")
    def get(self, args):
        """The matching reports as map points (no personal data), at most 5,000, with a truncated flag."""
        return geojson_response(geoqueries.feature_collection(current_user(), _query(args)))


@blp.route("/cells/<int:cell_id>/reports/summary")
class CellReportSummary(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, CellSummaryOut)
    def get(self, cell_id):
        """Counts by status and SLA state of the reports the caller may see, for the cell and each child."""
        return geoqueries.cell_summary(current_user(), grid_service.get_cell(cell_id))
