"""Two training processes (gloo over 127.0.0.1, torchrun) against the single-process run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from server_helpers import free_port

from training.fit.train import Trained

REPO = Path(__file__).resolve().parents[3]
WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.fixture(scope="module", params=["memory", "stream"])
def ddp_run(request: pytest.FixtureRequest, tiny_dir: Path, tiny_spec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(f"ddp-{request.param}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
           "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}",
           str(WORKER), str(REPO / "configs" / "demo.yaml"), str(tiny_dir), str(out), request.param, str(tiny_spec.train.batch_size)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1",
                          **_env()})
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}


@pytest.mark.slow
def test_ranks_train_on_disjoint_rows(ddp_run: Path, trained: Trained) -> None:
    """Each epoch the ranks share no row (in memory: halves of one permutation, all but an odd row;
    streamed: their own row groups, as many steps as the smaller share)."""
    ranks = [np.load(ddp_run / f"rows_{r}.npz") for r in (0, 1)]
    n = len(trained.prepared.train)
    for epoch in ranks[0].files:
        a, b = ranks[0][epoch], ranks[1][epoch]
        assert len(set(a)) == len(a) and len(set(b)) == len(b)
        assert not set(a) & set(b)
        assert max(a.max(), b.max()) < n
        if ddp_run.name.startswith("ddp-memory"):
            assert len(a) == len(b) == n // 2
        else:
            assert len(a) + len(b) > n / 2  # the smaller share's steps: most rows still train
    assert len(ranks[0].files) == 2


@pytest.mark.slow
def test_ranks_end_with_identical_parameters(ddp_run: Path) -> None:
    a, b = (torch.load(ddp_run / f"state_{r}.pt") for r in (0, 1))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_ranks_took_the_same_decisions(ddp_run: Path) -> None:
    h0, h1 = (json.loads((ddp_run / f"history_{r}.json").read_text()) for r in (0, 1))
    keys = ("epoch", "valid_loss", "valid_metrics", "valid_ndcg")
    assert [{k: e[k] for k in keys} for e in h0] == [{k: e[k] for k in keys} for e in h1]
    assert h0[0]["ranks"] == 2 and h0[0]["sync_bytes_per_step"]["rows_touched"] > 0
    s0, s1 = (json.loads((ddp_run / f"stopping_{r}.json").read_text()) for r in (0, 1))
    assert s0 == s1 and s0["best_epoch"] is not None
    if ddp_run.name.startswith("ddp-stream"):  # the streamed run also stops per task and combines heads
        assert set(s0["heads"]) == {"click", "watch_time", "like", "rating", "rank"} and "combined" in s0


@pytest.mark.slow
def test_one_bundle_published_with_metrics_near_the_single_process_run(ddp_run: Path, trained: Trained) -> None:
    if not ddp_run.name.startswith("ddp-memory"):
        pytest.skip("streamed: another row order (row groups, a shuffle buffer); compared in memory only")
    root = ddp_run / "registry" / "demo"
    assert [p.name for p in (root / "versions").iterdir()] == ["000001"]
    assert [json.loads(line)["reason"] for line in (root / "history.jsonl").read_text().splitlines()] == ["published"]
    ddp = json.loads((ddp_run / "metrics.json").read_text())
    history = json.loads((ddp_run / "history_0.json").read_text())
    # Each rank steps on 128 rows, so a step averages the single run's 256 (other rows, same init).
    # Measured (seed 0, 2 epochs on 9k rows in 256-row steps of whole requests): validation loss within 2.0%,
    # RMSE within 4.4%. The single run alone spreads as much across seeds 0-2 (loss 4%, rating RMSE 5%):
    # the bounds are that noise, which 64 small steps leave.
    assert [e["valid_loss"] for e in history] == pytest.approx([e["valid_loss"] for e in trained.history], rel=0.045)
    for split in ("valid", "test"):
        one = trained.metrics[split]
        assert ddp[split]["ndcg@10"] == pytest.approx(one["ndcg@10"], abs=0.03)
        for task in ("click", "like"):
            assert ddp[split]["tasks"][task]["auc"] == pytest.approx(one["tasks"][task]["auc"], abs=0.03)
        for task in ("watch_time", "rating"):
            assert ddp[split]["tasks"][task]["rmse"] == pytest.approx(one["tasks"][task]["rmse"], rel=0.07)


@pytest.mark.slow
def test_embedding_rows_average_to_the_dense_gradient_in_fewer_bytes(ddp_run: Path) -> None:
    for r in (0, 1):
        sync = json.loads((ddp_run / f"sync_{r}.json").read_text())
        assert sync["max_diff"] < 1e-7
        assert sync["rows_bytes"] < sync["dense_bytes"] / 5  # 64 of 1,000 rows touched
