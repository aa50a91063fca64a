"""bench/loop/logs_join.py at a tiny size: the generated log joins, and every row and event is accounted for."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.loop.logs_join import check, expected_counts, measure, section


def test_a_tiny_run_accounts_for_every_row_and_event(tmp_path: Path) -> None:
    ns = argparse.Namespace(rows=4000, events=1000, memory_limit="1GB", threads=1)
    results = measure(ns, tmp_path)
    assert check(results) == []
    r = results["report"]
    assert r["events"]["orphan"] == expected_counts(4000, 1000)["orphan"] == 10
    assert r["duplicate_events"] == 10 and r["impressions_read"] == 4000 and r["pending"] == 0
    assert r["labelled_rows"] == 4000 - r["duplicate_impressions"]
    assert r["events"]["late"] > 0 and r["events"]["counted"] > r["events"]["late"]
    assert "| 4,000 in" in section(results)
