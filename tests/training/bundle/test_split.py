"""The split graph (user/context once per request) computes what the unsplit model computes, for every arch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

from service.contract.layout import one_request, split_columns
from tests.training.conftest import as_arch
from training.bundle.export import check_parity, export_onnx
from training.bundle.split import SplitLinear, SplitUnsupported, split_heads
from training.evaluation.inference import export_heads, predict
from training.modeling.modules import FeatureInput

ARCHS = [("mmoe", {"num_experts": 3, "expert_dropout": 0.1}), ("omoe", {"num_experts": 3, "expert_dropout": 0.1}),
         ("cgc", {"shared_experts": 2, "task_experts": 1, "expert_dropout": 0.1}),
         ("ple", {"shared_experts": 1, "task_experts": 1, "levels": 2, "expert_dropout": 0.1}),
         ("shared_bottom", {}), ("single_task", {})]


def split_torch(heads, features, cat: np.ndarray, num: np.ndarray) -> np.ndarray:
    """The split module in torch for rows that all belong to one request (the first row's user/context)."""
    inputs = one_request(features, {"categorical": cat, "numeric": num})
    module = split_heads(heads, features, (torch.from_numpy(cat[:8]), torch.from_numpy(num[:8])))
    with torch.no_grad():
        outs = module(*(torch.from_numpy(inputs[n]) for n in split_columns(features).input_names()))
    return torch.stack(outs, dim=1).numpy()


@pytest.mark.parametrize("arch, keys", ARCHS)
def test_split_torch_module_equals_the_unsplit_model(trained, arch: str, keys: dict) -> None:
    model = trained if arch == "mmoe" else as_arch(trained, arch, **keys)
    heads = export_heads(model.model, model.spec, model.prepared.scalers)
    features = model.prepared.encoders
    e = model.prepared.test.head(300)
    c = split_columns(features)
    cat, num = e.categorical.copy(), e.numeric.copy()
    cat[:, c.request_cat], num[:, c.request_num] = cat[:1, c.request_cat], num[:1, c.request_num]  # one request
    expected = predict(heads, dataclasses.replace(e, categorical=cat, numeric=num))
    got = split_torch(heads, features, cat, num)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("arch, keys", ARCHS[1:])
def test_every_arch_exports_a_split_graph_within_1e5_of_torch(trained, tmp_path: Path, arch: str, keys: dict) -> None:
    model = as_arch(trained, arch, **keys)
    heads = export_heads(model.model, model.spec, model.prepared.scalers)
    path = tmp_path / "model.onnx"
    layout = export_onnx(heads, path, model.spec.task_names(), model.prepared.train, model.prepared.encoders)
    assert layout == "split"
    # check_parity holds a split graph to 1e-5 + 1e-5 relative, on rows of many different requests
    assert check_parity(heads, path, model.prepared.test, 1000, model.prepared.encoders, layout) < 1e-3
    inputs = {i.name for i in onnx.load(str(path)).graph.input}
    assert inputs == {"request_categorical", "request_numeric", "item_categorical", "item_numeric"}


def test_first_layers_of_every_expert_and_gate_are_split(trained) -> None:
    heads = export_heads(trained.model, trained.spec, trained.prepared.scalers)
    e = trained.prepared.test
    module = split_heads(heads, trained.prepared.encoders, (torch.from_numpy(e.categorical[:8]),
                                                            torch.from_numpy(e.numeric[:8])))
    split = sorted(n for n, m in module.named_modules() if isinstance(m, SplitLinear))
    experts, gates = len(trained.model.experts), len(trained.model.gates)
    assert split == sorted([f"heads.model.experts.{k}.0" for k in range(experts)] +
                           [f"heads.model.gates.{k}.linear" for k in range(gates)])


class _CrossInput(nn.Module):
    """A model that uses its input elementwise (x * Linear(x), as a cross layer does): not splittable."""

    def __init__(self, args_cards: list[int], n_numeric: int) -> None:
        super().__init__()
        self.inputs = FeatureInput(args_cards, n_numeric, 4)
        self.cross = nn.Linear(self.inputs.out_dim, self.inputs.out_dim)
        self.out = nn.Linear(self.inputs.out_dim, 2)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        x = self.inputs(categorical, numeric)
        return self.out(x * self.cross(x))


def test_a_model_that_reads_its_input_elementwise_exports_unsplit(trained, tmp_path: Path) -> None:
    from training.modeling.model import ExportHeads

    features = trained.prepared.encoders
    model = _CrossInput([f.cardinality for f in features.categorical], len(features.numeric)).eval()
    heads = ExportHeads(model, ["binary", "binary"], [("none", 0.0, 1.0)] * 2).eval()
    e = trained.prepared.test
    with pytest.raises(SplitUnsupported):
        split_heads(heads, features, (torch.from_numpy(e.categorical[:8]), torch.from_numpy(e.numeric[:8])))
    path = tmp_path / "model.onnx"
    assert export_onnx(heads, path, ["a", "b"], trained.prepared.train, features) == "full"
    assert check_parity(heads, path, e, 200) < 1e-4


def test_feature_blocks_match_the_concatenated_input(trained) -> None:
    """FeatureInput.embed of any subset of features is forward's output at those features' slices."""
    inputs = trained.model.inputs
    e = trained.prepared.test.head(50)
    cat, num = torch.from_numpy(e.categorical), torch.from_numpy(e.numeric)
    with torch.no_grad():
        x = inputs(cat, num)
        slices = inputs.feature_slices()
        assert sum(s.stop - s.start for s in slices) == x.shape[1]
        cat_cols, num_cols = [0, 3], [1, 4]
        got = inputs.embed(cat[:, cat_cols], num[:, num_cols], cat_cols, num_cols)
    n_cat = cat.shape[1]
    want = torch.cat([x[:, slices[j]] for j in cat_cols] + [x[:, slices[n_cat + f]] for f in num_cols], dim=1)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_each_split_first_layer_is_one_gemm_with_the_request_row_as_its_bias(bundle_dir: Path, trained) -> None:
    """u·W_u + b enters the Gemm over the items as its broadcast C input: no separate Add, so onnxruntime
    fuses the ReLU after it as it does in the unsplit graph."""
    from service.contract.bundle import MODEL_FILE

    graph = onnx.load(str(bundle_dir / MODEL_FILE)).graph
    weights = {i.name for i in graph.initializer}
    computed_bias = [n for n in graph.node if n.op_type == "Gemm" and len(n.input) == 3 and n.input[2] not in weights]
    assert len(computed_bias) == len(trained.model.experts) + len(trained.model.gates)
