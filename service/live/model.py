"""The model behind the routes: a small interface and its onnxruntime implementation.

Routes and the ranking pipeline only see `RankingModel`; tests can hand the app any object with
this shape, and `OnnxRankingModel` is the real one, built from a verified bundle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from service.contract.bundle import LoadedBundle, Manifest, SessionConfig, TaskInfo, load_bundle
from service.contract.features import missing_values
from service.contract.layout import encode_split, item_codes, one_request
from service.contract.lookups import ENTITY_KEY
from service.contract.missing import check_defaulted
from service.contract.request import RankRequest, RequestParser

if TYPE_CHECKING:
    from service.feature_store.lookup import Filled

WARMUP_BATCHES = (1, 64)


class RankingModel(Protocol):
    """What the server needs from a model version."""

    version: int
    manifest: Manifest

    @property
    def tasks(self) -> list[TaskInfo]: ...

    def parse(self, body: bytes) -> RankRequest:
        """Raw JSON -> validated request (InvalidRequest / PayloadTooLarge on bad input)."""
        ...

    def encode(self, request: RankRequest, filled: Filled | None = None) -> dict[str, np.ndarray]:
        """Request (plus the features the store filled in) -> model inputs, one row per candidate; fills
        request.columns, request.defaulted and request.clipped, and raises InvalidRequest for a missing feature trained with
        on_missing: error."""
        ...

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Model inputs -> {task: (B,) head output}, all heads at once."""
        ...


@dataclass
class OnnxRankingModel:
    """A verified bundle, its request parser and its onnxruntime session."""

    version: int
    bundle: LoadedBundle
    parser: RequestParser
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_seconds: float = 0.0

    @property
    def manifest(self) -> Manifest:
        return self.bundle.manifest

    @property
    def tasks(self) -> list[TaskInfo]:
        return self.bundle.manifest.tasks

    @property
    def path(self) -> Path:
        return self.bundle.path

    def parse(self, body: bytes) -> RankRequest:
        return self.parser.parse(body)

    def encode(self, request: RankRequest, filled: Filled | None = None) -> dict[str, np.ndarray]:
        # The request's columns (the parser gathered them); missing values are counted from the same lists,
        # after the feature store filled what it found (a value it filled is not a defaulted one).
        features, n = self.manifest.features, len(request.item_ids)
        user = filled.user if filled is not None else request.user
        items = {**request.items, **filled.item_columns} if filled is not None else request.items
        columns = features.request_columns(user, request.context, items, n)
        for enc in features.numeric:  # raw numbers once, as float64 (NaN = missing): the encoder reads them,
            if isinstance(values := columns[enc.name], list):  # and the impression log keeps them as they are
                columns[enc.name] = np.array(values, dtype=np.float64)
        request.columns.update(columns)  # what the model saw, for the impression log
        request.defaulted.update(check_defaulted(features, missing_values(columns), columns))
        if self.manifest.input_layout == "split":  # user and context encoded once, one row
            inputs = encode_split(features, columns, n, request.clipped)
        else:
            inputs = features.encode_columns(columns, n, request.clipped)
        request.codes.update(item_codes(features, inputs))
        return inputs

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # onnxruntime releases the GIL inside run(), so other requests parse while this one scores.
        return self.bundle.predict(inputs)

    def warm_up(self, batch_sizes: tuple[int, ...]) -> None:
        """Score the parity rows tiled to each batch size, so the first requests pay no allocation."""
        rows = self.manifest.parity_sample.rows
        names = [f.name for f in self.manifest.features.all()]
        for size in batch_sizes:
            tiled = [rows[i % len(rows)] for i in range(size)]
            columns: dict[str, Any] = {n: [r.get(n) for r in tiled] for n in names}
            inputs = self.manifest.features.encode_columns(columns, size)
            self.predict(one_request(self.manifest.features, inputs) if self.manifest.input_layout == "split"
                         else inputs)


def load_model(bundle_dir: Path, version: int, session_config: SessionConfig, max_candidates: int) -> OnnxRankingModel:
    """Load + verify (sha256, io names, parity sample) + warm up. Raises BundleError."""
    t0 = time.perf_counter()
    bundle = load_bundle(bundle_dir, session_config)
    user_key = ENTITY_KEY["user"] if "user" in bundle.manifest.lookups else None
    parser = RequestParser(bundle.manifest.features, max_candidates, user_key)
    model = OnnxRankingModel(version=version, bundle=bundle, parser=parser)
    model.warm_up((*WARMUP_BATCHES, max_candidates))
    model.load_seconds = time.perf_counter() - t0
    return model
