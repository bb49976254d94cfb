"""Report categories: public list, admin edits."""

from flask.views import MethodView

from app.api.access import auth_required
from app.api.idempotency import idempotent
from app.api.openapi import BEARER, Blueprint
from app.models import Role
from app.schemas.categories import (
    CategoryCreateIn,
    CategoryOut,
    CategoryPage,
    CategoryUpdateIn,
)
from app.schemas.common import PageArgs
from app.services.cases import categories as category_service
from app.services.pagination import paginate

blp = Blueprint("categories", __name__, description="Report categories (Open311 service codes)")


@blp.route("/categories")
class Categories(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, CategoryPage)
    def get(self, args):
        """Active categories, ordered by code. No sign-in needed."""
        return paginate(category_service.active_categories_query(), args["page"], args["page_size"])

    @auth_required(Role.admin)
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(CategoryCreateIn)
    @blp.response(201, CategoryOut)
    def post(self, data):
        """Create a category (admin)."""
        return category_service.create_category(data)


@blp.route("/categories/<int:category_id>")
class CategoryItem(MethodView):
    @auth_required(Role.admin)
    @blp.doc(security=BEARER)
    @blp.arguments(CategoryUpdateIn)
    @blp.response(200, CategoryOut)
    def patch(self, data, category_id):
        """Edit a category (admin); deactivating hides it from new reports."""
        return category_service.update_category(category_service.get_category(category_id), data)
