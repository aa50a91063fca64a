"""The constant baseline beside every model: what predicting the training split's mean label would score.

A model that is no better than a constant learned nothing from its features, and its AUC or RMSE
alone does not say so (an RMSE of 6.27 is good or useless depending on the label's spread). So every
report shows, per task, the constant's metric on the same rows and a skill figure:

    binary       the training prevalence p0: AUC 0.5, log loss of always predicting p0
    regression   the training mean: its RMSE; for log1p-trained heads also the mean of log1p(label),
                 the constant that is best on the trained scale
    skill        1 - model / constant of each loss (log loss, RMSE, RMSE of log1p): 0 = no better than
                 the constant, 1 = perfect

The metrics and the noise test that warns about a head within noise of its constant are in
training/evaluation/metrics.py (constant_metrics, skill, beats_constant).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.spec import RankerSpec, TaskConfig


@dataclass(frozen=True)
class Constant:
    """One task's constant prediction, from the training split's observed labels.

    mean: prevalence (binary) or mean label (regression), in label units; mean_log1p: the mean of
    log1p(label), for log1p-trained heads (None otherwise).
    """

    mean: float
    mean_log1p: float | None = None

    @classmethod
    def of(cls, task: TaskConfig, labels: np.ndarray) -> Constant | None:
        """From one task's (N,) training labels (NaN = not observed); None without any label."""
        y = labels[~np.isnan(labels)]
        if not y.size:
            return None
        # log1p labels are never negative (the data check refuses them); the mean of log1p is the
        # label scaler's mean, so the streamed path (which keeps moments only) gets the same number.
        log_mean = float(np.log1p(y).mean()) if task.label_transform == "log1p" else None
        return cls(float(y.mean()), log_mean)


def constants_of(spec: RankerSpec, train_labels: np.ndarray) -> dict[str, Constant]:
    """task -> its Constant from the (N, T) training labels in label units (tasks without labels left out)."""
    out = {}
    for j, t in enumerate(spec.tasks):
        if not t.listwise and (c := Constant.of(t, train_labels[:, j])) is not None:  # a ranking score has none
            out[t.name] = c
    return out
