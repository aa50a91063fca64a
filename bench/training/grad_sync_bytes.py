"""Bytes each rank hands to collectives per training step, embedding rows vs dense, at two vocabularies.

Two processes (torchrun, gloo on 127.0.0.1) run the demo model's shape (MMoE, 4 experts (128, 64),
embedding dim 16) with user_id and item_id vocabularies of --vocab rows each; every step takes a
batch of 1,024 rows whose ids follow a Zipf law (a few popular items and users, a long tail), does
forward and backward, and averages the gradients with training/distributed/grad_sync.py, once with
`train.embedding_grads: rows` and once `dense`. Counted: the dense all-reduce buffer, and the rows
all-gathered (ids + values, padded to the longest rank). Timed: compute (forward + backward) and the
averaging, per step. From these, on paper, the step time and scaling at 8 and 32 workers on a
25 Gbit/s network (ring all-reduce: 2 (N-1)/N x bytes; all-gather: (N-1) x a rank's bytes).

    .venv/bin/python -m bench.training.grad_sync_bytes                 # launches torchrun itself, rewrites docs
    .venv/bin/python -m bench.training.grad_sync_bytes --vocab 10000 --steps 5 --no-write-doc   # smoke
    .venv/bin/python -m bench.training.grad_sync_bytes --replot    # the docs from bench/results/grad_sync_bytes.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.doc_sections import write_section

REPO = Path(__file__).resolve().parents[2]
BATCH = 1024
LINK = 25e9 / 8  # 25 Gbit/s in bytes/s
WORKERS = (2, 8, 32)


def rank_main(vocab: int, steps: int) -> dict:
    import numpy as np
    import torch

    from training.distributed.context import Dist
    from training.distributed.grad_sync import GradSync
    from training.modeling.model import ModelArgs, build_model

    torch.set_num_threads(1)
    dist = Dist.from_env()
    args = ModelArgs(cardinalities=[vocab + 1, 6, 4, vocab + 1, 21], n_numeric=5,
                     tasks=["click", "watch_time", "like", "rating"])
    rng = np.random.default_rng(dist.rank)
    out = {}
    for mode in ("rows", "dense"):
        torch.manual_seed(0)
        model = build_model(args).train()
        sync = GradSync(model, [], dist, mode)
        compute = averaging = 0.0
        for step in range(steps + 1):  # step 0 warms up
            cat = np.stack([np.minimum(rng.zipf(1.2, BATCH), vocab), rng.integers(0, 6, BATCH), rng.integers(0, 4, BATCH),
                            np.minimum(rng.zipf(1.1, BATCH), vocab), rng.integers(0, 21, BATCH)], axis=1)
            t0 = time.perf_counter()
            outs = model(torch.from_numpy(cat), torch.randn(BATCH, 5))
            torch.stack(list(outs), dim=1).square().mean().backward()
            t1 = time.perf_counter()
            sync()
            t2 = time.perf_counter()
            if step:
                compute, averaging = compute + t1 - t0, averaging + t2 - t1
            else:
                sync.counted.__init__()
            model.zero_grad(set_to_none=True)
        sync.close()
        out[mode] = {**sync.counted.per_step(), "compute_seconds": compute / steps, "sync_seconds": averaging / steps}
    dist.close()
    return out


def projection(r: dict) -> list[dict]:
    """Seconds per step at N workers: measured compute + bandwidth-bound communication at 25 Gbit/s."""
    rows = []
    for n in WORKERS:
        for mode in ("rows", "dense"):
            m = r[mode]
            comm = 2 * (n - 1) / n * m["dense_bytes"] / LINK + (n - 1) * m["row_bytes"] / LINK
            step = r["rows"]["compute_seconds"] + comm
            rows.append({"workers": n, "mode": mode, "comm_seconds": comm, "step_seconds": step,
                         "efficiency": r["rows"]["compute_seconds"] / step, "samples_per_second": n * BATCH / step})
    return rows


def render(results: dict, command: str, commit: str, date: str) -> str:
    lines = ["## Gradient bytes per step, and scaling on paper (`bench/training/grad_sync_bytes.py`)", "",
             f"Command: `{command}` on {date} at {commit}; 2 processes x 1 thread, "
             "gloo on 127.0.0.1, on a 2-core machine shared with other jobs (times are noisy; bytes are exact). "
             f"Demo model shape (MMoE, 4 experts (128, 64), embedding dim 16), batch {BATCH:,} per rank, user and "
             "item ids drawn from Zipf laws (exponents 1.2 and 1.1) over the vocabulary.", "",
             "| vocabulary (user_id, item_id) | mode | bytes / step / rank | of which embedding rows | rows touched / step | "
             "compute (ms) | averaging, 2 ranks (ms) |", "|---|---|---|---|---|---|---|"]
    for vocab, r in results.items():
        for mode in ("rows", "dense"):
            m = r[mode]
            lines.append(f"| {int(vocab):,} | {mode} | {m['bytes'] / 1e6:,.2f} MB | {m['row_bytes'] / 1e6:,.3f} MB | "
                         f"{m['rows_touched']:,.0f} | {m['compute_seconds'] * 1e3:.1f} | {m['sync_seconds'] * 1e3:.1f} |")
    lines += ["", "With `rows` (the default), a table's gradient travels as the rows the batch looked up (ids + "
              "16 floats each), so the bytes follow the batch, not the vocabulary; `dense` sends whole tables. "
              "What remains is the dense part (experts, gates, towers: ~95k parameters = 0.38 MB).", "",
              "On paper, at 25 Gbit/s (3.1 GB/s; bandwidth only, no latency, no overlap of communication with "
              "compute, the measured 1-thread compute per step; ring all-reduce moves 2 (N-1)/N x the dense bytes, "
              "the row all-gather (N-1) x a rank's row bytes):", "",
              "| vocabulary | workers | mode | communication (ms) | step (ms) | efficiency | samples/s |",
              "|---|---|---|---|---|---|---|"]
    for vocab, r in results.items():
        for p in projection(r):
            lines.append(f"| {int(vocab):,} | {p['workers']} | {p['mode']} | {p['comm_seconds'] * 1e3:.2f} | "
                         f"{p['step_seconds'] * 1e3:.1f} | {p['efficiency']:.0%} | {p['samples_per_second']:,.0f} |")
    lines += ["", "Where it stops, on this model: with `rows`, communication equals the compute time only at "
              + ", ".join(f"{int(v):,} ids: ~{stop_workers(r):,} workers" for v, r in results.items())
              + " (bandwidth alone), so the network is not what stops it. Before that, (1) collective latency: a "
              "ring all-reduce costs 2 (N-1) hops, ~3 ms per step at 32 workers if a hop takes 50 us, still small "
              "against the step; (2) the global batch, N x 1,024 rows: 32k rows per step at 32 workers, where "
              "learning rate and warmup have to be retuned or more workers stop buying accuracy per second; and "
              "(3) with 1M-id tables the step itself is 3-4x slower than with 10k ids (measured above); the likely "
              "cause is each rank's own dense embedding gradient (64 MB per table, zeroed and written every "
              "step), which sparse embedding gradients in the model (`nn.Embedding(sparse=True)` with a "
              "sparse-aware optimizer) would remove; not built. With `dense`, 1M-id tables cost 41-80 ms of network per "
              "step at 25 Gbit/s and efficiency falls to 65% by 32 workers."]
    return "\n".join(lines)


def stop_workers(r: dict) -> int:
    """Workers at which the rows-mode communication (bandwidth only) equals the compute time per step."""
    m = r["rows"]
    per_worker = m["row_bytes"] / LINK  # the all-gather grows by one rank's rows per worker
    dense = 2 * m["dense_bytes"] / LINK  # the ring all-reduce's limit
    return int((m["compute_seconds"] - dense) / per_worker) + 1


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab", type=int, nargs="+", default=[10_000, 1_000_000])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--write-doc", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--replot", action="store_true", help="rewrite the docs from the saved results, no run")
    p.add_argument("--rank-out", type=Path, help=argparse.SUPPRESS)  # set when torchrun runs this module
    args = p.parse_args(argv)
    if args.rank_out:
        result = {str(v): rank_main(v, args.steps) for v in args.vocab}
        if int(os.environ["RANK"]) == 0:
            args.rank_out.write_text(json.dumps(result))
        return
    out = REPO / "bench" / "results" / "grad_sync_bytes.json"
    if args.replot:
        saved = json.loads(out.read_text())
        return write_section("grad-sync-bytes", render(saved["results"], saved["command"], saved["commit"], saved["date"]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
           "bench.training.grad_sync_bytes", "--steps", str(args.steps), "--vocab", *map(str, args.vocab), "--rank-out", str(out)]
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    results = json.loads(out.read_text())
    print(json.dumps(results, indent=1))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    saved = {"results": results, "command": " ".join([".venv/bin/python -m bench.training.grad_sync_bytes", *argv]),
             "commit": commit, "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"}
    out.write_text(json.dumps(saved, indent=1))
    if args.write_doc:
        write_section("grad-sync-bytes", render(results, saved["command"], commit, saved["date"]))


if __name__ == "__main__":
    main()
