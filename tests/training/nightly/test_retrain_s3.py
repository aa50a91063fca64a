"""The nightly job against a real S3-compatible server (moto on 127.0.0.1): a `ranker retrain`
process publishes to s3://, a server-side Registry (own cache) reads CURRENT and the bundle, and the
next night warm-starts from the checkpoint fetched from S3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from moto_s3 import S3Server
from retrain_helpers import quick_spec, write_spec

from service.contract.bundle import load_bundle
from service.registry import Registry
from training.nightly.retrain import EXIT_PROMOTED, RetrainOptions, retrain
from training.spec import RankerSpec

pytestmark = pytest.mark.slow



def test_nightly_job_on_an_s3_registry(s3: S3Server, demo_spec: RankerSpec, tmp_path: Path) -> None:
    root = s3.make_bucket("nightly") + "/models"
    spec_file = write_spec(quick_spec(demo_spec, epochs=4), tmp_path / "spec.yaml")
    job = subprocess.run([sys.executable, "-m", "training.cli", "retrain", str(spec_file), "--registry", root,
                          "--work-dir", str(tmp_path / "night1")],
                         env={**os.environ, **s3.env()}, capture_output=True, text=True, timeout=600)
    assert job.returncode == EXIT_PROMOTED, job.stdout + job.stderr
    assert "promoted: version 1" in job.stdout

    server = Registry(root, "demo", cache_dir=tmp_path / "server-cache")
    assert server.current() == 1
    bundle = load_bundle(server.bundle_dir(1))
    assert bundle.manifest.model_version == 1
    assert server.report(1)["decision"] == "promoted"

    night2 = quick_spec(demo_spec, epochs=2, auc_tolerance=0.05, rmse_tolerance=0.2)
    out = retrain(night2, Registry(root, "demo", cache_dir=tmp_path / "job-cache"),
                  RetrainOptions(work_dir=tmp_path / "night2", warm_start=True))
    assert out.exit_code == EXIT_PROMOTED, out.report["failed"]
    assert out.report["warm_start"]["from_version"] == 1 and out.report["compared_with"] == 1
    assert server.current() == 2
    assert load_bundle(server.bundle_dir(2)).manifest.model_version == 2
