"""Post-hoc calibration of a head, stored in the manifest and applied to the ONNX output.

The trainer fits these on the validation split (training/bundle/calibration.py); `LoadedBundle.predict`
applies them right after `session.run`, so the server, the parity check, the retrain gates and
every offline tool see the same calibrated values:

    platt      binary      p' = sigmoid(a * logit(p) + b)
    isotonic   binary      p' = piecewise-linear interpolation through (x, y), flat outside
    smearing   log1p       y' = factor * (1 + y) - 1   (Duan's smearing: the graph's expm1 of a
               regression  predicted log is a median; factor = mean(exp(residual)) on validation
                           makes it an estimate of the mean)

A manifest without calibration (every bundle before this existed) means identity.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

PROB_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] before the logit


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Platt(_Frozen):
    kind: Literal["platt"] = "platt"
    a: Annotated[float, Field(allow_inf_nan=False)]
    b: Annotated[float, Field(allow_inf_nan=False)]

    def apply(self, p: np.ndarray) -> np.ndarray:
        q = np.clip(p.astype(np.float64), PROB_EPS, 1 - PROB_EPS)
        z = self.a * np.log(q / (1 - q)) + self.b
        return 1.0 / (1.0 + np.exp(-z))


class Isotonic(_Frozen):
    kind: Literal["isotonic"] = "isotonic"
    x: list[float] = Field(min_length=2)  # increasing knots (raw probabilities)
    y: list[float] = Field(min_length=2)  # non-decreasing calibrated values at the knots

    @model_validator(mode="after")
    def _shape(self) -> Isotonic:
        x, y = np.asarray(self.x), np.asarray(self.y)
        if len(x) != len(y) or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError("x and y must be finite and of equal length")
        if np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0) or y.min() < 0 or y.max() > 1:
            raise ValueError("x must increase and y must be non-decreasing within [0, 1]")
        return self

    def apply(self, p: np.ndarray) -> np.ndarray:
        return np.interp(p.astype(np.float64), self.x, self.y)


class Smearing(_Frozen):
    kind: Literal["smearing"] = "smearing"
    factor: Annotated[float, Field(gt=0, allow_inf_nan=False)]

    def apply(self, y: np.ndarray) -> np.ndarray:
        return self.factor * (1.0 + y.astype(np.float64)) - 1.0

    def invert(self, y: np.ndarray) -> np.ndarray:
        """The graph's output (the median) back from a served value."""
        return (1.0 + y.astype(np.float64)) / self.factor - 1.0


Calibration = Annotated[Platt | Isotonic | Smearing, Field(discriminator="kind")]


def calibrate(calibration: Platt | Isotonic | Smearing | None, values: np.ndarray) -> np.ndarray:
    """(B,) head output -> (B,) float32 calibrated output (the input unchanged when None)."""
    if calibration is None:
        return values
    return calibration.apply(values).astype(np.float32)
