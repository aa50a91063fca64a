"""A publishing process killed (SIGKILL) at each point of a publish leaves a readable registry whose
CURRENT names a complete bundle; the next publish cleans up and succeeds. Also: two processes
cannot publish at once. Both on a local directory and on a real S3-compatible server (moto)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto_s3 import S3Server, aws_env, moto_server

from service.contract.bundle import load_bundle
from service.registry import Registry
from service.registry.failpoints import PAUSE_ENV, PAUSE_FILE_ENV

MODEL = "demo"
LEASE_SECONDS = 2.0  # the killed publisher's S3 lease; the recovery publish waits it out
PUBLISH = """
import sys
from pathlib import Path
from service.registry import Registry
Registry(sys.argv[1], "demo", keep=2, lock_ttl=float(sys.argv[3]), cache_dir=Path(sys.argv[4])).publish(Path(sys.argv[2]))
"""
# Points in publish order; CURRENT moves to the new version at "current_replaced".
LOCAL_POINTS = ["locked", "staged", "committed", "current_tmp_written", "current_replaced", "retention_renamed"]
S3_POINTS = ["locked", "uploading", "staged", "committed", "current_replaced", "retention_renamed"]
MOVED = {"current_replaced", "retention_renamed"}


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_server() as server, aws_env(server):
        yield server


def start_publisher(root: str, bundle: Path, tmp: Path, pause_at: str | None, env: dict[str, str]) -> subprocess.Popen:
    marker = tmp / f"paused-{pause_at}"
    full_env = {**os.environ, **env, PAUSE_ENV: pause_at or "", PAUSE_FILE_ENV: str(marker)}
    return subprocess.Popen([sys.executable, "-c", PUBLISH, root, str(bundle), str(LEASE_SECONDS), str(tmp / "cache")],
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_paused(proc: subprocess.Popen, marker: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"publisher exited ({proc.returncode}) before pausing: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("publisher never reached its pause point")
        time.sleep(0.05)


def seed_registry(root: str, bundle: Path, cache: Path) -> Registry:
    """v1 served, v2 CURRENT, v3 rejected: the 4th publish (keep=2) also deletes v1 by retention."""
    reg = Registry(root, MODEL, keep=2, lock_ttl=LEASE_SECONDS, cache_dir=cache)
    reg.publish(bundle)
    reg.publish(bundle)
    reg.publish(bundle, make_current=False)
    return reg


def assert_consistent(reg: Registry) -> int:
    current = reg.current()
    assert current is not None and current in reg.versions()
    for v in reg.versions():  # every listed version is complete and verifies
        assert load_bundle(reg.bundle_dir(v)).manifest.model_version == v
    return current


def crash_and_recover(root: str, bundle: Path, tmp: Path, point: str, env: dict[str, str]) -> Registry:
    reg = seed_registry(root, bundle, tmp / "cache")
    proc = start_publisher(root, bundle, tmp, point, env)
    try:
        wait_paused(proc, tmp / f"paused-{point}")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    fresh = Registry(root, MODEL, keep=2, lock_ttl=LEASE_SECONDS, cache_dir=tmp / "cache2")
    assert assert_consistent(fresh) == (4 if point in MOVED else 2)
    if env:
        time.sleep(LEASE_SECONDS + 0.5)  # the S3 lease of the dead job expires (a flock died with it)
    new = fresh.publish(bundle)
    assert fresh.current() == new and new > 3
    assert_consistent(fresh)
    return reg


@pytest.mark.parametrize("point", LOCAL_POINTS)
def test_kill_during_local_publish(point: str, tmp_path: Path, bundle_dir: Path) -> None:
    root = tmp_path / "registry"
    crash_and_recover(str(root), bundle_dir, tmp_path, point, {})
    leftovers = [p.name for p in (root / MODEL).iterdir() if p.name.startswith((".staging", ".trash", ".CURRENT"))]
    assert leftovers == []


@pytest.mark.slow
@pytest.mark.parametrize("point", S3_POINTS)
def test_kill_during_s3_publish(point: str, s3: S3Server, tmp_path: Path, bundle_dir: Path) -> None:
    import s3fs

    bucket = f"crash-{point.replace('_', '-')}"
    crash_and_recover(s3.make_bucket(bucket), bundle_dir, tmp_path, point, s3.env())
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    prefixes = fs.ls(f"{bucket}/{MODEL}/versions", detail=False)
    assert all(fs.exists(f"{p}/COMPLETE") for p in prefixes)  # no half upload survives the next publish
    assert not fs.exists(f"{bucket}/{MODEL}/.lock")


def test_second_publisher_exits_with_a_clear_message(tmp_path: Path, bundle_dir: Path) -> None:
    root = str(tmp_path / "registry")
    holder = start_publisher(root, bundle_dir, tmp_path, "staged", {})
    try:
        wait_paused(holder, tmp_path / "paused-staged")
        second = subprocess.run([sys.executable, "-m", "training.cli", "publish", str(bundle_dir), "--registry", root],
                                capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert second.returncode == 2
    assert f"locked by another publish (held by pid {holder.pid}" in second.stderr
    assert Registry(root, MODEL).versions() == []  # neither finished; nothing half-published is listed
