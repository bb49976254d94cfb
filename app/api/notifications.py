"""The caller's own notifications (the outbox the case loop writes)."""

from flask.views import MethodView

from app.api.access import auth_required, current_user
from app.api.idempotency import idempotent
from app.api.openapi import BEARER, Blueprint
from app.schemas.notifications import (
    MarkReadIn,
    NotificationListArgs,
    NotificationOut,
    NotificationPage,
)
from app.services.cases import notifications as notification_service
from app.services.pagination import paginate

blp = Blueprint("notifications", __name__, description="Notifications to the signed-in user")


@blp.route("/notifications")
class Notifications(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(NotificationListArgs, location="query")
    @blp.response(200, NotificationPage)
    def get(self, args):
        """My notifications, newest first; `unread=true` for the unread ones."""
        return paginate(
            notification_service.notifications_query(current_user(), unread=args.get("unread")),
            args["page"],
            args["page_size"],
        )


@blp.route("/notifications/<int:notification_id>/read")
class NotificationRead(MethodView):
    @auth_required()
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(MarkReadIn, required=False)
    @blp.response(200, NotificationOut)
    def post(self, _data, notification_id):
        """Mark one of my notifications read (repeating it keeps the first read time); others' are 404."""
        return notification_service.mark_read(current_user(), notification_id)
