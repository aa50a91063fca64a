"""Fixtures for the server tests: a registry holding the real demo bundle, a weights file, an app."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_helpers import ADMIN_TOKEN, wait_ready

from service.app import create_app
from service.contract.bundle import Manifest, read_manifest
from service.registry import Registry
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEMO_WEIGHTS = REPO / "configs" / "weights.yaml"


@pytest.fixture(scope="session")
def manifest(bundle_dir: Path) -> Manifest:
    return read_manifest(bundle_dir)


@pytest.fixture
def registry(tmp_path: Path, bundle_dir: Path, manifest: Manifest) -> Registry:
    """A fresh registry with the demo bundle published as version 1 (CURRENT)."""
    reg = Registry(tmp_path / "registry", manifest.model_name)
    reg.publish(bundle_dir)
    return reg


@pytest.fixture
def weights_path(tmp_path: Path) -> Path:
    path = tmp_path / "weights.yaml"
    shutil.copy(DEMO_WEIGHTS, path)
    return path


@pytest.fixture
def make_settings(registry: Registry, weights_path: Path) -> Callable[..., Settings]:
    def make(**overrides) -> Settings:
        values = dict(registry_root=str(registry.root), model_name=registry.model_name, weights_path=weights_path,
                      poll_interval=0.1, weights_poll_interval=0.1)
        return Settings(**{**values, **overrides})
    return make


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """The app in-process (lifespan running) once it reports ready."""
    with TestClient(create_app(make_settings(admin_token=ADMIN_TOKEN))) as c:
        wait_ready(c)
        yield c


@pytest.fixture
def edited_bundle(bundle_dir: Path, tmp_path: Path) -> Callable[[Callable[[dict], None]], Path]:
    """A copy of the demo bundle whose manifest.json was changed by `edit(manifest_dict)`.

    The manifest's sha256 covers model.onnx only, so an edited copy still loads: this is how the
    tests build an older bundle (fields removed) or a stricter one (on_missing: error).
    """
    def make(edit: Callable[[dict], None]) -> Path:
        out = tmp_path / f"edited-{len(list(tmp_path.glob('edited-*')))}"
        shutil.copytree(bundle_dir, out)
        raw = json.loads((out / "manifest.json").read_text())
        edit(raw)
        (out / "manifest.json").write_text(json.dumps(raw))
        return out
    return make
