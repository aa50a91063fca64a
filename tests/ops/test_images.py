"""The Dockerfile's images, built and run without a Docker engine (`make image-test`, run by CI).

buildah builds the targets on a debootstrapped Debian base (scripts/images/). The serve image then
runs as its own user (uid 10001) against a registry that another user published (root, umask 022),
mounted read-only, and must become ready, rank, and hold no torch, pandas or training code. The
train image, its CPU torch fed from the host's local wheel directory, must run `ranker --help`.
Needs root (buildah with vfs storage and chroot isolation); skipped unless RANKER_IMAGE_TEST=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from server_helpers import REPO, free_port, wait_until

from service.registry import Registry

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("RANKER_IMAGE_TEST") != "1",
                       reason="builds images with buildah as root: make image-test"),
]
SCRIPTS = REPO / "scripts" / "images"
IMAGE_UID = 10001  # the Dockerfile's `ranker` user
BUILD_TIMEOUT = 1800


def buildah(*args: str) -> list[str]:
    """The command line of buildah on this checkout's image store (scripts/images/buildah.sh)."""
    return ["bash", "-c", f'source "{SCRIPTS}/buildah.sh" && exec "${{BUILDAH[@]}}" "$@"', "buildah", *args]


def bah(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(buildah(*args), capture_output=True, text=True, timeout=timeout)


def build(target: str) -> str:
    """Build a Dockerfile target with scripts/images/build.sh; returns the image name."""
    started = time.monotonic()
    run = subprocess.run([str(SCRIPTS / "build.sh"), target], capture_output=True, text=True,
                         env={**os.environ, "PYTHON": sys.executable}, timeout=BUILD_TIMEOUT)
    assert run.returncode == 0, run.stderr[-4000:]
    image = run.stdout.split()[-1]
    size = bah("images", "--noheading", "--format", "{{.Size}}", image).stdout.strip()
    print(f"\n{image}: {size}, built in {time.monotonic() - started:.0f} s")
    return image


@contextmanager
def container(image: str) -> Iterator[str]:
    """A working container of `image` (its user, environment and command), removed afterwards."""
    made = bah("from", "--pull=never", image)
    assert made.returncode == 0, made.stderr
    name = made.stdout.split()[-1]
    try:
        yield name
    finally:
        bah("rm", name)


def run_in(name: str, *command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return bah("run", name, "--", *command, timeout=timeout)


@pytest.fixture(scope="module")
def serve_image() -> str:
    return build("serve")


@pytest.fixture(scope="module")
def train_image() -> str:
    return build("train")


@pytest.fixture
def foreign_registry(bundle_dir: Path, tmp_path: Path) -> Path:
    """A registry with the tiny bundle as CURRENT, published by root with the default umask."""
    root = tmp_path / "registry"
    umask = os.umask(0o022)
    try:
        Registry(root, "demo").publish(bundle_dir)
    finally:
        os.umask(umask)
    owners = {p.stat().st_uid for p in [root, *root.rglob("*")]}
    assert IMAGE_UID not in owners, "the registry must belong to another user than the image's"
    return root


def test_serve_image_runs_as_its_user_without_torch_pandas_or_training(serve_image: str) -> None:
    probe = ("import importlib.util as u, os, shutil; "
             "print(os.getuid(), [m for m in ('torch', 'pandas', 'training') if u.find_spec(m)], "
             "shutil.which('ranker'), shutil.which('ranker-serve'))")
    with container(serve_image) as name:
        out = run_in(name, "python", "-c", probe)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(IMAGE_UID), "[]", "None", "/usr/local/bin/ranker-serve"], out.stdout


def test_serve_image_serves_another_users_registry(serve_image: str, foreign_registry: Path, bundle_dir: Path,
                                                   tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with container(serve_image) as name, open(log_path, "wb") as log:
        started = time.monotonic()
        server = subprocess.Popen(
            buildah("run", "--env", "RANKER_HOST=127.0.0.1", "--env", f"RANKER_PORT={port}",
                    "--volume", f"{foreign_registry}:/registry:ro", name, "--", "ranker-serve"),
            stdout=log, stderr=subprocess.STDOUT)
        try:
            assert wait_until(lambda: ready(url) or server.poll() is not None, 90, 0.1) and server.poll() is None, \
                log_path.read_text()[-4000:]
            print(f"\nready after {time.monotonic() - started:.1f} s (buildah run to /v2/health/ready 200)")
            body = subprocess.run([sys.executable, "-m", "service.examples", str(bundle_dir), "--candidates", "20",
                                   "--top-k", "5"], capture_output=True, text=True, check=True, cwd=REPO).stdout
            r = httpx.post(f"{url}/v1/rank", content=body, headers={"Content-Type": "application/json"}, timeout=10)
            assert r.status_code == 200, r.text
            print(f"POST /v1/rank (20 candidates, top 5) -> {r.status_code}\n{json.dumps(r.json(), indent=2)}")
        finally:
            server.terminate()
            server.wait(30)
    answer = r.json()
    assert answer["model_version"] == 1
    assert [i["rank"] for i in answer["items"]] == [1, 2, 3, 4, 5]
    scores = [i["score"] for i in answer["items"]]
    assert scores == sorted(scores, reverse=True)


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_train_image_has_cpu_torch_and_runs_ranker(train_image: str) -> None:
    with container(train_image) as name:
        help_out = run_in(name, "ranker", "--help")
        lightgbm = run_in(name, "python", "-c", "import lightgbm")  # its OpenMP library is in the image
        listing = run_in(name, "python", "-m", "pip", "list", "--format", "json")
    assert help_out.returncode == 0 and "retrain" in help_out.stdout, help_out.stdout + help_out.stderr
    assert lightgbm.returncode == 0, lightgbm.stderr
    print(f"\nranker --help in {train_image}:\n{help_out.stdout}")
    packages = {p["name"].lower(): p["version"] for p in json.loads(listing.stdout)}
    assert packages["torch"].endswith("+cpu"), packages["torch"]
    assert not [n for n in packages if n.startswith("nvidia-") or n == "triton"]
