"""The arrays the tree baselines (the GBDT, baseline.py; LambdaMART, lambdamart.py) read: the model's own
encoded inputs, so that a baseline differs from the network in the learner only.

Categorical codes become tree categories: HistGradientBoosting takes at most 255 per feature. Codes are
ranked by training frequency (code 1 = the most frequent value), so the 253 most frequent values keep their
own category and the rarer ones share one ("rare"), beside the out-of-vocabulary code 0. The numerics are
the standardized values the network reads (log1p applied where the spec says).
"""

from __future__ import annotations

import numpy as np

from training import data as D

RARE_CODE = 254  # HistGradientBoosting's categories are 0..254 (max_bins 255)


def gbdt_inputs(e: D.Encoded) -> np.ndarray:
    """(N, C + F) float64: categorical codes (rare values share RARE_CODE), then the numerics."""
    codes = np.minimum(e.categorical, RARE_CODE).astype(np.float64)
    return np.concatenate([codes, e.numeric.astype(np.float64)], axis=1)


def categorical_columns(e: D.Encoded) -> int:
    """How many leading columns of gbdt_inputs(e) are categorical codes."""
    return e.categorical.shape[1]
