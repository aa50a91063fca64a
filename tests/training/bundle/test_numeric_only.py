"""A table of numbers only (learning-to-rank features, no ids): no categorical feature. The model embeds
nothing, the graph has numeric inputs only, and the server verifies and serves the bundle."""

from __future__ import annotations

from pathlib import Path

import onnx
import orjson
import pytest
from fastapi.testclient import TestClient
from server_helpers import published_settings, wait_ready

from service.app import create_app
from service.contract.bundle import MODEL_FILE, load_bundle, read_manifest
from service.examples import example_request
from tests.conftest import DEMO_SPEC, _train
from training.bundle.export import export_bundle
from training.spec import RankerSpec

WEIGHTS = DEMO_SPEC.parent / "weights.yaml"


@pytest.fixture(scope="module")
def numeric_bundle(tiny_spec: RankerSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tiny_spec.model_dump()
    raw["features"]["categorical"] = []
    raw["data"]["item_id"] = None  # the item id fed a categorical feature
    raw["lookup"] = {}  # the lookups name categorical features
    spec = RankerSpec.model_validate(raw)
    assert spec.features.categorical == [] and spec.features.numeric
    return export_bundle(_train(spec), tmp_path_factory.mktemp("numeric-only") / "bundle")


def test_a_spec_without_categorical_features_trains_exports_and_verifies(numeric_bundle: Path) -> None:
    graph = onnx.load(str(numeric_bundle / MODEL_FILE)).graph
    assert [i.name for i in graph.input] == ["request_numeric", "item_numeric"]  # the split graph, no ids
    bundle = load_bundle(numeric_bundle)  # the server's verification: sha256, outputs, parity sample
    assert bundle.manifest.features.categorical == []


def test_the_server_ranks_with_numeric_features_only(numeric_bundle: Path, tmp_path: Path) -> None:
    manifest = read_manifest(numeric_bundle)
    settings = published_settings(numeric_bundle, tmp_path, WEIGHTS)
    body = example_request(manifest, 6)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        r = client.post("/v1/rank", content=orjson.dumps(body))
        bad = client.post("/v1/rank", content=orjson.dumps(
            {**body, "candidates": [{**body["candidates"][0], "item_age_days": "old"}]}))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 6 and all(it["score"] == it["score"] for it in items)  # finite, ranked
    assert bad.status_code == 422 and "item_age_days" in bad.text
