"""gunicorn settings read by scripts/run.sh (and by any `gunicorn` started here): logs without credentials, and
one Prometheus directory that every worker (and a sweep given the same PROMETHEUS_MULTIPROC_DIR) writes to."""

import os
from pathlib import Path

from gunicorn.glogging import Logger

# Before anything imports prometheus_client (app/__init__.py does, below): it picks per-process files or memory
# once, at import. Without the directory each worker would count alone and a scrape would see one of them.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    str(Path(os.environ.get("INSTANCE_PATH") or Path(__file__).resolve().parent / "instance") / "prometheus"),
)

from app import metrics  # noqa: E402
from app.redaction import add_filter_once, redact_atoms  # noqa: E402


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

# Clients (and a proxy in front) keep their connection between requests with the threaded and gevent workers; sync
# workers close it after each answer whatever this says. A few seconds: longer than a proxy's reuse gap, shorter
# than its idle timeout. The worker class and count: bench/README.md, "Issue 13: the write path".
keepalive = int(os.environ.get("WEB_KEEPALIVE_S", "5"))
# sync by default (the embedded SpatiaLite has one writer); on PostgreSQL WEB_WORKER_CLASS=gthread WEB_THREADS=4
# measured a little ahead (bench/README.md). Command-line flags (the benches') take precedence.
worker_class = os.environ.get("WEB_WORKER_CLASS", "sync")
threads = int(os.environ.get("WEB_THREADS", "1"))


def on_starting(server):
    """A previous server's workers left their files: counters start again from zero (Prometheus reads that as a
    restart). Files of processes still running (a sweep started beside this server) stay."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    metrics.clean_dead_files(directory)


def child_exit(server, worker):
    """A worker gone (restarted, killed): its pool gauges leave the live sums; its counters stay counted."""
    metrics.mark_process_dead(worker.pid)
