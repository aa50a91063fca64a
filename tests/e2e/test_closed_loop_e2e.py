"""examples/closed_loop.py end to end, small: every step of the loop on real processes, no failed request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_loop_closes_on_a_real_server(tmp_path: Path) -> None:
    requests, top_k = 1200, 10
    done = subprocess.run([sys.executable, str(REPO / "examples" / "closed_loop.py"), "--out", str(tmp_path / "loop"),
                           "--rows", "30000", "--requests", str(requests), "--candidates", "30", "--epochs", "2",
                           "--top-k", str(top_k)], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    s = json.loads((tmp_path / "loop" / "summary.json").read_text())
    assert s["failed_requests"] == 0
    assert all(p["rank"] == {"200": requests} for p in s["phases"].values())
    # Each join labels every impression served so far: the window has passed, nothing pending, none lost.
    for n, name in enumerate(("join_a", "join_b", "join_c"), start=1):
        join = s["joins"][name]
        assert join["labelled_rows"] == n * requests * top_k and join["pending"] == 0, join
        assert join["events"] == {"counted": join["events_read"]}  # none late, early or orphan
    assert s["retrain"]["decision"] == "canary" and s["retrain"]["version"] == 2
    canary = s["canary"]["report"]
    assert canary["by"] == "model_version" and set(canary["arms"]) == {"1", "2"} and not canary["srm"]["mismatch"]
    assert 0.1 < canary["arms"]["2"]["users"] / (canary["arms"]["1"]["users"] + canary["arms"]["2"]["users"]) < 0.3
    weights = s["weights"]["report"]
    assert weights["experiment"] == "loop-click-only" and set(weights["arms"]) == {"control", "click_only"}
    assert "## The loop, closed" in done.stdout
