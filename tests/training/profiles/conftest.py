"""A scored demo log (the tiny bundle over its own 10k rows) shared by the weights tooling tests."""

from pathlib import Path

import pytest

from service.contract.bundle import load_bundle
from training.profiles.logs import LogColumns, read_log, score_log

REPO = Path(__file__).resolve().parents[3]
DEMO_WEIGHTS = REPO / "configs" / "weights.yaml"


@pytest.fixture(scope="session")
def loaded_bundle(bundle_dir):
    return load_bundle(bundle_dir)


@pytest.fixture(scope="session")
def log_table(loaded_bundle, tiny_dir):
    return read_log(str(tiny_dir), loaded_bundle, LogColumns())


@pytest.fixture(scope="session")
def scored(loaded_bundle, log_table):
    return score_log(loaded_bundle, log_table, LogColumns())
