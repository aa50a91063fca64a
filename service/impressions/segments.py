"""Arrow IPC stream segments in the spool, and their compaction into Parquet files.

    <spool>/<table>/date=YYYY-MM-DD/hour=HH/        table: impressions, or feedback (service/feedback/log.py)
        .part-<start>-<seq>-<owner>.arrows          the open segment: IPC stream, a record batch per flush
        .part-<start>-<seq>-<owner>.ready           its Parquet, complete and fsynced, not yet published
        part-<start>-<seq>-<owner>.parquet          published (local destination; else on the object store)

Names starting with "." are hidden from readers (pyarrow.dataset and Spark skip them; DuckDB globs
`*.parquet`), so a reader of the directory sees published Parquet files only, each whole. `owner`
is `<replica>-p<pid>`: replicas never write one another's files and need no coordination
(replica names must be unique per host: a pid is checked on this host only).

A kill -9 leaves the open segment with, at worst, a truncated last batch: every batch flushed
before it is complete (each flush is written to the OS at once). `recover` runs when a writer
starts and every roll interval: it compacts the leftovers of dead writers (this replica's earlier
processes, found by pid; a restarted container keeps its hostname and often pid 1) and any segment
untouched for longer than a live writer ever leaves one open, reading every complete batch and
dropping the torn tail.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from service.contract.files import default_file_mode, fsync_dir
from service.impressions.sinks import Sink, SinkError

log = logging.getLogger(__name__)
TABLE = "impressions"
SEGMENT_SUFFIX = ".arrows"
READY_SUFFIX = ".ready"
TMP_SUFFIX = ".tmp"
CLAIMED = ".claimed-"
# The compaction is one of the writer's two costs (bench/serving/serve_latency.py, docs/BENCHMARKS.md): LZ4 (raw)
# and dictionary pages for strings only encode faster than zstd with every default, at about twice the
# bytes. Statistics only where readers filter (the time window, the model).
# Without the Arrow schema, readers see plain strings where the segments hold dictionary arrays.
PARQUET_OPTIONS: dict = dict(compression="lz4", store_schema=False, write_statistics=["ts", "model_version", "position"])
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def owner_tag(replica: str, pid: int) -> str:
    return f"{_UNSAFE.sub('_', replica)[:64]}-p{pid}"


def partition(ts: float) -> str:
    """The hourly partition (UTC) of a record's time: `date=YYYY-MM-DD/hour=HH`."""
    t = datetime.fromtimestamp(ts, UTC)
    return f"date={t:%Y-%m-%d}/hour={t:%H}"


def new_stem(owner: str, seq: int) -> str:
    start = datetime.now(UTC)
    return f"part-{start:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}-{seq:06d}-{owner}"


class Segment:
    """One open IPC stream; every `write` reaches the OS before it returns (pyarrow's OSFile is unbuffered)."""

    def __init__(self, spool: Path, part: str, stem: str, schema: pa.Schema, table: str = TABLE) -> None:
        self.dir = spool / table / part
        self.part, self.stem, self.schema = part, stem, schema
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f".{stem}{SEGMENT_SUFFIX}"
        self._file = pa.OSFile(str(self.path), "wb")
        try:
            self._writer = pa.ipc.new_stream(self._file, schema)
        except BaseException:
            self._file.close()
            raise
        self.opened = time.monotonic()
        self.bytes = 0
        self.rows = 0
        self._sync_fd: int | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)
        self.bytes += batch.nbytes
        self.rows += batch.num_rows

    def sync(self) -> None:
        """fsync what was written (the feedback log answers only after it): the file's data, and the first
        time the directory entries from the spool down, so the file itself survives a power loss."""
        if self._sync_fd is None:
            fd = os.open(self.path, os.O_RDONLY)  # fsync through any descriptor flushes the file's pages
            try:
                os.fsync(fd)
                for directory in (self.dir, *self.dir.parents[:3]):  # hour=, date=, the table, the spool
                    fsync_dir(directory)
            except BaseException:
                os.close(fd)
                raise
            self._sync_fd = fd
            return
        os.fsync(self._sync_fd)

    def close(self) -> None:
        """Close the stream (end-of-stream marker); a failure leaves a file `read_segment` still reads."""
        try:
            self._writer.close()
        finally:
            self._file.close()
            if self._sync_fd is not None:
                os.close(self._sync_fd)
                self._sync_fd = None


def read_segment(path: Path) -> pa.Table | None:
    """Every complete batch of a segment; a torn last batch (kill -9 mid-write) is dropped. None when
    not even the schema was written."""
    batches = []
    try:
        with pa.OSFile(str(path), "rb") as f:
            reader = pa.ipc.open_stream(f)
            schema = reader.schema
            with contextlib.suppress(pa.ArrowInvalid, OSError):  # the torn tail: keep what came before
                for batch in reader:
                    batches.append(batch)
    except (pa.ArrowInvalid, OSError):
        return None
    return pa.Table.from_batches(batches, schema=schema)


@dataclass(frozen=True)
class Compacted:
    rows: int
    ready: Path | None  # the Parquet file waiting to be published (None: the segment held no rows)


def compact(segment: Path) -> Compacted:
    """Segment -> `.stem.ready` Parquet beside it (temp file, fsync, rename), then the segment is removed.
    Raises OSError (disk full) with the segment left in place for a later attempt."""
    stem = segment_stem(segment)
    table = read_segment(segment)
    if table is not None and table.num_rows:
        strings = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type)]
        return _write_ready(segment, stem, table, strings)
    segment.unlink(missing_ok=True)
    return Compacted(0, None)


def _write_ready(segment: Path, stem: str, table: pa.Table, strings: list[str]) -> Compacted:
    tmp, ready = segment.with_name(f".{stem}{TMP_SUFFIX}"), segment.with_name(f".{stem}{READY_SUFFIX}")
    try:  # pyarrow's own file, not a Python one: the encoding and every write run without the GIL
        pq.write_table(table, str(tmp), use_dictionary=strings, **PARQUET_OPTIONS)
        os.chmod(tmp, default_file_mode())
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, ready)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    segment.unlink()  # after the rename: a crash in between leaves both, and recovery keeps the ready file
    return Compacted(table.num_rows, ready)


def publish(ready: Path, spool: Path, sink: Sink, table: str = TABLE) -> None:
    """Make a ready file visible at its final key (raises SinkError / OSError, the file kept)."""
    part = ready.parent.relative_to(spool / table).as_posix()
    sink.publish(ready, f"{table}/{part}/{segment_stem(ready)}.parquet")


def segment_stem(path: Path) -> str:
    """`.part-...-owner.arrows[.claimed-x]` / `.part-....ready` -> `part-...-owner`."""
    name = path.name.lstrip(".")
    for suffix in (SEGMENT_SUFFIX, READY_SUFFIX, TMP_SUFFIX):
        if suffix in name:
            return name.split(suffix, 1)[0]
    return name


def leftovers(spool: Path, owner: str, stale_seconds: float, keep: set[Path], table: str = TABLE
              ) -> tuple[list[Path], list[Path]]:
    """(segments, ready files) left by dead writers: this owner's (but `keep`, the ones open now) and
    anyone's untouched for stale_seconds. Stale temp files (a compaction killed midway) are removed."""
    root, cutoff = spool / table, time.time() - stale_seconds
    segments, ready = [], []
    for path in sorted(root.glob("date=*/hour=*/.part-*")):
        if path in keep:
            continue
        try:
            dead = _dead(path, owner, cutoff)
        except FileNotFoundError:  # another replica just compacted it
            continue
        if not dead:
            continue
        if path.name.endswith(TMP_SUFFIX):
            path.unlink(missing_ok=True)
        elif path.name.endswith(READY_SUFFIX):
            ready.append(path)
        else:
            segments.append(path)
    return segments, ready


def _dead(path: Path, owner: str, cutoff: float) -> bool:
    """Left by a dead writer: one of this replica's processes that no longer runs (a restart), or any
    writer's file untouched since `cutoff`. A claim is a rename, which changes the ctime but not the
    mtime: a claimer is judged by when it claimed."""
    _, _, claimer = path.name.partition(CLAIMED)
    st = path.stat()
    if claimer:
        return _gone(claimer, owner) or st.st_ctime < cutoff
    return _gone(writer_of(path), owner) or st.st_mtime < cutoff


def writer_of(path: Path) -> str:
    """The writer tag in a file name: `part-<start>-<random>-<seq>-<replica>-p<pid>` -> `<replica>-p<pid>`."""
    parts = segment_stem(path).split("-", 4)
    return parts[4] if len(parts) == 5 else ""


def _gone(writer: str, owner: str) -> bool:
    """A writer tag `<replica>-p<pid>` of this replica (same host: replica names are unique per host)
    whose process is not running; the own tag counts as gone (a container restarted as pid 1 again)."""
    if writer == owner:
        return True
    replica, _, pid = writer.rpartition("-p")
    if replica != owner.rpartition("-p")[0] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, as another user
        return False
    return False


def claim(segment: Path, owner: str) -> Path | None:
    """Rename a dead writer's segment to mark it ours (atomic: two replicas recovering at once never
    both compact it); None when another replica claimed it first."""
    target = segment.with_name(f"{segment.name.partition(CLAIMED)[0]}{CLAIMED}{owner}")
    if target == segment:
        return segment
    try:
        os.rename(segment, target)
    except FileNotFoundError:
        return None
    return target


def take_over(stale: list[Path], ready: list[Path], owner: str, finish, publish, what: str) -> None:
    """Recovery's second half, for any log on these segments: claim and `finish` (compact, publish) each
    stale segment of a dead writer, then `publish` the Parquet files waiting in the spool, stopping at the
    first failure (the store is down: the rest wait for the next round)."""
    for path in stale:
        claimed = claim(path, owner)
        if claimed is not None:
            log.info("%s: recovering a segment", what, extra={"segment": str(claimed)})
            finish(claimed)
    for path in ready:
        if not publish(path):
            break


class SegmentSteps:
    """What a log on these segments does with them once written, shared by the impression log and the
    feedback log: drop a broken open segment, compact a closed one, publish its Parquet. The log sets
    `spool`, `sink`, `warnings` (service/impressions/metrics.py) and `_segment`; `table` and `what` name it."""

    table: str = TABLE
    what: str = "impression log"
    spool: Path
    sink: Sink
    warnings: Any
    _segment: Segment | None

    def _abandon_segment(self) -> None:
        """After a write error: close what can be closed; the file is ours, so recovery compacts it later."""
        if self._segment is not None:
            try:
                self._segment.close()
            except OSError:
                pass  # the same full disk; the segment's complete batches stay readable
            self._segment = None

    def _finish(self, path: Path) -> None:
        """Compact a closed segment and publish its Parquet; on failure the files wait for recovery."""
        try:
            done = compact(path)
        except OSError as e:
            self.warnings.warn("disk_full", f"compacting {path} failed ({e}); retried later", 0)
            return
        except pa.ArrowException:  # a bug: the segment stays for a fixed writer, this one keeps logging
            log.exception("%s: cannot compact %s", self.what, path)
            return
        if done.ready is not None:
            self._publish(done.ready)

    def _publish(self, ready: Path) -> bool:
        try:
            publish(ready, self.spool, self.sink, table=self.table)
        except (SinkError, OSError) as e:
            self.warnings.warn("store_error", f"publishing {ready.name} failed ({e}); retried later", 0)
            return False
        return True
