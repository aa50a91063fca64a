"""The runs of a comparison (variant x seed): their order, the trainer in worker processes, and the budget.

Every run is `training.fit.train.train` on the variant's spec with `train.seed` set, no baseline, and the
chosen split measured by the trainer's own metrics (training/evaluation/metrics.py).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

from training.compare.variants import Variant, metric_of, spec_for
from training.spec import RankerSpec


@dataclass(frozen=True)
class Run:
    """One training run of the comparison: a variant with one seed (train.seed)."""

    variant: Variant
    seed: int

    def label(self) -> str:
        return f"{self.variant.name}, seed {self.seed}"


@dataclass
class Outcome:
    """The records of the runs that ran (in the order they finished), the runs the budget skipped, and the
    wall time."""

    records: list[dict]
    skipped: list[Run] = field(default_factory=list)
    seconds: float = 0.0


def schedule(variants: list[Variant], seeds: list[int]) -> list[Run]:
    """Seed by seed, the spec's model and every single-task model first, then the pairs: cut anywhere, the
    runs done so far form whole seeds of the matrix that matters most."""
    first = [v for v in variants if v.kind != "pair"]
    pairs = [v for v in variants if v.kind == "pair"]
    return [Run(v, s) for group in (first, pairs) for s in seeds for v in group]


def run_one(spec: RankerSpec, run: Run, split: str, threads: int | None) -> dict:
    """Train one variant with one seed and measure it on `split` ("valid" or "test"): the record."""
    from training.fit.train import train

    variant_spec = spec_for(spec, run.variant)
    variant_spec.train.seed = run.seed
    variant_spec.eval.baseline = "none"
    if threads is not None:
        variant_spec.train.threads = threads
    trained = train(variant_spec, progress=False, eval_test=split == "test")
    measured = trained.metrics[split]
    metrics = {}
    for task in trained.spec.label_tasks():
        key, _ = metric_of(task)
        metrics[task.name] = measured["tasks"][task.name].get(key)
    return {"variant": run.variant.name, "kind": run.variant.kind, "tasks": trained.spec.task_names(),
            "seed": run.seed, "metrics": metrics, "ndcg": measured.get(f"ndcg@{trained.spec.eval.ndcg_k}"),
            "epochs": len(trained.history), "best_epoch": trained.stopping.get("best_epoch"),
            "train_seconds": trained.train_seconds}


class Budget:
    """Wall-time budget: a run starts only if the time so far plus the longest run so far fits in it. Runs
    that started finish (a run is not cut short), so the bound is kept up to one run's length."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds, self.t0, self.longest = seconds, time.perf_counter(), 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def allows_start(self) -> bool:
        return self.seconds is None or self.elapsed() + self.longest <= self.seconds

    def finished(self, seconds: float) -> None:
        self.longest = max(self.longest, seconds)


Done = Callable[[dict, int, int], None]  # (record, runs finished, runs planned)


def run_all(spec: RankerSpec, runs: list[Run], split: str, jobs: int, budget: float | None,
            on_done: Done | None = None) -> Outcome:
    """Run every run that fits in the budget, `jobs` at a time (jobs > 1: spawned processes, one torch thread
    each; jobs = 1: in this process, the spec's threads)."""
    clock = Budget(budget)
    if jobs == 1:
        records, skipped = _in_process(spec, runs, split, clock, on_done)
    else:
        records, skipped = _in_pool(spec, runs, split, jobs, clock, on_done)
    return Outcome(records, skipped, clock.elapsed())


def _in_process(spec: RankerSpec, runs: list[Run], split: str, clock: Budget,
                on_done: Done | None) -> tuple[list[dict], list[Run]]:
    records = []
    for i, run in enumerate(runs):
        if not clock.allows_start():
            return records, runs[i:]
        t0 = time.perf_counter()
        records.append({**run_one(spec, run, split, None), "seconds": time.perf_counter() - t0})
        clock.finished(records[-1]["seconds"])
        if on_done:
            on_done(records[-1], len(records), len(runs))
    return records, []


def _in_pool(spec: RankerSpec, runs: list[Run], split: str, jobs: int, clock: Budget,
             on_done: Done | None) -> tuple[list[dict], list[Run]]:
    records: list[dict] = []
    waiting = list(runs)
    started: dict[Future, float] = {}
    context = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state in the workers
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_one_thread) as pool:
        while waiting or started:
            while waiting and len(started) < jobs and clock.allows_start():
                started[pool.submit(run_one, spec, waiting.pop(0), split, 1)] = time.perf_counter()
            if not started:
                break  # the budget allows no further start
            done, _ = wait(started, return_when=FIRST_COMPLETED)
            for future in done:
                seconds = time.perf_counter() - started.pop(future)
                try:
                    record = future.result()
                except BaseException:
                    pool.shutdown(cancel_futures=True)
                    raise
                records.append({**record, "seconds": seconds})
                clock.finished(seconds)
                if on_done:
                    on_done(records[-1], len(records), len(runs))
    return records, waiting


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)
