"""Registry semantics on both kinds of storage: a local directory and an fsspec object store (memory://).

The S3 wire path (a real S3-compatible server) is in test_registry_s3.py; crashes in
test_registry_crash.py.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from service.contract.bundle import load_bundle, read_manifest
from service.registry import Registry, RegistryConflict, RegistryError, RegistryLocked

MODEL = "demo"


@pytest.fixture(params=["local", "memory"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "registry")
    return f"memory://registry-{uuid.uuid4().hex}"


def make(root: str, tmp_path: Path, keep: int = 5) -> Registry:
    return Registry(root, MODEL, keep=keep, cache_dir=tmp_path / "cache")


def test_publish_assigns_monotonic_versions_and_moves_current(root: str, tmp_path: Path, bundle_dir: Path) -> None:
    reg = make(root, tmp_path)
    assert reg.current() is None and reg.versions() == []
    assert reg.publish(bundle_dir) == 1
    assert reg.publish(bundle_dir, make_current=False) == 2
    assert reg.versions() == [1, 2]
    assert reg.current() == 1
    assert [h["version"] for h in reg.history()] == [1]


def test_published_bundle_is_stamped_loadable_and_carries_extra_files(root: str, tmp_path: Path,
                                                                       bundle_dir: Path) -> None:
    reg = make(root, tmp_path)
    version = reg.publish(bundle_dir, extra_files=lambda v: {"gate_report.json": json.dumps({"v": v}).encode()})
    path = reg.bundle_dir(version)
    assert read_manifest(path).model_version == version
    assert load_bundle(path).manifest.model_name == MODEL
    assert reg.report(version) == {"v": version}
    assert read_manifest(bundle_dir).model_version is None  # the source bundle is not modified


def test_bundle_of_another_model_is_refused(root: str, tmp_path: Path, bundle_dir: Path) -> None:
    with pytest.raises(RegistryError, match="not 'other'"):
        Registry(root, "other").publish(bundle_dir)


def test_rollback_skips_versions_that_never_served_and_walks_back(root: str, tmp_path: Path,
                                                                 bundle_dir: Path) -> None:
    reg = make(root, tmp_path)
    reg.publish(bundle_dir)                      # 1 served
    reg.publish(bundle_dir)                      # 2 served
    reg.publish(bundle_dir, make_current=False)  # 3 rejected
    reg.publish(bundle_dir)                      # 4 served
    assert reg.rollback() == 2
    assert reg.current() == 2
    assert reg.rollback() == 1
    with pytest.raises(RegistryError, match="no earlier served version"):
        reg.rollback()
    assert reg.current() == 1
    reg.promote(4, reason="fixed forward")
    assert reg.current() == 4
    assert reg.history()[-1]["reason"] == "fixed forward"
    assert reg.history()[-1]["previous"] == 1


def test_promote_of_missing_version_fails_and_keeps_current(root: str, tmp_path: Path, bundle_dir: Path) -> None:
    reg = make(root, tmp_path)
    reg.publish(bundle_dir)
    with pytest.raises(RegistryError, match="does not exist"):
        reg.promote(9)
    assert reg.current() == 1


def test_retention_keeps_last_n_and_never_current_or_its_predecessor(root: str, tmp_path: Path,
                                                                     bundle_dir: Path) -> None:
    reg = make(root, tmp_path, keep=2)
    reg.publish(bundle_dir)  # 1
    reg.publish(bundle_dir)  # 2 (CURRENT, rollback target 1)
    reg.publish(bundle_dir, make_current=False)  # 3
    reg.publish(bundle_dir, make_current=False)  # 4
    assert reg.versions() == [1, 2, 3, 4]  # 1 and 2 are protected although older than the last 2
    reg.publish(bundle_dir)  # 5 becomes CURRENT, predecessor 2: 1 and 3 may go
    assert reg.versions() == [2, 4, 5]
    assert reg.rollback() == 2
    reg.bundle_dir(2)


def test_expect_current_refuses_a_stale_decision(root: str, tmp_path: Path, bundle_dir: Path) -> None:
    reg = make(root, tmp_path)
    reg.publish(bundle_dir)
    reg.publish(bundle_dir)
    with pytest.raises(RegistryConflict, match="moved from 1 to 2"):
        reg.publish(bundle_dir, expect_current=1)
    assert reg.versions() == [1, 2] and reg.current() == 2
    assert reg.publish(bundle_dir, expect_current=2) == 3


def test_second_lock_holder_gets_a_clear_message(root: str, tmp_path: Path, bundle_dir: Path) -> None:
    reg = make(root, tmp_path)
    with reg.lock():
        with pytest.raises(RegistryLocked, match=r"locked by another publish \(held by pid \d+"):
            make(root, tmp_path).publish(bundle_dir)
    assert make(root, tmp_path).publish(bundle_dir) == 1  # released on exit


def test_torn_history_line_is_skipped(tmp_path: Path, bundle_dir: Path) -> None:
    reg = make(str(tmp_path / "r"), tmp_path)
    reg.publish(bundle_dir)
    with open(tmp_path / "r" / MODEL / "history.jsonl", "a") as f:
        f.write('{"version": 2, "at"')  # a crash mid-append
    assert [h["version"] for h in reg.history()] == [1]
    reg.publish(bundle_dir)
    assert reg.rollback() == 1


def test_local_leftovers_of_a_dead_publish_are_cleaned(tmp_path: Path, bundle_dir: Path) -> None:
    reg = make(str(tmp_path / "r"), tmp_path)
    reg.publish(bundle_dir)
    model_dir = tmp_path / "r" / MODEL
    shutil.copytree(bundle_dir, model_dir / ".staging-dead")
    (model_dir / ".CURRENT.x.tmp").write_text("7\n")
    reg.publish(bundle_dir)
    assert sorted(p.name for p in model_dir.iterdir()) == [".lock", "CURRENT", "history.jsonl", "versions"]


def test_object_store_counts_only_versions_with_a_completion_marker(tmp_path: Path, bundle_dir: Path) -> None:
    import fsspec

    root = f"memory://registry-{uuid.uuid4().hex}"
    reg = make(root, tmp_path)
    reg.publish(bundle_dir)
    fs = fsspec.filesystem("memory")
    base = root.removeprefix("memory://")
    fs.pipe_file(f"/{base}/{MODEL}/versions/000002/model.onnx", b"half an upload")
    assert reg.versions() == [1]
    with pytest.raises(RegistryError, match="does not exist"):
        reg.bundle_dir(2)
    assert reg.publish(bundle_dir) == 2  # the dead upload was cleaned, its number reused
    assert load_bundle(reg.bundle_dir(2)).manifest.model_version == 2


def test_object_store_fetch_verifies_every_file(tmp_path: Path, bundle_dir: Path) -> None:
    import fsspec

    root = f"memory://registry-{uuid.uuid4().hex}"
    reg = make(root, tmp_path)
    reg.publish(bundle_dir)
    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"/{root.removeprefix('memory://')}/{MODEL}/versions/000001/model.onnx", b"tampered")
    with pytest.raises(RegistryError, match=r"model.onnx'\] do not match COMPLETE"):
        reg.bundle_dir(1)
    assert not (tmp_path / "cache" / MODEL / "000001").exists()


def test_object_store_reuses_a_verified_cached_copy(tmp_path: Path, bundle_dir: Path) -> None:
    reg = make(f"memory://registry-{uuid.uuid4().hex}", tmp_path)
    reg.publish(bundle_dir)
    first = reg.bundle_dir(1)
    stamp = (first / "model.onnx").stat().st_mtime_ns
    assert reg.bundle_dir(1) == first
    assert (first / "model.onnx").stat().st_mtime_ns == stamp


def test_models_lists_local_model_directories(tmp_path: Path, bundle_dir: Path) -> None:
    Registry(tmp_path / "r", MODEL).publish(bundle_dir)
    (tmp_path / "r" / "not-a-model").mkdir()
    assert Registry.models(tmp_path / "r") == [MODEL]


def test_keep_below_two_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep must be >= 2"):
        Registry(tmp_path, MODEL, keep=1)


def test_published_files_are_readable_by_other_users(tmp_path: Path, bundle_dir: Path) -> None:
    """CURRENT and manifest.json once came out 0600 (mkstemp's default): a server running as another
    user, such as the serving image's own, could not read a registry the trainer published."""
    old = os.umask(0o022)
    try:
        reg = Registry(tmp_path / "registry", "demo")
        reg.publish(bundle_dir)
        reg.publish(bundle_dir)
        reg.rollback()
    finally:
        os.umask(old)
    model_dir = tmp_path / "registry" / "demo"
    files = [p for p in model_dir.rglob("*") if p.is_file() and p.name != ".lock"]
    assert {"CURRENT", "history.jsonl", "manifest.json", "model.onnx"} <= {p.name for p in files}
    for path in [*files, *(p for p in model_dir.rglob("*") if p.is_dir())]:
        assert path.stat().st_mode & 0o044 == 0o044, f"{path} is {oct(path.stat().st_mode)}"
