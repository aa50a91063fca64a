"""`ranker retrain --nproc 2`: two training processes, rank 0 gates and publishes, the exit code is
rank 0's (3 for a rejected candidate, not torchrun's 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from retrain_helpers import quick_spec, write_spec

from service.registry import REPORT_JSON, Registry
from training.spec import RankerSpec


@pytest.mark.slow
def test_two_processes_retrain_and_rank_zero_decides(tiny_spec: RankerSpec, quality_bundle_dir: Path,
                                                     tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry", "demo")
    reg.publish(quality_bundle_dir)  # CURRENT: the converged model; one epoch cannot match it
    spec = write_spec(quick_spec(tiny_spec, epochs=1), tmp_path / "spec.yaml")
    work = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    done = subprocess.run([sys.executable, "-m", "training.cli", "retrain", str(spec), "--registry",
                           str(tmp_path / "registry"), "--nproc", "2", "--work-dir", str(work)],
                          capture_output=True, text=True, timeout=300, env={**env, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((work / REPORT_JSON).read_text())
    assert report["decision"] == "rejected" and report["exit_code"] == 3 and report["failed"]
    assert reg.current() == 1 and reg.versions() == [1, 2]  # published once, not CURRENT
    log = [json.loads(line) for line in (work / "train_log.jsonl").read_text().splitlines()]
    assert [e["ranks"] for e in log] == [2]
