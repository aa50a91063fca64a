"""The feedback log of one server process: durable appends, rolled to Parquet beside the impressions.

    request (a worker thread):  append(batch) -> drop event_ids seen before -> one Arrow batch
                                -> the open segment (IPC stream) -> fsync -> return (then the 200)
    roller thread:              every flush interval: a segment past roll_seconds / roll_bytes is closed,
                                compacted to Parquet (temp, fsync, rename) and published (rename / one PUT);
                                every roll interval: recovery of dead writers' segments, as the impression log

Files: `<RANKER_LOG_DIR>/feedback/date=YYYY-MM-DD/hour=HH/part-...-<replica>-p<pid>.parquet` with
FEEDBACK_SCHEMA's columns, partitioned by the time the server received the batch (an event's `ts` may
be earlier). The segment machinery is the impression log's (service/impressions/segments.py, its table
`feedback`), so a kill -9 loses nothing that was answered 200: the batch was fsynced in the segment,
and the next process of this replica (or any replica, once the segment is stale) compacts it.

For an s3:// destination the 200 means "fsynced in the local spool" (RANKER_LOG_SPOOL_DIR, which must
then be a volume that outlives the pod); the roll uploads it as the impression log's files are.

Idempotence: within a process the last `dedup_ids` event ids are remembered, and an event whose id
was written before is skipped (counted as a duplicate), so a retried batch is not written twice.
Across processes (a retry that reaches another replica, a restart) `ranker logs join` deduplicates
by event_id.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from service.contract.feedback import FEEDBACK_SCHEMA
from service.errors import FeedbackWriteFailed
from service.feedback.events import Batch
from service.feedback.metrics import FeedbackMetrics
from service.impressions import segments
from service.impressions.config import LogConfig
from service.impressions.metrics import Warnings
from service.impressions.writer import open_destination

log = logging.getLogger("service.feedback")
TABLE = "feedback"


@dataclass(frozen=True)
class Appended:
    events: list[str]  # the names of the events written (durable), in order
    duplicates: int  # events skipped: their event_id was written before

    @property
    def accepted(self) -> int:
        return len(self.events)


class FeedbackLog(segments.SegmentSteps):
    """Durable feedback appends for one process. `start` / `stop` run in the app's lifespan.

    Args:
        config: the impression log's settings (destination, roll interval and size, spool, replica).
        metrics: the feedback metrics (write failures are counted here).
        dedup_ids: how many recent event ids are remembered for idempotence.
    """

    table = TABLE
    what = "feedback log"

    def __init__(self, config: LogConfig, metrics: FeedbackMetrics, dedup_ids: int = 100_000) -> None:
        self.config = config
        self.metrics = metrics
        self.sink, self.spool = open_destination(config)
        self.owner = segments.owner_tag(config.replica or socket.gethostname(), os.getpid())
        self.dedup_ids = dedup_ids
        self.warnings = Warnings(logger=log, what="feedback log", lost="events refused (503)",
                                 counted="ranker_feedback_write_failures_total")
        self._lock = threading.Lock()  # one append at a time: the segment is one stream
        self._segment: segments.Segment | None = None
        self._closed: list[Path] = []  # closed segments the roller compacts and publishes
        self._seq = 0
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the request side (a worker thread, never the event loop) ------------------------------------
    def append(self, batch: Batch) -> Appended:
        """Write the batch's new events and fsync them; FeedbackWriteFailed when that fails (nothing is
        remembered as written, so the retry writes it)."""
        received_ms = time.time_ns() // 1_000_000
        with self._lock:
            keep: list[int] = []
            fresh: dict[str, None] = {}  # ordered: the oldest ids are forgotten first
            for i, event_id in enumerate(batch.event_id):
                if event_id is None:
                    keep.append(i)
                elif event_id not in self._recent and event_id not in fresh:
                    fresh[event_id] = None
                    keep.append(i)
            if keep:
                self._write(batch.record_batch(received_ms, keep), received_ms)
                self._remember(fresh)
        return Appended([batch.event[i] for i in keep], len(batch) - len(keep))

    def _write(self, rows: pa.RecordBatch, received_ms: int) -> None:
        try:
            segment = self._segment_for(segments.partition(received_ms / 1000))
            segment.write(rows)
            segment.sync()
        except OSError as e:
            self._abandon_segment()
            self.metrics.write_failures.inc()
            self.warnings.warn("unwritable", f"cannot write feedback to {self.spool}: {e}", rows.num_rows)
            raise FeedbackWriteFailed(f"the feedback batch could not be made durable ({e.strerror or e}); "
                                      "nothing was acknowledged, retry it") from e

    def _remember(self, event_ids: dict[str, None]) -> None:
        for event_id in event_ids:
            self._recent[event_id] = None
        while len(self._recent) > self.dedup_ids:
            self._recent.popitem(last=False)

    def _segment_for(self, part: str) -> segments.Segment:
        current = self._segment
        if current is not None and current.part == part:
            return current
        if current is not None:  # a new hour: the roller compacts the old one
            self._close_current()
        self._seq += 1
        self._segment = segments.Segment(self.spool, part, segments.new_stem(self.owner, self._seq),
                                         FEEDBACK_SCHEMA, table=TABLE)
        return self._segment

    def _close_current(self) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        try:
            segment.close()
        except OSError as e:
            self.warnings.warn("unwritable", f"closing {segment.path} failed ({e}); recovered later", 0)
            return
        self._closed.append(segment.path)

    # -- lifecycle and the roller thread -------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="feedback-log", daemon=True)
        self._thread.start()
        log.info("feedback log on", extra={"destination": self.sink.location, "spool": str(self.spool),
                                           "owner": self.owner})

    def stop(self, timeout: float = 10.0) -> None:
        """Roll the open segment and publish what is closed (after the last request)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            self._close_current()
        self._finish_closed()

    def _run(self) -> None:
        self._recover()
        next_recover = time.monotonic() + self.config.roll_seconds
        while not self._stop.wait(min(self.config.flush_seconds, 1.0)):
            with self._lock:
                s = self._segment
                if s is not None and (s.bytes >= self.config.roll_bytes
                                      or time.monotonic() - s.opened >= self.config.roll_seconds):
                    self._close_current()
            self._finish_closed()
            if time.monotonic() >= next_recover:
                self._recover()
                next_recover = time.monotonic() + self.config.roll_seconds

    def _finish_closed(self) -> None:
        with self._lock:
            closed, self._closed = self._closed, []
        for path in closed:
            self._finish(path)

    def _recover(self) -> None:
        """Compact and publish what dead writers (or this one, after a failure) left in the spool."""
        with self._lock:  # the open segment cannot change while the list is made (it would look dead)
            keep = set(self._closed) | ({self._segment.path} if self._segment is not None else set())
            try:
                stale, ready = segments.leftovers(self.spool, self.owner, self.config.stale_seconds(), keep,
                                                  table=TABLE)
            except OSError as e:
                self.warnings.warn("unwritable", f"cannot list {self.spool}: {e}", 0)
                return
        segments.take_over(stale, ready, self.owner, self._finish, self._publish, "feedback log")
