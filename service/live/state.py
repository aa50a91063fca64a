"""What a request is served with: one model and the weights compiled for it, swapped as one reference.

A request reads `ServingState.serving` once and keeps that object to the end, so a model or
weights swap never mixes versions inside a request, and in-flight requests finish on what they
started with. Every change goes through `set_model` / `set_weights`, which validate the new pair
(weights against the model's tasks) under a lock before replacing the reference.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from service.live.model import RankingModel
from service.profiles import CompiledWeights, Weights, WeightsError, compile_weights


class ModelRefused(Exception):
    """A loaded model that cannot serve with the active weights (its task set no longer matches)."""


@dataclass(frozen=True)
class Serving:
    model: RankingModel
    weights: CompiledWeights


class ServingState:
    """Holds the active model, the active weights and the compiled pair requests read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: RankingModel | None = None
        self._weights: Weights | None = None
        self.serving: Serving | None = None

    @property
    def model(self) -> RankingModel | None:
        return self._model

    @property
    def weights(self) -> Weights | None:
        return self._weights

    @property
    def ready(self) -> bool:
        return self.serving is not None

    def set_model(self, model: RankingModel) -> None:
        """Make `model` active; raises ModelRefused (keeping the old one) if the weights do not fit it."""
        with self._lock:
            compiled = None
            if self._weights is not None:
                try:
                    compiled = compile_weights(self._weights, model.tasks)
                except WeightsError as e:
                    raise ModelRefused(f"model version {model.version} does not fit the active weights: {e}") from e
            self._model = model
            self.serving = Serving(model, compiled) if compiled is not None else None

    def set_weights(self, weights: Weights) -> None:
        """Make `weights` active; raises WeightsError (keeping the old ones) if they do not fit the model."""
        with self._lock:
            compiled = compile_weights(weights, self._model.tasks) if self._model is not None else None
            self._weights = weights
            if compiled is not None:
                self.serving = Serving(self._model, compiled)
