"""Answers to a category's Open311 attribute definitions: one validation for Open311 POST and POST /reports."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app

from app.errors import AttributeRejected, DomainError
from app.lib.i18n import Message, tr
from app.models import Category
from app.models.base import TIME_RANGE_ERROR, within_time_range

MAX_TEXT = 4000
MAX_STRING = 1000


def inputs(category: Category) -> list[dict[str, Any]]:
    """The attributes a reporter answers (variable=false ones are only shown to them)."""
    return [a for a in category.attributes or [] if a.get("variable", True)]


def parse_w3c(name: str, raw: str, error: Callable[[Message], DomainError]) -> datetime:
    """A W3C datetime; without an offset it is read in TIMEZONE. A bad one raises `error(detail)`."""
    # An unencoded "+08:00" in a query string arrives as " 08:00".
    text = raw.strip().replace(" ", "+") if "T" in raw else raw.strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise error(tr("{name} must be a W3C datetime such as 2026-11-26T09:30:00+08:00.", name=name)) from None
    if not within_time_range(value):
        raise error(tr("{name}: {problem}", name=name, problem=TIME_RANGE_ERROR))
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(current_app.config["TIMEZONE"]))
    return value


def _value(attr: dict[str, Any], values: list[str]) -> Any:
    code, datatype = attr["code"], attr["datatype"]

    def rejected(detail: Message) -> AttributeRejected:
        return AttributeRejected(code, detail)

    if datatype == "multivaluelist":
        allowed = {v["key"] for v in attr["values"]}
        bad = [v for v in values if v not in allowed]
        if bad:
            raise rejected(
                tr("attribute[{code}] has values not in its list: {values}.", code=code, values=", ".join(bad))
            )
        return list(dict.fromkeys(values))
    if len(values) > 1:
        raise rejected(tr("attribute[{code}] takes one value.", code=code))
    value = values[0]
    if datatype == "singlevaluelist":
        if value not in {v["key"] for v in attr["values"]}:
            raise rejected(tr("attribute[{code}] must be one of the keys of its list.", code=code))
        return value
    if datatype == "number":
        try:
            number = float(value)
        except ValueError:
            raise rejected(tr("attribute[{code}] must be a number.", code=code)) from None
        if not math.isfinite(number):
            raise rejected(tr("attribute[{code}] must be a finite number.", code=code))
        return int(number) if number.is_integer() and re.fullmatch(r"[+-]?\d+", value) else number
    if datatype == "datetime":
        return parse_w3c(f"attribute[{code}]", value, rejected).isoformat()
    limit = MAX_TEXT if datatype == "text" else MAX_STRING
    if len(value) > limit:
        raise rejected(tr("attribute[{code}] is longer than {limit} characters.", code=code, limit=limit))
    return value


def answers(category: Category, sent: Mapping[str, list[str]]) -> dict[str, Any] | None:
    """The answers to store (Report.attributes), from the values sent by attribute code (empty values are not
    answers); AttributeRejected for an unknown code, a missing required answer or a value its datatype refuses."""
    sent = {code: [v for v in values if v != ""] for code, values in sent.items()}
    sent = {code: values for code, values in sent.items() if values}
    by_code = {a["code"]: a for a in inputs(category)}
    unknown = sorted(set(sent) - set(by_code))
    if unknown:
        raise AttributeRejected(
            unknown, tr("Service {code} has no attribute {names}.", code=category.code, names=", ".join(unknown))
        )
    found = {}
    for code, attr in by_code.items():
        if code in sent:
            found[code] = _value(attr, sent[code])
        elif attr.get("required"):
            raise AttributeRejected(
                code, tr("attribute[{code}] is required: {description}", code=code, description=attr["description"])
            )
    return found or None
