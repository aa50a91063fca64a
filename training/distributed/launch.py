"""`ranker train --nproc N`: the same command again, in N processes started by torchrun.

torchrun (torch.distributed.run, shipped with torch) starts the processes, gives each its RANK,
WORLD_SIZE and LOCAL_RANK, and runs a c10d rendezvous on this machine (`--standalone`: a free port on
localhost). Each process then runs `ranker train` without `--nproc`, sees WORLD_SIZE and joins the
group (training/distributed/context.py). Several machines use torchrun directly, with
`--nnodes` and `--rdzv-endpoint` (deploy/k8s/pytorchjob.yaml does this on Kubernetes).
"""

from __future__ import annotations

import os
import subprocess
import sys


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


def local_threads(configured: int | None) -> int:
    """Intra-op threads of one process: the spec's train.threads, else the cores shared by the processes
    torchrun started on this machine (2 processes on 2 cores: 1 thread each)."""
    if configured:
        return configured
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
