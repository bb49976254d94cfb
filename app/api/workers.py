"""Grid workers: cell assignments, the workers' overview, and going on and off duty."""

from flask.views import MethodView

from app.api.access import auth_required, current_user
from app.api.filters import cell_id_filter
from app.api.idempotency import idempotent
from app.api.openapi import BEARER, Blueprint
from app.models import Role
from app.schemas.workers import (
    AssignmentIn,
    AssignmentListArgs,
    AssignmentOut,
    AssignmentPage,
    DutyIn,
    DutyOut,
    WorkerListArgs,
    WorkerPage,
)
from app.services.insight import workforce
from app.services.pagination import Page, paginate
from app.services.people import workers as worker_service

blp = Blueprint("workers", __name__, description="Grid workers, their cells and duty")

MANAGERS = (Role.admin, Role.supervisor)


def _managed_cell(cell_id: int):
    cell = worker_service.get_cell(cell_id)
    worker_service.check_manages(current_user(), cell)
    return cell


@blp.route("/cells/<int:cell_id>/workers")
class CellWorkers(MethodView):
    @auth_required(*MANAGERS)
    @blp.doc(security=BEARER)
    @blp.arguments(AssignmentListArgs, location="query")
    @blp.response(200, AssignmentPage)
    def get(self, args, cell_id):
        """The cell's assignments, latest first (admin, or a supervisor whose subtree holds the cell)."""
        cell = _managed_cell(cell_id)
        return paginate(worker_service.assignments_query(cell, args.get("on")), args["page"], args["page_size"])

    @auth_required(*MANAGERS)
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(AssignmentIn)
    @blp.response(201, AssignmentOut)
    def post(self, data, cell_id):
        """Assign a worker to this grid cell as primary or backup for a range of local days."""
        return worker_service.assign(_managed_cell(cell_id), **data)


@blp.route("/cells/<int:cell_id>/workers/<int:assignment_id>")
class CellWorkerItem(MethodView):
    @auth_required(*MANAGERS)
    @blp.doc(security=BEARER)
    @blp.response(204)
    def delete(self, cell_id, assignment_id):
        """End an assignment: one not yet begun is removed; a running one ends yesterday and stays as history."""
        worker_service.end_assignment(_managed_cell(cell_id), assignment_id)


@blp.route("/workers")
class Workers(MethodView):
    @auth_required(*MANAGERS)
    @blp.doc(security=BEARER)
    @blp.arguments(WorkerListArgs, location="query")
    @blp.response(200, WorkerPage)
    def get(self, args):
        """Active workers (a supervisor: those serving the subtree today) with cells, duty, workload, position."""
        stmt = workforce.workers_query(current_user(), cell_id=cell_id_filter(args), on_duty=args.get("on_duty"))
        page = paginate(stmt, args["page"], args["page_size"])
        return Page(items=workforce.describe(page.items), page=page.page, page_size=page.page_size, total=page.total)


@blp.route("/me/duty")
class MyDuty(MethodView):
    @auth_required(Role.worker)
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(DutyIn)
    @blp.response(201, DutyOut)
    def post(self, data):
        """Go on or off duty, with the position at that moment; every change is kept in the duty log."""
        position = data["position"]
        return worker_service.set_duty(
            current_user(), data["duty"] == "on", position["lon"], position["lat"], position["crs"]
        )
