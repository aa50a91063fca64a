"""Numeric-feature embeddings and cross layers (issue 9, item 10): per-feature blocks, bins, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.modeling.model import ModelArgs, build_model
from training.modeling.modules import CrossNet, FeatureInput
from training.modeling.numeric import PiecewiseLinear, binned_features, needs_bins, quantile_edges

BINNED = [0, 2]  # ple_auto in these tests: features 0 and 2 of 3 binned, feature 1 left as its number


def feature_input(kind: str, n_numeric: int, dim: int) -> FeatureInput:
    """FeatureInput([4, 5], n_numeric, dim) of `kind`, its bins fitted on seeded normal data."""
    x = np.random.default_rng(0).normal(size=(500, n_numeric)).astype(np.float32)
    binned = [j for j in BINNED if j < n_numeric] if kind == "ple_auto" else None
    edges = quantile_edges(x if binned is None else x[:, binned], 8)
    return FeatureInput([4, 5], n_numeric, dim=dim, numeric=kind, edges=edges, binned=binned)


def test_quantile_edges_are_distinct_and_a_constant_feature_gets_one_empty_bin() -> None:
    x = np.stack([np.arange(100, dtype=np.float32), np.zeros(100, np.float32),
                  (np.arange(100) % 2).astype(np.float32)], axis=1)
    edges = quantile_edges(x, 4)
    assert edges[0] == pytest.approx([0.0, 24.75, 49.5, 74.25, 99.0])
    assert edges[1] == [0.0, 0.0]
    assert all(np.diff(e).min() > 0 for e in (edges[0], edges[2]))


def test_a_value_holding_most_rows_does_not_swallow_the_bins() -> None:
    """A money column that is 92 % zeros: the mass quantiles give one bin; the others go to the non-zeros."""
    rng = np.random.default_rng(0)
    money = np.where(rng.random(5_000) < 0.92, 0.0, rng.lognormal(8, 1, 5_000))
    edges = quantile_edges(money[:, None].astype(np.float32), 16)[0]
    assert len(edges) == 17 and edges[0] == 0.0 and edges[-1] == pytest.approx(money.max(), rel=1e-6)
    assert np.diff(edges).min() > 0
    nonzero = money[money > 0]
    counts = np.histogram(nonzero, bins=edges[1:])[0]  # the non-zeros spread over the other bins
    assert counts.min() > 0 and counts.max() < 2 * len(nonzero) / 15
    flags = (rng.random(1_000) < 0.1).astype(np.float32)  # a 0/1 flag: one bin, nothing between
    assert quantile_edges(flags[:, None], 16)[0] == [0.0, 1.0]


def test_piecewise_linear_encoding_fills_the_bins_below_the_value() -> None:
    ple = PiecewiseLinear([[0.0, 1.0, 2.0, 4.0]], dim=3)
    x = torch.tensor([[-1.0], [0.5], [3.0], [9.0]])
    bins = ((x.unsqueeze(-1) - ple.left) / ple.width).clamp(0, 1)[:, 0]
    assert bins.tolist() == [[0, 0, 0], [0.5, 0, 0], [1, 1, 0.5], [1, 1, 1]]
    assert ple(x).shape == (4, 3)


@pytest.mark.parametrize("kind", ["ple", "periodic"])
def test_each_numeric_feature_is_its_own_contiguous_block(kind: str) -> None:
    """Changing numeric feature j changes only its own slice of the input (the first-layer split needs it)."""
    torch.manual_seed(0)
    inputs = feature_input(kind, 3, dim=6)
    cat, num = torch.tensor([[1, 2]]), torch.zeros(1, 3)
    base = inputs(cat, num)
    assert base.shape == (1, 2 * 6 + 3 * 6)
    bumped = num.clone()
    bumped[0, 1] = 1.5
    changed = (inputs(cat, bumped) != base)[0].nonzero().flatten().tolist()
    assert changed and set(changed) <= set(range(12 + 6, 12 + 12))


def test_ple_auto_bins_only_its_features_and_passes_the_others_through() -> None:
    """Features 0 and 2 get embedding_dim columns each, feature 1 stays its own number, in input order."""
    torch.manual_seed(0)
    inputs = feature_input("ple_auto", 3, dim=6)
    cat, num = torch.tensor([[1, 2], [0, 3]]), torch.tensor([[0.1, -0.7, 2.0], [3.0, 1.25, -1.0]])
    out = inputs(cat, num)
    assert out.shape == (2, 2 * 6 + 6 + 1 + 6) == (2, inputs.out_dim)
    assert [s.stop - s.start for s in inputs.feature_slices()] == [6, 6, 6, 1, 6]
    assert torch.equal(out[:, 18], num[:, 1])  # the unbinned feature, as the number the encoder gave
    alone = inputs.numeric.ple(num[:, [0, 2]])  # the binned two through their own bins and Linears
    assert torch.equal(out[:, 12:18], alone[:, :6]) and torch.equal(out[:, 19:], alone[:, 6:])


@pytest.mark.parametrize("kind", ["none", "ple", "ple_auto", "periodic"])
def test_feature_slices_tile_the_input_and_locate_every_feature(kind: str) -> None:
    """feature_slices() is what a first-layer split by feature needs: disjoint, in order, covering out_dim,
    and changing feature k's value changes only columns inside feature_slices()[k]."""
    torch.manual_seed(0)
    inputs = feature_input(kind, 2, dim=3)
    slices = inputs.feature_slices()
    assert [s.start for s in slices[1:]] == [s.stop for s in slices[:-1]]
    assert slices[0].start == 0 and slices[-1].stop == inputs.out_dim
    cat, num = torch.tensor([[1, 2]]), torch.zeros(1, 2)
    base = inputs(cat, num)
    for k in range(4):
        cat2, num2 = cat.clone(), num.clone()
        if k < 2:
            cat2[0, k] = 3
        else:
            num2[0, k - 2] = 1.7
        changed = set((inputs(cat2, num2) != base)[0].nonzero().flatten().tolist())
        assert changed and changed <= set(range(slices[k].start, slices[k].stop))


def test_cross_layers_start_as_the_identity_plus_a_cross_term() -> None:
    net = CrossNet(4, layers=1)
    with torch.no_grad():
        net.layers[0].weight.zero_()
    x = torch.randn(3, 4)
    assert torch.equal(net(x), x)  # W = 0, b = 0: x0 * 0 + x


def test_ple_edges_live_in_model_args_not_in_the_state_dict() -> None:
    edges = quantile_edges(np.random.default_rng(1).normal(size=(200, 2)).astype(np.float32), 4)
    args = ModelArgs(cardinalities=[3], n_numeric=2, tasks=["a"], numeric_embedding="ple", numeric_edges=edges)
    model = build_model(args)
    assert not any(k.endswith((".left", ".width")) for k in model.state_dict())
    rebuilt = build_model(ModelArgs(**args.to_dict()))
    rebuilt.load_state_dict(model.state_dict())
    cat, num = torch.zeros(5, 1, dtype=torch.long), torch.randn(5, 2)
    assert torch.equal(model.eval()(cat, num), rebuilt.eval()(cat, num))


def test_ple_without_edges_is_refused() -> None:
    with pytest.raises(ValueError, match="bin edges"):
        build_model(ModelArgs(cardinalities=[3], n_numeric=2, tasks=["a"], numeric_embedding="ple"))


@pytest.mark.parametrize("kind", ["none", "ple", "ple_auto", "periodic"])
@pytest.mark.parametrize("num_cols", [[0, 2], [1, 2], [1], [0, 1, 2]])
def test_embed_of_a_subset_equals_those_features_blocks_of_forward(kind: str, num_cols: list[int]) -> None:
    """The split graph embeds user and item features apart (FeatureInput.embed): same numbers as forward."""
    torch.manual_seed(0)
    inputs = feature_input(kind, 3, dim=3)
    cat, num = torch.tensor([[1, 2], [3, 0]]), torch.randn(2, 3)
    full, slices = inputs(cat, num), inputs.feature_slices()
    cols = [k for s in (slices[1], *(slices[2 + j] for j in num_cols)) for k in range(s.start, s.stop)]
    part = inputs.embed(cat[:, [1]], num[:, num_cols], [1], num_cols)
    assert torch.allclose(part, full[:, cols])


def test_needs_bins_picks_zero_inflated_and_heavy_tailed_columns_only() -> None:
    """The ple_auto rule on the shapes it must tell apart (census: money columns yes, age and hours no)."""
    rng = np.random.default_rng(0)
    n = 20_000
    money = np.where(rng.random(n) < 0.92, 0.0, np.log1p(rng.lognormal(8, 1, n)))  # 92 % zeros
    hours = np.where(rng.random(n) < 0.47, 40.0, rng.normal(40, 12, n).round())  # a mode of 47 %: not enough
    tail = rng.standard_t(df=3, size=n)  # excess kurtosis well above 20 at this n, no dominant value
    flag = (rng.random(n) < 0.03).astype(float)  # 97 % zeros, but a 0/1 flag: one bin says no more
    assert needs_bins(money) and needs_bins(tail)
    assert not needs_bins(rng.normal(size=n)) and not needs_bins(hours) and not needs_bins(flag)
    assert not needs_bins(np.zeros(n))
    assert binned_features(np.stack([rng.normal(size=n), money, hours, tail, flag], axis=1)) == [1, 3]


def test_ple_auto_with_nothing_to_bin_is_the_default_model_exactly() -> None:
    """No feature binned: same parameters from the same seed and the same outputs as numeric_embedding none."""
    base = dict(cardinalities=[3, 4], n_numeric=2, tasks=["a", "b"])
    torch.manual_seed(0)
    plain = build_model(ModelArgs(**base)).eval()
    torch.manual_seed(0)
    auto = build_model(ModelArgs(**base, numeric_embedding="ple_auto", numeric_binned=[], numeric_edges=[])).eval()
    assert plain.state_dict().keys() == auto.state_dict().keys()
    assert all(torch.equal(v, auto.state_dict()[k]) for k, v in plain.state_dict().items())
    cat, num = torch.zeros(5, 2, dtype=torch.long), torch.randn(5, 2)
    assert torch.equal(plain(cat, num), auto(cat, num))


@pytest.mark.parametrize("binned, edges", [(None, None), ([1], None), ([2], [[0.0, 1.0]]), ([1, 0], [[0.0, 1.0]] * 2)])
def test_ple_auto_without_consistent_bins_is_refused(binned, edges) -> None:
    with pytest.raises(ValueError, match="ple_auto"):
        build_model(ModelArgs(cardinalities=[3], n_numeric=2, tasks=["a"], numeric_embedding="ple_auto",
                              numeric_binned=binned, numeric_edges=edges))


def test_model_args_records_which_features_ple_auto_binned(trained) -> None:
    """The columns are chosen on the training numerics and kept (with their edges only) in model_args."""
    from training.fit.train import model_args

    spec = trained.spec.model_copy(deep=True)
    spec.model.numeric_embedding, spec.model.numeric_bins = "ple_auto", 8
    train = trained.prepared.train.numeric.copy()
    rng = np.random.default_rng(0)
    train[:, 1] = np.where(rng.random(len(train)) < 0.9, 0.0, rng.exponential(size=len(train)))  # zero-inflated
    args = model_args(spec, trained.prepared.encoders, train)
    assert args.numeric_binned == [1]
    assert args.numeric_edges == quantile_edges(train[:, [1]], 8)
    assert build_model(args).inputs.out_dim == trained.model.inputs.out_dim - 1 + spec.model.embedding_dim


def test_model_numeric_binned_overrides_the_rule_and_names_a_stranger(trained) -> None:
    """`model.numeric_binned` bins exactly the features it names (the rule picks none on the demo data)."""
    from training.data import DataError
    from training.fit.train import model_args
    from training.spec.model import ModelConfig

    spec = trained.spec.model_copy(deep=True)
    spec.model.numeric_embedding, spec.model.numeric_bins = "ple_auto", 8
    encoders, train = trained.prepared.encoders, trained.prepared.train.numeric
    assert model_args(spec, encoders, train).numeric_binned == []
    spec.model.numeric_binned = ["item_age_days", "hour"]
    args = model_args(spec, encoders, train)
    assert [encoders.numeric[j].name for j in args.numeric_binned] == ["hour", "item_age_days"]  # input order
    assert args.numeric_edges == quantile_edges(train[:, args.numeric_binned], 8)
    spec.model.numeric_binned = ["hour", "age"]
    with pytest.raises(DataError, match=r"model.numeric_binned: \['age'\] are not numeric features"):
        model_args(spec, encoders, train)
    with pytest.raises(ValueError, match="numeric_binned: means something only with numeric_embedding: ple_auto"):
        ModelConfig(numeric_embedding="ple", numeric_binned=["hour"])
