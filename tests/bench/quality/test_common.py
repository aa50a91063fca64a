"""What the quality benchmarks share: saved runs, the replot-or-run step, mean ± std, tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.quality.common import (
    REPLOT_NOTE,
    fmt_ms,
    load_results,
    md_table,
    quality_args,
    save_results,
    saved_or_run,
)


def test_saved_results_are_compact_and_round_trip(tmp_path: Path) -> None:
    data = {"provenance": "Produced by x.", "curves": [[0.25, 1.5]]}
    save_results(tmp_path / "a" / "compact.json", data)
    text = (tmp_path / "a" / "compact.json").read_text()
    assert "\n" not in text and ", " not in text
    assert load_results(tmp_path / "a" / "compact.json") == data
    assert load_results(tmp_path / "a" / "compact.json", REPLOT_NOTE)["provenance"] == "Produced by x." + REPLOT_NOTE


def test_replot_reads_the_saved_runs_and_a_smoke_run_never_writes_them(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    runs: list[str] = []

    def run(ns: argparse.Namespace, made_by: str) -> dict:
        runs.append(made_by)
        return {"provenance": made_by, "n": len(runs)}

    parse = quality_args("d", "smoke", "replot").parse_args
    smoke = saved_or_run(parse(["--smoke"]), results, "cmd --smoke", run)
    assert smoke["n"] == 1 and "`cmd --smoke`" in smoke["provenance"] and not results.exists()
    full = saved_or_run(parse([]), results, "cmd", run)
    assert json.loads(results.read_text()) == full
    again = saved_or_run(parse(["--replot"]), results, "cmd --replot", run)
    assert len(runs) == 2 and again["n"] == 2 and again["provenance"].endswith(REPLOT_NOTE)


def test_mean_std_and_table_formatting() -> None:
    assert fmt_ms([1.0, 2.0, 3.0]) == "2.0000 ± 1.0000"  # sample std (ddof = 1)
    assert fmt_ms([0.5, None], digits=2) == "0.50 ± 0.00"  # missing values are skipped
    assert md_table(["a", "b"], [[1, "x"]]) == "| a | b |\n|---|---|\n| 1 | x |"
