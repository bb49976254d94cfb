"""The worker's day: my open cases and my cells."""

from dataclasses import replace

from flask.views import MethodView

from app.api.access import auth_required, current_user
from app.api.filters import cell_filter
from app.api.openapi import BEARER, Blueprint
from app.models import Role
from app.schemas.common import CrsArgs
from app.schemas.tasks import MyCellOut, TaskListArgs, TaskPage
from app.services.field import tasks as task_service
from app.services.public import view as public_view

blp = Blueprint("tasks", __name__, description="My tasks and cells")


@blp.route("/me/tasks")
class MyTasks(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(TaskListArgs, location="query")
    @blp.response(200, TaskPage)
    def get(self, args):
        """Cases assigned to me that I act on (assigned, in progress, on hold), soonest deadline first.

        Cases without a deadline come last; ties by id. Each has its SLA state, location and latest event."""
        user = current_user()
        stmt = task_service.tasks_query(user, args.get("status"), cell_filter(args))
        page = task_service.tasks_page(stmt, args["page"], args["page_size"])
        return public_view.present_page(user, replace(page, items=task_service.as_tasks(page.items)))


@blp.route("/me/cells")
class MyCells(MethodView):
    @auth_required(Role.worker, Role.supervisor, Role.admin)
    @blp.doc(security=BEARER)
    @blp.arguments(CrsArgs, location="query")
    @blp.response(200, MyCellOut(many=True))
    def get(self, _args):
        """The grid cells I serve today (primary or backup) with their polygons; a supervisor gets the root cell
        of their subtree, an admin an empty list."""
        return task_service.my_cells(current_user())
