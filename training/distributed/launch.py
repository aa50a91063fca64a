"""`ranker train --nproc N`: the same command again, in N processes started by torchrun.

torchrun (torch.distributed.run, shipped with torch) starts the processes, gives each its RANK,
WORLD_SIZE and LOCAL_RANK, and runs a c10d rendezvous on this machine (`--standalone`: a free port on
localhost). Each process then runs `ranker train` without `--nproc`, sees WORLD_SIZE and joins the
group (training/distributed/context.py). Several machines use torchrun directly, with
`--nnodes` and `--rdzv-endpoint` (deploy/k8s/pytorchjob.yaml does this on Kubernetes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from service.registry import REPORT_JSON


def under_torchrun() -> bool:
    """True inside a process torchrun started (so `--nproc` must not start processes again)."""
    return "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def without_option(argv: list[str], option: str) -> list[str]:
    """argv with `option VALUE` / `option=VALUE` removed."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(f"{option}="):
            out.append(arg)
    return out


def torchrun_command(nproc: int, ranker_args: list[str]) -> list[str]:
    """The torchrun command line that runs `ranker <ranker_args>` in nproc processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "training.cli", *ranker_args]


def relaunch(nproc: int, argv: list[str] | None = None) -> int:
    """Run this `ranker` command line (argv without the program, `--nproc` dropped) in nproc processes;
    returns torchrun's exit code (non-zero when any process failed)."""
    args = without_option(sys.argv[1:] if argv is None else argv, "--nproc")
    return subprocess.run(torchrun_command(nproc, args), check=False).returncode


def relaunch_retrain(nproc: int, work_dir: Path, add_work_dir: bool) -> int:
    """`ranker retrain --nproc N`: torchrun, then rank 0's own exit code (0 promoted, 3 rejected, 4 busy),
    which it records in the run's report (torchrun itself exits 1 for any non-zero process); 2 when a
    process failed before there was a report."""
    argv = sys.argv[1:] + (["--work-dir", str(work_dir)] if add_work_dir else [])
    code = relaunch(nproc, argv)
    report = work_dir / REPORT_JSON
    if code and report.is_file():
        return int(json.loads(report.read_text()).get("exit_code", 2))
    return 2 if code else 0


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, bounded by a cgroup CPU quota (containers)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return cores
    return cores if quota == "max" else max(1, min(cores, int(int(quota) / int(period))))


def local_threads(configured: int | None) -> int:
    """Intra-op threads of one process: the spec's train.threads, else one fewer than the usable cores (at least
    one), shared by the processes torchrun started on this machine.

    One core is left free by default: torch's OpenMP threads wait for each other at every operation by
    spinning, so when another busy process takes a core, a thread per core spins against it and the epoch
    runs many times slower (bench/training/train_contention.py). It is where a default run starts: one process's fit
    then chooses each epoch between this and every core by timing (training/fit/threads.py); the GBDT and
    LambdaMART baselines keep it.
    """
    if configured:
        return configured
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cores = usable_cores()
    return max(1, (cores - 1 if ranks == 1 else cores // ranks))
