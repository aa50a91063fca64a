"""Warm start maps embedding rows by vocabulary value and heads by task name."""

from __future__ import annotations

import pytest
import torch

from service.contract.features import CategoricalEncoder, FeatureEncoders, NumericEncoder
from training.modeling.model import ModelArgs, build_model
from training.nightly.warm_start import WarmStartError, keep_binned, warm_start


def encoders(vocab: dict[str, list[str]]) -> FeatureEncoders:
    return FeatureEncoders(
        categorical=[CategoricalEncoder(name=n, source="item", vocab=v) for n, v in vocab.items()],
        numeric=[NumericEncoder(name="x", source="item")],
    )


def args_for(enc: FeatureEncoders, tasks: list[str], **kw) -> ModelArgs:
    return ModelArgs(cardinalities=[f.cardinality for f in enc.categorical], n_numeric=1, tasks=tasks,
                     num_experts=2, expert_hidden=[8], tower_hidden=[4], embedding_dim=3, **kw)


def checkpoint(model: torch.nn.Module, args: ModelArgs, enc: FeatureEncoders) -> dict:
    return {"model_args": args.to_dict(), "state_dict": model.state_dict(),
            "vocabularies": {f.name: f.vocab for f in enc.categorical}}


def test_embedding_rows_follow_their_values_and_heads_their_task_names() -> None:
    torch.manual_seed(0)
    old_enc = encoders({"user": ["u1", "u2"], "item": ["a", "b", "c"]})
    old_args = args_for(old_enc, ["click", "like"])
    old = build_model(old_args)
    new_enc = encoders({"item": ["c", "d", "a"], "user": ["u2", "u3"]})  # features reordered, vocab changed
    new_args = args_for(new_enc, ["like", "click"])
    new = build_model(new_args)
    fresh = new.inputs.embedding.weight.detach().clone()
    summary = warm_start(new, new_args, new_enc, checkpoint(old, old_args, old_enc))

    w_old, w_new = old.inputs.embedding.weight, new.inputs.embedding.weight
    # old table: user block rows 0..2 (OOV, u1, u2), item block rows 3..6 (OOV, a, b, c)
    # new table: item block rows 0..3 (OOV, c, d, a), user block rows 4..6 (OOV, u2, u3)
    for new_row, old_row in [(0, 3), (1, 6), (3, 4), (4, 0), (5, 2)]:
        assert torch.equal(w_new[new_row], w_old[old_row]), (new_row, old_row)
    for unseen in (2, 6):  # "d" and "u3" keep their fresh initialization
        assert torch.equal(w_new[unseen], fresh[unseen])
    assert summary["embedding_rows_mapped"] == {"item": "2/3", "user": "1/2"}
    assert torch.equal(new.towers[0].out.weight, old.towers[1].out.weight)  # like
    assert torch.equal(new.gates[1].linear.weight, old.gates[0].linear.weight)  # click
    assert torch.equal(new.experts[0][0].weight, old.experts[0][0].weight)
    assert summary["skipped_tensors"] == []


def test_tensors_that_do_not_fit_are_skipped_and_reported() -> None:
    enc = encoders({"item": ["a", "b"]})
    old_args = args_for(enc, ["click"])
    old = build_model(old_args)
    new_args = args_for(enc, ["click", "rating"], expert_dropout=0.0)
    new_args.expert_hidden = [16]  # a wider expert: its weights cannot be copied
    new = build_model(new_args)
    summary = warm_start(new, new_args, enc, checkpoint(old, old_args, enc))
    assert "experts.0.0.weight" in summary["skipped_tensors"]
    assert "towers.1.out.weight" in summary["skipped_tensors"]  # rating: a task the old model lacks
    assert torch.equal(new.inputs.embedding.weight, old.inputs.embedding.weight)


def test_cgc_and_ple_own_experts_gates_and_towers_follow_their_task_names() -> None:
    torch.manual_seed(0)
    enc = encoders({"item": ["a", "b"]})
    old_args = args_for(enc, ["click", "like", "rating"], arch="ple", task_experts=2, shared_experts=1)
    old = build_model(old_args)
    new_args = args_for(enc, ["rating", "click", "like"], arch="ple", task_experts=2, shared_experts=1)
    new = build_model(new_args)
    summary = warm_start(new, new_args, enc, checkpoint(old, old_args, enc))
    assert summary["skipped_tensors"] == []
    for new_t, old_t in [(0, 2), (1, 0), (2, 1)]:
        for level in (0, 1):
            assert torch.equal(new.levels[level].task_experts[new_t][1][0].weight,
                               old.levels[level].task_experts[old_t][1][0].weight)
            assert torch.equal(new.levels[level].task_gates[new_t].linear.weight,
                               old.levels[level].task_gates[old_t].linear.weight)
        assert torch.equal(new.towers[new_t].out.weight, old.towers[old_t].out.weight)
    # The level-1 shared gate has one row per expert: task blocks of 2, then the shared expert.
    new_gate, old_gate = new.levels[0].shared_gate.linear.weight, old.levels[0].shared_gate.linear.weight
    for new_row, old_row in [(0, 4), (1, 5), (2, 0), (3, 1), (4, 2), (5, 3), (6, 6)]:
        assert torch.equal(new_gate[new_row], old_gate[old_row]), (new_row, old_row)
    assert torch.equal(new.levels[1].shared_experts[0][0].weight, old.levels[1].shared_experts[0][0].weight)


def test_a_checkpoint_of_another_arch_is_refused_with_what_to_do() -> None:
    enc = encoders({"item": ["a", "b"]})
    old_args = args_for(enc, ["click"])
    new_args = args_for(enc, ["click"], arch="cgc")
    with pytest.raises(WarmStartError, match="mmoe.*cgc.*without --warm-start"):
        warm_start(build_model(new_args), new_args, enc, checkpoint(build_model(old_args), old_args, enc))


def test_a_checkpoint_that_binned_other_numeric_features_is_refused() -> None:
    """ple_auto chooses its features on each window: weights of feature x's bins must not start feature y's,
    and a first layer laid out for other binned features would read the wrong columns at the same width."""
    enc = FeatureEncoders(categorical=[CategoricalEncoder(name="item", source="item", vocab=["a"])],
                          numeric=[NumericEncoder(name=n, source="item") for n in ("x", "y")])

    def auto(binned: list[int]) -> ModelArgs:
        return ModelArgs(cardinalities=[2], n_numeric=2, tasks=["click"], num_experts=2, expert_hidden=[8],
                         tower_hidden=[4], embedding_dim=3, numeric_embedding="ple_auto", numeric_binned=binned,
                         numeric_edges=[[0.0, 1.0, 2.0]] * len(binned))

    old_args, new_args = auto([0]), auto([1])
    with pytest.raises(WarmStartError, match=r"binned numeric features \['x'\].*\['y'\].*without --warm-start"):
        warm_start(build_model(new_args), new_args, enc, checkpoint(build_model(old_args), old_args, enc))
    plain = ModelArgs(**{**auto([]).to_dict(), "numeric_embedding": "none", "numeric_binned": None})
    for old_args, new_args in [(auto([1]), auto([1])), (plain, auto([]))]:  # the same layout: everything copied
        summary = warm_start(build_model(new_args), new_args, enc, checkpoint(build_model(old_args), old_args, enc))
        assert summary["skipped_tensors"] == []
    with pytest.raises(WarmStartError, match=r"\[\] and this window's model has \['x'\]"):
        warm_start(build_model(auto([0])), auto([0]), enc, checkpoint(build_model(plain), plain, enc))


def test_retrain_keeps_currents_ple_auto_choice_unless_the_spec_names_one(tiny_spec) -> None:
    """This window's data may tip the rule for a column; the warm start then bins what CURRENT binned."""
    names = ["user_activity", "hour", "item_popularity", "item_age_days", "title_caps_ratio"]
    auto = tiny_spec.model_copy(deep=True)
    auto.model.numeric_embedding, auto.model.numeric_bins = "ple_auto", 8

    def current(embedding: str, binned: list[int] | None) -> dict:
        return {"model_args": ModelArgs(cardinalities=[2], n_numeric=5, tasks=["click"], numeric_embedding=embedding,
                                        numeric_binned=binned).to_dict()}

    kept, names_kept = keep_binned(auto, current("ple_auto", [1, 3]), names)
    assert names_kept == kept.model.numeric_binned == ["hour", "item_age_days"]
    assert auto.model.numeric_binned is None  # the caller's spec is not changed
    gone = tiny_spec.model_copy(deep=True)
    gone.model.numeric_embedding, gone.features.numeric = "ple_auto", gone.features.numeric[2:]
    assert keep_binned(gone, current("ple_auto", [1, 3]), names)[1] == ["item_age_days"]  # hour is no feature now
    explicit = auto.model_copy(deep=True)
    explicit.model.numeric_binned = ["hour"]
    plain = tiny_spec.model_copy(deep=True)
    plain.model.numeric_embedding, plain.model.numeric_bins = "none", None
    for spec, checkpoint in [(plain, current("ple_auto", [1])), (auto, current("none", None)),
                             (explicit, current("ple_auto", [3]))]:
        assert keep_binned(spec, checkpoint, names) == (spec, None)
