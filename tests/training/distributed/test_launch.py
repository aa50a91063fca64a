"""`ranker train --nproc N` becomes torchrun running the same command without --nproc."""

from __future__ import annotations

import sys

from training.distributed.launch import local_threads, torchrun_command, without_option


def test_nproc_is_dropped_in_either_spelling() -> None:
    argv = ["train", "spec.yaml", "--nproc", "2", "--out", "b", "--nproc=3", "--registry", "r"]
    assert without_option(argv, "--nproc") == ["train", "spec.yaml", "--out", "b", "--registry", "r"]


def test_torchrun_runs_the_ranker_module_in_n_local_processes() -> None:
    cmd = torchrun_command(2, ["train", "spec.yaml"])
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--standalone" in cmd and "--nproc-per-node=2" in cmd
    assert cmd[-4:] == ["-m", "training.cli", "train", "spec.yaml"]


def test_processes_share_the_cores(monkeypatch) -> None:
    monkeypatch.setattr("training.distributed.launch.usable_cores", lambda: 8)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert local_threads(None) == 2 and local_threads(3) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert local_threads(None) == 1


def test_one_process_leaves_a_core_free_for_others(monkeypatch) -> None:
    """A thread per core spin-waits against any other busy process (issue 21, item 6): one core stays free."""
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    for cores, threads in ((1, 1), (2, 1), (8, 7)):
        monkeypatch.setattr("training.distributed.launch.usable_cores", lambda cores=cores: cores)
        assert local_threads(None) == threads
    assert local_threads(4) == 4  # train.threads wins
