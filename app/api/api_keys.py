"""API keys for Open311 clients (admins): issue, list, revoke."""

from flask.views import MethodView

from app.api.access import auth_required, current_user
from app.api.openapi import BEARER, Blueprint
from app.models import Role
from app.schemas.api_keys import ApiKeyCreateIn, ApiKeyIssuedOut, ApiKeyPage
from app.schemas.common import PageArgs
from app.services.pagination import paginate
from app.services.people import api_keys as key_service

blp = Blueprint("api_keys", __name__, description="API keys of Open311 clients")


@blp.route("/api-keys")
class ApiKeys(MethodView):
    @auth_required(Role.admin)
    @blp.doc(security=BEARER)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ApiKeyPage)
    def get(self, args):
        """Keys, oldest first, revoked ones too, without key material (admin)."""
        return paginate(key_service.keys_query(), args["page"], args["page_size"])

    @auth_required(Role.admin)
    @blp.doc(security=BEARER)
    @blp.arguments(ApiKeyCreateIn)
    @blp.response(201, ApiKeyIssuedOut)
    def post(self, data):
        """Issue a key (admin); the answer is the only time the key is shown."""
        return key_service.create_key(data["name"], current_user())


@blp.route("/api-keys/<int:key_id>")
class ApiKeyItem(MethodView):
    @auth_required(Role.admin)
    @blp.doc(security=BEARER)
    @blp.response(204)
    def delete(self, key_id):
        """Revoke a key (admin); revoking a revoked key changes nothing."""
        key_service.revoke_key(key_service.get_key(key_id))
