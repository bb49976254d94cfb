"""The offline clients' change feed."""

from flask.views import MethodView

from app.api.access import auth_required, current_user
from app.api.openapi import BEARER, Blueprint
from app.schemas.sync import SyncArgs, SyncPageOut
from app.services.field import sync as sync_service

blp = Blueprint("sync", __name__, description="Incremental sync for offline clients")


@blp.route("/sync")
class Sync(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(SyncArgs, location="query")
    @blp.response(200, SyncPageOut)
    def get(self, args):
        """Cases, their events and my notifications changed since `cursor`, oldest change first.

        Without a cursor: everything in scope (a full sync). Keep next_cursor and call again (at once while
        has_more, later to poll). A case changed several times comes once, at its latest state. A cursor this
        service did not hand out is 400 invalid_cursor."""
        return sync_service.changes_since(current_user(), args.get("cursor"), args["limit"])
