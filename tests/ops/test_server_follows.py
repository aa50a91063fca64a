"""A running `ranker-serve` process follows the registry: a candidate promoted by the nightly job is
served, a rejected one never is, `ranker registry rollback` is followed, on a local registry and on
an S3 registry (moto on 127.0.0.1) that the server polls."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from moto_s3 import S3Server
from retrain_helpers import quick_spec, shuffle_training_labels
from server_helpers import REPO, ServerProcess, wait_until
from typer.testing import CliRunner

from service.contract.bundle import read_manifest
from service.examples import example_request
from service.registry import Registry
from training.cli import app
from training.nightly.retrain import EXIT_PROMOTED, EXIT_REJECTED, RetrainOptions, retrain
from training.spec import RankerSpec

pytestmark = pytest.mark.slow
POLL = 0.2


def start_server(root: str, tmp: Path, env: dict[str, str] | None = None) -> ServerProcess:
    weights = tmp / "weights.yaml"
    shutil.copy(REPO / "configs" / "weights.yaml", weights)
    settings = {"RANKER_REGISTRY_ROOT": root, "RANKER_MODEL_NAME": "demo", "RANKER_WEIGHTS_PATH": str(weights),
                "RANKER_POLL_INTERVAL": str(POLL), **(env or {})}
    return ServerProcess(settings, tmp / "server.log").wait_ready(60)


def served_version(server: ServerProcess, body: dict) -> int:
    r = httpx.post(f"{server.url}/v1/rank", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["model_version"]


def follows(server: ServerProcess, body: dict, version: int, timeout: float = 30.0) -> bool:
    return wait_until(lambda: served_version(server, body) == version, timeout, 0.1)


@pytest.fixture
def local(tmp_path: Path, quality_bundle_dir: Path) -> Iterator[tuple[Registry, ServerProcess, dict]]:
    reg = Registry(tmp_path / "registry", "demo")
    reg.publish(quality_bundle_dir)  # the retrain in these tests gates against a converged CURRENT
    server = start_server(str(tmp_path / "registry"), tmp_path)
    try:
        yield reg, server, example_request(read_manifest(quality_bundle_dir), 20)
    finally:
        server.stop()


def test_promoted_candidate_is_served_and_rollback_is_followed(local, demo_spec: RankerSpec, demo_dir: Path,
                                                               tmp_path: Path) -> None:
    reg, server, body = local
    assert served_version(server, body) == 1

    bad = quick_spec(demo_spec, shuffle_training_labels(demo_dir, tmp_path / "corrupted"))
    rejected = retrain(bad, reg, RetrainOptions(work_dir=tmp_path / "bad"))
    assert rejected.exit_code == EXIT_REJECTED and rejected.version == 2
    assert not follows(server, body, 2, timeout=POLL * 10)  # published for review, never served

    good = quick_spec(demo_spec, auc_tolerance=0.02, rmse_tolerance=0.1)
    promoted = retrain(good, reg, RetrainOptions(work_dir=tmp_path / "good", warm_start=True))
    assert promoted.exit_code == EXIT_PROMOTED, promoted.report["failed"]
    assert follows(server, body, 3)
    assert httpx.get(f"{server.url}/v1/models").json()["model"]["version"] == 3

    result = CliRunner().invoke(app, ["registry", "rollback", "--registry", str(reg.root), "--model", "demo"])
    assert result.exit_code == 0 and "CURRENT = 1 (was 3)" in result.output  # skips the rejected v2
    assert follows(server, body, 1)



def test_server_polls_an_s3_registry(s3: S3Server, bundle_dir: Path, tmp_path: Path) -> None:
    root = s3.make_bucket("serving") + "/models"
    reg = Registry(root, "demo", cache_dir=tmp_path / "job-cache")
    reg.publish(bundle_dir)
    server = start_server(root, tmp_path, {**s3.env(), "TMPDIR": str(tmp_path)})
    try:
        body = example_request(read_manifest(bundle_dir), 20)
        assert served_version(server, body) == 1
        reg.publish(bundle_dir)
        assert follows(server, body, 2)
        assert reg.rollback() == 1
        assert follows(server, body, 1)
    finally:
        server.stop()
    assert list((tmp_path / "ranker-registry-cache").glob("*/demo/000002/model.onnx"))  # fetched, verified, cached
