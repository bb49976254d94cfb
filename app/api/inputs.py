"""Input checks run once per request, before any view: readable JSON and forms; no NUL or lone surrogate in any text;
no query parameter an /api/v1 operation does not declare."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import flask_smorest
from flask import current_app, request

from app.api.openapi import API_PREFIX
from app.errors import MalformedForm, MalformedJSON, ValidationFailed
from app.lib.i18n import tr

# Our deepest body (a grid import's MultiPolygon in a Feature in a FeatureCollection) is 8 levels; a cap far below
# the interpreter's recursion limit keeps every later walk of the body (schemas, JSON columns) safe too.
MAX_JSON_DEPTH = 64
# PostgreSQL text cannot hold NUL, and a lone surrogate cannot be encoded in UTF-8 for any database or answer.
BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
TEXT_ERROR = tr("Text may not contain NUL characters or unpaired surrogates.")
FORM_MIMETYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}


def check_inputs() -> None:
    """before_request: one rule for the text of the query, the form fields, the path and the JSON body."""
    # The names go back in the answer, which must itself be valid UTF-8.
    bad = list(dict.fromkeys(BAD_TEXT.sub("\ufffd", name)[:100] for name, text in _texts() if BAD_TEXT.search(text)))
    if bad:
        raise ValidationFailed(
            tr("Text may not contain NUL characters or unpaired surrogates. See: {names}.", names=", ".join(bad)),
            errors={name: [TEXT_ERROR] for name in bad},
        )


def check_query_names(handler: Callable | None) -> None:
    """before_request: an /api/v1 operation takes only the query parameters its schema declares. Any other is a
    mistake the caller must hear of (an ignored ?case_number= would answer every case): 422 naming it.

    Open311 (its own prefix) ignores parameters it does not know, as its clients expect; the docs pages and the
    OpenAPI document are not operations."""
    if not request.args or handler is None or not request.path.startswith(f"{API_PREFIX}/"):
        return
    if not isinstance(current_app.blueprints.get(request.blueprint or ""), flask_smorest.Blueprint):
        return
    unknown = [name for name in dict.fromkeys(request.args) if name not in declared_query_names(handler)]
    if unknown:
        shown = [BAD_TEXT.sub("\ufffd", name)[:100] for name in unknown]
        raise ValidationFailed(
            tr("Unknown query parameter: {names}.", names=", ".join(shown)),
            errors={name: [tr("Unknown query parameter.")] for name in shown},
        )
    # No parameter takes a list by repetition (several values are comma-separated, status=a,b): a second
    # status=... would otherwise be dropped without a word, and the caller would read a wrong answer as right.
    repeated = [name for name, values in request.args.lists() if len(values) > 1]
    if repeated:
        raise ValidationFailed(
            tr(
                "Each query parameter is given once (several values: comma-separated): {names}.",
                names=", ".join(repeated),
            ),
            errors={name: [tr("Given more than once; send one value or a comma-separated list.")] for name in repeated},
        )


@functools.cache
def declared_query_names(handler: Callable) -> frozenset[str]:
    """The parameters of the handler's @blp.arguments(..., location="query") schemas, by their names in the URL."""
    names: set[str] = set()
    for parameter in getattr(handler, "_apidoc", {}).get("arguments", {}).get("parameters", []):
        schema = parameter.get("schema")
        if parameter.get("in") != "query" or schema is None:
            continue
        schema = schema() if isinstance(schema, type) else schema
        names.update(field.data_key or name for name, field in schema.fields.items() if not field.dump_only)
    return frozenset(names)


def _texts() -> Iterator[tuple[str, str]]:
    """(name, text) of every key and string value the request carries."""
    sources = [request.args]
    if request.mimetype in FORM_MIMETYPES:
        sources.append(request.form)
    for source in sources:
        for key, values in source.lists():
            if not isinstance(key, str):
                # Werkzeug names a multipart part whose Content-Disposition it cannot read None; nothing after
                # this (schemas, the Idempotency-Key fingerprint) can take a nameless field.
                raise MalformedForm(tr("A part of the form has no name that can be read."))
            yield key, key
            yield from ((key, value) for value in values if isinstance(value, str))
    for key, value in (request.view_args or {}).items():
        if isinstance(value, str):
            yield key, value
    if request.is_json and (request.content_length or request.headers.get("Transfer-Encoding")):
        yield from _json_texts(parse_json_body())


def parse_json_body() -> Any:
    """The body parsed once here, so a malformed or over-deep one is 400 malformed_json whatever the view."""
    try:
        body = json.loads(request.get_data(cache=True))
    except RecursionError:
        raise MalformedJSON(tr("The JSON body is nested deeper than {depth} levels.", depth=MAX_JSON_DEPTH)) from None
    except ValueError:
        raise MalformedJSON() from None
    return body


def _json_texts(body: Any) -> Iterator[tuple[str, str]]:
    """Walks the body without recursion (its depth is checked on the way), path names joined by dots."""
    stack: list[tuple[Any, str, int]] = [(body, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise MalformedJSON(tr("The JSON body is nested deeper than {depth} levels.", depth=MAX_JSON_DEPTH))
        if isinstance(value, str):
            yield path or "_body", value
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{path}.{key}" if path else key
                yield name, key
                stack.append((item, name, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}.{i}" if path else str(i), depth + 1) for i, item in enumerate(value))
