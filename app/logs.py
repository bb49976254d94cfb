"""Log lines as JSON or text (LOG_FORMAT), each carrying the request id (or a sweep's run id), redacted whole."""

from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from app.redaction import is_clean, phone_pattern, redact

LOG_FORMATS = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
# A client's X-Request-ID is kept when it is this: bounded, and nothing that could break a log line or a header.
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# The request being served, or the sweep run being logged; "-" outside both.
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# Attributes every LogRecord has; anything else on a record came from `extra=` and goes into the JSON line.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(sent: str | None, phone: str | None = None) -> str:
    """The client's X-Request-ID when it is safe to log and echo (short, plain, no phone number or key), else a
    fresh one."""
    if sent and REQUEST_ID.fullmatch(sent) and is_clean(sent, phone_pattern(phone)):
        return sent
    return new_request_id()


class RequestIdFilter(logging.Filter):
    """Every record gets request_id, so a format or the JSON line can name it, whoever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id.get() or "-"
        return True


class RedactedJsonFormatter(JsonFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id and the record's extras.

    The finished line goes through redact() once more: extras (a route, a user agent) are not the message, so the
    RedactingFilter on the handler does not see them."""

    def __init__(self, phone: str | None = None) -> None:
        super().__init__(json_ensure_ascii=False)
        self.phone = phone_pattern(phone)

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_record["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        log_record["level"] = record.levelname.lower()
        log_record["logger"] = record.name
        log_record["message"] = record.getMessage()
        log_record["request_id"] = getattr(record, "request_id", None) or current_request_id.get()
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRS and name not in log_record and not name.startswith("_"):
                log_record[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            log_record["exc_info"] = record.exc_text
        log_record.update(message_dict)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.phone)


class RedactedTextFormatter(logging.Formatter):
    def __init__(self, phone: str | None = None) -> None:
        super().__init__(TEXT_FORMAT)
        self.phone = phone_pattern(phone)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get() or "-"
        return redact(super().format(record), self.phone)


def formatter(log_format: str, phone: str | None = None) -> logging.Formatter:
    return RedactedJsonFormatter(phone) if log_format == "json" else RedactedTextFormatter(phone)


class _AppHandler(logging.StreamHandler):
    """The one stderr handler configure() puts on the root logger (found again by its class on a second call)."""


def app_logging_configured() -> bool:
    return any(isinstance(h, _AppHandler) for h in logging.getLogger().handlers)


def configure(level: str, log_format: str, phone: str | None = None) -> None:
    """The root logger writes to stderr in LOG_FORMAT; every handler it has (pytest's too) gets the request id.

    A host's own handlers (gunicorn's error log) stay as they are; the app's loggers propagate to the root."""
    root = logging.getLogger()
    root.setLevel(level)
    handler = next((h for h in root.handlers if isinstance(h, _AppHandler)), None)
    if handler is None:
        handler = _AppHandler(sys.stderr)
        root.addHandler(handler)
    handler.setFormatter(formatter(log_format, phone))
    for each in root.handlers:
        if not any(isinstance(f, RequestIdFilter) for f in each.filters):
            each.addFilter(RequestIdFilter())
