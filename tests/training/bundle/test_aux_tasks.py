"""`tasks[].serve: false`: an auxiliary head trains like any task and is left out of everything the bundle serves."""

from __future__ import annotations

from pathlib import Path

import onnx
import orjson
import pytest
import yaml
from fastapi.testclient import TestClient
from server_helpers import published_settings, wait_ready

from service.app import create_app
from service.contract.bundle import MODEL_FILE, load_bundle, read_manifest
from service.examples import example_request
from service.profiles import WeightsError
from tests.conftest import DEMO_SPEC, _train
from training.bundle.export import export_bundle
from training.evaluation.served import eval_weights
from training.profiles.check import check_weights
from training.spec import RankerSpec
from training.spec.schema import TaskConfig

AUX = "true_click"  # the demo's click probability without noise: a column the served model cannot read
WEIGHTS = DEMO_SPEC.parent / "weights.yaml"


@pytest.fixture(scope="module")
def aux_spec(tiny_spec: RankerSpec) -> RankerSpec:
    spec = tiny_spec.model_copy(deep=True)
    spec.tasks.insert(1, TaskConfig(name=AUX, type="regression", group="engagement", column="true_click_prob",
                                    serve=False))
    spec.feedback = None  # feedback.labels would need a rule for the aux column too, and no event gives it
    return RankerSpec.model_validate(spec.model_dump())


@pytest.fixture(scope="module")
def aux_bundle(aux_spec: RankerSpec, tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    trained = _train(aux_spec)
    return trained, export_bundle(trained, tmp_path_factory.mktemp("aux") / "bundle")


def test_the_aux_head_trains_and_is_not_served(aux_bundle) -> None:
    trained, path = aux_bundle
    assert AUX in trained.spec.task_names() and trained.args.tasks[1] == AUX  # in the torch model
    assert trained.metrics["valid"]["tasks"][AUX]["rmse"] is not None
    served = [t for t in trained.spec.task_names() if t != AUX]
    assert [o.name for o in onnx.load(str(path / MODEL_FILE)).graph.output] == served
    manifest = read_manifest(path)
    assert manifest.task_names == served
    assert AUX not in manifest.parity_sample.outputs and AUX not in manifest.metrics["test"]["tasks"]
    assert manifest.model_args["tasks"] == trained.spec.task_names()  # the checkpoint rebuilds every head
    bundle = load_bundle(path)  # the server's own verification (sha256, outputs, parity sample)
    assert sorted(bundle.predict_rows({k: v[:4] for k, v in _inputs(trained, bundle).items()})) == sorted(served)


def _inputs(trained, bundle) -> dict:
    from training import data as D

    return D.feature_inputs(trained.prepared.splits.test, bundle.manifest.features)


def test_a_server_serves_the_bundle(aux_bundle, tmp_path: Path) -> None:
    _, path = aux_bundle
    manifest = read_manifest(path)
    settings = published_settings(path, tmp_path, WEIGHTS)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        r = client.post("/v1/rank", content=orjson.dumps(example_request(manifest, 5, profile="balanced")))
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 5


def test_a_weights_profile_naming_the_aux_head_is_refused_by_name(aux_bundle, aux_spec: RankerSpec,
                                                                 tmp_path: Path) -> None:
    _, path = aux_bundle
    raw = yaml.safe_load(WEIGHTS.read_text())
    raw["profiles"]["balanced"][AUX] = 1.0
    weights = tmp_path / "weights.yaml"
    weights.write_text(yaml.safe_dump(raw))
    with pytest.raises(WeightsError, match=rf"profiles\.balanced\.{AUX}: task '{AUX}' is an auxiliary head"):
        check_weights(weights, read_manifest(path), "bundle")  # `ranker weights check --bundle`
    with pytest.raises(WeightsError, match=rf"'{AUX}' is an auxiliary head \(serve: false\)"):
        eval_weights(aux_spec, weights)  # the trainer's eval.weights, and `ranker retrain --weights`
    check_weights(WEIGHTS, read_manifest(path), "bundle")  # the served tasks' profiles still fit


def test_report_lists_the_aux_head_with_its_metric(aux_bundle) -> None:
    trained, path = aux_bundle
    report = (path / "report.md").read_text()
    section = report.split("## Auxiliary tasks (serve: false)")[1].split("\n## ")[0]
    rmse = trained.metrics["valid"]["tasks"][AUX]["rmse"]
    assert f"| {AUX} | regression | rmse | {rmse:.4f} |" in section
    assert f"{AUX} (auxiliary)" in report  # the per-task early stopping table marks it


def test_a_spec_serving_nothing_is_refused(tiny_spec: RankerSpec) -> None:
    raw = tiny_spec.model_dump()
    for t in raw["tasks"]:
        t["serve"] = False
    with pytest.raises(ValueError, match="every task is serve: false"):
        RankerSpec.model_validate(raw)


@pytest.mark.parametrize("where", ["gain_weights", "score_weights", "task_gain"])
def test_no_gain_or_score_weight_reads_an_aux_task(tiny_spec: RankerSpec, where: str) -> None:
    raw = tiny_spec.model_dump()
    like = next(t for t in raw["tasks"] if t["name"] == "like")
    like["serve"] = False
    raw["eval"]["gain_weights"] = {"click": 1.0, **({"like": 1.0} if where == "gain_weights" else {})}
    if where == "score_weights":
        raw["eval"]["score_weights"] = {"click": 1.0, "like": 1.0}
    if where == "task_gain":
        next(t for t in raw["tasks"] if t["type"] == "ranking")["gain"] = {"click": 1.0, "like": 2.0}
    with pytest.raises(ValueError, match=r"\['like'\] are auxiliary tasks \(serve: false\)"):
        RankerSpec.model_validate(raw)
    raw["eval"]["score_weights"] = None
    raw["eval"]["gain_weights"] = {"click": 1.0}
    next(t for t in raw["tasks"] if t["type"] == "ranking")["gain"] = None
    spec = RankerSpec.model_validate(raw)  # the same spec without the aux task in a gain
    assert spec.auxiliary_tasks() == ["like"] and "like" not in spec.served().task_names()
