"""What the Dockerfile's `serve` target installs, proven without a Docker engine: `pip install
'.[serve]'` (with constraints.txt) into a fresh venv has no torch, pandas or training code, and its
`ranker-serve` starts against a registry with a real bundle and ranks."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import httpx
import pytest
from server_helpers import REPO, free_port, wait_until

from service.contract.bundle import read_manifest
from service.examples import example_request
from service.registry import Registry

pytestmark = pytest.mark.slow
PROJECT_FILES = ["pyproject.toml", "README.md", "constraints.txt", "service", "training"]


@pytest.fixture(scope="module")
def serve_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the serve extra (the source is copied so the build leaves the repo clean)."""
    root = tmp_path_factory.mktemp("serve-install")
    src = root / "src"
    src.mkdir()
    for name in PROJECT_FILES:
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, src / name)
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    pip = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "-c",
                          str(src / "constraints.txt"), f"{src}[serve]"],
                         capture_output=True, text=True, timeout=900, cwd=root)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return env_dir


def venv_python(env_dir: Path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(env_dir / "bin" / "python"), "-c", code], capture_output=True, text=True,
                          cwd=env_dir, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, timeout=120)


def test_serve_install_has_no_torch_pandas_or_training(serve_venv: Path) -> None:
    for module in ("torch", "pandas", "training.fit.train"):
        probe = venv_python(serve_venv, f"import {module}")
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, (module, probe.stderr)
    ok = venv_python(serve_venv, "import service.app, service.registry, onnxruntime, fastapi; print(service.app.__file__)")
    assert ok.returncode == 0, ok.stderr
    assert str(serve_venv) in ok.stdout  # the installed copy, not the repository's
    assert (serve_venv / "bin" / "ranker-serve").exists()


def test_serve_install_starts_and_ranks(serve_venv: Path, bundle_dir: Path, tmp_path: Path) -> None:
    Registry(tmp_path / "registry", "demo").publish(bundle_dir)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RANKER_") and k != "PYTHONPATH"}
    env.update(RANKER_REGISTRY_ROOT=str(tmp_path / "registry"), RANKER_MODEL_NAME="demo", RANKER_PORT=str(port),
               RANKER_HOST="127.0.0.1", RANKER_WEIGHTS_PATH=str(REPO / "configs" / "weights.yaml"))
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen([str(serve_venv / "bin" / "ranker-serve")], env=env, cwd=tmp_path,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            try:
                return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return proc.poll() is not None
        assert wait_until(ready, 60, 0.2) and proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        assert httpx.get(f"{url}/v2/health/live", timeout=5).status_code == 200
        body = example_request(read_manifest(bundle_dir), 30, top_k=10)
        r = httpx.post(f"{url}/v1/rank", json=body, timeout=10)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert len(items) == 10 and [i["rank"] for i in items] == list(range(1, 11))
        assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    finally:
        proc.terminate()
        proc.wait(timeout=20)

