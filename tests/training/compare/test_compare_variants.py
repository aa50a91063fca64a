"""The models of a comparison: which there are, in which order they run, and each one's spec."""

from __future__ import annotations

import yaml

from tests.conftest import DEMO_SPEC
from training.compare.runs import schedule
from training.compare.variants import ALL_TASKS, WITHOUT_AUXILIARY, single_task_targets, spec_for, variants
from training.spec import load_spec


def test_the_demo_spec_gives_its_model_four_single_task_models_and_six_pairs() -> None:
    spec = load_spec(DEMO_SPEC)
    assert spec.task_names()[-1] == "rank"  # the default ranking head: no single-task model of its own
    assert single_task_targets(spec) == ["click", "watch_time", "like", "rating"]
    chosen = variants(spec, pairs=True)
    assert [v.kind for v in chosen] == ["mtl"] + ["single"] * 4 + ["pair"] * 6
    assert spec_for(spec, chosen[0]).task_names() == spec.task_names()  # the spec's model, unchanged
    runs = schedule(chosen, [0, 1])
    assert [(r.variant.kind, r.seed) for r in runs[:5]] == [("mtl", 0)] + [("single", 0)] * 4
    assert {r.variant.kind for r in runs[:10]} == {"mtl", "single"} and runs[10].variant.kind == "pair"


def test_a_variant_spec_drops_what_names_the_other_tasks(tmp_path) -> None:
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["train"].update(loss_balancing="pcgrad", early_stopping_metric="like")
    raw["model"]["bias_tower"] = {"categorical": ["device"], "tasks": ["click", "like"]}
    raw["eval"]["score_weights"] = {"click": 1.0, "like": 0.5}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = load_spec(path)
    by_name = {v.name: v for v in variants(spec, pairs=True)}
    click = spec_for(spec, by_name["single-task click"])
    assert click.task_names() == ["click"] and not click.model.ranking_head
    assert click.eval.score_weights == {"click": 1.0} and click.eval.gain_weights == {"click": 1.0}
    assert click.model.bias_tower.tasks == ["click"] and click.train.early_stopping_metric == "loss"
    assert click.train.loss_balancing == "fixed"  # gradient surgery needs two tasks
    rating = spec_for(spec, by_name["single-task rating"])
    assert rating.model.bias_tower is None and rating.eval.score_weights is None
    pair = spec_for(spec, by_name["pair click+like"])
    assert pair.task_names() == ["click", "like"] and pair.train.loss_balancing == "pcgrad"
    assert pair.train.early_stopping_metric == "like"
    assert by_name[ALL_TASKS].tasks is None


def test_an_auxiliary_task_gets_no_single_task_model_and_a_model_without_it(tmp_path) -> None:
    """A serve: false head has no served metric and cannot be a model's only task (a bundle serves at least
    one): no single-task model, no pair; "without auxiliary tasks" is the spec's model minus the auxiliary
    heads (ranking head kept), so the matrix shows what they add. Every variant's spec is a valid spec."""
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["tasks"].append({"name": "later_buy", "column": "like", "type": "binary", "group": "satisfaction",
                         "serve": False})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = load_spec(path)
    assert single_task_targets(spec) == ["click", "watch_time", "like", "rating"]
    chosen = variants(spec, pairs=True)
    assert [v.kind for v in chosen] == ["mtl", "mtl"] + ["single"] * 4 + ["pair"] * 6
    assert not any("later_buy" in (v.tasks or ()) for v in chosen if v.kind != "mtl")
    specs = {v.name: spec_for(spec, v) for v in chosen}  # each validates (an all-auxiliary spec would not)
    without = specs[WITHOUT_AUXILIARY]
    assert without.task_names() == ["click", "watch_time", "like", "rating", "rank"]
    assert without.model.ranking_head == spec.model.ranking_head and not without.auxiliary_tasks()
    assert specs[ALL_TASKS].auxiliary_tasks() == ["later_buy"]
    assert specs["single-task like"].task_names() == ["like"]
