"""End-to-end fixtures: a real `python -m service.cli` (uvicorn) on 127.0.0.1 and a free port,
configured by RANKER_* variables to read a temp registry and a temp weights file."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from server_helpers import ADMIN_TOKEN, REPO, ServerProcess

from service.contract.bundle import Manifest, read_manifest
from service.registry import Registry


class Deployment:
    """One server process plus the registry and weights file it reads."""

    def __init__(self, root: Path, bundle_dir: Path, admin_token: str | None = ADMIN_TOKEN, **env: str) -> None:
        self.root = root
        self.bundle_dir = bundle_dir
        self.registry = Registry(root / "registry", read_manifest(bundle_dir).model_name)
        self.registry.publish(bundle_dir)
        self.weights_path = root / "weights.yaml"
        shutil.copy(REPO / "configs" / "weights.yaml", self.weights_path)
        settings = {"RANKER_REGISTRY_ROOT": str(self.registry.root), "RANKER_MODEL_NAME": self.registry.model_name,
                    "RANKER_WEIGHTS_PATH": str(self.weights_path), "RANKER_POLL_INTERVAL": "0.05",
                    "RANKER_WEIGHTS_POLL_INTERVAL": "0.05", **env}
        if admin_token:
            settings["RANKER_ADMIN_TOKEN"] = admin_token
        self.server = ServerProcess(settings, root / "server.log")
        self.client = httpx.Client(base_url=self.server.url, timeout=10.0)

    def start(self) -> Deployment:
        self.server.wait_ready()
        return self

    def stop(self) -> None:
        self.client.close()
        self.server.stop()


@pytest.fixture
def deploy(tmp_path: Path, bundle_dir: Path) -> Iterator[Callable[..., Deployment]]:
    """Start servers for one test (each with its own registry, serving `bundle`, by default the demo
    bundle); all are stopped at teardown."""
    started: list[Deployment] = []

    def start(bundle: Path | None = None, **kwargs) -> Deployment:
        d = Deployment(tmp_path / f"deployment-{len(started)}", bundle or bundle_dir, **kwargs)
        started.append(d)
        return d.start()

    yield start
    for d in started:
        d.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, bundle_dir: Path) -> Iterator[Deployment]:
    """One server for the read-only tests of a module."""
    d = Deployment(tmp_path_factory.mktemp("e2e"), bundle_dir).start()
    yield d
    d.stop()


@pytest.fixture(scope="session")
def manifest(bundle_dir: Path) -> Manifest:
    return read_manifest(bundle_dir)
