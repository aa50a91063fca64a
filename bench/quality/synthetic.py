"""Ma et al. (KDD 2018), section 3.2 / 4.3: MMoE vs OMoE vs shared-bottom as task correlation falls.

Generator (their steps 1-5): x ~ N(0, I_d); orthonormal u1, u2; w1 = c u1,
w2 = c (p u1 + sqrt(1 - p^2) u2); y_t = w_t^T x + sum_{i=1..m} sin(alpha_i w_t^T x + beta_i) + eps_t,
alpha_i, beta_i ~ N(0, 1) shared by both tasks, eps_t ~ N(0, 0.01) read as variance 0.01 (std 0.1).
Every run draws new u1, u2, alpha, beta, data and model initialization; within a run every model
sees the same data. The models are training/model.py's MMoE (arch mmoe / omoe) and SharedBottom on
dense-only inputs (no categorical features), so this tests our implementation, not a copy.

    .venv/bin/python -m bench.quality.synthetic            # full: 30 runs x 3 correlations x 4 models
    .venv/bin/python -m bench.quality.synthetic --smoke    # seconds; writes to a temp dir
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from bench.quality.common import REPO, Output, command_line, md_table, mean_std, provenance, use_agg
from training.model import ModelArgs, build_model

SECTION = "quality-synthetic"
RESULTS = REPO / "bench" / "quality" / "results" / "synthetic.json"
# name -> (arch, expert dropout); the paper's MMoE has no expert dropout, ours defaults to 0.1.
MODELS = {"mmoe": ("mmoe", 0.0), "omoe": ("omoe", 0.0), "shared_bottom": ("shared_bottom", 0.0),
          "mmoe_ed0.1": ("mmoe", 0.1)}


@dataclass(frozen=True)
class SynthConfig:
    d: int = 100
    c: float = 1.0  # scale of w_t; the paper does not print its value
    m: int = 10  # number of sinusoids; the paper does not print its value
    noise_var: float = 0.01
    n_train: int = 10_000
    n_test: int = 5_000
    correlations: tuple[float, ...] = (1.0, 0.9, 0.5)
    models: tuple[str, ...] = tuple(MODELS)
    runs: int = 30
    experts: int = 8
    expert_units: int = 16
    tower_units: int = 8
    batch_size: int = 128
    lr: float = 2e-3
    steps: int = 3000
    eval_every: int = 100
    seed: int = 0


def smoke_config() -> SynthConfig:
    return SynthConfig(n_train=1000, n_test=500, runs=2, steps=60, eval_every=20)


def make_data(p: float, cfg: SynthConfig, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """One draw of the generator: x (N, d) float32, y (N, 2) float32, split into train and test."""
    u, _ = np.linalg.qr(rng.normal(size=(cfg.d, 2)))  # two orthonormal columns
    w = cfg.c * np.stack([u[:, 0], p * u[:, 0] + np.sqrt(1.0 - p * p) * u[:, 1]], axis=1)  # (d, 2)
    alpha, beta = rng.normal(size=cfg.m), rng.normal(size=cfg.m)
    n = cfg.n_train + cfg.n_test
    x = rng.normal(size=(n, cfg.d))
    z = x @ w  # (N, 2)
    waves = np.sin(z[:, :, None] * alpha + beta).sum(axis=-1)  # (N, 2)
    y = z + waves + rng.normal(0.0, np.sqrt(cfg.noise_var), size=z.shape)
    x, y = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))
    return {"x_train": x[:cfg.n_train], "y_train": y[:cfg.n_train],
            "x_test": x[cfg.n_train:], "y_test": y[cfg.n_train:]}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_args(name: str, cfg: SynthConfig, bottom_units: int | None = None) -> ModelArgs:
    arch, expert_dropout = MODELS[name]
    hidden = [bottom_units or cfg.expert_units] if arch == "shared_bottom" else [cfg.expert_units]
    return ModelArgs(cardinalities=[], n_numeric=cfg.d, tasks=["y1", "y2"], arch=arch,
                     num_experts=cfg.experts, expert_hidden=hidden, tower_hidden=[cfg.tower_units],
                     expert_dropout=expert_dropout)


def shared_bottom_units(cfg: SynthConfig) -> int:
    """Width of the shared-bottom layer whose parameter count is closest to the MMoE's."""
    target = n_params(build_model(model_args("mmoe", cfg)))
    return min(range(1, 4 * cfg.experts * cfg.expert_units),
               key=lambda h: abs(n_params(build_model(model_args("shared_bottom", cfg, h))) - target))


@torch.no_grad()
def test_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """(2,) per-task test MSE."""
    model.eval()
    out = model(torch.zeros((len(x), 0), dtype=torch.long), x)
    model.train()
    return ((out - y) ** 2).mean(dim=0).numpy()


def train_run(args: ModelArgs, data: dict[str, torch.Tensor], cfg: SynthConfig, seed: int) -> np.ndarray:
    """Adam on the sum of the two task MSEs; returns the (evals, 2) test-loss curve."""
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
            curve.append(test_loss(model, data["x_test"], data["y_test"]))
    return np.stack(curve)


def _one_run(job: tuple[SynthConfig, dict[str, ModelArgs], int, float, int]) -> tuple[float, dict, dict]:
    """All models on one draw of the data: (p, {model: curve}, {model: seconds})."""
    cfg, args, pi, p, run = job
    torch.set_num_threads(1)  # tiny models: one thread per run, runs in parallel across cores
    seed = cfg.seed * 1_000_003 + pi * 10_007 + run
    data = make_data(p, cfg, np.random.default_rng(seed))
    curves, seconds = {}, {}
    for name, a in args.items():
        t = time.perf_counter()
        curves[name] = train_run(a, data, cfg, seed).tolist()
        seconds[name] = time.perf_counter() - t
    return p, curves, seconds


def run_all(cfg: SynthConfig, workers: int = 2) -> dict:
    """curves[model][p] = (runs, evals, 2) test MSE; plus parameter counts and timing."""
    units = shared_bottom_units(cfg)
    args = {name: model_args(name, cfg, units) for name in cfg.models}
    curves = {name: {str(p): [] for p in cfg.correlations} for name in cfg.models}
    seconds = dict.fromkeys(cfg.models, 0.0)
    jobs = [(cfg, args, pi, p, run) for pi, p in enumerate(cfg.correlations) for run in range(cfg.runs)]
    t0 = time.perf_counter()
    # Results are gathered in job order, so the output does not depend on the number of workers.
    with contextlib.ExitStack() as stack:
        if workers > 1:
            results = stack.enter_context(mp.get_context("spawn").Pool(workers)).imap(_one_run, jobs)
        else:
            results = map(_one_run, jobs)
        for done, (p, run_curves, run_seconds) in enumerate(results, start=1):
            for name in cfg.models:
                curves[name][str(p)].append(run_curves[name])
                seconds[name] += run_seconds[name]
            if done % cfg.runs == 0:
                print(f"{done}/{len(jobs)} runs done ({time.perf_counter() - t0:.0f} s)", flush=True)
    return {"config": asdict(cfg), "shared_bottom_units": units, "workers": workers,
            "params": {name: n_params(build_model(a)) for name, a in args.items()},
            "seconds": seconds, "total_seconds": time.perf_counter() - t0, "curves": curves}


def final_losses(res: dict, name: str, p: str) -> np.ndarray:
    """(runs,) final test loss, averaged over the two tasks."""
    return np.asarray(res["curves"][name][p])[:, -1, :].mean(axis=1)


def plot_curves(res: dict, out: Output) -> str:
    import matplotlib.pyplot as plt

    cfg = res["config"]
    ps = [str(p) for p in cfg["correlations"]]
    fig, axes = plt.subplots(1, len(ps), figsize=(4.2 * len(ps), 3.2), sharey=True)
    steps = np.arange(1, len(res["curves"][cfg["models"][0]][ps[0]][0]) + 1) * cfg["eval_every"]
    for ax, p in zip(np.atleast_1d(axes), ps, strict=True):
        for name in cfg["models"]:
            c = np.asarray(res["curves"][name][p]).mean(axis=2)  # (runs, evals)
            m, s = c.mean(axis=0), c.std(axis=0)
            ax.plot(steps, m, label=name)
            ax.fill_between(steps, m - s, m + s, alpha=0.15)
        ax.set_title(f"correlation p = {p}")
        ax.set_xlabel("training step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("test MSE (mean of 2 tasks)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle(f"Test loss over training, mean ± std over {cfg['runs']} runs (cf. Ma et al. Fig. 4)")
    return out.figure(fig, "synthetic_loss_curves")


def plot_histograms(res: dict, out: Output) -> str:
    import matplotlib.pyplot as plt

    cfg = res["config"]
    ps = [str(p) for p in cfg["correlations"]]
    fig, axes = plt.subplots(1, len(ps), figsize=(4.2 * len(ps), 3.2))
    for ax, p in zip(np.atleast_1d(axes), ps, strict=True):
        finals = {name: final_losses(res, name, p) for name in cfg["models"]}
        bins = np.geomspace(min(v.min() for v in finals.values()), max(v.max() for v in finals.values()), 25)
        for name, v in finals.items():
            ax.hist(v, bins=bins, alpha=0.45, label=name)
        ax.set_xscale("log")
        ax.set_title(f"correlation p = {p}")
        ax.set_xlabel("final test MSE")
    np.atleast_1d(axes)[0].set_ylabel("runs")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle("Distribution of final test loss over runs (cf. Ma et al. Fig. 5, trainability)")
    return out.figure(fig, "synthetic_final_loss_hist")


def summary_rows(res: dict) -> list[list[str]]:
    cfg = res["config"]
    rows = []
    for name in cfg["models"]:
        row = [name, str(res["params"][name])]
        for p in cfg["correlations"]:
            v = final_losses(res, name, str(p))
            m, s = mean_std(v)
            row += [f"{m:.4f} ± {s:.4f}", f"{np.median(v):.4f} [{np.percentile(v, 10):.4f}, {np.percentile(v, 90):.4f}]"]
        rows.append(row)
    return rows


def verdict(res: dict) -> str:
    """Plain-language check of the paper's two claims, computed from the numbers."""
    cfg = res["config"]
    ps = [str(p) for p in cfg["correlations"]]
    hi, lo = ps[0], ps[-1]
    names = [n for n in cfg["models"] if n != "mmoe_ed0.1"]
    degrade = {n: float(np.mean(final_losses(res, n, lo)) - np.mean(final_losses(res, n, hi))) for n in names}
    spread = {n: float(np.std(final_losses(res, n, lo), ddof=1)) for n in names}
    least = min(degrade, key=degrade.get)
    tightest = min(spread, key=spread.get)
    lines = [f"- Degradation of mean final test MSE from p = {hi} to p = {lo}: "
             + ", ".join(f"{n} {d:+.4f}" for n, d in degrade.items())
             + f". **{'MMoE degrades least' if least == 'mmoe' else f'{least} degrades least, not MMoE'}.**",
             f"- Spread (std over runs) of final test MSE at p = {lo}: "
             + ", ".join(f"{n} {s:.4f}" for n, s in spread.items())
             + f". **{'MMoE has the tightest spread' if tightest == 'mmoe' else f'{tightest} has the tightest spread, not MMoE'}.**"]
    return "\n".join(lines)


def runtime_line(res: dict) -> str:
    cfg = res["config"]
    per_model = ", ".join(f"{n} {s:.0f} s" for n, s in res["seconds"].items())
    return (f"Runtime: {res['total_seconds'] / 60:.1f} min wall for "
            f"{cfg['runs'] * len(cfg['correlations']) * len(cfg['models'])} trainings "
            f"({res['workers']} worker processes, 1 torch thread each); training time summed over runs: {per_model}.")


def render(res: dict, curves_png: str, hist_png: str, command: str) -> str:
    cfg = res["config"]
    header = ["model", "params"]
    for p in cfg["correlations"]:
        header += [f"p={p} mean ± std", f"p={p} median [p10, p90]"]
    return f"""## 1. Ma et al. (KDD 2018) synthetic task-correlation experiment

{provenance(command)}

**Setup.** Their generator with d = {cfg['d']}, c = {cfg['c']}, m = {cfg['m']} sinusoids,
ε ~ N(0, {cfg['noise_var']}) read as *variance* {cfg['noise_var']} (std {np.sqrt(cfg['noise_var']):.2f}),
so the best reachable test MSE is {cfg['noise_var']}. Each run draws new u1, u2, α, β, {cfg['n_train']:,} training
and {cfg['n_test']:,} test samples and a new initialization; within a run every model sees the same data.
{cfg['runs']} runs per (model, p), p ∈ {{{', '.join(str(p) for p in cfg['correlations'])}}}. Models are
`training/model.py` on dense-only input (`cardinalities=[]`): MMoE and OMoE with {cfg['experts']} experts of
{cfg['expert_units']} ReLU units and towers of {cfg['tower_units']} units; shared-bottom with one layer of
{res['shared_bottom_units']} units, the width whose parameter count is closest to the MMoE's; `mmoe_ed0.1` is our
MMoE with its default expert dropout 0.1 (the paper has none). Training: Adam lr {cfg['lr']}, batch
{cfg['batch_size']}, {cfg['steps']} steps (≈ {cfg['steps'] * cfg['batch_size'] // cfg['n_train']} epochs), loss = sum of the two task MSEs;
test MSE (mean of the two tasks) every {cfg['eval_every']} steps. The paper does not print c, m, sample counts or
its step budget, and grid-searched the learning rate; ours are fixed as above. The paper ran 200 runs per setting.
{runtime_line(res)}

**Final test MSE** (mean of the two tasks, after {cfg['steps']} steps):

{md_table(header, summary_rows(res))}

![test loss curves]({curves_png})

![final loss histograms]({hist_png})

**Do we reproduce the paper's finding?**

{verdict(res)}

Raw curves: `bench/quality/results/synthetic.json`.
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny run; writes to a temp dir unless --doc")
    ap.add_argument("--runs", type=int, help="runs per (model, p)")
    ap.add_argument("--workers", type=int, default=2, help="parallel runs (one torch thread each)")
    ap.add_argument("--doc", help="markdown file to write the section to")
    ns = ap.parse_args(argv)
    cfg = smoke_config() if ns.smoke else SynthConfig()
    if ns.runs:
        cfg = replace(cfg, runs=ns.runs)
    out = Output.for_run(ns.smoke, ns.doc)
    res = run_all(cfg, ns.workers)
    use_agg()
    if not ns.smoke:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(res))
    body = render(res, plot_curves(res, out), plot_histograms(res, out),
                  command_line("bench.quality.synthetic", argv))
    out.section(SECTION, body)


if __name__ == "__main__":
    main()
