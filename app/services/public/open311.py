"""Open311 GeoReport v2: services, filing requests as residents' reports, and reading requests back."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import and_, false, or_, select

from app.errors import AttributeRejected, NotFound, Open311BadRequest
from app.extensions import db
from app.lib.coords import shown
from app.lib.i18n import Message, tr
from app.models import FINAL_STATUSES, ApiKey, Category, Report, User
from app.models.base import MAX_ID
from app.services.cases import attributes as attribute_answers, reports as report_service
from app.services.cases.categories import active_categories_query, find_active_by_code
from app.services.people import api_keys as key_service
from app.services.public import view as public_view

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-27T00:00:00+08:00"
FORMATS = ("text/xml", "application/json")
MAX_DESCRIPTION = 4000
MAX_MEDIA_URL = 2000
# At most this many requests per list, and dates at most this far apart (the specification's defaults).
MAX_REQUESTS = 1000
MAX_RANGE = timedelta(days=90)
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
ATTRIBUTE_KEY = re.compile(r"attribute\[([^\[\]]+)\](\[\])?")
# Optional text fields of a new request: parameter → (column, maximum length).
CONTACT_FIELDS = {
    "first_name": ("contact_first_name", 100),
    "last_name": ("contact_last_name", 100),
    "phone": ("contact_phone", 32),
    "device_id": ("device_id", 100),
    "account_id": ("account_id", 100),
    "address_id": ("address_id", 100),
    "zipcode": ("zipcode", 20),
}
# A fixed public label of each status (never a case note), in the reader's Accept-Language (app/api/open311.py).
STATUS_NOTES = {
    "submitted": tr("Received; waiting for review."),
    "accepted": tr("Accepted; waiting for a grid worker."),
    "assigned": tr("Assigned to a grid worker."),
    "in_progress": tr("A grid worker is handling it."),
    "on_hold": tr("On hold."),
    "resolved": tr("Handled; waiting for verification."),
    "closed": tr("Handled and verified."),
    "rejected": tr("Not accepted."),
    "duplicate": tr("Closed as a duplicate of another request."),
    "cancelled": tr("Cancelled by the reporter."),
}
TRIAGE_NOTICE = tr("No grid cell covers this location; a supervisor will route the request by hand.")


# ---- services -------------------------------------------------------------------------------------------------


def services() -> list[dict[str, Any]]:
    return [
        {
            "service_code": c.code,
            "service_name": c.name,
            "description": c.description,
            "metadata": bool(attribute_answers.inputs(c)),
            "type": "realtime",
            "keywords": c.keywords,
            "group": c.group,
        }
        for c in db.session.scalars(active_categories_query())
    ]


def service_definition(code: str) -> dict[str, Any]:
    category = find_active_by_code(code)
    if category is None:
        raise NotFound(tr("No service with service_code {code!r}.", code=code))
    attributes = sorted(category.attributes or [], key=lambda a: (a["order"], a["code"]))
    return {
        "service_code": category.code,
        "attributes": [
            {
                "variable": a.get("variable", True),
                "code": a["code"],
                "datatype": a["datatype"],
                "required": a.get("required", False),
                "datatype_description": a.get("datatype_description"),
                "order": a["order"],
                "description": a["description"],
                "values": [{"key": v["key"], "name": v["name"]} for v in a.get("values") or []],
            }
            for a in attributes
        ],
    }


def discovery(endpoint_url: str) -> dict[str, Any]:
    cfg = current_app.config
    return {
        "changeset": CHANGESET,
        "contact": cfg["OPEN311_CONTACT"],
        "key_service": cfg["OPEN311_KEY_SERVICE"],
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": endpoint_url,
                "changeset": CHANGESET,
                "type": "production",
                "formats": list(FORMATS),
            }
        ],
    }


# ---- filing ---------------------------------------------------------------------------------------------------


def _param(params: Mapping, name: str) -> str | None:
    # Real clients send every field, empty ones included: empty means absent.
    value = params.get(name)
    return value if value not in (None, "") else None


def _text(params: Mapping, name: str, limit: int) -> str | None:
    value = _param(params, name)
    if value is not None and len(value) > limit:
        raise Open311BadRequest(tr("{name} is longer than {limit} characters.", name=name, limit=limit))
    return value


def _coordinate(params: Mapping, name: str, bound: float) -> float:
    raw = _param(params, name)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise Open311BadRequest(tr("{name} must be a number.", name=name)) from None
    if not math.isfinite(value) or not -bound <= value <= bound:
        raise Open311BadRequest(tr("{name} must lie between -{bound:g} and {bound:g}.", name=name, bound=bound))
    return value


def _location(params: Mapping) -> tuple[float, float]:
    has_lat, has_long = _param(params, "lat") is not None, _param(params, "long") is not None
    if has_lat != has_long:
        raise Open311BadRequest(tr("Send lat and long together."))
    if not has_lat:
        if _param(params, "address_string") or _param(params, "address_id"):
            raise Open311BadRequest(tr("This server has no geocoder: send lat and long (WGS-84) with the address."))
        raise Open311BadRequest(tr("A location is required: send lat and long (WGS-84)."))
    return _coordinate(params, "long", 180), _coordinate(params, "lat", 90)


def _media_url(params: Mapping) -> str | None:
    url = _text(params, "media_url", MAX_MEDIA_URL)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(ch.isspace() for ch in url):
        raise Open311BadRequest(tr("media_url must be an http or https URL."))
    return url


def _email(params: Mapping) -> str | None:
    email = _text(params, "email", 254)
    if email is not None and not EMAIL.fullmatch(email):
        raise Open311BadRequest(tr("email is not an email address."))
    return email


def parse_w3c(name: str, raw: str) -> datetime:
    """A W3C datetime; without an offset it is read in TIMEZONE."""
    return attribute_answers.parse_w3c(name, raw, Open311BadRequest)


def _attributes(params) -> dict[str, list[str]]:
    """The values sent for each attribute code (attribute[code] and attribute[code][])."""
    sent: dict[str, list[str]] = {}
    for key in params:
        match = ATTRIBUTE_KEY.fullmatch(key)
        if match:
            sent.setdefault(match.group(1), []).extend(params.getlist(key))
    return sent


def authenticate(params, *, stamp_use: bool = True) -> ApiKey:
    """The live API key sent in the query string or the form body; 403 without one."""
    return key_service.authenticate(_param(params, "api_key"), stamp_use=stamp_use)


def create_request(api_key: ApiKey, params) -> list[dict[str, Any]]:
    """File a request as the API key's resident account: the report enters the same loop as any resident's."""
    code = _param(params, "service_code")
    if code is None:
        raise Open311BadRequest(tr("service_code is required."))
    category = find_active_by_code(code)
    if category is None:
        raise Open311BadRequest(tr("No service with service_code {code!r}.", code=code))
    lon, lat = _location(params)
    description = _text(params, "description", MAX_DESCRIPTION) or ""
    extra = {column: _text(params, name, limit) for name, (column, limit) in CONTACT_FIELDS.items()}
    extra.update(
        source="open311",
        api_key_id=api_key.id,
        open311_token=str(uuid.uuid4()),
        media_url=_media_url(params),
        contact_email=_email(params),
    )
    try:
        report = report_service.create_report(
            api_key.user,
            category_code=category.code,
            description=description,
            location={"lon": lon, "lat": lat, "crs": "wgs84"},
            address=_text(params, "address_string", 500),
            attributes=_attributes(params),
            extra=extra,
        )
    except AttributeRejected as exc:
        # The same check and words as POST /api/v1/reports, in GeoReport's own error format.
        raise Open311BadRequest(exc.detail) from exc
    # The token too: peer clients go POST -> token -> tokens/{token} -> requests/{id}.
    return [
        {
            "service_request_id": report.case_number,
            "token": report.open311_token,
            "service_notice": _notice(report),
            "account_id": report.account_id,
        }
    ]


# ---- reading --------------------------------------------------------------------------------------------------


def _w3c(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(current_app.config["TIMEZONE"])).isoformat(timespec="seconds")


def _notice(report: Report) -> Message | None:
    return TRIAGE_NOTICE if report.needs_triage else None


def request_out(report: public_view.CaseView) -> dict[str, Any]:
    """A request as Open311 shows it to the reader it was presented for (an API key's account, or nobody): in full
    for the key that filed it, else the case's public view (app.services.public.view), leaving out the GeoReport
    fields that view does not carry. Never reporter or contact data."""
    # GeoReport has no datum parameter: WGS-84, rounded like every answer.
    lon, lat = shown(report.location["lon"], report.location["lat"]) if report.location else (None, None)
    # GeoReport field: (the ReportOut field whose view it belongs to, value).
    fields = {
        "service_request_id": ("case_number", report.case_number),
        "status": ("status", "closed" if report.status in FINAL_STATUSES else "open"),
        "status_notes": ("status", STATUS_NOTES.get(report.status)),
        "service_name": ("category", report.category.name),
        "service_code": ("category", report.category.code),
        "description": ("description", report.description),
        "agency_responsible": ("handling_cell", report.handling_cell.name if report.handling_cell else None),
        "service_notice": ("handling_cell", _notice(report)),
        "requested_datetime": ("created_at", _w3c(report.created_at)),
        "updated_datetime": ("updated_at", _w3c(report.updated_at)),
        "expected_datetime": ("deadline_at", _w3c(report.deadline_at)),
        "address": ("address", report.address),
        "address_id": ("address_id", report.address_id),
        "zipcode": ("zipcode", report.zipcode),
        "lat": ("location", lat),
        "long": ("location", lon),
        "media_url": ("media_url", report.media_url),
    }
    return {
        name: value
        for name, (view_field, value) in fields.items()
        if report.shown is None or view_field in report.shown
    }


def _case_number_filter(numbers: list[str]):
    """Case numbers are the local filing day (8 digits) and the id: match both, so a guessed id is not enough."""
    clauses = []
    for number in numbers:
        if re.fullmatch(r"\d{9,18}", number):
            try:
                day = date(int(number[:4]), int(number[4:6]), int(number[6:8]))
            except ValueError:
                continue
            report_id = int(number[8:])
            if report_id <= MAX_ID:
                clauses.append(and_(Report.id == report_id, Report.case_day == day))
    return or_(*clauses) if clauses else false()


def reader(params: Mapping) -> User | None:
    """Who reads: the account of the api_key sent with the read (its own requests show in full), or None for an
    anonymous reader. A key that is sent must be valid (403). A read does not stamp the key's last use: read
    requests write nothing (app.dialect.engine)."""
    return authenticate(params, stamp_use=False).user if _param(params, "api_key") is not None else None


def _requests(reader: User | None, where) -> list[dict[str, Any]]:
    stmt = (
        report_service.listed_reports()
        .where(where)
        .order_by(Report.created_at.desc(), Report.id.desc())
        .limit(MAX_REQUESTS)
    )
    return [request_out(case) for case in public_view.present_all(reader, db.session.scalars(stmt).unique())]


def list_requests(reader: User | None, params: Mapping, now: datetime) -> list[dict[str, Any]]:
    """Newest first, at most MAX_REQUESTS; service_request_id overrides every other filter."""
    ids = _param(params, "service_request_id")
    if ids is not None:
        numbers = [n.strip() for n in ids.split(",") if n.strip()][:MAX_REQUESTS]
        return _requests(reader, _case_number_filter(numbers))
    start_raw, end_raw = _param(params, "start_date"), _param(params, "end_date")
    start = parse_w3c("start_date", start_raw) if start_raw else None
    end = parse_w3c("end_date", end_raw) if end_raw else None
    if start is None and end is None:
        end = now
    if start is None:
        start = end - MAX_RANGE
    elif end is None:
        end = start + MAX_RANGE
    if end < start:
        raise Open311BadRequest(tr("end_date is before start_date."))
    if end - start > MAX_RANGE:
        raise Open311BadRequest(tr("start_date and end_date may be at most 90 days apart."))
    where = [Report.created_at >= start, Report.created_at <= end]
    codes = _param(params, "service_code")
    if codes is not None:
        wanted = [c.strip() for c in codes.split(",") if c.strip()]
        where.append(Report.category_id.in_(select(Category.id).where(Category.code.in_(wanted))))
    status = _param(params, "status")
    if status is not None:
        wanted = {s.strip() for s in status.split(",") if s.strip()}
        if not wanted or wanted - {"open", "closed"}:
            raise Open311BadRequest(tr("status must be open or closed (or both, comma-separated)."))
        if wanted == {"open"}:
            where.append(Report.status.not_in(FINAL_STATUSES))
        elif wanted == {"closed"}:
            where.append(Report.status.in_(FINAL_STATUSES))
    return _requests(reader, and_(*where))


def get_request(reader: User | None, number: str) -> list[dict[str, Any]]:
    found = _requests(reader, _case_number_filter([number]))
    if not found:
        raise NotFound(tr("No service request {number!r}.", number=number))
    return found


def token(value: str) -> list[dict[str, Any]]:
    report = db.session.scalars(select(Report).where(Report.open311_token == value)).first()
    if report is None:
        raise NotFound(tr("No token {token!r}.", token=value))
    return [{"service_request_id": report.case_number, "token": report.open311_token}]
