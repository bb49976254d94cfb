"""The orjson provider (app.lib.fastjson) answers what Flask's json-module provider answers."""

from __future__ import annotations

import dataclasses
import decimal
import enum
import json
import uuid
from datetime import UTC, date, datetime

from flask.json.provider import DefaultJSONProvider

from app.lib.fastjson import FastJSONProvider


class Colour(str, enum.Enum):
    red = "red"


@dataclasses.dataclass
class Pair:
    left: int
    right: str


VALUES = [
    {"b": 1, "a": [1.5, 0.1, 1e16, 1e-7, -0.0, 2**63 - 1], "中文": "网格 ✓", "none": None, "t": True},
    {"when": datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC), "day": date(2026, 11, 28)},
    {"money": decimal.Decimal("1.10"), "id": uuid.UUID(int=7), "pair": Pair(1, "x"), "colour": Colour.red},
    {1: "int key", 2: "sorted by value"},
    {"big": 2**70, "text": "line\u2028break"},
    [("tuple", 1), {"nested": {"z": 1, "a": 2}}],
]


def test_every_value_encodes_to_what_the_json_module_gives(app):
    ours, theirs = FastJSONProvider(app), DefaultJSONProvider(app)
    ours.ensure_ascii = theirs.ensure_ascii = False
    for value in VALUES:
        assert json.loads(ours.dumps(value)) == json.loads(theirs.dumps(value))
    # Dates stay HTTP dates, as Flask writes them (orjson's own would be ISO 8601).
    assert json.loads(ours.dumps(VALUES[1]))["day"] == "Sat, 28 Nov 2026 00:00:00 GMT"
    # Keys sorted and no spaces, as the compact answer was; non-ASCII text as it is.
    assert ours.dumps({"b": 1, "a": "网格"}) == '{"a":"网格","b":1}'


def test_what_neither_can_encode_is_refused_alike(app):
    ours = FastJSONProvider(app)
    for value in ({"s": {1, 2}}, {"o": object()}):
        for provider in (ours, DefaultJSONProvider(app)):
            try:
                provider.dumps(value)
            except TypeError:
                continue
            raise AssertionError(f"{type(provider).__name__} encoded {value!r}")


def test_an_answer_is_encoded_by_the_app_s_provider(app, client):
    assert isinstance(app.json, FastJSONProvider)
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_data(as_text=True) == '{"status":"ok"}\n'


def test_debug_answers_stay_indented(app):
    provider = FastJSONProvider(app)
    provider.compact = False
    with app.test_request_context():
        body = provider.response({"b": 1, "a": 2}).get_data(as_text=True)
    assert body == '{\n  "a": 2,\n  "b": 1\n}\n'
