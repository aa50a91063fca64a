"""wire_format's columnar decoders read the same columns as the server's parser, and refuse ragged columns."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from bench.serving.serve_stages import load_serving
from bench.serving.wire_format import ColumnarDecoder, bodies
from service.contract.bundle import read_manifest
from tests.conftest import REPO


def test_three_bodies_one_set_of_columns(bundle_dir) -> None:
    manifest = read_manifest(bundle_dir)
    model = load_serving(bundle_dir, REPO / "configs" / "weights.yaml").model
    today, as_json, as_msgpack = bodies(manifest).values()
    expected = model.parse(today).items
    assert ColumnarDecoder(manifest.features, 500, "json").decode(as_json) == expected
    assert ColumnarDecoder(manifest.features, 500, "msgpack").decode(as_msgpack) == expected
    ragged = orjson.loads(as_json)
    ragged["candidates"]["item_id"].pop()
    with pytest.raises(ValueError, match="one value per candidate"):
        ColumnarDecoder(manifest.features, 500, "json").decode(orjson.dumps(ragged))
    ragged["candidates"]["item_id"] = [1.5]  # not an id
    with pytest.raises(msgspec.ValidationError):
        ColumnarDecoder(manifest.features, 500, "json").decode(orjson.dumps(ragged))
