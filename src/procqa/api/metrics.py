"""Observability: the Prometheus metrics of one app, and logs written as JSON lines.

Each app owns its registry, so a process (or a test session) can build many apps without
their counters colliding. Nothing here speaks HTTP: api.py observes each request and
serves the exposition text.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# Labels take only known values, so a client cannot grow the number of series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when it is imported


@dataclass(frozen=True)
class IndexFacts:
    """What the metrics report about the index version being served."""

    version: str
    model: str
    procedures: int
    passages: int


class IndexCollector(Collector):
    """Reads the served index at scrape time, so a reload shows in the next scrape."""

    def __init__(self, facts: Callable[[], IndexFacts | None]) -> None:
        self._facts = facts

    def collect(self) -> Iterable[Metric]:
        facts = self._facts()
        yield GaugeMetricFamily(
            "procqa_index_ready", "1 while an index is served, else 0.", value=int(facts is not None)
        )
        if facts is None:
            return
        yield InfoMetricFamily(
            "procqa_index", "The index version being served.", value={"version": facts.version, "model": facts.model}
        )
        yield GaugeMetricFamily("procqa_index_procedures", "Procedures in the served index.", value=facts.procedures)
        yield GaugeMetricFamily("procqa_index_passages", "Passages in the served index.", value=facts.passages)


class Metrics:
    """The registry of one app and the instruments its requests are recorded in."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, *, version: str, index: Callable[[], IndexFacts | None]) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "route", "status")
        self.requests = Counter(
            "procqa_http_requests",
            "HTTP requests answered, by method, route template and status.",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "procqa_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        build = Info("procqa_build", "The procqa build serving.", registry=self.registry)
        build.info({"version": version})
        facts = IndexCollector(index)
        self.registry.register(facts)
        self._own: tuple[Collector, ...] = (build, facts)  # what each process reports for itself

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one answered request; `route` is the route's template, never the raw path."""
        labels = (method if method in METHODS else "other", route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def render(self) -> bytes:
        """Everything in the registry, in the Prometheus text format. Under `procqa serve
        --workers` (PROMETHEUS_MULTIPROC_DIR set), requests and latency are summed over every
        worker, from the files each writes there; the build and the index are this worker's."""
        folder = os.environ.get(MULTIPROCESS)
        if not folder:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
        for collector in self._own:
            registry.register(collector)
        return generate_latest(registry)


def share_metrics(folder: str) -> None:
    """Record metrics in `folder`, where every worker process writes and /metrics reads them
    all: set before the app is built (prometheus_client chooses how values are kept when it is
    imported, so that choice is made again here)."""
    from prometheus_client import values

    os.environ[MULTIPROCESS] = folder
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


# Logs

RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger and message, plus any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((key, value) for key, value in vars(record).items() if key not in RECORD_FIELDS)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


@contextmanager
def json_logs(name: str = "procqa", *, stream: IO[str] | None = None) -> Iterator[logging.Handler]:
    """Write the records of logger `name` and its children as JSON lines while inside."""
    logger = logging.getLogger(name)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # else a root handler prints each record again, as plain text
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
