"""The registry on a real S3-compatible server (moto, 127.0.0.1): what the trainer writes, a server
reading through its own Registry object (own cache) sees; the lock is a conditional-PUT lease."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import s3fs
from moto_s3 import S3Server

from service.contract.bundle import load_bundle
from service.registry import Registry, RegistryError, RegistryLocked
from service.registry.store import holder_info

MODEL = "demo"
pytestmark = pytest.mark.slow



def test_trainer_writes_and_a_server_reads_through_its_cache(s3: S3Server, tmp_path: Path, bundle_dir: Path) -> None:
    root = s3.make_bucket("reg-read") + "/models"
    trainer = Registry(root, MODEL, cache_dir=tmp_path / "trainer-cache")
    server = Registry(root, MODEL, cache_dir=tmp_path / "server-cache")
    assert server.current() is None
    v1 = trainer.publish(bundle_dir, extra_files=lambda v: {"gate_report.json": json.dumps({"version": v}).encode()})
    assert server.current() == v1 == 1
    path = server.bundle_dir(v1)
    assert path.is_relative_to(tmp_path / "server-cache")
    assert load_bundle(path).manifest.model_version == 1
    assert (path / "checkpoint.pt").is_file()
    assert server.report(1) == {"version": 1}
    trainer.publish(bundle_dir)
    assert server.current() == 2 and server.versions() == [1, 2]
    assert trainer.rollback() == 1
    assert server.current() == 1
    assert [h["reason"] for h in server.history()] == ["published", "published", "rollback from 2"]


def test_lock_is_exclusive_and_an_expired_lease_is_broken(s3: S3Server, tmp_path: Path, bundle_dir: Path) -> None:
    root = s3.make_bucket("reg-lock")
    first = Registry(root, MODEL, cache_dir=tmp_path / "c1")
    second = Registry(root, MODEL, cache_dir=tmp_path / "c2")
    with first.lock():
        with pytest.raises(RegistryLocked, match="locked by another publish"):
            second.publish(bundle_dir)
    assert second.publish(bundle_dir) == 1  # released
    # A job that died holding the lease leaves it behind: it blocks others until it expires.
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.pipe_file("reg-lock/demo/.lock", json.dumps(holder_info(ttl=600)).encode())
    with pytest.raises(RegistryLocked, match="lease until"):
        second.publish(bundle_dir)
    fs.pipe_file("reg-lock/demo/.lock", json.dumps(holder_info(ttl=-1)).encode())  # ... and later it has expired
    assert second.publish(bundle_dir) == 2  # the expired lease was broken
    assert not fs.exists("reg-lock/demo/.lock")


def test_an_unreachable_store_is_a_registry_error(tmp_path: Path) -> None:
    from moto_s3 import free_port

    dead = {"client_kwargs": {"endpoint_url": f"http://127.0.0.1:{free_port()}"},
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}}
    reg = Registry("s3://nowhere", MODEL, cache_dir=tmp_path, storage_options=dead)
    with pytest.raises(RegistryError, match="storage error in read"):
        reg.current()  # servers keep their model on RegistryError; a raw client error would escape them


def test_a_canary_record_on_s3_is_read_by_a_server(s3: S3Server, tmp_path: Path, bundle_dir: Path) -> None:
    root = s3.make_bucket("reg-canary") + "/models"
    trainer = Registry(root, MODEL, cache_dir=tmp_path / "trainer-cache")
    server = Registry(root, MODEL, cache_dir=tmp_path / "server-cache")
    trainer.publish(bundle_dir)
    trainer.publish(bundle_dir, make_current=False)
    started = trainer.start_canary(2, 0.25, "shadow")
    assert server.canary() == started
    trainer.promote(2)
    assert server.canary() is None and server.current() == 2
    assert [e.get("event") for e in server.events()][-2:] == [None, "canary_promoted"]
