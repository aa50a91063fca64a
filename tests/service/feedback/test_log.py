"""The feedback log on real files: an append is fsynced in the open segment before it returns, rolls
publish Parquet with FEEDBACK_SCHEMA, retried event ids are skipped, a write failure raises (the
route's 503) and remembers nothing, and a dead process's segment is recovered by the next one."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from prometheus_client import CollectorRegistry

from service.contract.feedback import FEEDBACK_SCHEMA, FeedbackConfig
from service.errors import FeedbackWriteFailed
from service.feedback.events import parse_feedback
from service.feedback.log import FeedbackLog
from service.feedback.metrics import FeedbackMetrics
from service.impressions import segments
from service.impressions.config import LogConfig
from service.impressions.sinks import SinkError

CONFIG = FeedbackConfig(events={"click": "flag", "rating": "number"}, labels={"click": "any(click)"})


def batch(*ids: str | None, event: str = "click"):
    events = [{"request_id": "r1", "item_id": f"i{n}", "event": event, "event_id": i} for n, i in enumerate(ids)]
    if event == "rating":
        for e in events:
            e["value"] = 4.0
    return parse_feedback(orjson.dumps({"events": events}), CONFIG, 100)


def open_log(root: Path, **config) -> FeedbackLog:
    log = FeedbackLog(LogConfig(destination=str(root), replica="unit", **config), FeedbackMetrics(CollectorRegistry()))
    log.start()
    return log


def published(root: Path) -> list[Path]:
    return sorted((root / "feedback").glob("date=*/hour=*/*.parquet"))


def test_appends_are_in_the_segment_at_once_and_parquet_after_the_roll(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    assert log.append(batch("a", None)).accepted == 2
    log.append(batch("b", event="rating"))
    segment = log._segment.path
    # Before any roll, the answered rows are in the (hidden) segment: what a kill -9 leaves for recovery.
    assert segments.read_segment(segment).num_rows == 3 and not published(tmp_path)
    log.stop()
    files = published(tmp_path)
    assert len(files) == 1 and files[0].name.endswith(f"-unit-p{os.getpid()}.parquet")
    table = pq.read_table(files[0])
    assert table.schema.equals(FEEDBACK_SCHEMA)
    assert table.column("event_id").to_pylist() == ["a", None, "b"]
    assert table.column("value").to_pylist() == [None, None, 4.0]
    assert not list(tmp_path.rglob(".part-*"))


def test_a_retried_batch_is_not_written_twice(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    first = log.append(batch("a", "b", None))
    again = log.append(batch("a", "b", None, "c"))  # the retry, with one more event; no id: always written
    same = log.append(batch("d", "d"))  # a duplicate inside one batch
    log.stop()
    assert (first.accepted, first.duplicates) == (3, 0)
    assert (again.accepted, again.duplicates) == (2, 2)
    assert (same.accepted, same.duplicates) == (1, 1)
    ids = pq.read_table(published(tmp_path)).column("event_id").to_pylist()
    assert ids == ["a", "b", None, None, "c", "d"]


def test_concurrent_retries_write_each_event_once(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    ids = [f"e{n}" for n in range(50)]
    with ThreadPoolExecutor(4) as pool:  # the same batch sent four times at once (a client's hedged retries)
        results = list(pool.map(lambda _: log.append(batch(*ids)), range(4)))
    log.stop()
    assert sorted(r.accepted for r in results) == [0, 0, 0, 50]
    assert sorted(pq.read_table(published(tmp_path)).column("event_id").to_pylist()) == sorted(ids)


def test_the_remembered_ids_are_bounded(tmp_path: Path) -> None:
    log = FeedbackLog(LogConfig(destination=str(tmp_path)), FeedbackMetrics(CollectorRegistry()), dedup_ids=2)
    log.append(batch("a", "b", "c"))
    assert log.append(batch("a")).accepted == 1  # forgotten: the join deduplicates beyond the bound
    assert log.append(batch("c")).duplicates == 1
    log.stop()


def test_a_write_failure_raises_and_remembers_nothing(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    metrics = FeedbackMetrics(CollectorRegistry())
    log = FeedbackLog(LogConfig(destination=str(tmp_path / "a-file" / "logs")), metrics)
    with pytest.raises(FeedbackWriteFailed, match="could not be made durable"):
        log.append(batch("a"))
    assert metrics.write_failures._value.get() == 1
    assert "a" not in log._recent  # the client's retry must be written, not skipped


def test_a_dead_process_s_segment_is_recovered_at_start(tmp_path: Path) -> None:
    dead = FeedbackLog(LogConfig(destination=str(tmp_path), replica="unit"), FeedbackMetrics(CollectorRegistry()))
    dead.append(batch("a", "b"))  # answered; then the process dies without rolling (no stop)
    dead._segment._file.close()
    assert not published(tmp_path)
    log = open_log(tmp_path)  # the same replica (same owner tag: a restarted container) recovers it
    log.stop()
    assert pq.read_table(published(tmp_path)).column("event_id").to_pylist() == ["a", "b"]


class DownStore:
    location = "s3://down"

    def publish(self, local: Path, key: str) -> None:
        raise SinkError("the store is down")


def test_files_wait_in_the_spool_while_the_store_is_down(tmp_path: Path) -> None:
    log = FeedbackLog(LogConfig(destination=str(tmp_path), replica="unit"), FeedbackMetrics(CollectorRegistry()))
    log.sink = DownStore()
    log.append(batch("a", "b"))
    log.stop()
    waiting = list(tmp_path.rglob("feedback/*/*/.part-*.ready"))
    assert len(waiting) == 1 and pq.read_table(waiting[0]).num_rows == 2 and not published(tmp_path)
    open_log(tmp_path).stop()  # the next process of the replica publishes it (acknowledged events are never dropped)
    assert pq.read_table(published(tmp_path)).column("event_id").to_pylist() == ["a", "b"]
