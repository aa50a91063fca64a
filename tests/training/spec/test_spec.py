"""Spec errors name the file and the key; the CLI turns them into a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import DEMO_SPEC
from training.cli import app
from training.spec import SpecError, load_spec


def write_spec(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    edit(raw)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


BAD_SPECS = {
    "feedback without a rule for a label task": (lambda r: r["feedback"]["labels"].pop("rating"),
                                                 "no rule for label column(s) ['rating']"),
    "feedback sum on a binary task": (lambda r: r["feedback"]["labels"].update(click="count(click)"),
                                      "feedback.labels.click: count() does not give a 0/1 label"),
    "feedback rule on an undeclared event": (lambda r: r["feedback"]["labels"].update(like="last(thumb)"),
                                             "event 'thumb' is not declared"),
    "typo in a key": (lambda r: r["train"].update(epoch=3), "train.epoch"),
    "zero experts": (lambda r: r["model"].update(num_experts=0), "model.num_experts"),
    "unknown task type": (lambda r: r["tasks"][0].update(type="ordinal"), "tasks.0.type"),
    "bce on a regression task": (lambda r: r["tasks"][1].update(loss="bce"), "watch_time"),
    "unknown balancing": (lambda r: r["train"].update(loss_balancing="magic"), "train.loss_balancing"),
    "gradnorm without a shared layer": (
        lambda r: (r["train"].update(loss_balancing="gradnorm"), r["model"].update(arch="single_task"),
                   r["model"].pop("num_experts"), r["model"].pop("expert_dropout")),
        "train.loss_balancing"),
    "score weight of an unknown task": (lambda r: r["eval"].update(score_weights={"share": 1.0}),
                                        "eval.score_weights"),
    "repeated feature": (lambda r: r["features"]["numeric"].append({"name": "hour", "source": "context"}),
                         "hour"),
    "expert dropout of 1": (lambda r: r["model"].update(expert_dropout=1.0), "model.expert_dropout"),
    "experts for a shared bottom": (lambda r: (r["model"].update(arch="shared_bottom"), r["model"].pop("num_experts")),
                                    "model.expert_dropout"),
    "experts for single-task": (lambda r: (r["model"].update(arch="single_task"), r["model"].pop("expert_dropout")),
                                "model.num_experts"),
    "levels for cgc": (lambda r: (r["model"].update(arch="cgc", levels=3), r["model"].pop("num_experts")),
                       "model.levels"),
    "mmoe experts for ple": (lambda r: r["model"].update(arch="ple"), "model.num_experts"),
    "shared experts for mmoe": (lambda r: r["model"].update(shared_experts=2), "model.shared_experts"),
    "pcgrad without sharing": (
        lambda r: (r["train"].update(loss_balancing="pcgrad"), r["model"].update(arch="single_task"),
                   r["model"].pop("num_experts"), r["model"].pop("expert_dropout")),
        "train.loss_balancing"),
    "unknown early stopping metric": (lambda r: r["train"].update(early_stopping_metric="clicks"),
                                      "train.early_stopping_metric"),
    "bias tower on a regression head": (
        lambda r: r["model"].update(bias_tower={"categorical": ["position"], "tasks": ["rating"]}),
        "model.bias_tower.tasks"),
    "bias tower without features": (lambda r: r["model"].update(bias_tower={"tasks": ["click"]}),
                                    "model.bias_tower"),
    "bins without binning": (lambda r: r["model"].update(numeric_embedding="periodic", numeric_bins=8),
                             "model.numeric_bins"),
    "binned features without ple_auto": (lambda r: r["model"].update(numeric_embedding="ple", numeric_binned=["hour"]),
                                         "model.numeric_binned"),
    "no numeric feature": (lambda r: r["features"].update(numeric=[]),
                           "features.numeric: the model needs at least one numeric feature"),
}


@pytest.mark.parametrize("kind", ["ple", "ple_auto"])
def test_binned_numeric_embeddings_take_numeric_bins_default_16(tmp_path: Path, kind: str) -> None:
    spec = load_spec(write_spec(tmp_path, lambda r: r["model"].update(numeric_embedding=kind)))
    assert (spec.model.numeric_embedding, spec.model.numeric_bins) == (kind, 16)
    spec = load_spec(write_spec(tmp_path, lambda r: r["model"].update(numeric_embedding=kind, numeric_bins=8)))
    assert spec.model.numeric_bins == 8


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_spec_errors_name_the_key(case: str, tmp_path: Path) -> None:
    edit, key = BAD_SPECS[case]
    path = write_spec(tmp_path, edit)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert key in str(err.value)
    assert str(path) in str(err.value)


def test_cli_reports_spec_errors_and_exits_nonzero(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BAD_SPECS["typo in a key"][0])
    result = CliRunner().invoke(app, ["train", str(path), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert "train.epoch" in result.stderr


def test_missing_spec_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)


def test_demo_spec_defaults_and_relative_data_path() -> None:
    spec = load_spec(DEMO_SPEC)
    assert Path(spec.data.path).is_absolute() and spec.data.path.endswith("data/demo")
    assert spec.tasks[1].loss == "mse" and spec.tasks[0].loss == "bce"
    assert spec.score_weights() == {"rank": 1.0}  # the default ranking head (data.request_id is set)
    assert spec.pointwise_score_weights() == {"click": 1.0, "like": 1.0}


def test_a_spec_with_requests_gets_a_ranking_head_on_the_gain_unless_it_says_no(tmp_path: Path) -> None:
    """Issue 22, item 2: the default spec with a request_id gets a listwise head; model/tasks keys turn it off or
    tune it; without requests or a gain there is none."""
    rank = load_spec(DEMO_SPEC).tasks[-1]
    assert (rank.name, rank.type, rank.group, rank.loss, rank.gain) == ("rank", "ranking", "ranking", "lambdarank", None)
    assert load_spec(DEMO_SPEC).task_gain(rank) == {"click": 1.0, "like": 1.0}
    off = load_spec(write_spec(tmp_path, lambda r: r["model"].update(ranking_head=False)))
    assert [t.name for t in off.tasks] == ["click", "watch_time", "like", "rating"]
    tuned = load_spec(write_spec(tmp_path, lambda r: r["tasks"].append(
        {"name": "order", "type": "ranking", "loss": "listnet", "gain": {"like": 2.0, "click": 1.0}})))
    assert [t.name for t in tuned.tasks if t.listwise] == ["order"] and tuned.score_weights() == {"order": 1.0}

    def no_requests(r: dict) -> None:
        r["data"].pop("request_id")
    assert not [t for t in load_spec(write_spec(tmp_path, no_requests)).tasks if t.listwise]
    for edit, message in [
        (lambda r: (no_requests(r), r["model"].update(ranking_head=True)), "needs data.request_id"),
        (lambda r: r["tasks"].append({"name": "o", "type": "ranking", "gain": {"nope": 1.0}}), "not a binary or"),
        (lambda r: r["tasks"].append({"name": "o", "type": "ranking", "loss": "bce"}), "does not fit a ranking"),
        (lambda r: r["tasks"].append({"name": "o", "type": "ranking", "column": "click"}), "takes no column"),
        (lambda r: r["tasks"][0].pop("group"), "needs group"),
    ]:
        with pytest.raises(SpecError, match=message):
            load_spec(write_spec(tmp_path, edit))


def test_without_a_binary_task_the_default_profile_weighs_every_task(tmp_path: Path) -> None:
    """A table of regression labels only (bench/quality/specs/synthetic.yaml) still gets a ranking profile."""
    def regression_only(r: dict) -> None:
        r["tasks"] = [t for t in r["tasks"] if t["type"] == "regression"]
        r["eval"].pop("score_weights", None), r["eval"].pop("gain_weights", None)
    spec = load_spec(write_spec(tmp_path, regression_only))
    assert spec.score_weights() == {"watch_time": 1.0, "rating": 1.0}


@pytest.mark.parametrize(("edit", "where", "suggestion"), [
    (lambda r: r["train"].update(epoch=3), "train.epoch", "epochs"),
    (lambda r: r["model"].update(num_expert=8), "model.num_expert", "num_experts"),
    (lambda r: r["data"].update(request=1), "data.request", "request_id"),
    (lambda r: r["features"]["numeric"][0].update(transfrom="log1p"), "features.numeric.0.transfrom", "transform"),
    (lambda r: r["tasks"][0].update(label_transfrom="log1p"), "tasks.0.label_transfrom", "label_transform"),
    (lambda r: r.update(evaluation={}), "evaluation", "eval"),
])
def test_an_unknown_key_suggests_the_nearest_valid_key(tmp_path: Path, edit, where: str, suggestion: str) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(write_spec(tmp_path, edit))
    assert f"{where}: unknown key; did you mean {suggestion!r}?" in str(err.value)


def test_an_unknown_key_with_no_near_match_lists_the_valid_keys(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(write_spec(tmp_path, lambda r: r["eval"].update(zzz=1)))
    assert "eval.zzz: unknown key (valid keys here: ndcg_k, weights, score_weights, gain_weights, baseline)" in str(err.value)


@pytest.mark.parametrize("arch, present, absent", [
    ("mmoe", {"num_experts": 4, "expert_dropout": 0.1}, ["shared_experts", "task_experts", "levels"]),
    ("cgc", {"shared_experts": 2, "task_experts": 1, "expert_dropout": 0.1}, ["num_experts", "levels"]),
    ("ple", {"shared_experts": 2, "task_experts": 1, "levels": 2, "expert_dropout": 0.1}, ["num_experts"]),
    ("shared_bottom", {}, ["num_experts", "shared_experts", "task_experts", "levels", "expert_dropout"]),
    ("single_task", {}, ["num_experts", "shared_experts", "task_experts", "levels", "expert_dropout"]),
])
def test_each_arch_gets_the_defaults_of_its_own_keys_only(tmp_path: Path, arch: str, present: dict,
                                                         absent: list[str]) -> None:
    def edit(raw: dict) -> None:
        raw["model"] = {"arch": arch}

    spec = load_spec(write_spec(tmp_path, edit))
    for key, value in present.items():
        assert getattr(spec.model, key) == value
    for key in absent:
        assert getattr(spec.model, key) is None
    # A dumped spec loads again (retrain writes specs back out).
    again = type(spec).model_validate(spec.model_dump(mode="json"))
    assert again.model == spec.model


def test_early_stopping_metric_may_be_loss_ndcg_or_a_task(tmp_path: Path) -> None:
    for metric in ("loss", "ndcg", "like", "rating"):
        spec = load_spec(write_spec(tmp_path, lambda r, m=metric: r["train"].update(early_stopping_metric=m)))
        assert spec.train.early_stopping_metric == metric
