"""Smoke run of bench/serving/serve_latency.py: tiny sizes and durations, all three systems, wrk, floors, doc section."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_smoke_run_measures_all_three_and_writes_its_section(bundle_dir, feature_files, tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n<!-- BEGIN other -->\nkeep me\n<!-- END other -->\n")
    cmd = [sys.executable, "-m", "bench.serving.serve_latency", "--bundle", str(bundle_dir), "--sizes", "20",
           "500", "--requests", "10", "--duration", "0.3", "--doc", str(doc), "--connections", "1",
           "--features", str(feature_files["item"].parent), "--id-only-size", "50", "--workers-variant", "0"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    for system in ("(a) this server", "(b) raw session.run"):
        assert f"| 20 | {system} |" in out.stdout and f"| 500 | {system} |" in out.stdout
    assert "| 500 | (c) naive server |" in out.stdout and "| 20 | (c) naive server |" not in out.stdout
    assert "in-process total" in out.stdout
    floors = [line for line in out.stdout.splitlines() if line.startswith("- ") and line.endswith(("PASS", "FAIL"))]
    # The HTTP floors once per served configuration ("<floor>, <configuration>: ..."), then the id-only section's.
    http = "- HTTP p50 (wrk, 1 connection) <= raw session.run + 1.00 ms"
    configurations = ["(a) this server (2 scoring threads, the default)", "(a) this server, scoring on the event loop"]
    assert [f.split(":")[0] for f in floors[:4]] == [
        "- in-process rank() over raw session.run <= 0.50 ms",
        *[f"{http}, {c}" for c in configurations],
        "- p99 <= 3x p50 at 70% of peak (evenly spaced arrivals, Python client)"]
    assert all(f"| {c} | 1 |" in out.stdout for c in configurations) and "| (c) naive server | 1 |" in out.stdout  # wrk
    for row in ("| ids only | embedded store |", "| ids only | Redis |", "| full | embedded server |"):
        assert row in out.stdout
    assert "request bytes per candidate drop" in out.stdout and "Redis lookup adds" in out.stdout
    text = doc.read_text()
    assert "keep me" in text and text.count("<!-- BEGIN serve-latency -->") == 1
    assert "| 20 | (a) this server |" in text.split("<!-- BEGIN serve-latency -->")[1]
    # Running again replaces the section instead of appending a second one.
    subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO, check=True)
    assert doc.read_text().count("<!-- BEGIN serve-latency -->") == 1
