"""Prometheus metrics of the impression log, and its rate-limited warnings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger("service.impressions")
WARN_INTERVAL = 60.0
# Why records are lost: the queue was full (the writer fell behind), the disk is full, the directory
# cannot be written, the object store kept refusing uploads past the spool's bound, or (a bug) a
# record held a value Arrow could not convert.
REASONS = ("queue_full", "disk_full", "unwritable", "store_error", "invalid")


class LogMetrics:
    """`ranker_log_dropped_total{reason}`, `ranker_log_records_total`, `ranker_log_queue_depth`."""

    def __init__(self, registry: CollectorRegistry, queue_depth: Callable[[], int]) -> None:
        r = registry
        self.dropped = Counter("ranker_log_dropped", "Impression records (ranked responses) lost, by reason",
                               ["reason"], registry=r)
        for reason in REASONS:  # every reason exported from the start, so alerts see a 0 before the first loss
            self.dropped.labels(reason=reason)
        self.records = Counter("ranker_log_records", "Impression records written to the log's segments", registry=r)
        self.queue_depth = Gauge("ranker_log_queue_depth", "Records waiting for the log writer", registry=r)
        self.queue_depth.set_function(queue_depth)


class Warnings:
    """At most one warning line per reason per `interval` seconds, saying how many were lost since the last."""

    def __init__(self, interval: float = WARN_INTERVAL, logger: logging.Logger = log,
                 what: str = "impression log", lost: str = "records lost", counted: str = "ranker_log_dropped_total"
                 ) -> None:
        self.interval = interval
        self._log, self._what, self._lost, self._counted = logger, what, lost, counted
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def warn(self, reason: str, message: str, records: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._since[reason] = self._since.get(reason, 0) + records
            last = self._last.get(reason)
            if last is not None and now - last < self.interval:
                return
            self._last[reason] = now
            lost, self._since[reason] = self._since[reason], 0
        self._log.warning("%s: %s (%d %s since the last warning for %s; counted in %s)", self._what, message, lost,
                          self._lost, reason, self._counted, extra={"reason": reason, "lost": lost})
