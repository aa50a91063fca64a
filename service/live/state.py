"""What a request is served with: one model and the weights compiled for it, swapped as one reference.

A request reads `ServingState.serving` once and keeps that object to the end, so a model or
weights swap never mixes versions inside a request, and in-flight requests finish on what they
started with. Every change goes through `set_model` / `set_weights` / `set_canary`, which validate
the new pair (weights against the model's tasks) under a lock before replacing the reference.

A canary (service/registry/canary.py) rides in the same reference: its model and the weights compiled
for it, with the record that says who it serves. New weights that fit CURRENT but not the canary
drop the canary (CURRENT serves everyone) rather than refuse the weights.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from service.live.model import RankingModel
from service.profiles import CompiledWeights, Weights, WeightsError, compile_weights
from service.registry.canary import CanaryRecord

log = logging.getLogger(__name__)


class ModelRefused(Exception):
    """A loaded model that cannot serve with the active weights (its task set no longer matches)."""


@dataclass(frozen=True)
class Canary:
    """A version beside CURRENT: who it serves (record) and what it scores with."""

    model: RankingModel
    weights: CompiledWeights
    record: CanaryRecord


@dataclass(frozen=True)
class Serving:
    model: RankingModel
    weights: CompiledWeights
    canary: Canary | None = None


class ServingState:
    """Holds the active model, the active weights and the compiled pair requests read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: RankingModel | None = None
        self._weights: Weights | None = None
        self._compiled: CompiledWeights | None = None
        self._canary: Canary | None = None
        self.serving: Serving | None = None

    @property
    def model(self) -> RankingModel | None:
        return self._model

    @property
    def weights(self) -> Weights | None:
        return self._weights

    @property
    def canary(self) -> Canary | None:
        return self._canary

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
            self._model, self._compiled = model, compiled
            self._publish()

    def set_weights(self, weights: Weights) -> None:
        """Make `weights` active; raises WeightsError (keeping the old ones) if they do not fit the model."""
        with self._lock:
            compiled = compile_weights(weights, self._model.tasks) if self._model is not None else None
            self._weights = weights
            if compiled is not None:
                self._compiled = compiled
            if self._canary is not None:
                try:
                    self._canary = Canary(self._canary.model, compile_weights(weights, self._canary.model.tasks),
                                          self._canary.record)
                except WeightsError as e:
                    log.error("the new weights do not fit the canary; CURRENT serves everyone",
                              extra={"model_version": self._canary.model.version, "error": str(e)})
                    self._canary = None
            self._publish()

    def set_canary(self, model: RankingModel, record: CanaryRecord) -> None:
        """Serve `record`'s share with `model`; raises ModelRefused (keeping the old canary) on a weights misfit."""
        with self._lock:
            if self._weights is None:
                raise ModelRefused(f"canary version {model.version}: no weights loaded yet")
            try:
                compiled = compile_weights(self._weights, model.tasks)
            except WeightsError as e:
                raise ModelRefused(f"canary version {model.version} does not fit the active weights: {e}") from e
            self._canary = Canary(model, compiled, record)
            self._publish()

    def set_canary_record(self, record: CanaryRecord) -> None:
        """A new share or mode for the loaded canary (same version: no reload)."""
        with self._lock:
            if self._canary is not None and self._canary.model.version == record.version:
                self._canary = Canary(self._canary.model, self._canary.weights, record)
                self._publish()

    def clear_canary(self) -> None:
        with self._lock:
            self._canary = None
            self._publish()

    def _publish(self) -> None:
        """One new reference for requests to read (with the lock held)."""
        if self._model is None or self._compiled is None:
            self.serving = None
            return
        self.serving = Serving(self._model, self._compiled, self._canary)
