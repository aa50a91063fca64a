"""Training runs: one model on one draw, all models on one draw, and the pool over runs and correlations."""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import torch

from bench.quality.runner import in_job_order
from bench.quality.synthetic.config import SynthConfig
from bench.quality.synthetic.data import make_data
from bench.quality.synthetic.models import model_args, n_params, shared_bottom_units
from training.modeling.model import ModelArgs, build_model


@torch.no_grad()
def eval_mse(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """(2,) per-task MSE in eval mode (no expert dropout)."""
    model.eval()
    out = model(torch.zeros((len(x), 0), dtype=torch.long), x)
    model.train()
    return ((out - y) ** 2).mean(dim=0).numpy()


def train_run(args: ModelArgs, data: dict[str, torch.Tensor], cfg: SynthConfig,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Adam on the sum of the two task MSEs; returns the (evals, 2) test-loss curve and the (2,) final train MSE.

    The train MSE separates underfitting (capacity: tasks compete) from overfitting (generalization).
    """
    torch.manual_seed(seed)
    model = build_model(args)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    x, y = data["x_train"], data["y_train"]
    no_cat = torch.zeros((cfg.batch_size, 0), dtype=torch.long)
    curve, order, pos = [], torch.randperm(len(x), generator=gen), 0
    model.train()
    for step in range(1, cfg.steps + 1):
        if pos + cfg.batch_size > len(x):  # new epoch: reshuffle, drop the ragged tail
            order, pos = torch.randperm(len(x), generator=gen), 0
        idx = order[pos:pos + cfg.batch_size]
        pos += cfg.batch_size
        loss = ((model(no_cat, x[idx]) - y[idx]) ** 2).mean(dim=0).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % cfg.eval_every == 0:
            curve.append(eval_mse(model, data["x_test"], data["y_test"]))
    return np.stack(curve), eval_mse(model, x, y)


def one_run(job: tuple[SynthConfig, dict[str, ModelArgs], float, int]) -> tuple[float, dict, dict, dict, float]:
    """All models on one draw: (p, {model: test curve}, {model: final train MSE}, {model: seconds}, var(y_test))."""
    cfg, args, p, run = job
    torch.set_num_threads(1)  # tiny models: one thread per run, runs in parallel across cores
    # The seed does not depend on p (common random numbers): run r sees the same draw and init at every p.
    seed = cfg.seed * 1_000_003 + run
    data = make_data(p, cfg, np.random.default_rng(seed))
    curves, train, seconds = {}, {}, {}
    for name, a in args.items():
        t = time.perf_counter()
        curve, train_mse = train_run(a, data, cfg, seed)
        curves[name], train[name] = curve.tolist(), train_mse.tolist()
        seconds[name] = time.perf_counter() - t
    return p, curves, train, seconds, float(data["y_test"].var(dim=0).mean())


def run_all(cfg: SynthConfig, workers: int = 2) -> dict:
    """curves[model][p] = (runs, evals, 2) test MSE and train[model][p] = (runs, 2) final train MSE; plus sizes, timing."""
    units = shared_bottom_units(cfg)
    args = {name: model_args(name, cfg, units) for name in cfg.models}
    curves = {name: {str(p): [] for p in cfg.correlations} for name in cfg.models}
    train = {name: {str(p): [] for p in cfg.correlations} for name in cfg.models}
    seconds, label_var = dict.fromkeys(cfg.models, 0.0), []
    jobs = [(cfg, args, p, run) for p in cfg.correlations for run in range(cfg.runs)]
    t0 = time.perf_counter()
    # Results come in job order (index r = run r at every p), so they do not depend on the workers.
    for done, (p, run_curves, run_train, run_seconds, var) in enumerate(in_job_order(one_run, jobs, workers), 1):
        for name in cfg.models:
            curves[name][str(p)].append(run_curves[name])
            train[name][str(p)].append(run_train[name])
            seconds[name] += run_seconds[name]
        label_var.append(var)
        if done % cfg.runs == 0:
            print(f"{done}/{len(jobs)} runs done ({time.perf_counter() - t0:.0f} s)", flush=True)
    return {"config": asdict(cfg), "shared_bottom_units": units, "workers": workers,
            "params": {name: n_params(build_model(a)) for name, a in args.items()},
            "seconds": seconds, "total_seconds": time.perf_counter() - t0, "label_var": float(np.mean(label_var)),
            "curves": curves, "train": train}
