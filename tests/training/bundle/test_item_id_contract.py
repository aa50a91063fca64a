"""Train -> export -> serve with an item-id column that is not called `item_id` (issue 9, item 2).

With `data.item_id: movie_id`, a candidate that carries `"item_id": "i3"` and no `movie_id` field
used to be scored as an unknown movie. The manifest now names the item-id feature, and the
server feeds the request's item_id into it.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from service.contract.bundle import SessionConfig, read_manifest
from service.examples import example_request
from service.live.model import load_model
from service.live.pipeline import rank
from service.live.state import Serving
from service.profiles import compile_weights, parse_weights
from tests.conftest import DEMO_SPEC
from training.bundle.export import export_bundle
from training.fit.train import train
from training.spec import load_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def movie_bundle(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo data with its item column renamed to movie_id; 1 epoch is enough for a contract test."""
    work = tmp_path_factory.mktemp("movie")
    table = pq.read_table(tiny_dir)
    pq.write_table(table.rename_columns(["movie_id" if n == "item_id" else n for n in table.column_names]),
                   work / "log.parquet")
    text = DEMO_SPEC.read_text().replace("item_id: item_id", "item_id: movie_id").replace(
        "{name: item_id, source: item}", "{name: movie_id, source: item}")
    (work / "spec.yaml").write_text(text)
    spec = load_spec(work / "spec.yaml", data_path=str(work / "log.parquet"))
    spec.train.epochs, spec.train.threads = 1, 1
    return export_bundle(train(spec, progress=False), work / "bundle")


def test_the_manifest_names_the_item_id_feature(movie_bundle: Path) -> None:
    assert read_manifest(movie_bundle).features.item_id_feature == "movie_id"


def test_request_item_id_scores_like_the_item_id_feature(movie_bundle: Path) -> None:
    model = load_model(movie_bundle, version=1, session_config=SessionConfig(), max_candidates=100)
    serving = Serving(model, compile_weights(parse_weights("profiles: {default: {click: 1.0}}", 1), model.tasks))
    manifest = model.manifest
    movies = next(f.vocab for f in manifest.features.categorical if f.name == "movie_id")[:5]
    body = example_request(manifest, 5, seed=1)
    with_feature = [{**c, "item_id": m, "movie_id": m} for c, m in zip(body["candidates"], movies, strict=True)]
    id_only = [{k: v for k, v in c.items() if k != "movie_id"} for c in with_feature]
    a = orjson.loads(rank(serving, orjson.dumps({**body, "candidates": with_feature})).body)["items"]
    b = orjson.loads(rank(serving, orjson.dumps({**body, "candidates": id_only})).body)["items"]
    assert {i["item_id"]: i["scores"] for i in a} == {i["item_id"]: i["scores"] for i in b}
