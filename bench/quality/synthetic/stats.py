"""Statistics over saved runs: final losses, paired changes across p, exact sign tests, pooled cells.

`res` is one result of runs.run_all (or its saved JSON): res["curves"][model][p] is (runs, evals, 2)
test MSE, res["train"][model][p] is (runs, 2) final train MSE, p a correlation as a string.
"""

from __future__ import annotations

import numpy as np

from bench.quality.synthetic.config import PAPER_MODELS
from training.compare.stats import sign_test

__all__ = ["changes", "counts", "ends", "final_losses", "paired_change", "rises", "sign_test"]


def final_losses(res: dict, name: str, p: str, task: int | None = None, key: str = "curves") -> np.ndarray:
    """(runs,) final test MSE (key "curves") or train MSE (key "train"): one task's, or the mean of the two."""
    v = np.asarray(res[key][name][p])
    v = v[:, -1, :] if key == "curves" else v  # (runs, 2)
    return v.mean(axis=1) if task is None else v[:, task]


def paired_change(res: dict, name: str, hi: str, lo: str, **kw: object) -> np.ndarray:
    """(runs,) change of the final loss from p = hi to p = lo; run r has the same draw and init at every p."""
    return final_losses(res, name, lo, **kw) - final_losses(res, name, hi, **kw)


def ends(res: dict) -> tuple[str, str, list[str]]:
    """Highest and lowest correlation, and the paper's models present in this result."""
    ps = [str(p) for p in res["config"]["correlations"]]
    return ps[0], ps[-1], [n for n in PAPER_MODELS if n in res["config"]["models"]]


def changes(res: dict, key: str = "curves") -> dict[str, np.ndarray]:
    """Paired change of the final loss from the highest to the lowest p, per paper model."""
    hi, lo, names = ends(res)
    return {n: paired_change(res, n, hi, lo, key=key) for n in names}


def rises(d: np.ndarray) -> bool:
    """The paired change is positive in a clear majority of runs (sign test p < 0.05), not just in the median."""
    return bool(np.median(d) > 0 and sign_test(d) < 0.05)


def counts(d: np.ndarray) -> str:
    """'rising runs/runs, p = sign-test p-value'."""
    return f"{int((d > 0).sum())}/{len(d)}, p = {sign_test(d):.2g}"
