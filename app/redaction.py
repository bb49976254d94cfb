"""Credentials and phone numbers kept out of logs: one redact() for the app's, werkzeug's and gunicorn's logs."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

MASK = "[redacted]"
DEFAULT_PHONE_PATTERN = r"1[3-9]\d{9}"
# Query or form parameters whose values are credentials, by their decoded name: api_key=…, password=…,
# refresh_token=…, client_secret=…
SECRET_PARAM = re.compile(r"api_?key|.*password|.*token|.*secret", re.IGNORECASE)
# A query string inside a line of text (a request line, a URL); it ends at white space or a quote.
QUERY = re.compile(r"\?([^\s\"'<>]*)")
PARAM_SEPARATOR = re.compile(r"([&;])")
# Credentials wherever they appear: an Authorization value, a JWT, an Open311 key (g311_…), a JSON member.
BEARER = re.compile(r"\b(Bearer|Basic)\s+[^\s\"',;]+", re.IGNORECASE)
JWT = re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*")
API_KEY = re.compile(r"\bg311_[\w-]+")
JSON_SECRET = re.compile(
    r"""(["'](?:api_?key|[\w-]*password|[\w-]*token|[\w-]*secret)["']\s*:\s*)(["'])(?:\\.|(?!\2).)*\2""", re.IGNORECASE
)
# The same member inside a JSON string that was itself serialised (a JSON log line's field holding a JSON body):
# its quotes arrive escaped, \"password\": \"...\".
ESCAPED_JSON_SECRET = re.compile(
    r"""(\\(["'])(?:api_?key|[\w-]*password|[\w-]*token|[\w-]*secret)\\\2\s*:\s*\\\2)"""
    # The value: its own escapes arrive doubled (\\\" for a quote in it), and it ends at the escaped quote.
    r"""(?:\\\\\\.|(?!\\\2).)*(\\\2)""",
    re.IGNORECASE,
)
# Headers whose whole value is a credential, as gunicorn names them in its access-log atoms.
SECRET_ATOMS = frozenset(
    {
        "{authorization}i",
        "{proxy-authorization}i",
        "{cookie}i",
        "{x-api-key}i",
        "{http_authorization}e",
        "{http_proxy_authorization}e",
        "{http_cookie}e",
        "{http_x_api_key}e",
    }
)


def phone_pattern(pattern: str | None = None) -> re.Pattern[str]:
    """Whole phone numbers (the accounts' PHONE_PATTERN), not digits inside a longer number such as a case number."""
    return re.compile(rf"(?<!\w)(?:{pattern or DEFAULT_PHONE_PATTERN})(?!\w)")


def redact_query(query: str) -> str:
    """A raw query string or form body with the values of credential parameters masked.

    Names are compared decoded, as Werkzeug reads them: api%5Fkey is api_key too."""
    parts = PARAM_SEPARATOR.split(query)
    for i in range(0, len(parts), 2):
        name, eq, _value = parts[i].partition("=")
        if eq and SECRET_PARAM.fullmatch(unquote_plus(name).strip()):
            parts[i] = f"{name}={MASK}"
    return "".join(parts)


def redact(text: str, phone: re.Pattern[str] | None = None) -> str:
    """Any line of log text with query-string credentials, tokens, keys and phone numbers masked."""
    text = QUERY.sub(lambda m: "?" + redact_query(m.group(1)), text)
    text = BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = ESCAPED_JSON_SECRET.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
    text = JSON_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}{m.group(2)}", text)
    text = JWT.sub(MASK, text)
    text = API_KEY.sub(MASK, text)
    return (phone or phone_pattern()).sub(MASK, text)


def is_clean(text: str, phone: re.Pattern[str] | None = None) -> bool:
    """Nothing in `text` that redact() would mask: a value a client chose (X-Request-ID) may be logged and echoed."""
    return redact(text, phone) == text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and traceback through redact(); never drops a record."""

    def __init__(self, phone: str | None = None) -> None:
        super().__init__()
        self.phone = phone_pattern(phone)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's own error to report, not ours
            return True
        clean = redact(message, self.phone)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            # What the formatter would write; formatted here so the traceback's text can be redacted too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.phone)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.phone)
        return True


def add_filter_once(target: logging.Logger | logging.Handler, phone: str | None = None) -> None:
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(RedactingFilter(phone))


def install(phone: str | None = None) -> None:
    """The app's loggers write through the root logger's handlers; werkzeug's development server logs every
    request line (query string included) on its own logger. A filter on a logger sees only the records logged
    on it, so the root's handlers get one (for every module's logger) and the werkzeug logger another."""
    for handler in logging.getLogger().handlers:
        add_filter_once(handler, phone)
    add_filter_once(logging.getLogger("werkzeug"), phone)


def redact_atoms(atoms: dict, phone: str | None = None) -> dict:
    """gunicorn's access-log atoms with credentials masked, whatever access_log_format picks from them:
    the request line (%(r)s), the bare query string (%(q)s), the referer, headers and environ values."""
    pattern = phone_pattern(phone)
    clean = {}
    for name, value in atoms.items():
        if name in SECRET_ATOMS:
            value = MASK
        elif name in ("q", "{query_string}e"):
            value = pattern.sub(MASK, redact_query(value or ""))
        elif isinstance(value, str):
            value = redact(value, pattern)
        clean[name] = value
    return clean
