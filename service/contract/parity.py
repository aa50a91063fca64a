"""The one parity check: do two sets of head outputs agree within the bundle's tolerance?

Export (onnxruntime against PyTorch on real rows), bundle load (the manifest's parity sample
re-scored by the server) and the retrain gate all call `compare`, with these tolerances.

Outputs are in natural units, and a watch time of a few hundred seconds differs by about 2e-4
between PyTorch and onnxruntime from float32 rounding alone, so the bound is
`atol + rtol * |expected|` (as numpy.isclose): about 1e-4 for probabilities, relative for seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PARITY_ATOL = 1e-4
PARITY_RTOL = 1e-5


@dataclass(frozen=True)
class ParityResult:
    """How far `got` is from `expected`.

    Args:
        max_abs_diff: max |got - expected| (inf when any value is non-finite).
        worst_ratio: max |got - expected| / (atol + rtol * |expected|); the check passes at <= 1.
        rows: rows compared.
    """

    max_abs_diff: float
    worst_ratio: float
    rows: int

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.worst_ratio) and self.worst_ratio <= 1.0)

    def describe(self, atol: float = PARITY_ATOL, rtol: float = PARITY_RTOL) -> str:
        return (f"max abs diff {self.max_abs_diff:.3g} on {self.rows} rows "
                f"(bound {atol} + {rtol} * |expected|, worst ratio {self.worst_ratio:.3g})")


def compare(got: np.ndarray, expected: np.ndarray, atol: float = PARITY_ATOL,
            rtol: float = PARITY_RTOL) -> ParityResult:
    """Compare (N,) or (N, T) outputs element-wise. Non-finite values anywhere fail."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        raise ValueError(f"parity: shapes differ, {got.shape} vs {expected.shape}")
    rows = int(got.shape[0]) if got.ndim else 1
    if got.size == 0:
        return ParityResult(0.0, 0.0, rows)
    abs_diff = np.abs(got - expected)
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(expected))):
        return ParityResult(float("inf"), float("inf"), rows)
    ratio = abs_diff / (atol + rtol * np.abs(expected))
    return ParityResult(float(abs_diff.max()), float(ratio.max()), rows)
