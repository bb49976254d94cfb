"""Prometheus metrics, defined once: gunicorn's workers and the sweeps share them through PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import event
from sqlalchemy.engine import Engine

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client chose files or memory when it was imported (just above): the scrape reads what it chose.
_MULTIPROC_DIR = os.environ.get(MULTIPROC_ENV) or None
if _MULTIPROC_DIR:
    # Metrics without labels open their file as they are defined, below.
    os.makedirs(_MULTIPROC_DIR, exist_ok=True)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# ---- requests (each worker writes its own file; a scrape sums them) ------------------------------------------------

HTTP_REQUESTS = Counter(
    "grid_http_requests_total",
    "Requests answered, by route template (the URL rule, not the path), method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "grid_http_request_duration_seconds",
    "Time from routing to the answer, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

# ---- escalation sweeps (flask escalate, another process: same directory) ------------------------------------------

SWEEPS = Counter("grid_escalation_sweeps_total", "Escalation sweeps run to their end.")
SWEEP_DURATION = Histogram(
    "grid_escalation_sweep_duration_seconds",
    "Wall time of one escalation sweep, every batch included.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
# max over every process that ever wrote it: a sweep that ran and exited (cron) still counts until a restart.
SWEEP_LAST = Gauge(
    "grid_escalation_last_sweep_timestamp_seconds",
    "Unix time at which the last escalation sweep finished.",
    multiprocess_mode="max",
)
SWEEP_CLAIMED = Counter(
    "grid_escalation_cases_claimed_total", "Cases the sweeps claimed (escalated + critical + reminded)."
)
SWEEP_ESCALATED = Counter("grid_escalation_cases_escalated_total", "Cases moved one level up the grid.")
SWEEP_CRITICAL = Counter("grid_escalation_cases_critical_total", "Cases marked critical (red).")
SWEEP_REMINDED = Counter("grid_escalation_cases_reminded_total", "Yellow cases whose assignees were reminded.")
SWEEP_NOTIFICATIONS = Counter("grid_escalation_notifications_total", "Notifications the sweeps wrote.")

# ---- the database pool of each live process, summed -----------------------------------------------------------------

POOL_CHECKED_OUT = Gauge(
    "grid_db_pool_checked_out",
    "Database connections checked out of the SQLAlchemy pools (in use), summed over live processes.",
    multiprocess_mode="livesum",
)
POOL_CAPACITY = Gauge(
    "grid_db_pool_capacity",
    "Connections the SQLAlchemy pools may hold (pool_size + max_overflow), summed over live processes.",
    multiprocess_mode="livesum",
)


def multiprocess_dir() -> str | None:
    return _MULTIPROC_DIR


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_DURATION.labels(route, method).observe(seconds)


def observe_sweep_batch(escalated: int, critical: int, reminded: int, notifications: int) -> None:
    SWEEP_CLAIMED.inc(escalated + critical + reminded)
    SWEEP_ESCALATED.inc(escalated)
    SWEEP_CRITICAL.inc(critical)
    SWEEP_REMINDED.inc(reminded)
    SWEEP_NOTIFICATIONS.inc(notifications)


def observe_sweep(seconds: float) -> None:
    SWEEPS.inc()
    SWEEP_DURATION.observe(seconds)
    SWEEP_LAST.set(time.time())


def watch_pool(engine: Engine) -> None:
    """Keep this process's pool figures current: set on every checkout and checkin, read from the pool itself."""
    pool = engine.pool
    if not hasattr(pool, "checkedout"):
        return  # SingletonThreadPool, NullPool: nothing pooled to measure
    POOL_CAPACITY.set(pool.size() + max(getattr(pool, "_max_overflow", 0), 0))

    def update(*_args) -> None:
        POOL_CHECKED_OUT.set(pool.checkedout())

    if not event.contains(pool, "checkout", update):
        event.listen(pool, "checkout", update)
        event.listen(pool, "checkin", update)


class _Proxy(Collector):
    """This process's registry, as a collector of another registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


class _Gauges(Collector):
    def __init__(self, read: Callable[[], Iterable[tuple[str, str, float]]]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        for name, doc, value in self.read():
            yield GaugeMetricFamily(name, doc, value=value)


def render(scrape_gauges: Callable[[], Iterable[tuple[str, str, float]]]) -> bytes:
    """The exposition text: every process's metrics (or this one's alone), and gauges read now, at the scrape."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Proxy(REGISTRY))
    registry.register(_Gauges(scrape_gauges))
    return generate_latest(registry)


# ---- the multiprocess directory's life (gunicorn.conf.py's hooks) --------------------------------------------------


def clean_dead_files(directory: str) -> int:
    """Delete the files of processes no longer running (a previous server's workers, finished sweeps).

    A process still running (a sweep started beside this server) keeps its file, so nothing it counts is lost."""
    removed = 0
    for path in Path(directory).glob("*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_process_dead(pid: int) -> None:
    """A worker that exited: its live gauges (pool figures) stop counting; its counters stay in the sums."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)
