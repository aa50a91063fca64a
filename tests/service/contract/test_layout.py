"""Input layouts: the split inputs a request encodes to, grouping offline rows, and old bundles still served."""

from __future__ import annotations

import json
import shutil

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from service.contract.bundle import Manifest, SessionConfig, load_bundle, read_manifest
from service.contract.layout import encode_split, one_request, split_rows
from service.examples import example_request
from service.live.model import load_model
from service.live.pipeline import rank
from service.live.state import Serving
from service.profiles import compile_weights, parse_weights

WEIGHTS = "profiles: {default: {click: 1.0, like: 2.0, watch_time: {weight: 0.1, transform: log1p}}}"


def test_a_request_encodes_user_and_context_once(manifest) -> None:
    features = manifest.features
    request = example_request(manifest, 40, seed=1)
    columns = features.request_columns(request["user"], request["context"],
                                       features.candidate_columns(request["candidates"]), 40)
    split = encode_split(features, columns, 40)
    assert {k: v.shape for k, v in split.items()} == {
        "request_categorical": (1, 3), "request_numeric": (1, 2), "item_categorical": (40, 2), "item_numeric": (40, 3)}
    full = features.encode_columns(columns, 40)
    for name, array in one_request(features, full).items():
        np.testing.assert_array_equal(split[name], array)


def test_offline_rows_of_many_requests_are_grouped_by_user_and_context(manifest) -> None:
    features = manifest.features
    rows = manifest.parity_sample.rows * 3
    full = features.encode_columns({f.name: [r.get(f.name) for r in rows] for f in features.all()}, len(rows))
    seen = np.zeros(len(rows), dtype=int)
    for group, split in split_rows(features, full):
        seen[group] += 1
        assert len(split["item_categorical"]) == len(group) and len(split["request_categorical"]) == 1
        # every row of the group has the group's user and context
        np.testing.assert_array_equal(full["categorical"][group][:, :3],
                                      np.repeat(split["request_categorical"], len(group), axis=0))
    assert (seen == 1).all()


@pytest.fixture(scope="module")
def both(bundle_dir, full_bundle_dir):
    weights = parse_weights(WEIGHTS)
    out = {}
    for name, path in (("split", bundle_dir), ("full", full_bundle_dir)):
        model = load_model(path, 1, SessionConfig(), 1000)
        out[name] = Serving(model, compile_weights(weights, model.tasks))
    return out


def test_split_and_unsplit_bundles_of_one_model_serve_the_same_ranking(both, manifest) -> None:
    assert read_manifest(both["full"].model.path).format_version == 2  # the bundles servers had before
    assert both["split"].model.manifest.format_version == 3
    for seed in range(3):
        body = orjson.dumps(example_request(manifest, 200, seed=seed))
        split, full = (orjson.loads(rank(both[k], body).body)["items"] for k in ("split", "full"))
        assert [i["item_id"] for i in split] == [i["item_id"] for i in full]
        for a, b in zip(split, full, strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-5, rel=1e-5)
            for task, value in a["scores"].items():
                assert value == pytest.approx(b["scores"][task], abs=1e-5, rel=1e-5)


def test_a_split_manifest_must_say_format_3(bundle_dir, tmp_path) -> None:
    data = json.loads((bundle_dir / "manifest.json").read_text())
    assert data["input_layout"] == "split"
    with pytest.raises(ValidationError, match="input_layout 'split' goes with format_version 3, not 2"):
        Manifest.model_validate({**data, "format_version": 2})  # what a server from before format 3 accepts


def test_a_split_graph_under_an_unsplit_manifest_is_refused(bundle_dir, tmp_path) -> None:
    """A manifest that names the wrong layout is refused at load (its inputs do not match the graph)."""
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    data = json.loads((copy / "manifest.json").read_text())
    data.update(format_version=2, input_layout="full")
    (copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(Exception, match=r"model inputs .* != \['categorical', 'numeric'\]"):
        load_bundle(copy)
