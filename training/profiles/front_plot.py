"""The tuner's picture: the Pareto front on held-out requests, the current profiles marked.

Two objectives are drawn (the first two when there are more). Every point is a held-out mean
with its 95 % bootstrap interval as error bars.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402

from training.profiles.replay import Metric  # noqa: E402
from training.profiles.stats import Estimate  # noqa: E402
from training.profiles.tune import Point  # noqa: E402


def _xy(estimates: list[Estimate]) -> tuple[float, float, list[list[float]], list[list[float]]]:
    x, y = estimates[0], estimates[1]
    xerr = [[x.mean - x.lo], [x.hi - x.mean]] if x.lo is not None else [[0.0], [0.0]]
    yerr = [[y.mean - y.lo], [y.hi - y.mean]] if y.lo is not None else [[0.0], [0.0]]
    return x.mean, y.mean, xerr, yerr


def plot_front(path: Path, objectives: list[Metric], front: list[Point], current: list[Point],
               chosen: list[Point], references: list[tuple[str, list[Estimate]]] = (), title: str = "") -> Path:
    """Write the PNG: front (line + points), current profiles (labelled squares), chosen (stars), references."""
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    pts = sorted((p for p in front if len(p.holdout) >= 2), key=lambda p: p.holdout[0].mean)
    if pts:
        ax.plot([p.holdout[0].mean for p in pts], [p.holdout[1].mean for p in pts], "-", color="tab:blue",
                alpha=0.4, zorder=1)
        for p in pts:
            x, y, xerr, yerr = _xy(p.holdout)
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", ms=4, color="tab:blue", alpha=0.5, elinewidth=0.6,
                        zorder=2)
        ax.plot([], [], "o", color="tab:blue", label="tuner's front (held-out)")
    for p in current:
        x, y, xerr, yerr = _xy(p.holdout)
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="s", ms=8, color="tab:red", elinewidth=1, zorder=3)
        ax.annotate(p.name, (x, y), textcoords="offset points", xytext=(6, -12), fontsize=8, color="tab:red")
    ax.plot([], [], "s", color="tab:red", label="current profiles")
    for p in chosen:
        x, y, _, _ = _xy(p.holdout)
        ax.plot(x, y, "*", ms=14, color="tab:green", zorder=4)
        ax.annotate(p.name, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=7, color="tab:green")
    if chosen:
        ax.plot([], [], "*", ms=10, color="tab:green", label="chosen profiles")
    for name, estimates in references:
        x, y, xerr, yerr = _xy(estimates)
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="D", ms=7, color="tab:gray", elinewidth=1, zorder=3)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8, color="dimgray")
    ax.set_xlabel(objectives[0].name + " (held-out)")
    ax.set_ylabel(objectives[1].name + " (held-out)")
    ax.set_title(title or "Pareto front of weight profiles on held-out requests")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
