"""Shared fixtures: demo data, a spec for it, and trained + exported bundles (once per session).

Two trained models:
  `trained` / `bundle_dir`  a small run (10k demo rows, 2 epochs): real encoders, a real ONNX
                            export and a verified bundle, in a few seconds. Everything that tests
                            mechanics (export, serving, registry, HTTP) uses this one.
  `quality_trained` / `quality_bundle_dir`
                            the demo spec on 20k rows, trained to convergence: only the tests
                            about what training achieves, and the retrain tests that gate a new
                            candidate against it as CURRENT, use it (all marked slow).
"""

from __future__ import annotations

import fcntl
import os
import sys

# One intra-op thread for torch everywhere in the suite, set before anything imports torch. The
# suite runs 2 xdist workers on 2 cores: two more OpenMP threads per worker get preempted and spin
# at barriers, which made small CPU-bound tests up to 10x slower (test_losses: 18.5 s -> 1.9 s).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# The training modules load in the fixtures that use them: this file is also imported by xdist's controller
# process, which runs no test (pyarrow and pandas there cost a core 0.35 s while the workers start).
if TYPE_CHECKING:
    from training.spec import RankerSpec

REPO = Path(__file__).resolve().parents[1]
DEMO_SPEC = REPO / "configs" / "demo.yaml"
TEST_ROWS = 20_000
TINY_ROWS = 10_000  # the test split (10%) holds the 1,000 rows export parity is checked on
TINY_EPOCHS = 2
TINY_BATCH = 256  # 64 steps in all: enough for heads that order their requests better than chance


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.data.demo import DemoConfig, write_demo

    out = tmp_path_factory.mktemp("demo-data")
    write_demo(out, DemoConfig(rows=TEST_ROWS, seed=0))
    return out


@pytest.fixture(scope="session")
def demo_spec(demo_dir: Path) -> RankerSpec:
    from training.spec import load_spec

    return load_spec(DEMO_SPEC, data_path=str(demo_dir))


def _train(spec: RankerSpec):
    from training.fit.train import train

    # One intra-op thread: on a shared 2-core box, two OpenMP threads that get preempted spin at
    # barriers and run many times slower; results differ from 2 threads only by float rounding.
    spec = spec.model_copy(deep=True)
    spec.train.threads = 1
    return train(spec, progress=False, eval_test=True)  # the tests check what --eval-test stores


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Back to one torch thread after each test: train() sets the spec's train.threads (default: every core)
    for the rest of the process, and a second thread per worker makes later torch tests many times slower
    (above)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.data.demo import DemoConfig, write_demo

    out = tmp_path_factory.mktemp("tiny-data")
    write_demo(out, DemoConfig(rows=TINY_ROWS, seed=0))
    return out


@pytest.fixture(scope="session")
def tiny_spec(tiny_dir: Path) -> RankerSpec:
    from training.spec import load_spec

    spec = load_spec(DEMO_SPEC, data_path=str(tiny_dir))
    spec.train.epochs = TINY_EPOCHS
    spec.train.batch_size = TINY_BATCH
    return spec


@pytest.fixture(scope="session")
def trained(tiny_spec: RankerSpec):
    """The demo model trained briefly on 10k rows: for tests of mechanics, not of quality."""
    return _train(tiny_spec)


@pytest.fixture(scope="session")
def quality_trained(demo_spec: RankerSpec):
    """The demo spec trained to convergence on 20k rows (seed 0)."""
    return _train(demo_spec)


@pytest.fixture(scope="session")
def bundle_dir(trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.bundle.export import export_bundle

    return export_bundle(trained, tmp_path_factory.mktemp("bundles") / "demo")


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """`build(path)` once per pytest run, shared by its xdist workers (one process each): the first worker
    to ask builds it, holding a lock that the others wait on; they then read what it built.

    For an artefact that few tests read and that costs seconds: each worker building its own doubles
    the cost on a 2-core machine. `build` must leave nothing at `path` when it fails.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-N/ holds every worker's popen-gwK/ base of this run
    path = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not path.exists():
            build(path)
    return path


@pytest.fixture(scope="session")
def full_bundle_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`bundle_dir`'s model exported unsplit (one input row per candidate, manifest format 2): a bundle as
    servers from before format 3 knew them, which still loads. Exported once per run (built_once); the
    worker that exports it asks for `trained`, the others need not."""
    from training.bundle.export import export_bundle

    return built_once(tmp_path_factory, "demo-full-bundle",
                      lambda path: export_bundle(request.getfixturevalue("trained"), path, split=False))


@pytest.fixture(scope="session")
def quality_bundle_dir(quality_trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The converged demo model's bundle: a CURRENT that a retrained candidate is compared against."""
    from training.bundle.export import export_bundle

    return export_bundle(quality_trained, tmp_path_factory.mktemp("bundles") / "demo-quality")


@pytest.fixture(scope="module")
def s3() -> Iterator:
    """A real S3-compatible server (moto's standalone server) on 127.0.0.1, AWS_* env pointing at it."""
    from moto_s3 import aws_env, moto_server

    with moto_server() as server, aws_env(server):
        yield server


@pytest.fixture(scope="session")
def feature_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """items.parquet and users.parquet: the catalogue behind the tiny demo data (what `trained` saw)."""
    from training.data.demo import DemoConfig, generate, write_feature_snapshots

    return write_feature_snapshots(generate(DemoConfig(rows=TINY_ROWS, seed=0)), tmp_path_factory.mktemp("features"))
