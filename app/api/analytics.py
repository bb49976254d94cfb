"""Analytics for supervisors, admins and grid workers: hotspots, heat maps and trends, scoped like /reports."""

from flask.views import MethodView

from app.api.access import auth_required, current_user
from app.api.filters import cell_id_filter
from app.api.geojson import GEOJSON_DOC, geojson_response
from app.api.openapi import BEARER, Blueprint
from app.models import Role
from app.schemas.analytics import HeatmapArgs, HotspotArgs, TrendArgs, TrendOut
from app.services.insight import analytics

blp = Blueprint("analytics", __name__, description="Hotspots, heat maps and trends")

# Residents see only their own reports; statistics over those would tell them nothing.
READERS = (Role.worker, Role.supervisor, Role.admin)


def _filters(args):
    args.pop("crs", None)  # the answer's datum, applied by geojson_response
    return {"category_code": args.pop("category", None), "cell_id": cell_id_filter(args), **args}


@blp.route("/analytics/hotspots")
class Hotspots(MethodView):
    @auth_required(*READERS)
    @blp.doc(security=BEARER, responses=GEOJSON_DOC)
    @blp.arguments(HotspotArgs, location="query")
    def get(self, args):
        """DBSCAN clusters of reports as GeoJSON (hull or centroid, count, top categories, open count, times)."""
        return geojson_response(analytics.hotspots(current_user(), **_filters(args)), point_properties=("centroid",))


@blp.route("/analytics/heatmap")
class Heatmap(MethodView):
    @auth_required(*READERS)
    @blp.doc(security=BEARER, responses=GEOJSON_DOC)
    @blp.arguments(HeatmapArgs, location="query")
    def get(self, args):
        """Report counts on a square grid of size_m metres as GeoJSON polygons; empty squares left out."""
        return geojson_response(analytics.heatmap(current_user(), **_filters(args)))


@blp.route("/analytics/trend")
class Trend(MethodView):
    @auth_required(*READERS)
    @blp.doc(security=BEARER)
    @blp.arguments(TrendArgs, location="query")
    @blp.response(200, TrendOut)
    def get(self, args):
        """Reports filed and closed per day, week (from Monday) or month in the configured TIMEZONE."""
        return analytics.trend(current_user(), **_filters(args))
