"""Smoke run of bench/serving/serve_tracing.py: three real servers, the spans counted by its collector stand-in, its section."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_smoke_run_measures_off_and_on_and_writes_its_section(bundle_dir, tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n<!-- BEGIN other -->\nkeep me\n<!-- END other -->\n")
    cmd = [sys.executable, "-m", "bench.serving.serve_tracing", "--bundle", str(bundle_dir), "--rounds", "1",
           "--duration", "1", "--concurrency", "2", "--doc", str(doc)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    for row in ("| off |", "| on, every request recorded |", "| on, RANKER_TRACE_SAMPLE=0.1 (the default) |"):
        assert row in out.stdout
    spans = re.search(r'received from the recording server after it stopped: ([\d,]+) of the ([\d,]+)', out.stdout)
    received, expected = (int(g.replace(",", "")) for g in spans.groups())
    assert received == expected > 0  # the batch processor lost nothing, and the flush on stop delivered the rest
    text = doc.read_text()
    assert "keep me" in text and "<!-- BEGIN serve-tracing -->" in text and "## Tracing cost" in text
