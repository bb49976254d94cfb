"""People management (admin; supervisors create their subtree's workers): accounts, deactivation not deletion."""

from dataclasses import replace

from flask.views import MethodView

from app.api.access import auth_required, current_user
from app.api.filters import cell_id_filter
from app.api.idempotency import idempotent
from app.api.openapi import BEARER, Blueprint
from app.models import Role
from app.schemas.auth import UserOut
from app.schemas.users import UserCreateIn, UserListArgs, UserPage, UserUpdateIn
from app.services.pagination import paginate
from app.services.people import users as user_service

blp = Blueprint("users", __name__, description="People management")


@blp.route("/users")
class Users(MethodView):
    @auth_required(Role.admin)
    @blp.doc(security=BEARER)
    @blp.arguments(UserListArgs, location="query")
    @blp.response(200, UserPage)
    def get(self, args):
        """Accounts ordered by username, filtered by role, active, cell and a name/phone search."""
        page, size = args.pop("page"), args.pop("page_size")
        found = paginate(user_service.users_query(cell_id=cell_id_filter(args), **args), page, size)
        return replace(found, items=user_service.accounts(found.items))

    @auth_required(Role.admin, Role.supervisor)
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(UserCreateIn)
    @blp.response(201, UserOut)
    def post(self, data):
        """Create an account; a worker's cell_code becomes a primary assignment from today.

        Admins create any role. A supervisor creates workers only, of a grid cell in their subtree (cell_code
        required; another role is 403 role_not_allowed, a cell elsewhere 403 outside_subtree)."""
        return user_service.account(user_service.create_user_by(current_user(), **data))


@blp.route("/users/<int:user_id>")
class UserItem(MethodView):
    @auth_required(Role.admin)
    @blp.doc(security=BEARER)
    @blp.response(200, UserOut)
    def get(self, user_id):
        """One account."""
        return user_service.account(user_service.get_user(user_id))

    @auth_required(Role.admin)
    @blp.doc(security=BEARER)
    @blp.arguments(UserUpdateIn)
    @blp.response(200, UserOut)
    def patch(self, data, user_id):
        """Edit name, phone, role, a supervisor's cell, active (deactivate), language or reset the password."""
        return user_service.account(user_service.update_user(current_user(), user_service.get_user(user_id), data))
