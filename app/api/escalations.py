"""Supervisor review of escalated cases (超时督办)."""

from flask.views import MethodView

from app.api.access import auth_required, current_user
from app.api.filters import cell_filter
from app.api.openapi import BEARER, Blueprint
from app.models import Role
from app.models.base import utcnow
from app.schemas.escalations import EscalatedCasePage, EscalationListArgs
from app.services.cases import escalation as escalation_service

blp = Blueprint("escalations", __name__, description="Escalated cases for supervisors")


@blp.route("/escalations")
class Escalations(MethodView):
    @auth_required(Role.supervisor, Role.admin)
    @blp.doc(security=BEARER)
    @blp.arguments(EscalationListArgs, location="query")
    @blp.response(200, EscalatedCasePage)
    def get(self, args):
        """Open cases escalated to a cell in my subtree, most overdue first, with chain, assignee and last events."""
        page, size = args.pop("page"), args.pop("page_size")
        return escalation_service.escalated_cases(
            current_user(), utcnow(), page, size, cell=cell_filter(args), level=args.get("escalation_level")
        )
