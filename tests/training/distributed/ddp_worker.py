"""One rank of the 2-process tests (tests/training/distributed/test_ddp.py), started by torchrun.

    python -m torch.distributed.run ... ddp_worker.py SPEC DATA OUT MODE BATCH   (MODE: memory | stream)

Trains the tiny demo run (2 epochs, 1 thread, BATCH rows a step across the ranks) as `ranker train` does, and writes what the test
checks: OUT/rows_<rank>.npz (per epoch, the training rows the rank saw: positions in the training split),
OUT/state_<rank>.pt (its final parameters), OUT/history_<rank>.json, OUT/stopping_<rank>.json, and on rank 0 alone the
bundle, published to OUT/registry, and OUT/metrics.json. Also one gradient averaged both ways
(embedding rows vs dense all-reduce) on rank-specific batches: OUT/sync_<rank>.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from service.registry import Registry
from training.bundle.export import export_bundle
from training.distributed.context import Dist
from training.distributed.grad_sync import GradSync
from training.fit.train import train
from training.spec import load_spec


def sync_both_ways(dist: Dist) -> dict:
    """Max |rows-mode gradient - dense-mode gradient| after averaging, and the bytes each mode sent."""
    out = {}
    grads = {}
    for mode in ("rows", "dense"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Embedding(1000, 8), nn.Flatten(), nn.Linear(16, 1))
        ids = torch.randint(0, 1000, (32, 2), generator=torch.Generator().manual_seed(dist.rank + 1))
        sync = GradSync(model, [], dist, mode)
        model(ids).square().mean().backward()
        sync()
        sync.close()
        grads[mode] = [p.grad.clone() for p in model.parameters()]
        out[f"{mode}_bytes"] = sync.counted.per_step()["bytes"]
    out["max_diff"] = max(float((a - b).abs().max()) for a, b in zip(grads["rows"], grads["dense"], strict=True))
    return out


def main(spec_path: str, data: str, out: Path, mode: str, batch: int) -> None:
    dist = Dist.from_env()
    spec = load_spec(spec_path, data_path=data)
    spec.data.streaming.mode = mode
    spec.data.streaming.shuffle_buffer = 2_000
    if mode == "stream":  # per-task stopping too: each head's best epoch and the combine step, agreed by broadcast
        spec.train.per_task_stopping = "combine"
    spec.train.epochs, spec.train.threads = 2, 1
    spec.train.batch_size = batch // dist.world  # per rank: the global batch is the single process's batch
    trained = train(spec, progress=False, eval_test=True, dist=dist, record_batches=True)
    r = dist.rank
    np.savez(out / f"rows_{r}.npz", *[np.concatenate(epoch) for epoch in trained.batch_rows])
    torch.save(trained.model.state_dict(), out / f"state_{r}.pt")
    (out / f"history_{r}.json").write_text(json.dumps(trained.history))
    (out / f"stopping_{r}.json").write_text(json.dumps(trained.stopping, default=str))
    (out / f"sync_{r}.json").write_text(json.dumps(sync_both_ways(dist)))
    if dist.is_leader:
        bundle = export_bundle(trained, out / "bundle")
        Registry(str(out / "registry"), spec.name).publish(bundle)
        (out / "metrics.json").write_text(json.dumps(trained.metrics, default=str))
    dist.barrier()
    dist.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
