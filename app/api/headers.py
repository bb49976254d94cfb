"""Headers every answer carries: no-store where credentials or personal data are involved, nosniff, a CSP."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, current_app, request

# Answers to these only read; any other method's answer is the result of a change, a login's tokens, an
# Open311 filing: never for a cache.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# JSON, XML, images and errors load nothing and are framed by nobody.
DATA_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_PAGE_ENDPOINT = "docs.page"
CONSOLE_BLUEPRINT = "console"


def carries_credentials() -> bool:
    """A token in Authorization, or an Open311 api_key in the query string.

    An api_key in a form body comes only with POST, whose answer is no-store anyway; reading the body here
    could raise again (413) after the error handler has answered."""
    return "Authorization" in request.headers or "api_key" in request.args


def docs_csp(swagger_ui_url: str) -> str:
    """The docs page runs only scripts and styles from files (no inline code), from here or SWAGGER_UI_URL's host."""
    parts = urlsplit(swagger_ui_url)
    origin = f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return (
        "default-src 'none'; "
        f"script-src 'self'{origin}; style-src 'self'{origin}; "
        # Swagger UI's icons are data: URIs in its stylesheet; it fetches the spec and "Try it out" here.
        "img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def tile_origin(tile_url: str) -> str:
    """The origin a tile URL template loads from, as a CSP source: a templated first label ({s}.tile.example.org,
    webrd0{s}.is.autonavi.com) becomes the wildcard *.tile.example.org; "" without a URL."""
    parts = urlsplit(tile_url)
    if not (parts.scheme and parts.netloc):
        return ""
    host = parts.netloc
    first, dot, rest = host.partition(".")
    if "{" in first and dot:
        host = f"*.{rest}"
    if "{" in host or "}" in host:
        return ""  # a template elsewhere in the host cannot be expressed: no tiles rather than any host
    return f"{parts.scheme}://{host}"


def console_csp(tile_url: str) -> str:
    """The console runs only its own bundle (no inline code) and talks only to this service; images are its own,
    photos it fetched (blob:) and, when configured, the base map's tiles."""
    origin = tile_origin(tile_url)
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob:{' ' + origin if origin else ''}; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def page_csp() -> str:
    if request.endpoint == DOCS_PAGE_ENDPOINT:
        return docs_csp(current_app.config["SWAGGER_UI_URL"])
    if request.blueprint == CONSOLE_BLUEPRINT:
        return console_csp(current_app.config["CONSOLE_TILE_URL"])
    return DATA_CSP


def set_security_headers(response: Response) -> Response:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Content-Security-Policy"] = page_csp()
    # Overrides whatever a view chose: an answer to a credentialed request is that caller's alone, and a
    # shared machine's browser or an intermediary must not keep it (photos included, see the README).
    if request.method not in SAFE_METHODS or carries_credentials():
        headers["Cache-Control"] = "no-store"
    return response
