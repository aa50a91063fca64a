"""Segments in the spool: a torn last batch (kill -9 mid-write) loses that batch only, compaction makes
each Parquet file visible whole, and recovery takes dead writers' files only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.impressions import segments
from service.impressions.sinks import LocalSink

SCHEMA = pa.schema([("request_id", pa.string()), ("position", pa.int32())])


def batch(request_id: str, rows: int = 3) -> pa.RecordBatch:
    return pa.record_batch([pa.array([request_id] * rows), pa.array(range(1, rows + 1), pa.int32())], schema=SCHEMA)


def open_segment(spool: Path, owner: str, seq: int = 1) -> segments.Segment:
    return segments.Segment(spool, "date=2026-12-07/hour=08", segments.new_stem(owner, seq), SCHEMA)


def test_a_torn_last_batch_is_dropped_and_the_flushed_ones_kept(tmp_path: Path) -> None:
    seg = open_segment(tmp_path, "me-p1")
    for i in range(3):
        seg.write(batch(f"r{i}"))
    size = seg.path.stat().st_size  # every write reached the file at once: no close needed to read it
    assert segments.read_segment(seg.path).column("request_id").to_pylist() == ["r0"] * 3 + ["r1"] * 3 + ["r2"] * 3
    seg.write(batch("r3"))
    with open(seg.path, "r+b") as f:  # a kill -9 in the middle of the 4th batch
        f.truncate(size + (seg.path.stat().st_size - size) // 2)
    table = segments.read_segment(seg.path)
    assert table.num_rows == 9 and table.schema == SCHEMA
    seg.path.write_bytes(seg.path.read_bytes()[:10])  # not even the schema
    assert segments.read_segment(seg.path) is None


def test_compaction_publishes_whole_parquet_files_and_hides_the_rest(tmp_path: Path) -> None:
    seg = open_segment(tmp_path, "me-p1")
    seg.write(batch("r0"))
    seg.close()
    done = segments.compact(seg.path)
    assert done.rows == 3 and done.ready.name.startswith(".") and not seg.path.exists()
    segments.publish(done.ready, tmp_path, LocalSink(tmp_path))
    files = list((tmp_path / "impressions").rglob("*"))
    visible = [p for p in files if p.is_file() and not p.name.startswith(".")]
    assert [p.suffix for p in visible] == [".parquet"] and len([p for p in files if p.is_file()]) == 1
    assert visible[0].parent.relative_to(tmp_path).as_posix() == "impressions/date=2026-12-07/hour=08"
    assert pq.read_table(visible[0]).num_rows == 3
    empty = open_segment(tmp_path, "me-p1", 2)
    empty.close()
    assert segments.compact(empty.path).ready is None and not empty.path.exists()


def test_recovery_takes_only_dead_writers_files(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    mine = open_segment(tmp_path, "host-p1", 1)  # open now: kept
    predecessor = open_segment(tmp_path, "host-p1", 2)  # the same tag, not open: a restarted pid-1 container
    dead = open_segment(tmp_path, f"host-p{gone.pid}", 3)  # this host's replica, its process gone
    alive = open_segment(tmp_path, f"host-p{os.getpid()}", 4)  # this host's replica, still running
    other = open_segment(tmp_path, "other-host-p7", 5)  # another replica: alive until stale
    stale = open_segment(tmp_path, "third-host-p7", 6)
    old = time.time() - 3600
    os.utime(stale.path, (old, old))
    found, ready = segments.leftovers(tmp_path, "host-p1", stale_seconds=600, keep={mine.path})
    assert set(found) == {predecessor.path, dead.path, stale.path} and ready == []
    assert alive.path.exists() and other.path.exists()


def test_two_replicas_never_claim_one_segment(tmp_path: Path) -> None:
    seg = open_segment(tmp_path, "gone-p1")
    first = segments.claim(seg.path, "a-p1")
    assert first is not None and segments.claim(seg.path, "b-p2") is None
    assert segments.writer_of(first) == "gone-p1"
    # A claimer that died is judged by when it claimed (the rename's ctime), not by the old mtime.
    found, _ = segments.leftovers(tmp_path, "b-p2", stale_seconds=600, keep=set())
    assert found == []
    found, _ = segments.leftovers(tmp_path, "a-p1", stale_seconds=600, keep=set())
    assert found == [first]


@pytest.mark.parametrize("ts,expected", [(0.0, "date=1970-01-01/hour=00"), (1796630399.9, "date=2026-12-07/hour=07")])
def test_partitions_are_utc_hours(ts: float, expected: str) -> None:
    assert segments.partition(ts) == expected
