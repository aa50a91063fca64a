"""The impression log of one server process: a bounded queue and one writer thread.

    request thread:  offer() -> sampled? -> Impression (references) -> deque.append       (no I/O, no wake-up)
    writer thread:   every flush_seconds: the queued records -> one Arrow batch per (hour, layout)
                     -> the open segment (IPC stream, written to the OS at once)
                     on roll (hour or model layout changes, roll_bytes, roll_seconds, shutdown):
                     segment -> Parquet (temp, fsync, rename) -> published (rename / one PUT)

Losing the log never fails a ranking: a full queue, a full disk, an unwritable directory or an
object store that keeps refusing uploads drop records, counted in `ranker_log_dropped_total{reason}`
with one warning per reason per minute. A kill -9 loses what was queued or not yet flushed (at
most ~flush_seconds of traffic); the segments on disk are compacted by the next writer that starts
on the spool (service/impressions/segments.py).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prometheus_client import CollectorRegistry

from service.experiments import key_text
from service.impressions import segments
from service.impressions.columns import record_batch
from service.impressions.config import LogConfig
from service.impressions.failpoints import pause_point
from service.impressions.metrics import LogMetrics, Warnings
from service.impressions.record import Impression, LogLayout, build_layout, now, sampled
from service.impressions.sinks import LocalSink, ObjectSink, Sink, is_url

if TYPE_CHECKING:
    from service.contract.request import RankRequest
    from service.live.model import RankingModel
    from service.profiles import CompiledWeights

log = logging.getLogger("service.impressions")
# Records converted into one Arrow batch (per-batch costs shared; the writer holds the GIL between
# pyarrow's calls for a few hundred µs at most) and written before the next group is taken.
GROUP = 32
MAX_PENDING = 256
# Layouts kept for the model versions served lately (current, canary or shadow, the one before): a server
# that runs for months through nightly promotions does not keep every version's vocabularies.
MAX_LAYOUTS = 4  # published-later files kept in the spool while the object store refuses them


def open_destination(config: LogConfig) -> tuple[Sink, Path]:
    """(sink, local spool) of a destination: a directory is its own spool."""
    if not is_url(config.destination):
        root = Path(config.destination)
        return LocalSink(root), root
    spool = config.spool_dir or Path(os.environ.get("TMPDIR", "/tmp")) / "ranker-impressions-spool"
    return ObjectSink(config.destination), spool


class ImpressionLog(segments.SegmentSteps):
    """Records ranked responses off the request path. `start` / `stop` run in the app's lifespan."""

    def __init__(self, config: LogConfig, registry: CollectorRegistry) -> None:
        self.config = config
        self.sink, self.spool = open_destination(config)
        self.owner = segments.owner_tag(config.replica or socket.gethostname(), os.getpid())
        # The request threads append, the writer pops: a deque's append and popleft are atomic, and
        # unlike queue.Queue nothing wakes the writer per record (it wakes on its flush timer), so a
        # request never waits for the writer thread to take the GIL and go back to sleep.
        self._queue: deque[Impression] = deque()
        self._stopping = threading.Event()
        self.metrics = LogMetrics(registry, self._queue.__len__)
        self.warnings = Warnings()
        self._layouts: dict[tuple[str, int], LogLayout] = {}
        self._segment: segments.Segment | None = None
        self._seq = 0
        self._thread: threading.Thread | None = None

    # -- the request thread -------------------------------------------------------------------------
    def offer(self, request_id: str, model: RankingModel, weights: CompiledWeights, profile: str,
              arm: str | None, request: RankRequest, scores: np.ndarray, heads: dict[str, np.ndarray],
              order: np.ndarray, role: str = "current") -> None:
        """Queue one ranked response (a few µs; references only). A full queue drops it, counted.
        role: the model's (current, canary, or shadow: scored but not served)."""
        if not sampled(request_id, self.config.sample):
            return
        experiments = weights.weights.file.experiments
        key = experiments.key if experiments is not None else "user_id"
        record = Impression(
            now(), request_id, model.manifest.model_name, model.version, role, weights.generation, profile,
            experiments.name if experiments is not None else None, arm, key_text(request.user.get(key)),
            request.item_ids, order, scores, heads, request.columns, self._layout(model), request.codes)
        if len(self._queue) >= self.config.queue_size:  # one writer pops: the bound holds within a few records
            self._dropped("queue_full", 1, f"the queue of {self.config.queue_size} records is full "
                                           "(the writer is behind: slow disk or store)")
            return
        self._queue.append(record)

    def _layout(self, model: RankingModel) -> LogLayout:
        key = (model.manifest.model_name, model.version)
        layout = self._layouts.get(key)
        if layout is None:  # once per model version (a dict read otherwise)
            layout = self._layouts[key] = build_layout(model.manifest, self.config.features)
            while len(self._layouts) > MAX_LAYOUTS:  # queued records hold their own layout
                del self._layouts[next(iter(self._layouts))]
        return layout

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="impression-log", daemon=True)
        self._thread.start()
        log.info("impression log on", extra={"destination": self.sink.location, "spool": str(self.spool),
                                             "owner": self.owner, "sample": self.config.sample})

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, roll the open segment, publish; then return (bounded by timeout)."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("impression log: the writer did not finish in %.0f s", timeout)
        self._thread = None

    # -- the writer thread --------------------------------------------------------------------------
    def _run(self) -> None:
        self._recover()
        next_recover = time.monotonic() + self.config.roll_seconds
        while True:
            stop = self._stopping.wait(self.config.flush_seconds)
            self._flush()
            if self._segment is not None and self._due(self._segment):
                self._roll()
            if stop:
                self._roll()
                return
            if time.monotonic() >= next_recover:
                self._recover()
                next_recover = time.monotonic() + self.config.roll_seconds

    def _flush(self) -> None:
        """The records queued so far, in groups: each converted and written before the next is taken
        (what arrives meanwhile waits for the next flush)."""
        for _ in range(-(-len(self._queue) // GROUP)):
            group = [self._queue.popleft() for _ in range(min(GROUP, len(self._queue)))]
            self._write(self._convert(group))
            time.sleep(0)  # let a waiting request thread take the GIL

    def _due(self, segment: segments.Segment) -> bool:
        return (segment.bytes >= self.config.roll_bytes
                or time.monotonic() - segment.opened >= self.config.roll_seconds)

    def _convert(self, records: Sequence[Impression]) -> list[_Converted]:
        """One Arrow batch per run of records with the same hour and layout."""
        out, start = [], 0
        for i in range(1, len(records) + 1):
            if i < len(records) and _group(records[i]) == _group(records[start]):
                continue
            run, (part, layout) = records[start:i], _group(records[start])
            start = i
            try:
                out.append(_Converted(part, layout.schema, record_batch(run, self.owner), len(run)))
            except (pa.ArrowException, ValueError, TypeError) as e:  # a value Arrow cannot hold: a bug, counted
                log.exception("impression log: cannot convert %d records", len(run))
                self._dropped("invalid", len(run), f"records that cannot be converted ({type(e).__name__})")
        return out

    def _write(self, converted: Sequence[_Converted]) -> None:
        """The flush: every converted batch into the open segment of its hour and layout."""
        for c in converted:
            pause_point("write")
            try:
                self._segment_for(c.part, c.schema).write(c.batch)
            except OSError as e:
                self._abandon_segment()
                reason = "disk_full" if _disk_full(e) else "unwritable"
                self._dropped(reason, c.records, f"cannot write {self.spool}: {e}")
                continue
            self.metrics.records.inc(c.records)

    def _segment_for(self, part: str, schema: pa.Schema) -> segments.Segment:
        current = self._segment
        if current is not None and current.part == part and current.schema.equals(schema):
            return current
        if current is not None:
            self._roll()
        self._seq += 1
        self._segment = segments.Segment(self.spool, part, segments.new_stem(self.owner, self._seq), schema)
        return self._segment

    def _roll(self) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        try:
            segment.close()
        except OSError as e:
            self.warnings.warn("disk_full", f"closing {segment.path} failed ({e}); recovered later", 0)
            return
        self._finish(segment.path)

    def _recover(self) -> None:
        """Compact and publish what dead writers (or this one, after a failure) left in the spool."""
        keep = {self._segment.path} if self._segment is not None else set()
        try:
            stale, ready = segments.leftovers(self.spool, self.owner, self.config.stale_seconds(), keep)
        except OSError as e:
            self.warnings.warn("unwritable", f"cannot list {self.spool}: {e}", 0)
            return
        segments.take_over(stale, ready, self.owner, self._finish, self._publish, "impression log")
        self._bound_spool()

    def _bound_spool(self) -> None:
        """Past MAX_PENDING unpublished files (a long store outage), drop the oldest, counted."""
        waiting = sorted(self.spool.glob(f"{segments.TABLE}/date=*/hour=*/.part-*{segments.READY_SUFFIX}"))
        for path in waiting[:max(0, len(waiting) - MAX_PENDING)]:
            records = _records_in(path)
            path.unlink(missing_ok=True)
            self._dropped("store_error", records, f"{self.sink.location} refused uploads; the spool keeps "
                                                  f"{MAX_PENDING} files")

    def _dropped(self, reason: str, records: int, message: str) -> None:
        self.metrics.dropped.labels(reason=reason).inc(records)
        self.warnings.warn(reason, message, records)


@dataclass(frozen=True)
class _Converted:
    part: str  # date=.../hour=...
    schema: pa.Schema
    batch: pa.RecordBatch
    records: int


def _group(record: Impression) -> tuple[str, LogLayout]:
    return segments.partition(record.ts), record.layout


def _disk_full(e: OSError) -> bool:
    # pyarrow's file errors carry the errno in the message only
    return e.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(e) or "quota exceeded" in str(e)


def _records_in(path: Path) -> int:
    try:
        return pc.count_distinct(pq.read_table(path, columns=["request_id"])["request_id"]).as_py()
    except (OSError, pa.ArrowInvalid):
        return 0


__all__ = ["ImpressionLog", "LogConfig"]
