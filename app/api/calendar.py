"""The work calendar: admins list days and override single dates."""

from dataclasses import asdict

from flask.views import MethodView

from app.api.access import auth_required
from app.api.openapi import BEARER, Blueprint
from app.models import Role
from app.schemas.calendar import (
    DayChangeOut,
    DayList,
    DayOut,
    DayPath,
    DayPutIn,
    DayRangeArgs,
)
from app.services.calendar import days as workcalendar

blp = Blueprint("calendar", __name__, description="Work calendar: working hours, holidays, make-up days")


@blp.route("/calendar/days")
class CalendarDays(MethodView):
    @auth_required(Role.admin)
    @blp.doc(security=BEARER)
    @blp.arguments(DayRangeArgs, location="query")
    @blp.response(200, DayList)
    def get(self, args):
        """Every date from `from` to `to` (at most 366) as deadlines see it (admin)."""
        return {**args, "items": workcalendar.days_between(args["first"], args["last"])}


@blp.route("/calendar/days/<day>")
class CalendarDayItem(MethodView):
    @auth_required(Role.admin)
    @blp.doc(security=BEARER)
    @blp.arguments(DayPath, location="path")
    @blp.response(200, DayOut)
    def get(self, path, **_):
        """One date (admin)."""
        return workcalendar.get_day(path["day"])

    @auth_required(Role.admin)
    @blp.doc(security=BEARER)
    @blp.arguments(DayPath, location="path")
    @blp.arguments(DayPutIn)
    @blp.response(200, DayChangeOut)
    def put(self, path, data, **_):
        """Make a date a holiday or a workday, optionally with its own hours (admin). Open cases whose
        deadline is still ahead are re-derived against the changed calendar."""
        day, recomputed = workcalendar.set_day(path["day"], **data)
        return {**asdict(day), "weekday": day.weekday, "recomputed_cases": recomputed}

    @auth_required(Role.admin)
    @blp.doc(security=BEARER)
    @blp.arguments(DayPath, location="path")
    @blp.response(200, DayChangeOut)
    def delete(self, path, **_):
        """Drop a date's override so it follows the weekly schedule again (admin)."""
        recomputed = workcalendar.clear_day(path["day"])
        day = workcalendar.get_day(path["day"])
        return {**asdict(day), "weekday": day.weekday, "recomputed_cases": recomputed}
