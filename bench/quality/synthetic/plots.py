"""The section's two figures: test loss over training, and every run's final loss (cf. Ma et al. Fig. 4, 5)."""

from __future__ import annotations

import numpy as np

from bench.quality.common import Output
from bench.quality.synthetic.stats import final_losses


def _panels(res: dict, height: float) -> tuple[dict, list[str], object, np.ndarray]:
    """(config, correlations, figure, (1, P) axes): one panel per correlation p, sharing the y axis."""
    import matplotlib.pyplot as plt

    cfg = res["config"]
    ps = [str(p) for p in cfg["correlations"]]
    fig, axes = plt.subplots(1, len(ps), figsize=(4.2 * len(ps), height), sharey=True, squeeze=False)
    return cfg, ps, fig, axes


def plot_curves(res: dict, out: Output) -> str:
    """Median test loss over training with the interquartile band (robust to a few hard draws)."""
    cfg, ps, fig, axes = _panels(res, 3.2)
    steps = np.arange(1, len(res["curves"][cfg["models"][0]][ps[0]][0]) + 1) * cfg["eval_every"]
    for ax, p in zip(axes[0], ps, strict=True):
        for name in cfg["models"]:
            c = np.asarray(res["curves"][name][p]).mean(axis=2)  # (runs, evals)
            lo, med, hi = np.percentile(c, [25, 50, 75], axis=0)
            ax.plot(steps, med, label=name)
            ax.fill_between(steps, lo, hi, alpha=0.15)
        ax.set_title(f"correlation p = {p}")
        ax.set_xlabel("training step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("test MSE (mean of 2 tasks)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Test loss over training: median and interquartile range over {cfg['runs']} runs "
                 "(cf. Ma et al. Fig. 4)", y=1.03)
    return out.figure(fig, "synthetic_loss_curves")


def plot_histograms(res: dict, out: Output) -> str:
    """Every run's final loss per model (points) over a box plot, per correlation (log scale)."""
    cfg, ps, fig, axes = _panels(res, 3.4)
    jitter = np.random.default_rng(0)
    for ax, p in zip(axes[0], ps, strict=True):
        finals = [final_losses(res, name, p) for name in cfg["models"]]
        ax.boxplot(finals, showfliers=False, widths=0.5)
        for i, v in enumerate(finals, start=1):
            ax.scatter(i + jitter.uniform(-0.15, 0.15, len(v)), v, s=8, alpha=0.6)
        ax.set_xticks(range(1, len(finals) + 1), cfg["models"], rotation=20, fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"correlation p = {p}")
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].set_ylabel("final test MSE (one point per run)")
    fig.suptitle("Distribution of final test loss over runs (cf. Ma et al. Fig. 5, trainability)", y=1.03)
    return out.figure(fig, "synthetic_final_loss_hist")
