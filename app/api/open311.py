"""Open311 GeoReport v2 at /open311/v2: format by URL suffix (.json or .xml), errors in the Open311 form."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree as ET

from flask import Blueprint, Response, current_app, g, request

from app.api.boundary import register_error_form, request_language
from app.api.idempotency import idempotent
from app.api.observe import note_caller
from app.errors import NotFound
from app.extensions import limiter
from app.lib import i18n
from app.lib.i18n import tr
from app.models.base import utcnow
from app.services.people.api_keys import hash_key
from app.services.public import open311

PREFIX = "/open311/v2"
CONTENT_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
# The element each list's items are written as in XML; the JSON form is the same data.
ITEM_TAGS = {
    "services": "service",
    "service_requests": "request",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "errors": "error",
}

# Characters XML 1.0 cannot carry even escaped; a stored description may hold them.
XML_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

bp = Blueprint("open311", __name__, url_prefix=PREFIX)


def _element(parent: ET.Element, tag: str, value: Any) -> None:
    el = ET.SubElement(parent, tag)
    if isinstance(value, dict):
        for key, item in value.items():
            _element(el, key, item)
    elif isinstance(value, list):
        for item in value:
            _element(el, ITEM_TAGS[tag], item)
    elif isinstance(value, bool):
        el.text = "true" if value else "false"
    elif value is not None:
        el.text = XML_INVALID.sub("\ufffd", str(value))


def render(data: Any, fmt: str, root: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The answer in the format asked for, its texts (status_notes, service_notice) in the Accept-Language."""
    language = request_language()
    data = i18n.render(data, language)
    headers = {**(headers or {}), "Content-Language": language, "Vary": "Accept-Language"}
    if fmt == "xml":
        el = ET.Element(root)
        for key, item in data.items() if isinstance(data, dict) else ((ITEM_TAGS[root], i) for i in data):
            _element(el, key, item)
        body = '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(el, encoding="unicode")
    else:
        body = json.dumps(data, ensure_ascii=False)
    return Response(body, status=status, headers=headers, content_type=CONTENT_TYPES[fmt])


def error_response(status: int, description: str, headers: dict[str, str] | None = None) -> Response:
    """Every error under /open311: 400, 403, 404 and the rest, as XML when the path asks for XML, else JSON."""
    fmt = "xml" if request.path.endswith(".xml") else "json"
    # 422 is our validation status; Open311 clients know only 400 for a bad request.
    status = 400 if status == 422 else status
    return render([{"code": status, "description": description}], fmt, "errors", status, headers)


def _register_error_form(state) -> None:
    # Under /open311/ as a whole, not only v2: a client that tries another version's path parses this form too.
    register_error_form(state.app, "/open311/", error_response)


bp.record_once(_register_error_form)


def _split(name: str) -> tuple[str, str]:
    """'0101.xml' → ('0101', 'xml'): codes may hold dots, the format is after the last one."""
    value, dot, fmt = name.rpartition(".")
    if not dot or not value:
        raise NotFound(tr("Add .json or .xml to the path."))
    return value, _format(fmt)


def _format(fmt: str) -> str:
    if fmt not in CONTENT_TYPES:
        raise NotFound(tr("Unknown format {fmt!r}: use .json or .xml.", fmt=fmt))
    return fmt


def _key_bucket() -> str:
    # Throttle per key without keeping the key itself in the counters' store.
    key = request.values.get("api_key") or ""
    return "open311:" + hash_key(key)[:16] if key else f"open311-ip:{request.remote_addr}"


def _rate_limit() -> str:
    return current_app.config["OPEN311_RATE_LIMIT"]


@bp.get("/discovery.<fmt>")
def discovery(fmt):
    return render(open311.discovery(request.url_root.rstrip("/") + PREFIX), _format(fmt), "discovery")


@bp.get("/services.<fmt>")
def services(fmt):
    return render(open311.services(), _format(fmt), "services")


@bp.get("/services/<name>")
@bp.get("/service/<name>")
def service_definition(name):
    code, fmt = _split(name)
    return render(open311.service_definition(code), fmt, "service_definition")


def api_key_required(view: Callable) -> Callable:
    """Authenticate the api_key; its resident account is the caller, so Idempotency-Key is scoped to the key."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.api_key = open311.authenticate(request.values)
        g.current_user = g.api_key.user
        note_caller(g.current_user)
        return view(*args, **kwargs)

    # Read by the boundary's check of @idempotent's place (app/api/boundary.py).
    wrapper.authenticates = True
    return wrapper


@bp.post("/requests.<fmt>")
@limiter.limit(_rate_limit, key_func=_key_bucket)
@api_key_required
@idempotent
def create_request(fmt):
    fmt = _format(fmt)
    # 200, not 201: older Open311 clients test for exactly 200.
    return render(open311.create_request(g.api_key, request.values), fmt, "service_requests")


@bp.get("/requests.<fmt>")
def list_requests(fmt):
    fmt = _format(fmt)
    return render(open311.list_requests(open311.reader(request.args), request.args, utcnow()), fmt, "service_requests")


@bp.get("/requests/<name>")
def get_request(name):
    number, fmt = _split(name)
    return render(open311.get_request(open311.reader(request.args), number), fmt, "service_requests")


@bp.get("/tokens/<name>")
def token(name):
    value, fmt = _split(name)
    open311.reader(request.args)  # a key that is sent must be valid, as on every read
    return render(open311.token(value), fmt, "service_requests")
