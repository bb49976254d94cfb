"""gunicorn settings read by scripts/run.sh (and by any `gunicorn` started here): logs without credentials."""

import os

from gunicorn.glogging import Logger

from app.redaction import add_filter_once, redact_atoms


class RedactingLogger(Logger):
    """The access log's atoms and every error-log line go through app.redaction, so an Open311 api_key in a query
    string, a token or a phone number never reaches the logs, whatever access_log_format picks."""

    def setup(self, cfg):
        super().setup(cfg)
        # gunicorn logs "Error handling request <uri>", query string included, on its error log.
        for log in (self.error_log, self.access_log):
            add_filter_once(log, os.environ.get("PHONE_PATTERN"))

    def atoms(self, resp, req, environ, request_time):
        return redact_atoms(super().atoms(resp, req, environ, request_time), os.environ.get("PHONE_PATTERN"))


logger_class = RedactingLogger
