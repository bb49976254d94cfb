"""What every blueprint's OpenAPI documentation shares: the prefix, the bearer scheme, the If-Match header."""
from __future__ import annotations

from copy import deepcopy

API_PREFIX = "/api/v1"
BEARER = [{"bearerAuth": []}]


def documents_if_match(required: bool):
    """Declare the If-Match header of a case action, so clients and the fuzz know to send the case's ETag."""
    parameter = {"in": "header", "name": "If-Match", "required": required, "schema": {"type": "string"},
                 "description": "The case's ETag from GET /reports/{id}, e.g. \"3\"" + ("." if required else
                                                                                     "; optional here.")}

    def mark(view):
        # Beside the parameters @idempotent and the arguments add: a manual doc's list would replace theirs.
        view._apidoc = deepcopy(getattr(view, "_apidoc", {}))
        view._apidoc.setdefault("arguments", {}).setdefault("parameters", []).append(parameter)
        return view

    return mark
