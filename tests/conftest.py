"""Shared fixtures: demo data, a spec for it, and one real trained + exported bundle per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from training.demo_data import DemoConfig, write_demo
from training.spec import RankerSpec, load_spec

REPO = Path(__file__).resolve().parents[1]
DEMO_SPEC = REPO / "configs" / "demo.yaml"
TEST_ROWS = 20_000


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-data")
    write_demo(out, DemoConfig(rows=TEST_ROWS, seed=0))
    return out


@pytest.fixture(scope="session")
def demo_spec(demo_dir: Path) -> RankerSpec:
    return load_spec(DEMO_SPEC, data_path=str(demo_dir))


@pytest.fixture(scope="session")
def trained(demo_spec: RankerSpec):
    from training.train import train

    # One intra-op thread: on a shared 2-core box, two OpenMP threads that get preempted spin at
    # barriers and run many times slower; results differ from 2 threads only by float rounding.
    spec = demo_spec.model_copy(deep=True)
    spec.train.threads = 1
    return train(spec, progress=False)


@pytest.fixture(scope="session")
def bundle_dir(trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.export import export_bundle

    return export_bundle(trained, tmp_path_factory.mktemp("bundles") / "demo")


@pytest.fixture(scope="module")
def s3() -> Iterator:
    """A real S3-compatible server (moto's standalone server) on 127.0.0.1, AWS_* env pointing at it."""
    from moto_s3 import aws_env, moto_server

    with moto_server() as server, aws_env(server):
        yield server
