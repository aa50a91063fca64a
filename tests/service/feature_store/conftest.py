"""Fixtures for the feature-store tests: the demo model served in-process with a lookup step."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prometheus_client import CollectorRegistry

from service.contract.bundle import SessionConfig
from service.feature_store.embedded import EmbeddedStore
from service.feature_store.lookup import FeatureLookup
from service.feature_store.metrics import FeatureStoreMetrics
from service.feature_store.snapshots import publish_snapshot, snapshot_registry
from service.live.model import load_model
from service.live.state import Serving
from service.profiles import compile_weights, parse_weights
from service.registry import Registry

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def serving(bundle_dir: Path) -> Serving:
    model = load_model(bundle_dir, version=1, session_config=SessionConfig(), max_candidates=1000)
    weights = parse_weights((REPO / "configs" / "weights.yaml").read_bytes(), generation=1)
    return Serving(model, compile_weights(weights, model.tasks))


@pytest.fixture
def metrics() -> FeatureStoreMetrics:
    return FeatureStoreMetrics(CollectorRegistry())


@pytest.fixture
def published(tmp_path: Path, registry: Registry, feature_files: dict[str, Path], manifest) -> Registry:
    """The registry (model v1 CURRENT) with the item and user snapshots published (v1 each)."""
    for entity, path in feature_files.items():
        publish_snapshot(path, snapshot_registry(registry.root, manifest.model_name, entity), entity, manifest)
    return registry


@pytest.fixture
def embedded(published: Registry, metrics: FeatureStoreMetrics, serving: Serving) -> EmbeddedStore:
    store = EmbeddedStore(published.root, published.model_name, metrics, lambda: serving.model.manifest)
    assert store.check() == {"item": "success", "user": "success"}
    return store


@pytest.fixture
def lookup(embedded: EmbeddedStore, metrics: FeatureStoreMetrics) -> FeatureLookup:
    return FeatureLookup(embedded, metrics)


@pytest.fixture(scope="session")
def stored_rows(feature_files: dict[str, Path]) -> dict[str, dict[str, dict]]:
    """entity -> id -> the stored features (what an inlined request would carry)."""
    out = {}
    for entity, path in feature_files.items():
        key = f"{entity}_id"
        out[entity] = {row.pop(key): row for row in pq.read_table(path).to_pylist()}
    return out
