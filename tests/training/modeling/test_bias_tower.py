"""The position-bias tower: bias inputs encoded apart, its logit on the chosen heads in training only,
absent from the exported graph, and a served ranking closer to the true relevance on biased clicks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pytest
import torch

from service.contract.bundle import ScoreStats, TaskInfo
from service.profiles import compile_weights, parse_weights
from tests.conftest import DEMO_SPEC, REPO
from training import data as D
from training.bundle.export import export_onnx
from training.data.bias_inputs import fit_bias_encoders
from training.data.demo import DemoConfig, write_demo
from training.data.splits import split_table
from training.evaluation.inference import export_heads, predict
from training.evaluation.metrics import ndcg_at_k, score_stats
from training.fit.train import train
from training.modeling.bias_tower import BiasTower, WithBiasTower
from training.modeling.model import ModelArgs, build_model
from training.spec import RankerSpec, load_spec
from training.spec.model import BiasTowerConfig

BIAS = {"categorical": ["position"], "tasks": ["click"]}


def test_bias_encoders_map_unseen_values_to_zero_and_standardize_numbers() -> None:
    train_rows = pa.table({"position": [0, 1, 1, 2], "device": ["tv", "tv", "pc", None], "x": [1.0, 3.0, None, 2.0]})
    enc = fit_bias_encoders(train_rows, BiasTowerConfig(categorical=["position", "device"], numeric=["x"],
                                                        tasks=["click"]))
    cat, num = enc.encode(pa.table({"position": [1, 7], "device": ["pc", "phone"], "x": [2.0, None]}))
    assert cat.tolist() == [[1, 2], [0, 0]]  # 1 is the most frequent position; 7 and "phone" unseen
    assert num[:, 0].tolist() == [0.0, 0.0]  # 2.0 is the mean; missing -> the mean
    assert enc.cardinalities() == [4, 3]


def test_a_numeric_bias_column_must_be_numeric() -> None:
    with pytest.raises(D.DataError, match="'device'"):
        fit_bias_encoders(pa.table({"device": ["tv"]}), BiasTowerConfig(numeric=["device"], tasks=["click"]))


def test_the_bias_logit_reaches_only_the_chosen_heads() -> None:
    torch.manual_seed(0)
    model = build_model(ModelArgs(cardinalities=[4], n_numeric=1, tasks=["click", "rating", "like"]))
    tower = BiasTower([5], 0, BiasTowerConfig(categorical=["position"], tasks=["click", "like"]))
    torch.nn.init.normal_(tower.out.weight)  # a tower that has learned something
    graph = WithBiasTower(model, tower, [True, False, True]).eval()
    cat, num = torch.randint(0, 4, (16, 1)), torch.randn(16, 1)
    bias_cat, bias_num = torch.randint(0, 5, (16, 1)), torch.zeros(16, 0)
    diff = graph(cat, num, bias_cat, bias_num) - model(cat, num)
    assert torch.all(diff[:, 1] == 0)
    torch.testing.assert_close(diff[:, 0], tower(bias_cat, bias_num))
    torch.testing.assert_close(diff[:, 2], tower(bias_cat, bias_num))


@pytest.fixture(scope="module")
def biased_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("biased-demo")
    write_demo(out, DemoConfig(rows=100_000, seed=0, position_bias=1.0))  # smaller logs rank too noisily
    return out


def biased_spec(data: Path, tower: bool) -> RankerSpec:
    spec = load_spec(DEMO_SPEC, data_path=str(data))
    # 5 epochs: the best validation epoch of these runs is 3-4 (docs/BENCHMARKS.md, "Quality 6").
    spec.train.threads, spec.train.epochs = 1, 5
    if tower:
        spec = RankerSpec.model_validate({**spec.model_dump(), "model": {**spec.model.model_dump(), "bias_tower": BIAS}})
    return spec


def served_ndcg_vs_truth(trained, data: Path) -> float:  # noqa: ANN001
    """NDCG@10 per request, on the test split, of the served click ranking (configs/weights.yaml's
    click_only profile through service/profiles.py) against the true click probability."""
    spec = trained.spec
    test = split_table(D.dataset(str(data)).to_table(), spec.data).test
    e = D.encode(test, trained.prepared.encoders, spec, trained.prepared.scalers)
    preds = predict(export_heads(trained.model, spec, trained.prepared.scalers), e)
    tasks = [TaskInfo(name=t.name, type=t.type, group=t.group, output=t.name,
                      score_stats=ScoreStats(**score_stats(preds[:, j]))) for j, t in enumerate(spec.tasks)]
    weights = compile_weights(parse_weights((REPO / "configs" / "weights.yaml").read_bytes()), tasks)
    score = weights.profile("click_only").combine({t.name: preds[:, j] for j, t in enumerate(spec.tasks)})
    return ndcg_at_k(e.request, score, test.column("true_click_prob").to_numpy(), 10)


@pytest.mark.slow
def test_tower_trained_model_ranks_closer_to_true_relevance_and_exports_no_bias_input(
        biased_dir: Path, tmp_path: Path) -> None:
    plain = train(biased_spec(biased_dir, tower=False), progress=False)
    towered = train(biased_spec(biased_dir, tower=True), progress=False)
    assert towered.prepared.bias is not None and plain.prepared.bias is None
    # The served model knows nothing of positions: no encoder, no graph input.
    assert "position" not in [f.name for f in towered.prepared.encoders.all()]
    path = tmp_path / "model.onnx"
    export_onnx(export_heads(towered.model, towered.spec, towered.prepared.scalers), path,
                towered.spec.task_names(), towered.prepared.train)
    assert [i.name for i in onnx.load(str(path)).graph.input] == ["categorical", "numeric"]
    with_tower, without = served_ndcg_vs_truth(towered, biased_dir), served_ndcg_vs_truth(plain, biased_dir)
    assert with_tower > without + 0.005, (with_tower, without)  # +0.015 here; +0.02-0.08 over 5 seeds


def test_position_bias_in_the_demo_data_lowers_clicks_further_down_and_keeps_the_truth() -> None:
    from training.data.demo import generate

    fair, biased = (generate(DemoConfig(rows=20_000, seed=3, position_bias=eta)) for eta in (0.0, 1.0))
    pos = biased.column("position").to_numpy()
    click = {name: t.column("click").to_numpy().astype(bool) for name, t in (("fair", fair), ("biased", biased))}
    assert not (click["biased"] & ~click["fair"]).any()  # bias only removes clicks (unexamined items)
    top, low = pos < 2, pos >= 10
    assert click["biased"][top].mean() > 3 * click["biased"][low].mean()
    assert click["fair"][top].mean() < 1.5 * click["fair"][low].mean()
    np.testing.assert_array_equal(fair.column("true_click_prob").to_numpy(), biased.column("true_click_prob").to_numpy())
    assert fair.drop_columns(["click", "watch_time", "like", "rating"]).equals(
        biased.drop_columns(["click", "watch_time", "like", "rating"]))
